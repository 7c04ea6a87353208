"""What a scoped SQLAlchemy transaction costs (issue 34.2): ``person`` (``person_info`` by
``person_id``) as one Session transaction per lookup — ``maim_db.sqlalchemy`` with the agent's
ambient scope against a plain SQLAlchemy psycopg engine with ``where agent_id = …`` written by
hand — sync and async, on one connection each, the agent changing every call, all paths
interleaved in rounds. Medians of the rounds, in µs per lookup; the ratio is plain / maim_db
(≥ 0.8 is the target).

``python -m benchmarks.sqlalchemy_engines`` (its own embedded server, or
``MAIMDB_BENCH_DSN``)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.asyncio import create_async_engine as plain_async_engine
from sqlalchemy.orm import Session

from maim_db import agent_scope
from maim_db.settings import as_url
from maim_db.sqlalchemy import create_async_engine, create_engine

from . import data

SCOPED = text("select * from person_info where person_id = :p")
BY_HAND = text("select * from person_info where agent_id = :a and person_id = :p")


def _plain_url(dsn: str) -> str:
    return as_url(dsn).replace("postgresql://", "postgresql+psycopg://", 1)


def measure(b: data.Bench, rounds: int = 7, per_round: int = 1000) -> dict[str, float]:
    plain = sqlalchemy.create_engine(_plain_url(b.dsn), pool_size=1, max_overflow=0)
    scoped = create_engine(b.dsn, pool_size=1, max_overflow=0)

    def plain_read(agent: str, person: str) -> Any:
        with Session(plain) as s:
            return s.execute(BY_HAND, {"a": agent, "p": person}).all()

    def scoped_read(agent: str, person: str) -> Any:
        with agent_scope(agent), Session(scoped) as s:
            return s.execute(SCOPED, {"p": person}).all()

    async def main() -> dict[str, list[float]]:
        aplain = plain_async_engine(_plain_url(b.dsn), pool_size=1, max_overflow=0)
        ascoped = create_async_engine(b.dsn, pool_size=1, max_overflow=0)

        async def aplain_read(agent: str, person: str) -> Any:
            async with AsyncSession(aplain) as s:
                return (await s.execute(BY_HAND, {"a": agent, "p": person})).all()

        async def ascoped_read(agent: str, person: str) -> Any:
            with agent_scope(agent):
                async with AsyncSession(ascoped) as s:
                    return (await s.execute(SCOPED, {"p": person})).all()

        sync: dict[str, Callable[[str, str], Any]] = {
            "sync: plain SQLAlchemy Session, agent filter by hand": plain_read,
            "sync: maim_db.sqlalchemy Session, ambient agent scope": scoped_read,
        }
        asynchronous: dict[str, Callable[[str, str], Awaitable[Any]]] = {
            "async: plain AsyncSession, agent filter by hand": aplain_read,
            "async: maim_db.sqlalchemy AsyncSession, ambient agent scope": ascoped_read,
        }
        times: dict[str, list[float]] = {name: [] for name in [*sync, *asynchronous]}
        try:
            for _ in range(rounds):
                for name, call in sync.items():
                    began = time.perf_counter()
                    for i in range(per_round):
                        n = 1 + (i * 7919) % b.agents
                        call(data.agent_id(n), data.person_id(n, 1 + i % data.PEOPLE_PER_AGENT))
                    times[name].append((time.perf_counter() - began) / per_round * 1e6)
                for name, acall in asynchronous.items():
                    began = time.perf_counter()
                    for i in range(per_round):
                        n = 1 + (i * 7919) % b.agents
                        await acall(data.agent_id(n),
                                    data.person_id(n, 1 + i % data.PEOPLE_PER_AGENT))
                    times[name].append((time.perf_counter() - began) / per_round * 1e6)
        finally:
            await aplain.dispose()
            await ascoped.dispose()
        return times

    try:
        times = asyncio.run(main())
    finally:
        plain.dispose()
        scoped.dispose()
    return {name: statistics.median(t) for name, t in times.items()}


def table(medians: dict[str, float]) -> str:
    lines = ["| path | µs per lookup | plain / this |", "|---|---:|---:|"]
    names = list(medians)
    for i, name in enumerate(names):
        base = medians[names[i - i % 2]]  # the plain path of the same kind
        lines.append(f"| {name} | {medians[name]:.0f} | {base / medians[name]:.2f} |")
    return "\n".join(lines)


def main() -> None:
    with data.server() as server_dsn:
        b = data.create(server_dsn, "maimdb_sqlalchemy", 50, 100)
        print(table(measure(b)))


if __name__ == "__main__":
    main()
