"""What each layer of a scoped point read costs: ``person`` (``person_info`` by ``person_id``)
on one connection, the agent changing every call, every path interleaved in rounds so that
the machine's drift falls on all of them alike. Medians of the rounds, in µs per lookup.

``python -m benchmarks.layers`` (its own embedded server, or ``MAIMDB_BENCH_DSN``); the full
benchmark runs it too and keeps the table in its report."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import Transformer

from maim_db import Pool
from maim_db.connection import run_scoped
from maim_db.scope import SET_SCOPE, Scope
from maim_db.tables.runtime import PersonInfo

from . import data
from .workloads import PERSON, PERSON_RAW


def _pipeline(conn: psycopg.Connection[Any]) -> Callable[[str, str], Any]:
    """libpq directly: the scope statement and the query prepared once, both sent with one
    Sync, rows loaded by psycopg's C loaders into tuples — the floor for a scoped read."""
    pg = conn.pgconn
    tx = Transformer(conn)
    pg.prepare(b"scope", SET_SCOPE["agent"].replace("%s", "$1").encode())
    pg.prepare(b"query", PERSON.replace("%s", "$1").encode())

    def lookup(agent: str, person: str) -> Any:
        pg.enter_pipeline_mode()
        pg.send_query_prepared(b"scope", [agent.encode()])
        pg.send_query_prepared(b"query", [person.encode()])
        pg.pipeline_sync()
        results = []
        while (res := pg.get_result()) is None or res.status != pq.ExecStatus.PIPELINE_SYNC:
            if res is not None:
                results.append(res)
        pg.exit_pipeline_mode()
        tx.set_pgresult(results[-1])
        return tx.load_rows(0, results[-1].ntuples, tuple)

    return lookup


def measure(b: data.Bench, rounds: int = 7, per_round: int = 2000) -> dict[str, float]:
    raw = psycopg.connect(b.dsn, autocommit=True)
    floor_conn = psycopg.connect(b.dsn, autocommit=True)
    handle_conn = psycopg.connect(b.dsn, autocommit=True)
    pool = Pool(b.dsn, min_size=1, max_size=1)
    floor = _pipeline(floor_conn)

    def scoped_rows(agent: str, person: str) -> Any:
        with run_scoped(handle_conn, Scope("agent", agent), single=True) as db:
            return db.rows(PERSON, [person])

    def scoped_models(agent: str, person: str) -> Any:
        with run_scoped(handle_conn, Scope("agent", agent), single=True) as db:
            return db.fetch(PersonInfo, PERSON, [person])

    paths: dict[str, Callable[[str, str], Any]] = {
        "raw psycopg, prepared, agent filter by hand": lambda a, p: raw.execute(
            PERSON_RAW, [a, p], prepare=True).fetchall(),
        "libpq pipeline: scope + query prepared, tuples": floor,
        "maim_db handle on a connection, tuples": scoped_rows,
        "maim_db handle on a connection, typed rows": scoped_models,
        "Pool.fetch (adds the pool checkout)": lambda a, p: pool.fetch(
            PersonInfo, PERSON, [p], agent_id=a),
    }
    times: dict[str, list[float]] = {name: [] for name in paths}
    try:
        for _ in range(rounds):
            for name, call in paths.items():
                began = time.perf_counter()
                for i in range(per_round):
                    n = 1 + (i * 7919) % b.agents
                    call(data.agent_id(n), data.person_id(n, 1 + i % data.PEOPLE_PER_AGENT))
                times[name].append((time.perf_counter() - began) / per_round * 1e6)
    finally:
        pool.close()
        for conn in (raw, floor_conn, handle_conn):
            conn.close()
    return {name: statistics.median(t) for name, t in times.items()}


def table(medians: dict[str, float]) -> str:
    base = next(iter(medians.values()))
    lines = ["| path | µs per lookup | vs raw |", "|---|---:|---:|"]
    lines += [f"| {name} | {us:.0f} | {base / us:.2f} |" for name, us in medians.items()]
    return "\n".join(lines)


def main() -> None:
    with data.server() as server_dsn:
        b = data.create(server_dsn, "maimdb_layers", 50, 100)
        print(table(measure(b)))


if __name__ == "__main__":
    main()
