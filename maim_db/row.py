"""The base of every typed row: a pydantic model that knows its table and key.

Columns the database fills (ids, ``agent_id`` from the scope, timestamps) are declared with
:func:`server_default`: a row built in Python may leave them out, and ``insert`` then sends
only the fields that were actually given, so SQL defaults apply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from operator import itemgetter
from typing import Annotated, Any, ClassVar, Final, Literal, Self, TypeVar, get_args, get_origin
from uuid import UUID

from psycopg import postgres
from psycopg.pq.abc import PGresult
from psycopg.rows import BaseRowFactory, RowMaker, no_result
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._psycopg import BaseCursor
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


class _Int8:
    __slots__ = ()

    def __repr__(self) -> str:
        return "bigint"


INT8: Final = _Int8()

#: A ``jsonb`` column holding an object / an array / any JSON value. Plain ``list[str]`` is
#: a ``text[]`` column; the marker is what tells the two apart when a row is written.
JsonObject = Annotated[dict[str, Any], JSONB]
JsonArray = Annotated[list[Any], JSONB]
JsonValue = Annotated[Any, JSONB]
#: A ``bigint`` column; plain ``int`` is an ``integer`` one. Python does not care, but the
#: SQLAlchemy tables built from the models (maim_db.sqlalchemy.tables) state the exact type.
BigInt = Annotated[int, INT8]


def server_default() -> Any:
    """A field the database fills when the row is inserted without it."""
    return Field(default=SERVER_DEFAULT)


# pydantic's own slot for a row's set fields, read and written past the property below.
_FIELDS_SET_SLOT: Final = BaseModel.__dict__["__pydantic_fields_set__"]
# The other three slots a row built from a result fills, written through their descriptors:
# object.__setattr__ looks each one up by name first (a tenth of building a row, issue 36).
_SET_DICT: Final = BaseModel.__dict__["__dict__"].__set__
_SET_EXTRA: Final = BaseModel.__dict__["__pydantic_extra__"].__set__
_SET_PRIVATE: Final = BaseModel.__dict__["__pydantic_private__"].__set__


class Row(BaseModel):
    """One row of ``table``; ``key`` names its primary-key columns in order."""

    # Columns are MaiBot's names (`model_name`, `model_identifier`), not pydantic's namespace:
    # pydantic before 2.10 warned about every such field on import.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    table: ClassVar[str]
    key: ClassVar[tuple[str, ...]]
    #: The PostgreSQL schema ``table`` is in: ``public``, or ``maibot1`` for MaiBot 1.x's
    #: tables (a schema per MaiBot generation, since four 1.x names are 0.x tables too).
    pg_schema: ClassVar[str] = "public"

    @classmethod
    def table_path(cls) -> tuple[str, ...]:
        """The table's name as SQL names it, ``sql.Identifier(*path)``: the name alone in
        ``public`` (on every role's search path, and the SQL maim_db always sent), else
        schema and name."""
        return (cls.table,) if cls.pg_schema == "public" else (cls.pg_schema, cls.table)

    @classmethod
    def table_name(cls) -> str:
        """The table as maim_db names it to people (export files, reports, the audit):
        bare in ``public`` (``images``), with its schema elsewhere (``maibot1.images``)."""
        return ".".join(cls.table_path())

    @classmethod
    def qualified_table(cls) -> str:
        """``schema.table``, as ``regclass`` and the catalog name it (``public.messages``)."""
        return f"{cls.pg_schema}.{cls.table}"

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

    @property  # type: ignore[misc]
    def __pydantic_fields_set__(self) -> set[str]:
        """pydantic's set of the fields given. A row read from a result (every field given)
        holds its model's shared frozenset until the set is first asked for, and then its
        own mutable copy: a 38-field set of its own was about a third of building a row
        (docs/performance.md)."""
        given = _FIELDS_SET_SLOT.__get__(self, type(self))
        if type(given) is frozenset:
            given = set(given)
            _FIELDS_SET_SLOT.__set__(self, given)
        return given  # type: ignore[no-any-return]

    @__pydantic_fields_set__.setter
    def __pydantic_fields_set__(self, given: set[str]) -> None:
        _FIELDS_SET_SLOT.__set__(self, given)

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


def _oids(*names: str) -> frozenset[int]:
    """The OIDs of built-in types, by name (psycopg's registry of PostgreSQL's types)."""
    return frozenset(postgres.types[name].oid for name in names)


#: The PostgreSQL types whose psycopg value is already exactly the field's Python type.
_OIDS: Final[dict[Any, frozenset[int]]] = {
    str: _oids("text", "varchar"),
    int: _oids("int8", "int2", "int4"),
    float: _oids("float4", "float8"),
    bool: _oids("bool"),
    datetime: _oids("timestamptz"),
    UUID: _oids("uuid"),
    bytes: _oids("bytea"),
}
_TEXT: Final = _OIDS[str]
_TEXT_ARRAY: Final = frozenset({postgres.types["text"].array_oid})
_JSONB: Final = _oids("jsonb")

#: A cheap test that a loaded value is what the field holds; None: the column type says so.
Check = Callable[[Any], bool] | None


def _is_dict(value: Any) -> bool:
    return type(value) is dict


def _is_list(value: Any) -> bool:
    return type(value) is list


def _members(allowed: frozenset[Any]) -> Callable[[Any], bool]:
    return allowed.__contains__


def _array_of(allowed: frozenset[Any] | None) -> Callable[[Any], bool]:
    if allowed is None:
        return lambda value: type(value) is list and all(type(v) is str for v in value)
    return lambda value: type(value) is list and all(v in allowed for v in value)


def _trust(annotation: Any, jsonb: bool) -> tuple[frozenset[int], Check] | None:
    """The column types a field's value may come from without validation, and the check it
    still needs; None when only pydantic can tell (the row is then validated)."""
    if jsonb:
        return _JSONB, {dict: _is_dict, list: _is_list}.get(get_origin(annotation)
                                                               or annotation)
    if get_origin(annotation) is Literal:
        return _TEXT, _members(frozenset(get_args(annotation)))
    if get_origin(annotation) is list:
        (inner,) = get_args(annotation)
        if inner is str:
            return _TEXT_ARRAY, _array_of(None)
        if get_origin(inner) is Literal:
            return _TEXT_ARRAY, _array_of(frozenset(get_args(inner)))
        return None
    if annotation in _OIDS:
        return _OIDS[annotation], None
    return None


@dataclass(frozen=True, slots=True)
class _Field:
    oids: frozenset[int]
    nullable: bool
    check: Check


@cache
def _trusted_fields(model: type[Row]) -> dict[str, _Field] | None:
    """Field → what a result column must be for the value to be taken as loaded; None when
    some field needs pydantic (then every row of the model is validated)."""
    if model.__private_attributes__:
        return None
    jsonb = model.jsonb_fields()
    out = {}
    for name, field in model.model_fields.items():
        args = get_args(field.annotation)
        nullable = type(None) in args
        base = ([a for a in args if a is not type(None)] if nullable else [field.annotation])
        if len(base) != 1 or any(m is not JSONB and m is not INT8 for m in field.metadata):
            return None
        trusted = _trust(base[0], name in jsonb)
        if trusted is None:
            return None
        out[name] = _Field(trusted[0], nullable, trusted[1])
    return out


def row_maker(model: type[R], result: PGresult, encoding: str) -> RowMaker[R]:
    """A function building ``model`` rows from the values of ``result``'s rows.

    Validating every value would only repeat what psycopg's loaders did when the result has
    exactly the model's columns and each column's type loads to the field's type (text →
    str, float8 → float, …; ``tests/test_schema_contract.py`` holds every model equal to its
    table): such rows are built directly, as ``model_construct`` would, once a cheap check
    has passed where the type alone does not decide (a ``Literal``'s values, a jsonb
    object). A value that fails it — a NULL in a NOT NULL field, a status the model does not
    know — goes through the model's compiled validator, which converts or rejects it. Any
    other result is validated row by row. Measured on a ``messages`` row: 3.8 µs instead of
    9.3 µs, and since issue 36 a third fewer instructions again (docs/performance.md).
    """
    if not result.nfields:
        return no_result
    validate = model.__pydantic_validator__.validate_python
    # Straight from the result: cursor.description would build a Column object per column
    # per statement (measured: a third of the Python time of a point lookup).
    names = [(result.fname(i) or b"").decode(encoding) for i in range(result.nfields)]
    if len(set(names)) != len(names):  # a dict of them would keep one value of the name
        twice = next(name for i, name in enumerate(names) if name in names[:i])
        raise InputError(f"the result names the column {twice!r} twice; a {model.__name__} row "
                         "needs each once (alias the other, or use rows())")

    def make(values: Sequence[Any]) -> R:
        try:
            return validate(dict(zip(names, values, strict=True)))  # type: ignore[no-any-return]
        except ValidationError as err:
            raise InputError(f"a row of the result does not fit {model.__name__} (select "
                             f"the table's columns, or use rows()): {err}") from None

    fields = _trusted_fields(model)
    if fields is None or len(names) != len(fields) or not all(
            name in fields and result.ftype(i) in fields[name].oids
            for i, name in enumerate(names)):
        return make
    required = [i for i, name in enumerate(names) if not fields[name].nullable]
    # the NOT NULL values as one tuple, in C (a Python loop over them was a fifth of a row)
    not_null = itemgetter(*required) if len(required) > 1 else (
        (lambda values: (values[required[0]],)) if required else (lambda values: ()))
    checks = [(i, check) for i, name in enumerate(names)
              if (check := fields[name].check) is not None]
    # every field given: one frozenset shared by the model's rows, copied on first use (the
    # property Row.__pydantic_fields_set__), so a row read and never asked costs no set
    all_set = frozenset(names)
    keys = tuple(names)
    # copied per row, then filled: the copy takes the template's table whole, where dict(zip())
    # grew a new one through three resizes (callgrind: 5 % fewer instructions per row)
    template = dict.fromkeys(keys)
    new, set_given = object.__new__, _FIELDS_SET_SLOT.__set__
    set_dict, set_extra, set_private = _SET_DICT, _SET_EXTRA, _SET_PRIVATE

    def build(values: Sequence[Any]) -> R:
        if None in not_null(values):
            return make(values)  # raises the validator's error for the NULL
        if checks:
            for i, check in checks:
                if values[i] is not None and not check(values[i]):
                    return make(values)
        row = new(model)
        given = template.copy()
        given.update(zip(keys, values))  # noqa: B905 (lengths checked above; strict= is slower)
        set_dict(row, given)
        set_given(row, all_set)
        set_extra(row, None)
        set_private(row, None)
        return row

    return build


def row_factory(model: type[R]) -> BaseRowFactory[R]:
    """psycopg rows as ``model`` instances (see :func:`row_maker`), for a psycopg cursor."""

    def factory(cursor: BaseCursor[Any, Any]) -> RowMaker[R]:
        result = cursor.pgresult
        if result is None:
            return no_result
        return row_maker(model, result, cursor.connection.info.encoding)

    return factory
