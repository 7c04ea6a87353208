"""Every typed row equals the live catalog: same tables, same columns in the same order,
matching types, nullability and defaults — in `public` and in MaiBot 1.x's `maibot1`."""

from __future__ import annotations

import types
from datetime import datetime
from typing import Any, Literal, Union, get_args, get_origin
from uuid import UUID

import psycopg
import pytest

from maim_db.row import INT8, SERVER_DEFAULT, Row
from maim_db.schema.audit import BOOKKEEPING
from maim_db.tables import ALL_ROWS, MAIBOT1_ROWS, PARTIAL_ROWS
from tests.databases import TestDB

# Columns a trigger fills: NOT NULL without a DEFAULT, yet optional when inserting.
TRIGGER_FILLED = {("public.agent_active_states", "expires_at")}
#: Nullable columns whose model default is not None: 1.2.1's own (``is_jargon:
#: Optional[bool] = False``), which MaiBot1Row.given() sends on insert.
NULLABLE_WITH_DEFAULT = {("maibot1.jargons", "is_jargon")}
#: Every table's model, both schemas; a catalog table is named ``schema.table``.
TABLE_ROWS = ALL_ROWS + MAIBOT1_ROWS


def _pg_type(annotation: Any, jsonb: bool, bigint: bool = False) -> set[str]:
    """The PostgreSQL types (information_schema spelling) a field annotation may map to:
    one each, so the SQLAlchemy tables built from the models state the catalog's type."""
    if jsonb:
        return {"jsonb"}
    if bigint:
        return {"bigint"}
    if get_origin(annotation) is Literal:
        return {"text"}
    if get_origin(annotation) is list:
        (inner,) = get_args(annotation)
        return {f"{t}[]" for t in _pg_type(inner, False)}
    simple: dict[Any, set[str]] = {
        str: {"text"}, int: {"integer"}, float: {"double precision"},
        bool: {"boolean"}, datetime: {"timestamp with time zone"}, UUID: {"uuid"},
        bytes: {"bytea"},
    }
    return simple[annotation]


def _split_optional(annotation: Any) -> tuple[Any, bool]:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def _catalog(dsn: str) -> dict[str, list[tuple[str, str, bool, bool]]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """select c.table_schema || '.' || c.table_name, c.column_name::text,
                      case when c.data_type = 'ARRAY' then substr(c.udt_name, 2) || '[]'
                           else c.data_type end,
                      c.is_nullable = 'YES', c.column_default is not null
               from information_schema.columns c
               join pg_class k on k.relname = c.table_name and k.relkind in ('r', 'p', 'v')
               join pg_namespace n on n.oid = k.relnamespace and n.nspname = c.table_schema
               where c.table_schema in ('public', 'maibot1')
               order by c.table_schema, c.table_name, c.ordinal_position""").fetchall()
    out: dict[str, list[tuple[str, str, bool, bool]]] = {}
    for table, column, typ, nullable, has_default in rows:
        if table.removeprefix("public.") not in BOOKKEEPING:
            out.setdefault(table, []).append((column, typ, nullable, has_default))
    return out


@pytest.fixture(scope="module")
def catalog(template: str, server: Any) -> dict[str, list[tuple[str, str, bool, bool]]]:
    from tests.databases import with_db

    return _catalog(with_db(server.superuser, template))


def test_every_table_has_exactly_one_model(catalog: dict[str, Any]) -> None:
    tables = [m.qualified_table() for m in TABLE_ROWS]
    views = [m.qualified_table() for m in PARTIAL_ROWS if m.qualified_table() not in tables]
    assert len(tables) == len(set(tables)), "two models claim one table"
    assert sorted(tables + views) == sorted(catalog)


# What each partial model leaves out: the columns its readers hold no privilege on.
HIDDEN = {"UserProfile": {"hashed_password"}}
# A view's columns carry no NOT NULL or default in the catalog: its model takes nullability
# from the table the view lists (and its computed columns are checked by type only).
VIEW_OF = {"public.api_key_list": "public.api_keys"}


@pytest.mark.parametrize("model", TABLE_ROWS + PARTIAL_ROWS,
                         ids=lambda m: f"{m.qualified_table()}:{m.__name__}")
def test_model_equals_catalog(model: type[Row], catalog: dict[str, Any]) -> None:
    hidden = HIDDEN.get(model.__name__, set())
    table = model.qualified_table()
    columns = [c for c in catalog[table] if c[0] not in hidden]
    assert list(model.model_fields) == [c[0] for c in columns], "columns or their order differ"
    jsonb = model.jsonb_fields()
    for (_column, pg_type, nullable, has_default), (name, field) in zip(
            columns, model.model_fields.items(), strict=True):
        inner, optional = _split_optional(field.annotation)
        bigint = any(m is INT8 for m in field.metadata)
        assert pg_type in _pg_type(inner, name in jsonb, bigint), f"{name}: {pg_type} vs {inner}"
        if table in VIEW_OF:
            base = {c[0]: c[2] for c in catalog[VIEW_OF[table]]}
            assert optional == base.get(name, optional), f"{name}: nullable differs from table"
            assert field.default is None or not optional, f"{name}: nullable needs None default"
            continue
        assert optional == nullable, f"{name}: nullable={nullable} but model optional={optional}"
        server_filled = field.default is SERVER_DEFAULT
        expected = has_default or (table, name) in TRIGGER_FILLED
        if not nullable:
            assert server_filled == expected, (
                f"{name}: DB default={has_default} but model server_default={server_filled}")
        elif (table, name) in NULLABLE_WITH_DEFAULT:
            assert field.default is not None, f"{name}: listed, but its default is None"
        else:
            assert field.default is None or server_filled, f"{name}: nullable needs None default"


def test_partial_models_hide_what_they_say(catalog: dict[str, Any]) -> None:
    """A partial model omits exactly its hidden columns (the view omits key_hash)."""
    from maim_db.tables import ApiKey, ApiKeyInfo, User, UserProfile

    assert set(User.model_fields) - set(UserProfile.model_fields) == HIDDEN["UserProfile"]
    assert set(ApiKey.model_fields) - set(ApiKeyInfo.model_fields) == {"key_hash"}


@pytest.mark.parametrize("model", TABLE_ROWS, ids=lambda m: m.qualified_table())
def test_model_key_is_the_primary_key(model: type[Row], db: TestDB) -> None:
    with psycopg.connect(db.superuser) as conn:
        key = conn.execute(
            """select array_agg(a.attname::text order by k.ord)
               from pg_index i
               cross join lateral unnest(i.indkey) with ordinality k(attnum, ord)
               join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
               where i.indrelid = %s::regclass and i.indisprimary""",
            [model.qualified_table()]).fetchone()
    assert key is not None and tuple(key[0]) == model.key


def test_docs_schema_lists_every_table() -> None:
    """docs/schema.md is the reader's table of contents: every table, once, and its count."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "schema.md").read_text("utf-8")
    listed = [line.split("|")[1].strip().strip("`") for line in text.splitlines()
              if line.startswith("| `")]
    assert sorted(listed) == sorted(m.table for m in ALL_ROWS)
    assert text.startswith(f"# Schema\n\n{len(ALL_ROWS)} tables in `public`")
