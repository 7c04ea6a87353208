"""An attacker's review of MaiBot 1.x's tables (issue 35): a plugin holding one agent's key,
raw SQL in its block, and the next borrower of its pooled connection. The id generator's
session state (``maibot1.last_id``) must neither tell a key block another agent's ids nor let
one steer another agent's ids (past 2^53, into clashes); the schema gives no one but its
owner a place to plant objects that 1.x's unqualified SQL would resolve."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from maim_db import Pool, connect
from maim_db.errors import IsolationError
from maim_db.tables import Image
from maim_db.tables.maibot1 import Messages
from maim_db.transfer.maibot import import_sqlite
from tests import maibot1_files as f1
from tests.databases import LOGINS, TestDB, World, issue_key, plugin_login

MAX_SAFE = 2**53 - 1
# Generated ids now are about 2^48 (milliseconds since 2025 shifted by 12 bits): any id the
# clock gives is far below this; a steered one is not.
CLOCK_BOUND = MAX_SAFE // 2


def _message(message_id: str) -> Messages:
    return Messages(message_id=message_id, platform="qq", user_id="10001",
                    user_nickname="n", session_id="s1")


def _steer(victim: str) -> str:
    """The state that makes the victim's next id its last safe one and the one after fail."""
    return f"{victim} {MAX_SAFE - 1}"


@pytest.fixture
def own_login(db: TestDB) -> Iterator[str]:
    """A plugin login of this test's own, shared by two agents' plugins: one of them may set
    the login's defaults."""
    with plugin_login(db) as dsn:
        yield dsn


def test_a_key_blocks_last_id_does_not_reach_the_next_agents_block(
        db: TestDB, world: World) -> None:
    """A's plugin sets B's remembered id at session level; B's next key block on the same
    pooled connection still draws from the clock: the reset after a key's block clears it.
    (A key block runs on a plugin login only, so no trusted block follows it there.)"""
    a_key, b = issue_key(db, world, "A1"), world.agent_id("B1")
    b_key = issue_key(db, world, "B1")
    with Pool(db.dsn("plugin"), min_size=1, max_size=1) as pool:
        with pool.connection(api_key=a_key) as a:
            a.execute("select pg_catalog.set_config('maibot1.last_id', %s, false)", [_steer(b)])
        with pool.connection(api_key=b_key) as victim:
            assert victim.insert(_message("m-key")).id < CLOCK_BOUND


def test_behind_pgbouncer_a_key_blocks_last_id_does_not_steer_another_agents_ids(
        db: TestDB, world: World, bouncer: tuple[str, int]) -> None:
    """Behind PgBouncer in transaction mode two clients of one plugin login share server
    connections, and the reset a client sends before its next block may land on another one
    (docs/decisions.md, issue 32's review): A's plugin leaves B's remembered id on the server
    session and disconnects; B's plugin, a new client, gets that server session. B's inserts
    must neither fail past 2^53 (a denial of service on B) nor jump there."""
    a_key, b = issue_key(db, world, "A1"), world.agent_id("B1")
    b_key = issue_key(db, world, "B1")
    bounced = db.bounced("plugin", bouncer)
    with Pool(bounced, min_size=1, max_size=1, pgbouncer=True) as pool, \
            pool.connection(api_key=a_key) as a:
        a.execute("select pg_catalog.set_config('maibot1.last_id', %s, false)", [_steer(b)])
    with Pool(bounced, min_size=1, max_size=1, pgbouncer=True) as pool:
        with pool.connection(api_key=b_key) as victim:
            # nor does B's plugin read what another client's block left (another agent's id)
            assert victim.scalar("select pg_catalog.current_setting('maibot1.last_id', true)"
                                 ) == ""
            first = victim.insert(_message("m-1")).id
        with pool.connection(api_key=b_key) as victim:
            second = victim.insert(_message("m-2")).id
    assert first < CLOCK_BOUND and second < CLOCK_BOUND


def test_a_plugin_cannot_steer_another_agents_ids_through_its_logins_defaults(
        db: TestDB, world: World, own_login: str) -> None:
    """Two agents' plugins share a login. A's tries to set the login's default for the
    remembered id (ALTER ROLE current_user SET, which every later session of the login starts
    with, and RESET ALL returns to). PostgreSQL 15+ refuses a non-superuser's default of a
    placeholder setting (16's USER SET aside); where it is taken, B's next insert must
    neither fail past 2^53 nor jump there."""
    a_key, b = issue_key(db, world, "A1"), world.agent_id("B1")
    b_key = issue_key(db, world, "B1")
    refused = False
    try:
        with connect(own_login, api_key=a_key) as a:
            a.execute("reset role")  # back to the login, which may change its own defaults
            a.execute(sql.SQL("alter role current_user set \"maibot1.last_id\" = {}").format(
                sql.Literal(_steer(b))))
    except IsolationError:
        refused = True
    with connect(own_login, api_key=b_key) as victim:  # a new session of the login
        first = victim.insert(_message("m-1")).id
        second = victim.insert(_message("m-2")).id
    assert refused or first < second < CLOCK_BOUND


@pytest.mark.parametrize("role", [*(role for _, role in LOGINS.values()),
                                  *(login for login, _ in LOGINS.values()), "public"])
@pytest.mark.parametrize("schema", ["maibot1", "public", "maim"])
def test_no_role_but_the_owner_may_create_in_a_schema_on_1xs_search_path(
        db: TestDB, role: str, schema: str) -> None:
    """1.x's raw SQL runs with search_path maibot1, public, pg_temp (maim_db.sqlmodel) and
    names tables and functions unqualified: an object planted in maibot1 or public (a
    `maibot1.now()`, a view shadowing a table) would run in a later trusted block. Only
    maim_owner creates there."""
    with psycopg.connect(db.superuser, autocommit=True) as su:
        assert su.execute("select pg_catalog.has_schema_privilege(%s, %s, 'CREATE')",
                          [role, schema]).fetchone() == (False,)


def test_a_key_block_cannot_plant_a_function_or_view_in_maibot1(
        db: TestDB, world: World) -> None:
    a_key = issue_key(db, world, "A1")
    for statement in ("create function maibot1.now() returns timestamptz language sql"
                      " as $$ select null::timestamptz $$",
                      "create view maibot1.sneak as select 1",
                      "create table public.mai_messages (id int)"):
        with pytest.raises(IsolationError), connect(db.dsn("plugin"), api_key=a_key) as a:
            a.execute(statement)


def test_every_object_in_maibot1_is_the_owners(db: TestDB) -> None:
    """Nothing in the schema belongs to a role a service logs in as (no function at all:
    the id generator lives in maim)."""
    with psycopg.connect(db.superuser, autocommit=True) as su:
        owners = su.execute(
            "select distinct pg_catalog.pg_get_userbyid(c.relowner) from pg_catalog.pg_class c"
            " where c.relnamespace = 'maibot1'::regnamespace").fetchall()
        functions = su.execute("select count(*) from pg_catalog.pg_proc"
                               " where pronamespace = 'maibot1'::regnamespace").fetchone()
    assert owners == [("maim_owner",)]
    assert functions == (0,)


@pytest.mark.parametrize("conflict", ["", " on conflict (agent_id, session_id) do nothing"])
def test_a_plugin_naming_another_agent_learns_nothing_of_its_rows(
        db: TestDB, world: World, conflict: str) -> None:
    """A's plugin writes a row with B's agent_id and a session_id B holds, and one with an
    agent that does not exist: the same refusal for both (row-level security's check comes
    before the unique key, its ON CONFLICT arbiter and the foreign key), so neither B's row
    nor B's existence shows."""
    a_key, b = issue_key(db, world, "A1"), world.agent_id("B1")
    with connect(db.dsn("app"), agent_id=b) as app:
        app.execute("insert into maibot1.chat_sessions (session_id, platform, user_id)"
                    " values ('shared-session', 'qq', '10001')")
    errors = []
    for agent in (b, "agent_000000000000"):
        with pytest.raises(IsolationError) as refused, \
                connect(db.dsn("plugin"), api_key=a_key) as a:
            a.execute("insert into maibot1.chat_sessions (agent_id, session_id, platform,"
                      " user_id) values (%s, 'shared-session', 'qq', '10001')" + conflict,
                      [agent])
        errors.append(str(refused.value))
    assert errors[0] == errors[1] and "row-level security" in errors[0]


def test_a_files_table_names_never_reach_another_schema_or_agent(
        db: TestDB, world: World, tmp_path: Path) -> None:
    """A hostile 1.x file holds, beside its 1.x tables, tables named like another schema's
    (`public.images`, `maibot1.images`) and one whose name closes the quote: they are
    listed, not imported, and the import writes into the named agent's maibot1 tables only
    (0.x's images in public stay empty, for it and for the other agent)."""
    a1, a2 = world.agent_id("A1"), world.agent_id("A2")
    path = f1.build(tmp_path / "MaiBot.db")
    names = ["public.images", "maibot1.images", 'images"; drop table images; --']
    with sqlite3.connect(path) as conn:
        for name in names:
            quoted = name.replace('"', '""')
            conn.execute(f'create table "{quoted}" (id integer primary key, image_hash text)')
            conn.execute(f'insert into "{quoted}" values (1, \'planted\')')
    conn.close()
    report = import_sqlite(path, a1, dsn=db.dsn("app"), timezone="Asia/Shanghai")
    assert set(names) <= set(report.ignored_tables)
    for agent in (a1, a2):
        with connect(db.dsn("app"), agent_id=agent) as app:
            assert app.find(Image) == []
            planted = app.scalar("select count(*) from maibot1.images"
                                 " where image_hash = 'planted'")
            assert planted == 0
