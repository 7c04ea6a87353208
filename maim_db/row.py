"""The base of every typed row: a pydantic model that knows its table and key.

Columns the database fills (ids, ``agent_id`` from the scope, timestamps) are declared with
:func:`server_default`: a row built in Python may leave them out, and ``insert`` then sends
only the fields that were actually given, so SQL defaults apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Annotated, Any, ClassVar, Final, Self, TypeVar, get_args
from uuid import UUID

from psycopg._cursor_base import BaseCursor
from psycopg.rows import BaseRowFactory, RowMaker, no_result
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import InputError


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

    @classmethod
    def from_input(cls, **values: Any) -> Self:
        """Build a row from a caller's values; a bad one is an :class:`InputError` naming
        the field (the library's helpers build rows this way, never letting pydantic's own
        error escape)."""
        try:
            return cls(**values)
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or cls.__name__}: {e['msg']}"
                                 for e in err.errors())
            raise InputError(f"invalid {cls.__name__}: {problems}") from None

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


#: The PostgreSQL types whose psycopg value is already exactly the field's Python type.
_OIDS: Final[dict[Any, frozenset[int]]] = {
    str: frozenset({25, 1043}),  # text, varchar
    int: frozenset({20, 21, 23}),  # int8, int2, int4
    float: frozenset({701}),  # float8
    bool: frozenset({16}),
    datetime: frozenset({1184}),  # timestamptz
    UUID: frozenset({2950}),
}


@cache
def _plain_fields(model: type[Row]) -> dict[str, tuple[frozenset[int], bool]] | None:
    """Field → (the column types that need no validation, whether NULL is allowed), when
    every field of ``model`` is such a plain type with no constraints; else None."""
    if model.__private_attributes__:
        return None
    out = {}
    for name, field in model.model_fields.items():
        args = get_args(field.annotation)
        nullable = type(None) in args
        base = ([a for a in args if a is not type(None)] if nullable else [field.annotation])
        if len(base) != 1 or base[0] not in _OIDS or field.metadata:
            return None
        out[name] = (_OIDS[base[0]], nullable)
    return out


def row_factory(model: type[R]) -> BaseRowFactory[R]:
    """psycopg rows as ``model`` instances, validated.

    The general path calls the model's compiled validator on each row's dict: about a third
    faster than ``model(**row)`` (psycopg's ``class_row``) and faster than
    ``model_construct``, which skips validation but builds the instance in Python.

    The fast path validates by type once per result instead of per value: when the result
    has exactly the model's columns and each column's PostgreSQL type loads to exactly the
    field's plain Python type (text → str, float8 → float, …), validating each value again
    would only repeat what psycopg's loader did, so the instance is built directly; a NULL
    in a NOT NULL field still goes through the validator, which rejects it. Measured on a
    ``messages`` row: 3.8 µs instead of 9.3 µs (benchmarks/, docs/performance.md).
    """
    validate = model.__pydantic_validator__.validate_python
    plain = _plain_fields(model)

    def factory(cursor: BaseCursor[Any, Any]) -> RowMaker[R]:
        result = cursor.pgresult
        if result is None or not result.nfields:
            return no_result
        # Straight from the result: cursor.description would build a Column object per
        # column per statement (measured: a third of the Python time of a point lookup).
        encoding = cursor.connection.info.encoding
        names = [(result.fname(i) or b"").decode(encoding) for i in range(result.nfields)]

        def make(values: Sequence[Any]) -> R:
            try:
                return validate(dict(zip(names, values, strict=True)))  # type: ignore[no-any-return]
            except ValidationError as err:
                raise InputError(f"a row of the result does not fit {model.__name__} (select "
                                 f"the table's columns, or use rows()): {err}") from None

        if plain is None or len(names) != len(plain) or not all(
                name in plain and result.ftype(i) in plain[name][0]
                for i, name in enumerate(names)):
            return make
        required = [i for i, name in enumerate(names) if not plain[name][1]]
        fields_set = frozenset(names)
        new, setattr_ = object.__new__, object.__setattr__

        def build(values: Sequence[Any]) -> R:
            for i in required:
                if values[i] is None:
                    return make(values)  # raises the validator's error for the NULL
            row = new(model)
            setattr_(row, "__dict__", dict(zip(names, values, strict=True)))
            setattr_(row, "__pydantic_fields_set__", fields_set)
            setattr_(row, "__pydantic_extra__", None)
            setattr_(row, "__pydantic_private__", None)
            return row

        return build

    return factory
