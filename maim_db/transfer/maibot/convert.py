"""Turning SQLite values into the target columns' types: each conversion returns the value,
counts a fallback (kept as it was, or the column default), or skips the row with a reason.
One function per table builds a row's values (:func:`compile_row`)."""

from __future__ import annotations

import ast
import json
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any, Literal, get_args, get_origin


class Skip(Exception):
    """This row cannot be imported; the message is the reason."""


Convert = Callable[[Any], Any]


def base_type(annotation: Any) -> tuple[Any, bool]:
    """The Python type a column holds (``Annotated`` markers and ``Literal`` sets read as
    their base type), and whether it is nullable."""
    args = get_args(annotation)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return base_type(rest[0])[0], True
    if get_origin(annotation) is Annotated:
        return base_type(args[0])
    if get_origin(annotation) is Literal:
        return str, False
    return annotation, False


def literal_values(annotation: Any) -> tuple[Any, ...] | None:
    """The values a ``Literal`` column (a CHECK of a set) may hold; None for any other."""
    for a in (annotation, *get_args(annotation)):
        if get_origin(a) is Literal:
            return get_args(a)
    return None


def _number(value: str, column: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise Skip(f"{column}: not a number") from None


def _bool(v: Any, column: str) -> bool:
    if isinstance(v, int | float):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("1", "true", "t", "0", "false", "f"):
        return v.strip().lower() in ("1", "true", "t")
    raise Skip(f"{column}: not a boolean")


def converter(annotation: Any, column: str, tz: tzinfo, fallback: Counter[str],
              default: Any = None) -> Convert:
    """The function turning a SQLite value into one for ``column``: it returns the value,
    counts a fallback, or raises :class:`Skip`."""
    kind, nullable = base_type(annotation)
    allowed = literal_values(annotation)

    def missing() -> Any:
        if nullable:
            return None
        if default is not None:
            fallback[f"{column}: NULL replaced by the default {default!r}"] += 1
            return default
        raise Skip(f"{column} is NULL")

    if kind is str and allowed is not None:
        def member(v: Any) -> Any:
            if v is None:
                return missing()
            if v not in allowed:  # the table's CHECK would refuse the whole batch
                shown = repr(v)[:40]
                raise Skip(f"{column}: {shown} is not one of {', '.join(map(str, allowed))}")
            return v
        return member
    if kind is str:
        def text(v: Any) -> Any:
            if type(v) is str:
                return v
            if v is None:
                return missing()
            if isinstance(v, bytes):
                fallback[f"{column}: bytes decoded as UTF-8 with replacement"] += 1
                return v.decode("utf-8", "replace")
            return str(v)
        return text
    if kind is bytes:
        def binary(v: Any) -> Any:
            if type(v) is bytes:
                return v
            if v is None:
                return missing()
            if isinstance(v, str):  # SQLite keeps whatever was bound: text in a BLOB column
                fallback[f"{column}: text stored as its UTF-8 bytes"] += 1
                return v.encode("utf-8", "surrogateescape")
            fallback[f"{column}: a number stored as its text's bytes"] += 1
            return str(v).encode()
        return binary
    if kind is float:
        def real(v: Any) -> Any:
            if type(v) is float:
                return v
            if v is None:
                return missing()
            if isinstance(v, int):
                return float(v)
            if isinstance(v, str):
                return _number(v, column)
            raise Skip(f"{column}: not a number")
        return real
    if kind is int:
        def integer(v: Any) -> Any:
            if type(v) is int:
                return v
            if v is None:
                return missing()
            number = _number(v, column) if isinstance(v, str) else v
            if isinstance(number, float):
                if not number.is_integer():
                    fallback[f"{column}: rounded to an integer"] += 1
                return round(number)
            raise Skip(f"{column}: not an integer")
        return integer
    if kind is bool:
        def boolean(v: Any) -> Any:
            return missing() if v is None else _bool(v, column)
        return boolean
    if kind is datetime:
        def moment(v: Any) -> Any:
            if v is None:
                return missing()
            if isinstance(v, str) and not v.strip() and nullable:
                fallback[f"{column}: an empty time read as NULL"] += 1
                return None
            if isinstance(v, int | float):
                return datetime.fromtimestamp(v, UTC)
            try:
                parsed = datetime.fromisoformat(str(v).strip())
            except ValueError:
                try:
                    return datetime.fromtimestamp(float(v), UTC)
                except ValueError:
                    raise Skip(f"{column}: not a date and time") from None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)
        return moment
    raise TypeError(f"no SQLite conversion for {column}: {annotation!r}")


def id_base(namespace: uuid.UUID, table: str) -> int:
    """The fixed part of the ids of rows imported from MaiBot's ``table``: see :func:`row_id`."""
    digest = int.from_bytes(uuid.uuid5(namespace, table).bytes[:8], "big")
    version8 = (digest & ~(0xF << 12)) | (0x8 << 12)
    return (version8 << 64) | (0x2 << 62)  # RFC 9562 variant bits


def row_id(base: int, source_id: int) -> uuid.UUID:
    """The id of the row imported from MaiBot's row ``source_id``: a version 8 UUID made of a
    digest of (agent, file, table) and the source id. Stable across runs (so a reference by
    MaiBot id can be rewritten without a lookup), it says where a row came from, and a
    table's rows arrive in key order, so the primary-key index is appended to rather than
    split at random places."""
    return uuid.UUID(int=base | source_id)


def selected_expressions(namespace: uuid.UUID, fallback: Counter[str]) -> Convert:
    """``str(list[int])`` of expression ids → a JSON list of the imported rows' ids."""
    base = id_base(namespace, "expression")

    def remap(v: Any) -> Any:
        if v is None or v == "":
            return v
        try:
            ids = json.loads(v)
        except (TypeError, ValueError):
            try:
                ids = ast.literal_eval(v)
            except (ValueError, SyntaxError):
                ids = None
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            fallback["selected_expressions: not a list of ids, kept as it was"] += 1
            return str(v)
        return json.dumps([str(row_id(base, i)) for i in ids])
    return remap


#: How a column's value is made: the Python type that passes through unchanged ("str",
#: "float", "int"), "bool" (0/1 looked up), or "value" (always the converter).
Fast = Literal["str", "float", "int", "bool", "value"]


def fast_path(annotation: Any) -> Fast:
    if literal_values(annotation) is not None:
        return "value"  # the converter checks the value is one of the set
    kind, _ = base_type(annotation)
    return {str: "str", float: "float", int: "int", bool: "bool"}.get(kind, "value")  # type: ignore[return-value]


def compile_row(parts: list[tuple[Fast, bool, int, Callable[[Any], Any]]]) -> Callable[
        [tuple[Any, ...]], list[Any]]:
    """One function building a row's values, with the common case inline: a value SQLite
    already holds in the target's Python type passes through without a call. Generated
    once per table (as dataclasses generates ``__init__``): a call per column per row was
    most of the importer's own time."""
    env: dict[str, Any] = {"_BOOLS": {0: False, 1: True},
                           "_BOOLS_OR_NULL": {0: False, 1: True, None: None}}
    exprs = []
    for n, (fast, nullable, i, convert) in enumerate(parts):
        env[f"c{n}"] = convert
        null = " or x is None" if nullable else ""
        if fast in ("str", "float", "int"):
            exprs.append(f"(x if (x := row[{i}]).__class__ is {fast}{null} else c{n}(x))")
        elif fast == "bool":
            table = "_BOOLS_OR_NULL" if nullable else "_BOOLS"
            exprs.append(f"({table}[x] if (x := row[{i}]) in {table} else c{n}(x))")
        else:
            exprs.append(f"c{n}(row[{i}])")
    exec(f"def make(row):\n    return [{', '.join(exprs)}]", env)
    make: Callable[[tuple[Any, ...]], list[Any]] = env["make"]
    return make
