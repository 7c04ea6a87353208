"""The isolation matrix, generated from the models: for every agent table (public's and MaiBot
1.x's in maibot1), agent A writes a
row and agent B can neither see nor touch it, cannot write into A, and can hold a row with the
same natural key (unique constraints include agent_id, so they leak nothing). Twice: as the
runtime (a maim_app login, agent_id= scope) and as a plugin (a maim_plugin login holding each
agent's API key)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Literal, get_args, get_origin

import psycopg
import pytest
from psycopg import sql

from maim_db import Database, IsolationError, NotFoundError, connect
from maim_db.control import keys
from maim_db.row import Row
from maim_db.tables import ALL_ROWS, MAIBOT1_ROWS
from tests.databases import TestDB, World
from tests.test_schema_contract import _split_optional

TENANT_KEYED = {"api_keys", "plugin_settings"}  # control plane, covered in test_isolation.py
AGENT_TABLES = [m for m in ALL_ROWS + MAIBOT1_ROWS
                if "agent_id" in m.model_fields and m.table not in TENANT_KEYED]
# Values the generic samples cannot satisfy (a CHECK on the column's format).
FORMATTED = {"import_progress": {"source_key": "0123456789abcdef"},
             "import_claims": {"source_key": "0123456789abcdef"}}


def _sample(model: type[Row], field: str, annotation: Any, jsonb: bool) -> Any:
    inner, _ = _split_optional(annotation)
    if jsonb:
        return [] if get_origin(inner) is list else {}
    if get_origin(inner) is Literal:
        return get_args(inner)[0]
    if get_origin(inner) is list:
        return []
    return {str: f"{field} 麦麦 🙂", int: 1, float: 0.5, bool: True,
            datetime: datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), bytes: b"\x00" * 32}[inner]


def _foreign_keys(db: TestDB, table: str) -> list[tuple[str, list[str], list[str]]]:
    """FKs other than agent_id → agents: (referenced table, local cols, referenced cols)."""
    with psycopg.connect(db.superuser) as conn:
        rows = conn.execute(
            """select con.confrelid::regclass::text,
                      array(select a.attname::text from unnest(con.conkey) with ordinality k(n, o)
                            join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.n
                            order by k.o),
                      array(select a.attname::text from unnest(con.confkey) with ordinality k(n, o)
                            join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.n
                            order by k.o)
               from pg_constraint con
               where con.conrelid = %s::regclass and con.contype = 'f'""", [table]).fetchall()
    return [(t, list(lc), list(rc)) for t, lc, rc in rows if t not in ("agents", "tenants")]


def _row(model: type[Row], db: TestDB, scope: Database) -> Row:
    """A valid row of ``model`` for the agent in ``scope``, creating rows it refers to."""
    values: dict[str, Any] = {}
    jsonb = model.jsonb_fields()
    for name, field in model.model_fields.items():
        if field.is_required():
            values[name] = _sample(model, name, field.annotation, name in jsonb)
    values.update(FORMATTED.get(model.table, {}))
    for parent_table, local, remote in _foreign_keys(db, model.qualified_table()):
        parent_model = next(m for m in ALL_ROWS if m.table == parent_table)
        parent = scope.insert(_row(parent_model, db, scope))
        for lc, rc in zip(local, remote, strict=True):
            if lc != "agent_id":
                values[lc] = getattr(parent, rc)
    return model(**values)


def _natural(row: Row) -> dict[str, Any]:
    return {k: v for k, v in row.given().items() if k not in ("agent_id", "id")}


Opener = Callable[[str], AbstractContextManager[Database]]


@pytest.fixture(params=["app", "plugin"])
def as_agent(request: pytest.FixtureRequest, db: TestDB, world: World) -> Opener:
    """Opens a block acting for an agent: by id as maim_app, or by key as maim_plugin."""
    if request.param == "app":
        return lambda agent_id: connect(db.dsn("app"), agent_id=agent_id)
    with connect(db.dsn("admin"), admin=True) as adm:
        secrets = {world.agent_id(n): keys.issue(adm, agent_id=world.agent_id(n),
                                                 name="matrix", permissions=["chat"]).secret
                   for n in ("A1", "B1")}
    return lambda agent_id: connect(db.dsn("plugin"), api_key=secrets[agent_id])


def _count(as_agent: Opener, model: type[Row], agent_id: str) -> int:
    with as_agent(agent_id) as db:
        return int(db.scalar(sql.SQL("select count(*) from {}").format(
            sql.Identifier(*model.table_path()))))


def _a_column(model: type[Row]) -> str:
    """A column an UPDATE can set to itself without breaking anything."""
    return next(n for n in model.model_fields if n not in ("agent_id", "id", "tenant_id"))


@pytest.mark.parametrize("model", AGENT_TABLES, ids=lambda m: m.qualified_table())
def test_matrix(model: type[Row], db: TestDB, world: World, as_agent: Opener) -> None:
    a, b = world.agent_id("A1"), world.agent_id("B1")
    with connect(db.dsn("admin"), admin=True) as adm:  # start from an empty table
        adm.execute(sql.SQL("delete from {}").format(sql.Identifier(*model.table_path())))
    with as_agent(a) as scope:
        template = _row(model, db, scope)
        mine = scope.insert(template)
    assert mine.agent_id == a  # filled in by the scope

    table = sql.Identifier(*model.table_path())
    column = sql.Identifier(_a_column(model))
    with as_agent(b) as other:
        assert other.fetch(model, sql.SQL("select * from {}").format(table)) == []
        assert other.execute(sql.SQL("update {} set {} = {}").format(table, column, column)) == 0
        assert other.fetch(model, sql.SQL("update {} set {} = {} returning *").format(
            table, column, column)) == []
        assert other.fetch(model, sql.SQL("delete from {} returning *").format(table)) == []
        assert other.find(model, {"agent_id": a}) == []
        with pytest.raises(NotFoundError):
            other.get(model, *(getattr(mine, k) for k in model.key))

    # B cannot write into A ...
    with pytest.raises(IsolationError, match=model.table), as_agent(b) as other:
        other.insert(model(**{**template.given(), "agent_id": a}))
    # ... but may hold the very same natural key as A.
    with as_agent(b) as other:
        theirs = other.insert(_row(model, db, other).model_copy(update=_natural(template)))
    assert theirs.agent_id == b

    # A cannot move its row to B.
    key = {k: getattr(mine, k) for k in model.key}
    with pytest.raises(IsolationError), as_agent(a) as scope:
        scope.update(model, where=key, set={"agent_id": b})

    # A's row is intact; each agent sees one row; tenants see only their agents.
    with as_agent(a) as scope:
        assert scope.get(model, *key.values()) == mine
    assert _count(as_agent, model, a) == 1
    assert _count(as_agent, model, b) == 1
    tenant = db.dsn("tenant")
    with connect(tenant, tenant_id=world.tenant_id("T1")) as t1:
        seen = {r.agent_id for r in t1.find(model)}
    assert seen == {a}
    with connect(tenant, tenant_id=world.tenant_id("T2")) as t2:
        assert {r.agent_id for r in t2.find(model)} == {b}
    # Tenant scope reads; it never writes.
    with pytest.raises(IsolationError), connect(tenant, tenant_id=world.tenant_id("T1")) as t1:
        t1.execute(sql.SQL("delete from {}").format(table))
    assert _count(as_agent, model, a) == 1
