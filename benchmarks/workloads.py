"""The hot paths of MaiBot's runtime (docs/performance.md lists them), three ways each.

Every implementation answers the same calls: ``poll``, ``context``, ``person``, ``insert1``,
``batch`` and ``mix``, for agent number ``a`` and operation number ``i``.
"""

from __future__ import annotations

import time
from typing import Any, Final, LiteralString

import psycopg
import psycopg_pool
from psycopg import sql

from maim_db import AsyncPool, Pool
from maim_db.tables.runtime import Message, PersonInfo

from .data import CHATS_PER_AGENT, PEOPLE_PER_AGENT, agent_id, chat_id, person_id

FUTURE: Final = 4_000_000_000.0  # the poll asks for messages newer than this: usually none
BATCH: Final = 1000

# The statements as MaiBot issues them; the raw baseline adds the agent filter by hand.
POLL: Final = ("select * from messages where chat_id = %s and time > %s "
               "order by time limit 20")
CONTEXT: Final = "select * from messages where chat_id = %s order by time desc limit 50"
PERSON: Final = "select * from person_info where person_id = %s"
POLL_RAW: Final = ("select * from messages where agent_id = %s and chat_id = %s and time > %s "
                   "order by time limit 20")
CONTEXT_RAW: Final = ("select * from messages where agent_id = %s and chat_id = %s "
                      "order by time desc limit 50")
PERSON_RAW: Final = "select * from person_info where agent_id = %s and person_id = %s"

COLUMNS: Final = ("message_id", "time", "chat_id", "chat_info_stream_id", "chat_info_platform",
                  "chat_info_user_platform", "chat_info_user_id", "chat_info_user_nickname",
                  "chat_info_create_time", "chat_info_last_active_time", "processed_plain_text")


def values(a: int, i: int) -> dict[str, Any]:
    now = time.time()
    chat = chat_id(a, i % CHATS_PER_AGENT)
    return {"message_id": f"new-{i}", "time": now, "chat_id": chat, "chat_info_stream_id": chat,
            "chat_info_platform": "qq", "chat_info_user_platform": "qq",
            "chat_info_user_id": "10001", "chat_info_user_nickname": "小明",
            "chat_info_create_time": now, "chat_info_last_active_time": now,
            "processed_plain_text": f"新消息 {i} 🙂"}


def _raw_insert(rows: int) -> sql.Composed:
    one = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * (len(COLUMNS) + 1)))
    return sql.SQL("insert into messages (agent_id, {}) values {}{}").format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), sql.SQL(", ").join([one] * rows),
        sql.SQL(" returning *") if rows == 1 else sql.SQL(""))


RAW_INSERT_ONE: Final = _raw_insert(1)
RAW_INSERT_BATCH: Final = _raw_insert(BATCH)


def _raw_params(a: int, start: int, rows: int) -> list[Any]:
    out: list[Any] = []
    for i in range(start, start + rows):
        out += [agent_id(a), *values(a, i).values()]
    return out


class Raw:
    """Plain psycopg on a superuser connection: tuples, explicit WHERE, autocommit."""

    name = "raw"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.c = conn

    def _q(self, query: Any, params: list[Any]) -> list[Any]:
        return self.c.execute(query, params).fetchall()

    def poll(self, a: int, i: int) -> Any:
        return self._q(POLL_RAW, [agent_id(a), chat_id(a, i % CHATS_PER_AGENT), FUTURE])

    def context(self, a: int, i: int) -> Any:
        return self._q(CONTEXT_RAW, [agent_id(a), chat_id(a, i % CHATS_PER_AGENT)])

    def person(self, a: int, i: int) -> Any:
        return self._q(PERSON_RAW, [agent_id(a), person_id(a, 1 + i % PEOPLE_PER_AGENT)])

    def insert1(self, a: int, i: int) -> Any:
        return self._q(RAW_INSERT_ONE, _raw_params(a, i, 1))

    def batch(self, a: int, i: int) -> Any:
        return self.c.execute(RAW_INSERT_BATCH, _raw_params(a, i, BATCH))

    def mix(self, a: int, i: int) -> Any:
        return (self.poll(a, i), self.context(a, i), self.person(a, i), self.insert1(a, i))


class Maim:
    """The public API: a pool (one connection in single mode), typed rows, RLS."""

    name = "maim_db"

    def __init__(self, pool: Pool) -> None:
        self.p = pool

    def poll(self, a: int, i: int) -> Any:
        return self.p.fetch(Message, POLL, [chat_id(a, i % CHATS_PER_AGENT), FUTURE],
                            agent_id=agent_id(a))

    def context(self, a: int, i: int) -> Any:
        return self.p.fetch(Message, CONTEXT, [chat_id(a, i % CHATS_PER_AGENT)],
                            agent_id=agent_id(a))

    def person(self, a: int, i: int) -> Any:
        return self.p.fetch(PersonInfo, PERSON, [person_id(a, 1 + i % PEOPLE_PER_AGENT)],
                            agent_id=agent_id(a))

    def insert1(self, a: int, i: int) -> Any:
        return self.p.insert(Message(**values(a, i)), agent_id=agent_id(a))

    def batch(self, a: int, i: int) -> Any:
        with self.p.connection(agent_id=agent_id(a)) as db:
            return db.insert_many([Message(**values(a, j)) for j in range(i, i + BATCH)])

    def mix(self, a: int, i: int) -> Any:
        chat = chat_id(a, i % CHATS_PER_AGENT)
        with self.p.connection(agent_id=agent_id(a)) as db:
            return (db.fetch(Message, POLL, [chat, FUTURE]),
                    db.fetch(Message, CONTEXT, [chat]),
                    db.fetch(PersonInfo, PERSON, [person_id(a, 1 + i % PEOPLE_PER_AGENT)]),
                    db.insert(Message(**values(a, i))))


class RawAsync:
    name = "raw"

    def __init__(self, pool: psycopg_pool.AsyncConnectionPool[Any]) -> None:
        self.p = pool

    async def _q(self, query: Any, params: list[Any]) -> Any:
        async with self.p.connection() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchall() if cur.description else cur.rowcount

    async def poll(self, a: int, i: int) -> Any:
        return await self._q(POLL_RAW, [agent_id(a), chat_id(a, i % CHATS_PER_AGENT), FUTURE])

    async def context(self, a: int, i: int) -> Any:
        return await self._q(CONTEXT_RAW, [agent_id(a), chat_id(a, i % CHATS_PER_AGENT)])

    async def person(self, a: int, i: int) -> Any:
        return await self._q(PERSON_RAW, [agent_id(a), person_id(a, 1 + i % PEOPLE_PER_AGENT)])

    async def insert1(self, a: int, i: int) -> Any:
        return await self._q(RAW_INSERT_ONE, _raw_params(a, i, 1))

    async def batch(self, a: int, i: int) -> Any:
        return await self._q(RAW_INSERT_BATCH, _raw_params(a, i, BATCH))

    async def mix(self, a: int, i: int) -> Any:
        return (await self.poll(a, i), await self.context(a, i), await self.person(a, i),
                await self.insert1(a, i))


class MaimAsync:
    name = "maim_db"

    def __init__(self, pool: AsyncPool) -> None:
        self.p = pool

    async def poll(self, a: int, i: int) -> Any:
        return await self.p.fetch(Message, POLL, [chat_id(a, i % CHATS_PER_AGENT), FUTURE],
                                  agent_id=agent_id(a))

    async def context(self, a: int, i: int) -> Any:
        return await self.p.fetch(Message, CONTEXT, [chat_id(a, i % CHATS_PER_AGENT)],
                                  agent_id=agent_id(a))

    async def person(self, a: int, i: int) -> Any:
        return await self.p.fetch(PersonInfo, PERSON,
                                  [person_id(a, 1 + i % PEOPLE_PER_AGENT)],
                                  agent_id=agent_id(a))

    async def insert1(self, a: int, i: int) -> Any:
        return await self.p.insert(Message(**values(a, i)), agent_id=agent_id(a))

    async def batch(self, a: int, i: int) -> Any:
        async with self.p.connection(agent_id=agent_id(a)) as db:
            return await db.insert_many([Message(**values(a, j)) for j in range(i, i + BATCH)])

    async def mix(self, a: int, i: int) -> Any:
        chat = chat_id(a, i % CHATS_PER_AGENT)
        async with self.p.connection(agent_id=agent_id(a)) as db:
            return (await db.fetch(Message, POLL, [chat, FUTURE]),
                    await db.fetch(Message, CONTEXT, [chat]),
                    await db.fetch(PersonInfo, PERSON, [person_id(a, 1 + i % PEOPLE_PER_AGENT)]),
                    await db.insert(Message(**values(a, i))))


WORKLOADS: Final[tuple[LiteralString, ...]] = ("poll", "context", "person", "insert1", "batch",
                                               "mix")
