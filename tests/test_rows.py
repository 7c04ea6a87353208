"""Typed rows from results: the per-result fast path builds exactly what validation would,
and anything validation would reject still goes through validation and is rejected."""

from __future__ import annotations

import pydantic
import pytest
from psycopg import sql

from maim_db import InputError, connect
from maim_db.row import _plain_fields
from maim_db.tables import ALL_ROWS, Agent
from maim_db.tables.runtime import Message, PersonInfo
from tests.databases import TestDB, World
from tests.samples import message


def test_runtime_rows_take_the_fast_path_and_config_rows_do_not() -> None:
    assert _plain_fields(Message) is not None and _plain_fields(PersonInfo) is not None
    assert _plain_fields(Agent) is None  # Literal status, jsonb config: validated per value
    assert sum(_plain_fields(m) is not None for m in ALL_ROWS) >= 18


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


def test_every_model_is_importable_from_maim_db_tables() -> None:
    import maim_db.tables as tables

    missing = [m.__name__ for m in ALL_ROWS if getattr(tables, m.__name__, None) is not m]
    assert not missing
    assert set(tables.__all__) >= {m.__name__ for m in ALL_ROWS}
