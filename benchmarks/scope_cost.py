"""What the scope statement costs the server (issue 36): pgbench as a ``maim_app`` login (and a
``maim_plugin`` login for the key scope), ``-M prepared``, one client, the transactions
``begin; <X>; commit``, every X interleaved in rounds so the machine's drift falls on all
alike; the medians as a share of ``select 1``'s rate. Two rows say what no form of a scope
statement can go below: the checks each scope must make (the agent's and tenant's status; the
key's lookup and its counted use) as plain prepared statements, on copies without RLS.

Beside it, where the server runs on this machine, the backend's own CPU per transaction
(``/proc/<pid>/stat``, the same transactions sent pipelined from one connection): on a loaded
machine the rates move with the other load, the CPU a backend spends does not.

``python -m benchmarks.scope_cost [SECONDS]`` (its own embedded server, or
``MAIMDB_BENCH_DSN``); ``python -m benchmarks`` runs it unless ``--no-pgbench``."""

from __future__ import annotations

import glob
import os
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import psycopg
from psycopg import pq, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from maim_db import embedded
from maim_db.scope import SET_SCOPE

from .data import Bench
from .policy_cost import SECRET

#: The logins pgbench connects as: a service's and a plugin's, as in production.
LOGINS = {"maim_app": "maimdb_bench_app", "maim_plugin": "maimdb_bench_plugin"}
PASSWORD = "maimdb-bench"
AGENT = "'agent_b' || lpad(:n::text, 6, '0')"
#: The transactions' middle statements; the first is the baseline, the key's runs as a plugin.
STATEMENTS: dict[str, str] = {
    "select 1": "select 1",
    "bare set_config": ("select pg_catalog.set_config('role', 'maim_app', true), "
                        f"pg_catalog.set_config('maim.agent_id', {AGENT}, true)"),
    "agent scope": SET_SCOPE["agent"].replace("%s", AGENT),
    "key scope": SET_SCOPE["key"].replace("%s", f"'{SECRET}'"),
    # What each scope must do whatever form it takes, and nothing else: plain prepared
    # statements on copies of the tables it reads (schema `floor`: no RLS, no function, no
    # role, no setting). The agent scope reads its agent's and tenant's status; the key
    # scope finds its key (hash, status, expiry, agent, tenant) and counts the use.
    "agent checks alone": ("select a.status, t.status from floor.agents a"
                           " join floor.tenants t on t.id = a.tenant_id where a.id = " + AGENT),
    "key checks alone": (
        "with k as (select a.id from floor.api_keys a"
        " join floor.agents g on g.id = a.agent_id join floor.tenants t on t.id = a.tenant_id"
        f" where a.key_hash = sha256(convert_to('{SECRET}', 'UTF8')) and a.status = 'active'"
        " and (a.expires_at is null or a.expires_at > now())"
        " and g.status = 'active' and t.status = 'active')"
        " update floor.key_uses u set uses = u.uses + 1, last_used_at = now() from k"
        " where u.key_id = k.id and u.backend = 0 returning u.uses"),
}
#: The targets of issue 36, as shares of select 1's rate.
TARGETS = {"agent scope": 0.8, "key scope": 0.6}
#: The plain copies the checks-alone rows read: the same columns and indexes the scope
#: functions use (agents, tenants and api_keys by primary key and key hash), and the use
#: counter unlogged, as api_key_usage_recent is.
FLOOR: Final = """
drop schema if exists floor cascade;
create schema floor;
create table floor.tenants as select id, status from tenants;
alter table floor.tenants add primary key (id);
create table floor.agents as select id, tenant_id, status from agents;
alter table floor.agents add primary key (id);
create table floor.api_keys as select id, agent_id, tenant_id, key_hash, status, expires_at
    from api_keys;
alter table floor.api_keys add primary key (id);
create unique index on floor.api_keys (key_hash);
create unlogged table floor.key_uses as select id as key_id, 0 as backend, 0::bigint as uses,
    now() as last_used_at from api_keys;
alter table floor.key_uses add primary key (key_id, backend);
grant usage on schema floor to maim_app, maim_plugin;
grant select on all tables in schema floor to maim_app, maim_plugin;
grant update on floor.key_uses to maim_plugin;
"""


def pgbench() -> str | None:
    """A pgbench: the embedded server's, else one on PATH, else Debian's."""
    candidates = [str(embedded.bin_dir() / "pgbench"), shutil.which("pgbench") or "",
                  *sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), reverse=True)]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def _prepare(b: Bench) -> None:
    with psycopg.connect(b.dsn, autocommit=True) as conn:
        for role, login in LOGINS.items():
            exists = conn.execute("select 1 from pg_roles where rolname = %s", [login]).fetchone()
            conn.execute(sql.SQL("{} role {} login password {}").format(
                sql.SQL("alter" if exists else "create"), sql.Identifier(login),
                sql.Literal(PASSWORD)))
            conn.execute(sql.SQL("grant {} to {}").format(sql.Identifier(role),
                                                          sql.Identifier(login)))
        conn.execute("""insert into api_keys (id, tenant_id, agent_id, name, key_hash, key_prefix)
                        select 'key_benchmark', tenant_id, id, 'benchmark plugin',
                               sha256(convert_to(%s, 'UTF8')), 'mmc_benchmar'
                        from agents order by id limit 1
                        on conflict do nothing""", [SECRET])
        conn.execute(FLOOR)


def _login(name: str) -> str:
    return LOGINS["maim_plugin" if name.startswith("key ") else "maim_app"]


def _rate(tool: str, b: Bench, name: str, seconds: int) -> float:
    params = conninfo_to_dict(b.dsn)
    script = f"\\set n random(1, {b.agents})\nbegin;\n{STATEMENTS[name]};\ncommit;\n"
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
    Path(f.name).chmod(0o644)
    cmd = [tool, "-n", "-M", "prepared", "-c", "1", "-T", str(seconds), "-f", f.name,
           "-h", str(params.get("host", "")), "-p", str(params.get("port") or 5432),
           "-U", _login(name), str(params["dbname"])]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=True,
                              env={**os.environ, "PGPASSWORD": PASSWORD})
    finally:
        Path(f.name).unlink()
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("tps"))
    return float(line.split("=")[1].split()[0])


def _cpu_seconds(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # another machine, or another user's process
        return None
    if "(postgres)" not in stat:  # a server elsewhere, and this pid a process of ours
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_cpu(b: Bench, transactions: int = 10_000, rounds: int = 3) -> dict[str, float]:
    """The backend's CPU per transaction in µs, each statement on its own connection, the
    transactions pipelined 500 at a time; empty when the backend's /proc entry is unreadable."""
    conns: dict[str, tuple[psycopg.Connection[Any], int]] = {}
    agents = [f"agent_b{n:06d}".encode() for n in range(1, b.agents + 1)]
    try:
        for name, statement in STATEMENTS.items():
            conn = psycopg.connect(make_conninfo(b.dsn, user=_login(name), password=PASSWORD),
                                   autocommit=True)
            pid = conn.info.backend_pid
            conns[name] = (conn, pid)
            if _cpu_seconds(pid) is None:
                return {}
            text = statement.replace(AGENT, "$1").encode()
            for stmt, query in ((b"b", b"begin"), (b"x", text), (b"c", b"commit")):
                conn.pgconn.prepare(stmt, query)
        per: dict[str, list[float]] = {name: [] for name in conns}
        for _ in range(rounds):
            for name, (conn, pid) in conns.items():
                pg, uses_agent = conn.pgconn, AGENT in STATEMENTS[name]
                before = _cpu_seconds(pid) or 0.0
                for start in range(0, transactions, 500):
                    pg.enter_pipeline_mode()
                    for i in range(start, start + 500):
                        pg.send_query_prepared(b"b", None)
                        pg.send_query_prepared(
                            b"x", [agents[i % len(agents)]] if uses_agent else None)
                        pg.send_query_prepared(b"c", None)
                    pg.pipeline_sync()
                    while (res := pg.get_result()) is None or (
                            res.status != pq.ExecStatus.PIPELINE_SYNC):
                        if res is not None and res.status == pq.ExecStatus.FATAL_ERROR:
                            raise RuntimeError(res.get_error_message())
                    pg.exit_pipeline_mode()
                used = (_cpu_seconds(pid) or 0.0) - before
                per[name].append(used / transactions * 1e6)
        return {name: round(statistics.median(v), 1) for name, v in per.items()}
    finally:
        for conn, _ in conns.values():
            conn.close()


def run(b: Bench, seconds: int, log: Callable[[str], None], rounds: int = 3) -> dict[str, Any]:
    tool = pgbench()
    if tool is None:
        log("scope statement cost: no pgbench found, skipped")
        return {}
    _prepare(b)
    tps: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    for _ in range(rounds):
        for name in STATEMENTS:
            tps[name].append(_rate(tool, b, name, seconds))
    medians = {name: statistics.median(v) for name, v in tps.items()}
    base = medians["select 1"]
    cpu = backend_cpu(b)
    out: dict[str, Any] = {"tps": {k: round(v, 1) for k, v in medians.items()},
                           "vs_select_1": {k: round(v / base, 3) for k, v in medians.items()},
                           "backend_cpu_us": cpu}
    for name, rate in medians.items():
        target = f"  target {TARGETS[name]:.1f}" if name in TARGETS else ""
        spent = f"  backend {cpu[name]:5.1f} µs/txn" if name in cpu else ""
        log(f"pgbench begin; {name:<18}; commit  {rate:>9.1f} tps  {rate / base:.2f} x "
            f"select 1{spent}{target}")
    return out


def main() -> None:
    """``python -m benchmarks.scope_cost [SECONDS]``: this measurement alone."""
    import sys

    from . import data

    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with data.server() as server_dsn:
        b = data.create(server_dsn, "maimdb_scope_cost", 20, 10)
        run(b, seconds, print)


if __name__ == "__main__":
    main()
