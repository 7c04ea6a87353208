"""The original's approach: Peewee models over the same tables, the agent filter added in
Python on every query (what ``BusinessBaseModel`` did). Models are generated from maim_db's
row models so both read the same columns."""

from __future__ import annotations

import types
import typing
from datetime import datetime
from typing import Any
from uuid import UUID

import peewee
from playhouse.pool import PooledPostgresqlDatabase

from maim_db.row import Row
from maim_db.tables.runtime import Message, PersonInfo

from .data import CHATS_PER_AGENT, PEOPLE_PER_AGENT, agent_id, chat_id, person_id
from .workloads import BATCH, FUTURE, values

_FIELDS: dict[Any, type[peewee.Field]] = {
    str: peewee.TextField, int: peewee.IntegerField, float: peewee.DoubleField,
    bool: peewee.BooleanField, datetime: peewee.DateTimeField, UUID: peewee.UUIDField}


def _model(row: type[Row], database: peewee.Database) -> type[peewee.Model]:
    attrs: dict[str, Any] = {}
    for name, field in row.model_fields.items():
        hint = field.annotation
        args = typing.get_args(hint)
        nullable = isinstance(hint, types.UnionType) and type(None) in args
        base = next(a for a in args if a is not type(None)) if nullable else hint
        kind = _FIELDS[base]
        attrs[name] = (kind(primary_key=True) if name == "id"
                       else kind(null=nullable, column_name=name))
    attrs["Meta"] = type("Meta", (), {"database": database, "table_name": row.table})
    return type(f"Peewee{row.__name__}", (peewee.Model,), attrs)


def database(dsn_params: dict[str, Any], max_connections: int) -> peewee.Database:
    params = dict(dsn_params)
    name = params.pop("dbname")
    return PooledPostgresqlDatabase(name, max_connections=max_connections, stale_timeout=300,
                                    **params)


class Peewee:
    """Each call checks a connection out of Peewee's pool and back, as a request would."""

    name = "peewee"

    def __init__(self, db: peewee.Database) -> None:
        self.db = db
        self.M = _model(Message, db)
        self.P = _model(PersonInfo, db)
        for name in ("poll", "context", "person", "insert1", "batch", "mix"):
            setattr(self, name, self._pooled(getattr(self, name)))

    def _pooled(self, call: Any) -> Any:
        def run(a: int, i: int) -> Any:
            with self.db.connection_context():
                return call(a, i)
        return run

    def poll(self, a: int, i: int) -> Any:
        M = self.M
        return list(M.select().where(M.agent_id == agent_id(a),
                                     M.chat_id == chat_id(a, i % CHATS_PER_AGENT),
                                     M.time > FUTURE).order_by(M.time).limit(20))

    def context(self, a: int, i: int) -> Any:
        M = self.M
        return list(M.select().where(M.agent_id == agent_id(a),
                                     M.chat_id == chat_id(a, i % CHATS_PER_AGENT))
                    .order_by(M.time.desc()).limit(50))

    def person(self, a: int, i: int) -> Any:
        P = self.P
        return list(P.select().where(P.agent_id == agent_id(a),
                                     P.person_id == person_id(a, 1 + i % PEOPLE_PER_AGENT)))

    def insert1(self, a: int, i: int) -> Any:
        return self.M.create(agent_id=agent_id(a), **values(a, i))

    def batch(self, a: int, i: int) -> Any:
        with self.db.atomic():
            return self.M.insert_many([{"agent_id": agent_id(a), **values(a, j)}
                                       for j in range(i, i + BATCH)]).execute()

    def mix(self, a: int, i: int) -> Any:
        return (self.poll(a, i), self.context(a, i), self.person(a, i), self.insert1(a, i))
