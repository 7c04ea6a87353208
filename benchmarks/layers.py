"""What each layer of a scoped point read costs: ``person`` (``person_info`` by ``person_id``)
on one connection, the agent changing every call, every path interleaved in rounds so that
the machine's drift falls on all of them alike. Medians of the rounds, in µs per lookup.

``python -m benchmarks.layers`` (its own embedded server, or ``MAIMDB_BENCH_DSN``); the full
benchmark runs it too and keeps the table in its report. Below the table, :func:`rows`: what
building typed rows costs per row, ``Message`` (38 columns) from one result of 10,000 rows
against psycopg's plain tuples, both interleaved in rounds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any, Final

import psycopg
from psycopg import pq
from psycopg.adapt import Transformer

from maim_db import Pool
from maim_db.connection import run_scoped
from maim_db.row import row_maker
from maim_db.scope import SET_SCOPE, Scope
from maim_db.tables.runtime import Message, PersonInfo

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


#: 10,000 whole ``messages`` rows (the seeded ones, repeated as needed), in column order.
ROWS: Final = ("select m.* from generate_series(1, 10000) as g cross join"
               " (select * from messages order by agent_id, id limit 10000) as m limit 10000")


def rows(b: data.Bench, rounds: int = 9) -> dict[str, float]:
    """µs per row: psycopg's C loaders into tuples (the floor: every value loaded), then
    the same result as ``Message`` rows (:func:`maim_db.row.row_maker`); interleaved rounds,
    each building all 10,000 rows of one result."""
    with psycopg.connect(b.dsn, autocommit=True) as conn:
        res = conn.execute(ROWS).pgresult
        assert res is not None
        tx = Transformer(conn)
        tx.set_pgresult(res)
        makers: dict[str, Any] = {
            "tuples (psycopg's loaders)": tuple,
            "Message, 38 columns, typed": row_maker(Message, res, conn.info.encoding),
        }
        times: dict[str, list[float]] = {name: [] for name in makers}
        for _ in range(rounds):
            for name, make in makers.items():
                began = time.perf_counter()
                built = tx.load_rows(0, res.ntuples, make)
                times[name].append((time.perf_counter() - began) / len(built) * 1e6)
                del built
    return {name: statistics.median(t) for name, t in times.items()}


def rows_table(medians: dict[str, float]) -> str:
    lines = ["| rows from one result | µs per row |", "|---|---:|"]
    lines += [f"| {name} | {us:.2f} |" for name, us in medians.items()]
    return "\n".join(lines)


def table(medians: dict[str, float]) -> str:
    base = next(iter(medians.values()))
    lines = ["| path | µs per lookup | vs raw |", "|---|---:|---:|"]
    lines += [f"| {name} | {us:.0f} | {base / us:.2f} |" for name, us in medians.items()]
    return "\n".join(lines)


def main() -> None:
    with data.server() as server_dsn:
        b = data.create(server_dsn, "maimdb_layers", 50, 100)
        print(table(measure(b)))
        print()
        print(rows_table(rows(b)))


if __name__ == "__main__":
    main()
