"""What the scope statement makes the server run (issue 36): on a clean connection the reset
check is an expression, not a PL/pgSQL call, and the agent scope's settings are the same
whichever form (set_config, or SET LOCAL where Citus is loaded) open_agent_scope writes them."""

from __future__ import annotations

import psycopg
from psycopg import sql

from maim_db import connect
from tests.databases import LOGINS, TestDB, World, issue_key


def _count_pl_calls(db: TestDB, kind: str) -> None:
    """Count this login's PL/pgSQL calls per transaction (pg_stat_xact_user_functions), in
    this test's database only."""
    with db.server.admin_conn() as su:
        su.execute(sql.SQL("alter role {} in database {} set track_functions = 'pl'").format(
            sql.Identifier(LOGINS[kind][0]), sql.Identifier(db.name)))


def test_a_clean_agent_scope_calls_only_open_agent_scope(db: TestDB, world: World) -> None:
    _count_pl_calls(db, "app")
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        calls = app.rows("select funcname::text, calls from pg_catalog.pg_stat_xact_user_functions"
                         " order by 1")
    assert calls == [("open_agent_scope", 1)]


def test_a_clean_key_scope_calls_no_reset_check_function(db: TestDB, world: World) -> None:
    _count_pl_calls(db, "plugin")
    with connect(db.dsn("plugin"), api_key=issue_key(db, world, "A1")) as plugin:
        calls = plugin.rows("select funcname::text from pg_catalog.pg_stat_xact_user_functions")
    assert ("assert_clean_session",) not in calls


def test_open_agent_scope_writes_the_same_settings_in_its_citus_form(
        db: TestDB, world: World) -> None:
    agent = world.agent_id("A1")
    seen = []
    for citus_loaded in (False, True):
        with psycopg.connect(db.dsn("app"), autocommit=True) as conn:
            if citus_loaded:  # a placeholder stands for Citus's own setting: the SET LOCAL form
                conn.execute("set citus.propagate_set_commands = 'local'")
            with conn.transaction():
                conn.execute("select maim.open_agent_scope(%s)", [agent])
                seen.append(conn.execute(
                    "select pg_catalog.current_setting('maim.agent_id'),"
                    " pg_catalog.current_setting('maim.agent_tenant')").fetchone())
            after = conn.execute("select coalesce(current_setting('maim.agent_id', true), '')"
                                 ).fetchone()
            assert after == ("",)  # transaction-local in both forms
    assert seen == [(agent, world.tenant_id("T1"))] * 2


def test_open_key_scope_writes_the_same_settings_in_its_citus_form(
        db: TestDB, world: World) -> None:
    """As open_agent_scope: set_config on one server, SET LOCAL where Citus is loaded (the
    form Citus sends to the workers); the same settings either way, and none outlives the
    transaction."""
    secret = issue_key(db, world, "A1")
    seen = []
    for citus_loaded in (False, True):
        with psycopg.connect(db.dsn("plugin"), autocommit=True) as conn:
            if citus_loaded:
                conn.execute("set citus.propagate_set_commands = 'local'")
            with conn.transaction():
                conn.execute("select maim.open_key_scope(%s)", [secret])
                seen.append(conn.execute(
                    "select pg_catalog.current_setting('maim.agent_id'),"
                    " pg_catalog.current_setting('maim.key_permissions'),"
                    " maim.agent_id()").fetchone())
            after = conn.execute(
                "select pg_catalog.concat(current_setting('maim.agent_id', true),"
                " current_setting('maim.agent_proof', true),"
                " current_setting('maim.key_permissions', true))").fetchone()
            assert after == ("",)
    agent = world.agent_id("A1")
    assert seen == [(agent, "chat", agent)] * 2


def test_on_citus_is_a_constant_migrate_chose(db: TestDB) -> None:
    """maim.on_citus() is asked by every key scope: a constant the planner folds, not a
    catalog query, and on one server false."""
    with psycopg.connect(db.dsn("app")) as conn:
        assert conn.execute(
            "select p.provolatile, maim.on_citus() from pg_catalog.pg_proc p"
            " where p.oid = 'maim.on_citus()'::pg_catalog.regprocedure").fetchone() == ("i", False)
