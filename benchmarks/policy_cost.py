"""What the RLS policy costs inside PostgreSQL, measured with pgbench: the same transaction
(role + scope + the query) against ``messages`` under its policy, and against a copy without
RLS using an explicit ``WHERE agent_id = …``. Both run as ``maim_app``."""

from __future__ import annotations

import statistics
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from maim_db import embedded

from .data import Bench

HEADER = r"""\set n random(1, {agents})
\set c random(0, 3)
BEGIN;
SELECT set_config('role', 'maim_app', true),
       set_config('maim.agent_id', 'agent_b' || lpad(:n::text, 6, '0'), true);
"""
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
        conn.execute("grant select on messages_norls to maim_app")
        conn.execute("analyze messages_norls")


def _pgbench(b: Bench, script: str, seconds: int) -> float:
    params = conninfo_to_dict(b.dsn)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
    Path(f.name).chmod(0o644)
    cmd = [str(embedded.bin_dir() / "pgbench"), "-n", "-M", "prepared", "-c", "2", "-j", "2",
           "-T", str(seconds), "-f", f.name, "-h", str(params.get("host", "")),
           "-p", str(params.get("port") or 5432), "-U", str(params.get("user", "postgres")),
           str(params["dbname"])]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    Path(f.name).unlink()
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("tps"))
    return float(line.split("=")[1].split()[0])


def run(b: Bench, seconds: int, log: Callable[[str], None]) -> list[dict[str, Any]]:
    _prepare(b)
    results = []
    for name, query in QUERIES.items():
        tps: dict[str, list[float]] = {"rls": [], "where": []}
        for _ in range(3):  # alternate, so drift hits both sides alike
            for side, table, filt in (("rls", "messages", ""),
                                      ("where", "messages_norls", FILTER)):
                script = HEADER.format(agents=b.agents) + query.format(table=table,
                                                                       filter=filt) + "\nCOMMIT;\n"
                tps[side].append(_pgbench(b, script, seconds))
        rls, where = statistics.median(tps["rls"]), statistics.median(tps["where"])
        cost = 1 - rls / where
        results.append({"query": name, "tps_rls": round(rls, 1), "tps_where": round(where, 1),
                        "policy_cost": round(cost, 4)})
        log(f"pgbench {name:<8} RLS {rls:>9.1f} tps  explicit WHERE {where:>9.1f} tps  "
            f"policy cost {cost:+.1%}")
    return results
