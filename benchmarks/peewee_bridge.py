"""MaiBot's own Peewee code on maim_db (``maim_db.peewee``): the same queries as the Peewee
baseline, written as MaiBot writes them — no agent filter, the scope around the call."""

from __future__ import annotations

from typing import Any

from maim_db import Pool, agent_scope
from maim_db.peewee import MODELS, Messages, PersonInfo, ScopedDatabase

from .data import CHATS_PER_AGENT, PEOPLE_PER_AGENT, agent_id, chat_id, person_id
from .workloads import BATCH, FUTURE, values


class Bridge:
    """Each call opens the ambient scope, as a request handler does, and runs MaiBot's
    query through the bridge (each statement its own block unless in ``atomic()``)."""

    name = "bridge"

    def __init__(self, pool: Pool) -> None:
        self.db = ScopedDatabase(pool=pool)
        self.db.bind(MODELS)

    def poll(self, a: int, i: int) -> Any:
        with agent_scope(agent_id(a)):
            return list(Messages.select().where(Messages.chat_id == chat_id(a, i % CHATS_PER_AGENT),
                                                Messages.time > FUTURE)
                        .order_by(Messages.time).limit(20))

    def context(self, a: int, i: int) -> Any:
        with agent_scope(agent_id(a)):
            return list(Messages.select().where(Messages.chat_id == chat_id(a, i % CHATS_PER_AGENT))
                        .order_by(Messages.time.desc()).limit(50))

    def person(self, a: int, i: int) -> Any:
        with agent_scope(agent_id(a)):
            return list(PersonInfo.select().where(
                PersonInfo.person_id == person_id(a, 1 + i % PEOPLE_PER_AGENT)))

    def insert1(self, a: int, i: int) -> Any:
        with agent_scope(agent_id(a)):
            return Messages.create(**values(a, i))

    def batch(self, a: int, i: int) -> Any:
        with agent_scope(agent_id(a)), self.db.atomic():
            return Messages.insert_many([values(a, j) for j in range(i, i + BATCH)]).execute()

    def mix(self, a: int, i: int) -> Any:
        with agent_scope(agent_id(a)), self.db.atomic():
            return (self.poll(a, i), self.context(a, i), self.person(a, i), self.insert1(a, i))
