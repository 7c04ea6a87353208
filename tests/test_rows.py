"""Typed rows from results: the per-result fast path builds exactly what validation would,
and anything validation would reject still goes through validation and is rejected."""

from __future__ import annotations

import pickle
import types
import uuid
from datetime import UTC, datetime
from typing import Any, Literal, Union, get_args, get_origin

import pydantic
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from maim_db import InputError, connect
from maim_db.row import Row, _trusted_fields
from maim_db.tables import ALL_ROWS, MAIBOT1_ROWS, PARTIAL_ROWS, Agent
from maim_db.tables.runtime import Message
from tests.databases import TestDB, World
from tests.samples import message


def test_every_model_is_built_from_its_own_table_without_validation() -> None:
    """A Literal, a jsonb object, a text[] of permissions: each has a check that needs no
    pydantic, so no model falls back to validating every row."""
    assert [m.__name__ for m in ALL_ROWS + PARTIAL_ROWS + MAIBOT1_ROWS
            if _trusted_fields(m) is None] == []


def test_a_fast_row_equals_a_validated_one(db: TestDB, world: World) -> None:
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as s:
        stored = s.insert(message(1))
        fast = s.fetch(Message, "select * from messages")[0]
    validated = Message.model_validate(fast.model_dump())
    assert fast == validated == stored
    assert fast.model_fields_set == validated.model_fields_set
    assert fast.given() == validated.given()
    assert fast.reply_to is None and isinstance(fast.time, float)
    with pytest.raises(pydantic.ValidationError):  # still a validating model afterwards
        fast.time = "not a time"  # type: ignore[assignment]


def test_rows_read_share_no_set_of_given_fields(db: TestDB, world: World) -> None:
    """Rows read hold one frozenset of their model until asked: asked, each row has its own
    mutable set, as a validated row has."""
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as s:
        s.insert(message(1))
        s.insert(message(2))
        first, second = s.fetch(Message, "select * from messages")
    given = first.model_fields_set
    assert type(given) is set and given == set(Message.model_fields)
    given.discard("reply_to")
    assert first.model_fields_set is given and "reply_to" not in first.given()
    assert second.model_fields_set == set(Message.model_fields)
    assert second.model_copy().model_fields_set == set(Message.model_fields)
    first.reply_to = "m2"  # assignment (validated) marks the field given again
    assert "reply_to" in first.model_fields_set and first.given()["reply_to"] == "m2"


def _select(replace: dict[str, str]) -> sql.Composed:
    cols = [sql.SQL(replace[c]) if c in replace else sql.Identifier(c)
            for c in Message.model_fields]
    return sql.SQL("select {} from messages").format(sql.SQL(", ").join(cols))


@pytest.mark.parametrize("replace, problem", [
    ({"message_id": "null::text as message_id"}, "message_id"),  # NULL in NOT NULL
    ({"time": "'soon'::text as time"}, "time"),  # another type: the validator decides
])
def test_what_validation_rejects_is_rejected(db: TestDB, world: World,
                                             replace: dict[str, str], problem: str) -> None:
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as s:
        s.insert(message(1))
        with pytest.raises(InputError, match=rf"(?s)does not fit Message.*\n{problem}\n"):
            s.fetch(Message, _select(replace))


def test_a_partial_result_is_refused(db: TestDB, world: World) -> None:
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as s:
        s.insert(message(1))
        with pytest.raises(InputError, match="does not fit Message"):
            s.fetch(Message, "select message_id, time from messages")


def test_a_result_naming_a_column_twice_is_refused(db: TestDB, world: World) -> None:
    """A join's second ``id`` would silently become the row's ``id`` (the last value of a
    name won): refused, naming the column, whatever the rows."""
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as s:
        stored = s.insert(message(1))
        for query in ("select m.*, 'not the message id' as message_id from messages m",
                      "select m.*, m.message_id from messages m where false"):
            with pytest.raises(InputError, match="names the column 'message_id' twice"):
                s.fetch(Message, query)
        assert s.fetch(Message, "select * from messages") == [stored]


def test_every_model_is_importable_from_maim_db_tables() -> None:
    import maim_db.tables as tables

    missing = [m.__name__ for m in ALL_ROWS if getattr(tables, m.__name__, None) is not m]
    assert not missing
    assert set(tables.__all__) >= {m.__name__ for m in ALL_ROWS}


def _sample(annotation: Any, jsonb: bool) -> Any:
    """A value of a field's type, as its column would hold it."""
    if get_origin(annotation) in (Union, types.UnionType):
        (annotation,) = [a for a in get_args(annotation) if a is not type(None)]
    if jsonb:
        return [1, "二"] if get_origin(annotation) is list else {"k": "值"}
    if get_origin(annotation) is Literal:
        return get_args(annotation)[-1]
    if get_origin(annotation) is list:
        (inner,) = get_args(annotation)
        return [get_args(inner)[0] if get_origin(inner) is Literal else "文本"]
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return {str: "文本", int: 7, float: 1.5, bool: True, bytes: b"hash", datetime: when,
            uuid.UUID: uuid.uuid4()}[annotation]


def _read_back(db: TestDB, model: type[Row]) -> tuple[Row, Row]:
    """Two rows of ``model`` as a read of its own table returns them: every column of the
    table, named and typed as in the catalog (no insert, so no foreign keys to satisfy)."""
    with connect(db.dsn("admin"), admin=True) as s:
        types_ = dict(s.rows("select a.attname::text, format_type(a.atttypid, a.atttypmod) "
                             "from pg_attribute a where a.attrelid = %s::regclass "
                             "and a.attnum > 0 and not a.attisdropped", [model.table]))
        jsonb = model.jsonb_fields()
        values = [_sample(f.annotation, name in jsonb) for name, f in model.model_fields.items()]
        columns = sql.SQL(", ").join(
            sql.SQL("{}::{} as {}").format(sql.Placeholder(), sql.SQL(types_[name]),
                                          sql.Identifier(name))
            for name in model.model_fields)
        query = sql.SQL("select {} from generate_series(1, 2)").format(columns)
        params = [Jsonb(v) if name in jsonb else v
                  for name, v in zip(model.model_fields, values, strict=True)]
        first, second = s.fetch(model, query, params)
    return first, second


def _text_field(model: type[Row]) -> str:
    return [name for name, f in model.model_fields.items()
            if f.annotation in (str, str | None)][-1]


@pytest.mark.parametrize("model", ALL_ROWS + PARTIAL_ROWS, ids=lambda m: m.__name__)
def test_a_row_read_is_an_ordinary_mutable_model(db: TestDB, model: type[Row]) -> None:
    row, other = _read_back(db, model)
    validated = model.model_validate(row.model_dump())
    assert row == validated and row.model_fields_set == validated.model_fields_set
    field = _text_field(model)

    row_copy = row.model_copy(update={field: "副本"})
    assert getattr(row_copy, field) == "副本" and getattr(row, field) != "副本"
    setattr(row, field, "改了")  # what MaiBot code does before save()
    assert getattr(row, field) == "改了" and row.model_dump()[field] == "改了"
    assert row != other and getattr(other, field) != "改了"  # nothing shared between rows
    with pytest.raises(pydantic.ValidationError):  # assignment still validates
        setattr(row, field, 12)
    assert pickle.loads(pickle.dumps(row)) == row
    assert model.model_validate_json(row.model_dump_json()) == row


@pytest.mark.parametrize("column, value", [
    ("status", "'retired'::text"),  # a Literal the model does not know
    ("config", "'[1, 2]'::jsonb"),  # a jsonb array where the model holds an object
])
def test_a_value_the_type_alone_does_not_vouch_for_is_validated(
        db: TestDB, world: World, column: str, value: str) -> None:
    assert column in Agent.model_fields
    cols = [sql.SQL(f"{value} as {column}") if c == column else sql.Identifier(c)
            for c in Agent.model_fields]
    query = sql.SQL("select {} from agents").format(sql.SQL(", ").join(cols))
    with connect(db.dsn("admin"), admin=True) as s:
        assert s.find(Agent)  # the table's own rows pass
        with pytest.raises(InputError, match=rf"(?s)does not fit Agent.*\n{column}\n"):
            s.fetch(Agent, query)
