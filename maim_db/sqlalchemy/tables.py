"""SQLAlchemy ``Table``s for every maim_db table, built from the row models in
:mod:`maim_db.tables` — the one Python description of the schema — so there is no third copy
to keep in step (``tests/test_schema_contract.py`` holds the models, and so these tables,
equal to the live catalog).

    from sqlalchemy import select
    from maim_db.sqlalchemy.tables import users

    session.execute(select(users.c.id).where(users.c.username == name))

Each column has the model's name, order and nullability, the catalog's exact type, the
model's key as its primary key, and ``server_default=FetchedValue()`` where the database
fills it (``agent_id`` from the scope, ids, timestamps): an insert leaves such a column out
and the server's default applies, and the ORM fetches it back. ``agent_id`` is never
something to write: the scope supplies it and row-level security refuses another agent's.

What the models do not carry is not here either: foreign keys, checks, indexes and the SQL
default expressions live in ``migrations/`` (read them in ``sql/schema.snapshot``). These
tables are for queries; never ``metadata.create_all()`` — ``maimdb migrate`` makes the schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args, get_origin
from uuid import UUID

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    FetchedValue,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeEngine

from ..row import INT8, SERVER_DEFAULT, Row
from ..tables import ALL_ROWS, ApiKeyInfo

__all__ = ["metadata", "table", "views"]

_SIMPLE: dict[Any, type[TypeEngine[Any]]] = {
    str: Text, float: Double, bool: Boolean, UUID: Uuid, bytes: LargeBinary,
}


def _type(model: type[Row], name: str) -> tuple[TypeEngine[Any], bool]:
    """The column type of a model's field and whether it takes NULL, from its annotation."""
    field = model.model_fields[name]
    args = get_args(field.annotation)
    nullable = type(None) in args
    (base,) = [a for a in args if a is not type(None)] if nullable else [field.annotation]
    if name in model.jsonb_fields():
        return JSONB(), nullable
    if base is int:
        return (BigInteger() if any(m is INT8 for m in field.metadata) else Integer()), nullable
    if base is datetime:
        return DateTime(timezone=True), nullable
    if get_origin(base) is Literal:  # a text column whose values a check bounds
        return Text(), nullable
    if get_origin(base) is list:  # text[] (of names a check or the model bounds)
        return ARRAY(Text()), nullable
    if base in _SIMPLE:
        return _SIMPLE[base](), nullable
    raise TypeError(f"{model.__name__}.{name}: no SQLAlchemy type for {field.annotation!r}")


def table(model: type[Row], metadata: MetaData) -> Table:
    """The ``Table`` of a row model, in ``metadata``."""
    columns = []
    for name, field in model.model_fields.items():
        sa_type, nullable = _type(model, name)
        filled = field.default is SERVER_DEFAULT
        columns.append(Column(name, sa_type, primary_key=name in model.key, nullable=nullable,
                              server_default=FetchedValue() if filled else None))
    return Table(model.table, metadata, *columns)


#: Every table of maim_db (``maimdb migrate`` made them), keyed by name in ``tables``.
metadata = MetaData()
for _model in ALL_ROWS:
    table(_model, metadata)

#: The views (``api_key_list``: keys as a dashboard lists them, without ``key_hash``), apart
#: from ``metadata`` so nothing mistakes them for tables.
views = MetaData()
table(ApiKeyInfo, views)


def __getattr__(name: str) -> Table:
    """``tables.users``, ``tables.messages``…: each table by its SQL name."""
    found = metadata.tables.get(name)
    if found is None:
        found = views.tables.get(name)
    if found is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return found
