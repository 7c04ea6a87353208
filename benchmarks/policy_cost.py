"""What the RLS policy costs inside PostgreSQL, measured with pgbench: the same transaction
(role + scope + the query) against ``messages`` under its policy, and against a copy without
RLS using an explicit ``WHERE agent_id = …``. Twice: as ``maim_app`` (the trusted runtime:
the policy's ``maim.agent_id()`` reads the setting) and as ``maim_plugin`` with an API key
(``maim.agent_id()`` also checks the scope proof, migrations/0012) — both sides of each pair
open the scope the same way, so the difference is what the policy adds."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from maim_db import embedded
from maim_db.scope import SET_SCOPE

from .data import Bench

HEADER = r"""\set n random(1, {agents})
\set c random(0, 3)
BEGIN;
SELECT set_config('role', 'maim_app', true),
       set_config('maim.agent_id', 'agent_b' || lpad(:n::text, 6, '0'), true);
"""
# A plugin holds one agent's key: agent 1, chats picked at random.
SECRET = "mmc_benchmark-plugin-key"
HEADER_KEY = r"""\set n 1
\set c random(0, 3)
BEGIN;
SELECT set_config('role', 'maim_plugin', true), maim.open_key_scope('{secret}');
"""
HEADERS = {"maim_app": HEADER, "maim_plugin": HEADER_KEY}
QUERIES = {
    "context": ("SELECT * FROM {table} WHERE {filter}chat_id = 'chat-' || lpad(:n::text, 6, '0') "
                "|| '-' || :c ORDER BY time DESC LIMIT 50;"),
    "poll": ("SELECT * FROM {table} WHERE {filter}chat_id = 'chat-' || lpad(:n::text, 6, '0') "
             "|| '-' || :c AND time > 4000000000 ORDER BY time LIMIT 20;"),
}
FILTER = "agent_id = 'agent_b' || lpad(:n::text, 6, '0') AND "


def _prepare(b: Bench) -> None:
    with psycopg.connect(b.dsn, autocommit=True) as conn:
        conn.execute("drop table if exists messages_norls")
        # the same indexes and planner statistics, no row-level security
        conn.execute("create table messages_norls (like messages including indexes "
                     "including statistics)")
        conn.execute("insert into messages_norls select * from messages")
        conn.execute("grant select on messages_norls to maim_app, maim_plugin")
        conn.execute("analyze messages_norls")
        conn.execute("""insert into api_keys (id, tenant_id, agent_id, name, key_hash, key_prefix)
                        select 'key_benchmark', tenant_id, id, 'benchmark plugin',
                               sha256(convert_to(%s, 'UTF8')), 'mmc_benchmar'
                        from agents order by id limit 1
                        on conflict do nothing""", [SECRET])


def _pgbench(b: Bench, script: str, seconds: int) -> float:
    params = conninfo_to_dict(b.dsn)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
    Path(f.name).chmod(0o644)
    cmd = [str(embedded.bin_dir() / "pgbench"), "-n", "-M", "prepared", "-c", "2", "-j", "2",
           "-T", str(seconds), "-f", f.name, "-h", str(params.get("host", "")),
           "-p", str(params.get("port") or 5432), "-U", str(params.get("user", "postgres")),
           str(params["dbname"])]
    # the embedded superuser signs in with a password from its passfile (maim_db.embedded)
    env = {**os.environ, **({"PGPASSFILE": str(params["passfile"])}
                            if params.get("passfile") else {})}
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    Path(f.name).unlink()
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("tps"))
    return float(line.split("=")[1].split()[0])


def run(b: Bench, seconds: int, log: Callable[[str], None]) -> list[dict[str, Any]]:
    _prepare(b)
    results = []
    for role, header in HEADERS.items():
        for name, query in QUERIES.items():
            tps: dict[str, list[float]] = {"rls": [], "where": []}
            for _ in range(3):  # alternate, so drift hits both sides alike
                for side, table, filt in (("rls", "messages", ""),
                                          ("where", "messages_norls", FILTER)):
                    script = (header.format(agents=b.agents, secret=SECRET)
                              + query.format(table=table, filter=filt) + "\nCOMMIT;\n")
                    tps[side].append(_pgbench(b, script, seconds))
            rls, where = statistics.median(tps["rls"]), statistics.median(tps["where"])
            cost = 1 - rls / where
            results.append({"role": role, "query": name, "tps_rls": round(rls, 1),
                            "tps_where": round(where, 1), "policy_cost": round(cost, 4)})
            log(f"pgbench {role:<11} {name:<8} RLS {rls:>9.1f} tps  explicit WHERE "
                f"{where:>9.1f} tps  policy cost {cost:+.1%}")
    return results


# What the reset check adds to opening a scope: the wrapper's own scope statement against the
# same statement without the check (the role switch and open_agent_scope alone), each
# followed by a person lookup, as maim_app logins would send them.
AGENT = "'agent_b' || lpad(:n::text, 6, '0')"
LOOKUP = ("SELECT * FROM person_info WHERE person_id = 'person-' || lpad(:n::text, 6, '0') "
          "|| '-1';")
SCOPES = {
    "checked": SET_SCOPE["agent"].replace("%s", AGENT),
    "unchecked": "select set_config('role', 'maim_app', true), "
                 "set_config('maim.tenant_id', '', true), "
                 f"maim.open_agent_scope({AGENT})",
}


def reset_check(b: Bench, seconds: int, log: Callable[[str], None]) -> dict[str, Any]:
    tps: dict[str, list[float]] = {k: [] for k in SCOPES}
    for _ in range(3):
        for side, statement in SCOPES.items():
            script = (f"\\set n random(1, {b.agents})\nBEGIN;\n{statement};\n{LOOKUP}\n"
                      "COMMIT;\n")
            tps[side].append(_pgbench(b, script, seconds))
    checked, unchecked = statistics.median(tps["checked"]), statistics.median(tps["unchecked"])
    cost = 1 - checked / unchecked
    log(f"pgbench reset check: with {checked:>9.1f} tps  without {unchecked:>9.1f} tps  "
        f"cost {cost:+.1%}")
    return {"tps_checked": round(checked, 1), "tps_unchecked": round(unchecked, 1),
            "reset_check_cost": round(cost, 4)}


def main() -> None:
    """``python -m benchmarks.policy_cost [SECONDS]``: this measurement alone."""
    import sys

    from . import data

    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with data.server() as server_dsn:
        b = data.create(server_dsn, "maimdb_bench", 50, 1000)
        run(b, seconds, print)
        reset_check(b, seconds, print)


if __name__ == "__main__":
    main()
