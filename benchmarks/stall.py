"""What the bound on a stalling plugin costs (issue 32.3): ``python -m benchmarks.stall
[--dsn SUPERUSER_DSN] [--blocks N] [--sessions K]``.

1. Per block: the same one-statement agent-scope read through a pool, with the block's
   ``lock_timeout`` set (``MAIMDB_LOCK_TIMEOUT=4``, the default) and without (``=0``), in
   alternating rounds; the difference is what setting it in the pipeline costs.
2. The watcher: one tick (:func:`maim_db.watch.tick`, the one statement ``maimdb watch`` runs
   per interval) with ``K`` other sessions connected, idle and idle in a transaction.

Without ``--dsn`` it runs on a fresh embedded server in a temporary directory."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psycopg

from maim_db import Pool, connect, embedded, ids, watch
from maim_db.schema import migrate
from maim_db.tables import Agent, Message, Tenant


@contextmanager
def _server(dsn: str | None) -> Iterator[str]:
    if dsn:
        yield dsn
        return
    where = Path(tempfile.mkdtemp(prefix="maimdb-bench-stall-"))
    where.chmod(0o755)
    try:
        url = embedded.start(where / "pg", "maim")
        migrate.migrate(url)
        yield url
    finally:
        embedded.stop(where / "pg")
        shutil.rmtree(where, ignore_errors=True)


def _per_block(dsn: str, agent: str, blocks: int, rounds: int) -> dict[str, float]:
    """Microseconds per block, median over rounds, with and without the lock timeout."""
    timings: dict[str, list[float]] = {"4": [], "0": []}
    pools = {}
    for setting in timings:
        os.environ["MAIMDB_LOCK_TIMEOUT"] = setting  # read when a pool's connection opens
        pools[setting] = Pool(dsn, min_size=1, max_size=1)
        pools[setting].open()
    try:
        for _ in range(rounds):
            for setting, pool in pools.items():
                started = time.perf_counter()
                for _ in range(blocks):
                    pool.fetch(Message, "select * from messages where chat_id = %s limit 1",
                               ["c"], agent_id=agent)
                timings[setting].append((time.perf_counter() - started) / blocks * 1e6)
    finally:
        for pool in pools.values():
            pool.close()
        os.environ.pop("MAIMDB_LOCK_TIMEOUT", None)
    return {f"lock_timeout={k}s": statistics.median(v) for k, v in timings.items()}


def _tick(dsn: str, sessions: int, ticks: int) -> float:
    """Milliseconds per watcher tick with ``sessions`` other sessions connected."""
    with ExitStack() as stack:
        for n in range(sessions):
            conn: psycopg.Connection[Any] = stack.enter_context(
                psycopg.connect(dsn, autocommit=True))
            if n % 2:
                conn.execute("begin")
                conn.execute("select 1")
        limits = watch.Limits()
        with watch.connect(dsn) as conn:
            watch.tick(conn, limits)
            started = time.perf_counter()
            for _ in range(ticks):
                watch.tick(conn, limits)
            return (time.perf_counter() - started) / ticks * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="a superuser's DSN on a migrated database")
    parser.add_argument("--blocks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--ticks", type=int, default=200)
    args = parser.parse_args()
    with _server(args.dsn) as dsn:
        with connect(dsn, admin=True) as adm:
            tenant = adm.insert(Tenant(id=ids.new_tenant_id(), tenant_name="bench stall"))
            agent = adm.insert(Agent(id=ids.new_agent_id(), tenant_id=tenant.id, name="b"))
        for name, us in _per_block(dsn, agent.id, args.blocks, args.rounds).items():
            print(f"one-statement block, {name}: {us:.1f} µs")
        for k in (0, args.sessions):
            print(f"watcher tick, {k} other sessions: {_tick(dsn, k, args.ticks):.3f} ms")


if __name__ == "__main__":
    main()
