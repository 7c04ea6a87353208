"""The base of every typed row: a pydantic model that knows its table and key.

Columns the database fills (ids, ``agent_id`` from the scope, timestamps) are declared with
:func:`server_default`: a row built in Python may leave them out, and ``insert`` then sends
only the fields that were actually given, so SQL defaults apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Annotated, Any, ClassVar, Final, TypeVar, get_args

from psycopg._cursor_base import BaseCursor
from psycopg.rows import BaseRowFactory, RowMaker, no_result
from pydantic import BaseModel, ConfigDict, Field


class _ServerDefault:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<server default>"


SERVER_DEFAULT: Final = _ServerDefault()


class _Jsonb:
    __slots__ = ()

    def __repr__(self) -> str:
        return "jsonb"


JSONB: Final = _Jsonb()

#: A ``jsonb`` column holding an object / an array / any JSON value. Plain ``list[str]`` is
#: a ``text[]`` column; the marker is what tells the two apart when a row is written.
JsonObject = Annotated[dict[str, Any], JSONB]
JsonArray = Annotated[list[Any], JSONB]
JsonValue = Annotated[Any, JSONB]


def server_default() -> Any:
    """A field the database fills when the row is inserted without it."""
    return Field(default=SERVER_DEFAULT)


class Row(BaseModel):
    """One row of ``table``; ``key`` names its primary-key columns in order."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    table: ClassVar[str]
    key: ClassVar[tuple[str, ...]]

    @classmethod
    def jsonb_fields(cls) -> frozenset[str]:
        return _jsonb_fields(cls)

    def given(self) -> dict[str, Any]:
        """The columns set on this row, in declaration order, for INSERT."""
        return {name: getattr(self, name) for name in type(self).model_fields
                if name in self.model_fields_set}


@cache
def _jsonb_fields(model: type[Row]) -> frozenset[str]:
    return frozenset(name for name, field in model.model_fields.items()
                     if any(m is JSONB for m in field.metadata)
                     # `JsonObject | None`: pydantic leaves the marker inside the union
                     or any(JSONB in getattr(arg, "__metadata__", ())
                            for arg in get_args(field.annotation)))


R = TypeVar("R", bound=Row)


def row_factory(model: type[R]) -> BaseRowFactory[R]:
    """psycopg rows as validated ``model`` instances.

    Calls the model's compiled validator on each row's dict directly: about a third faster
    than ``model(**row)`` (psycopg's ``class_row``), and — measured in benchmarks/ — faster
    than ``model_construct``, which skips validation but builds the instance in Python.
    """
    validate = model.__pydantic_validator__.validate_python

    def factory(cursor: BaseCursor[Any, Any]) -> RowMaker[R]:
        result = cursor.pgresult
        if result is None or not result.nfields:
            return no_result
        # Straight from the result: cursor.description would build a Column object per
        # column per statement (measured: a third of the Python time of a point lookup).
        encoding = cursor.connection.info.encoding
        names = [(result.fname(i) or b"").decode(encoding) for i in range(result.nfields)]

        def make(values: Sequence[Any]) -> R:
            return validate(dict(zip(names, values, strict=True)))  # type: ignore[no-any-return]

        return make

    return factory
