"""SQLAlchemy Tables built from the row models (issue 34, item 3): equal to the live catalog
(names, order, exact types, nullability, keys, which columns the server fills), and usable
through maim_db's engines as the real logins — a service's ``select(users).where(...)``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from maim_db import ScopeError, agent_scope
from maim_db.schema.audit import BOOKKEEPING
from maim_db.sqlalchemy import create_async_engine, create_engine
from maim_db.sqlalchemy import tables as sa_tables
from maim_db.sqlalchemy.tables import metadata, views
from maim_db.tables import ALL_ROWS
from tests.databases import TestDB, World
from tests.samples import message

pytestmark = pytest.mark.filterwarnings("error::sqlalchemy.exc.SAWarning")

# NOT NULL without a DEFAULT that a trigger fills (as in test_schema_contract.py)
TRIGGER_FILLED = {("agent_active_states", "expires_at")}


@pytest.fixture(scope="module")
def catalog(template: str, server: Any) -> dict[str, list[tuple[str, str, bool, bool]]]:
    from tests.databases import with_db
    from tests.test_schema_contract import _catalog

    # the Tables here are public's (maibot1's are maim_db.sqlmodel's), named bare
    return {table.removeprefix("public."): columns
            for table, columns in _catalog(with_db(server.superuser, template)).items()
            if table.startswith("public.")}


@pytest.fixture(scope="module")
def primary_keys(template: str, server: Any) -> dict[str, list[str]]:
    import psycopg

    from tests.databases import with_db

    with psycopg.connect(with_db(server.superuser, template)) as conn:
        rows = conn.execute(
            """select i.indrelid::regclass::text, array_agg(a.attname::text order by k.ord)
               from pg_index i
               cross join lateral unnest(i.indkey) with ordinality k(attnum, ord)
               join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
               join pg_class c on c.oid = i.indrelid
               join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
               where i.indisprimary group by 1""").fetchall()
    return {table: list(key) for table, key in rows}


def _compiled(column: Any) -> str:
    return str(column.type.compile(dialect=postgresql.dialect())).lower()


def test_one_table_per_model_and_every_catalog_table(catalog: dict[str, Any]) -> None:
    assert sorted(metadata.tables) == sorted(m.table for m in ALL_ROWS)
    assert sorted([*metadata.tables, *views.tables]) == sorted(
        t for t in catalog if t not in BOOKKEEPING)


@pytest.mark.parametrize("name", sorted(m.table for m in ALL_ROWS))
def test_table_equals_catalog(name: str, catalog: dict[str, Any],
                              primary_keys: dict[str, list[str]]) -> None:
    table = metadata.tables[name]
    expected = catalog[name]
    assert [c.name for c in table.columns] == [c[0] for c in expected]
    for column, (_, pg_type, nullable, has_default) in zip(table.columns, expected,
                                                           strict=True):
        assert _compiled(column) == pg_type, f"{column.name}: {_compiled(column)} vs {pg_type}"
        assert column.nullable == nullable, column.name
        if not nullable:  # the server fills it exactly where the catalog says it does
            filled = has_default or (name, column.name) in TRIGGER_FILLED
            assert (column.server_default is not None) == filled, column.name
    assert [c.name for c in table.primary_key.columns] == primary_keys[name]


def test_view_columns_equal_catalog(catalog: dict[str, Any]) -> None:
    view = views.tables["api_key_list"]
    assert [(c.name, _compiled(c)) for c in view.columns] == [
        (c[0], c[1]) for c in catalog["api_key_list"]]


def test_each_table_is_an_attribute_by_its_name() -> None:
    assert sa_tables.users is metadata.tables["users"]
    assert sa_tables.api_key_list is views.tables["api_key_list"]
    with pytest.raises(AttributeError):
        _ = sa_tables.no_such_table


# -- through the engines, as the real logins --------------------------------------------------

def test_a_service_selects_users_by_name_as_the_admin_login(db: TestDB, world: World) -> None:
    users = sa_tables.users
    engine = create_engine(db.dsn("admin"), admin=True, pool_size=1, max_overflow=0)
    try:
        with Session(engine) as s:
            found = s.execute(select(users).where(
                users.c.username == world.users["U1"].username)).one()
        assert found.id == world.users["U1"].id and found.hashed_password == "x"
    finally:
        engine.dispose()


def test_the_tenant_login_reads_users_without_the_hash(db: TestDB, world: World) -> None:
    users = sa_tables.users
    engine = create_engine(db.dsn("tenant"), tenant_id=world.tenant_id("T1"), pool_size=1,
                           max_overflow=0)
    try:
        with Session(engine) as s:
            ids = s.execute(select(users.c.id, users.c.username)).all()
            assert world.users["U1"].id in {i for i, _ in ids}
        with Session(engine) as s, pytest.raises(Exception, match="permission denied"):
            s.execute(select(users.c.hashed_password)).all()
    finally:
        engine.dispose()


def test_agents_write_and_read_only_their_own_rows(db: TestDB, world: World) -> None:
    messages = sa_tables.messages
    engine = create_engine(db.dsn("app"), pool_size=1, max_overflow=0)
    a1, a2 = world.agent_id("A1"), world.agent_id("A2")
    try:
        for agent, n in ((a1, 1), (a2, 2)):
            with agent_scope(agent), Session(engine) as s, s.begin():
                row = message(n).given()  # no agent_id: the scope's default fills it
                made = s.execute(insert(messages).values(row).returning(
                    messages.c.agent_id, messages.c.id)).one()
                assert made.agent_id == agent and made.id is not None
        with agent_scope(a1), Session(engine) as s, s.begin():
            assert s.execute(select(messages.c.agent_id)).scalars().all() == [a1]
            # an unfiltered update touches only the scope's rows
            assert s.execute(update(messages).values(processed_plain_text="x")).rowcount == 1
            with pytest.raises(Exception, match="row-level security"):
                s.execute(insert(messages).values({**message(3).given(), "agent_id": a2}))
        with agent_scope(a2), Session(engine) as s:
            assert s.execute(select(messages.c.processed_plain_text)).scalar_one() != "x"
        with Session(engine) as s, pytest.raises(ScopeError):
            s.execute(select(func.count()).select_from(messages)).all()
    finally:
        engine.dispose()


def test_async_sessions_in_concurrent_tasks(db: TestDB, world: World) -> None:
    agents = sa_tables.agents

    async def main() -> list[list[str]]:
        engine = create_async_engine(db.dsn("app"), pool_size=2, max_overflow=0)

        async def one(agent: str) -> list[str]:
            with agent_scope(agent):
                async with AsyncSession(engine) as s:
                    return list((await s.execute(select(agents.c.id))).scalars())

        try:
            return await asyncio.gather(one(world.agent_id("A1")), one(world.agent_id("B1")))
        finally:
            await engine.dispose()

    assert asyncio.run(main()) == [[world.agent_id("A1")], [world.agent_id("B1")]]
