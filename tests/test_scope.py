"""Scope: exactly one, well formed, checked before SQL; set per transaction, never carried."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maim_db import IsolationError, ScopeError, connect, scoped
from maim_db.ids import PATTERNS
from maim_db.tables import Agent
from tests.databases import TestDB, World

# A DSN that cannot be reached: any attempt to connect would raise ConnectError instead.
UNREACHABLE = "host=/nonexistent-maimdb-socket-dir dbname=x connect_timeout=1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "no scope given"),
        ({"agent_id": "agent_a1", "tenant_id": "tenant_t1"}, "agent_id and tenant_id"),
        ({"agent_id": "agent_a1", "admin": True}, "agent_id and admin"),
        ({"agent_id": ""}, "invalid agent id"),
        ({"tenant_id": ""}, "invalid tenant id"),
        ({"agent_id": "tenant_t1"}, "invalid agent id"),
        ({"agent_id": "agent_x'; drop table agents; --"}, "invalid agent id"),
        ({"tenant_id": "agent_a1"}, "invalid tenant id"),
        ({"admin": "false"}, "True or False"),
        ({"admin": 1}, "True or False"),
    ],
)
def test_bad_scope_fails_before_any_connection(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ScopeError, match=message), connect(UNREACHABLE, **kwargs):
        pytest.fail("the block must not run")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_only_well_formed_agent_ids_are_accepted(value: str) -> None:
    valid = PATTERNS["agent"].fullmatch(value) is not None
    try:
        with connect(UNREACHABLE, agent_id=value):
            pass
    except ScopeError:
        assert not valid
    except Exception as err:  # got past scope checks, so it tried to connect
        assert valid, err
    else:
        pytest.fail("an unreachable server cannot give a working block")


def _raw(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True)


@pytest.mark.parametrize("value", [None, ""])
def test_server_refuses_unset_scope_with_a_hint(db: TestDB, world: World,
                                                value: str | None) -> None:
    with _raw(db.dsn("app")) as conn, conn.transaction():
        conn.execute("set local role maim_app")
        if value is not None:
            conn.execute("select set_config('maim.agent_id', %s, true)", [value])
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            conn.execute("select * from agents")
    assert info.value.diag.message_primary == "maim.agent_id is not set"
    assert "SET maim.agent_id" in (info.value.diag.message_hint or "")
    assert "connect(agent_id=...)" in (info.value.diag.message_hint or "")


def test_unset_scope_becomes_scope_error(db: TestDB, world: World) -> None:
    with pytest.raises(ScopeError, match=r"maim\.agent_id is not set.*SET maim\.agent_id"), \
            _raw(db.dsn("app")) as conn, scoped(conn, agent_id=world.agent_id("A1")) as scope:
        # Clearing the setting mid-transaction is what a forgetful raw-SQL caller does.
        scope.execute("select set_config('maim.agent_id', '', true)")
        scope.execute("select * from agents")


def test_tenant_scope_unset_is_refused(db: TestDB) -> None:
    with _raw(db.dsn("tenant")) as conn, conn.transaction():
        conn.execute("set local role maim_tenant")
        with pytest.raises(psycopg.errors.InsufficientPrivilege,
                           match=r"maim\.tenant_id is not set"):
            conn.execute("select * from agents")


def test_the_psql_path_set_inside_a_transaction(db: TestDB, world: World) -> None:
    """What docs/psql.md tells an operator to type works, and scopes exactly one agent."""
    a1 = world.agent_id("A1")
    with _raw(db.dsn("app")) as conn:
        conn.execute("set role maim_app")
        with conn.transaction():
            conn.execute(f"set local maim.agent_id = '{a1}'")
            assert [r[0] for r in conn.execute("select id from agents")] == [a1]
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="is not set"):
            conn.execute("select id from agents")


def test_next_transaction_carries_no_scope(db: TestDB, world: World) -> None:
    with _raw(db.dsn("app")) as conn:
        with scoped(conn, agent_id=world.agent_id("A1")) as scope:
            assert scope.scalar("select current_setting('maim.agent_id')") == world.agent_id("A1")
            assert scope.scalar("select current_user") == "maim_app"
        after = conn.execute("select current_setting('maim.agent_id', true), "
                             "current_setting('maim.tenant_id', true), current_user").fetchone()
        assert after == ("", "", "maim_test_app")
        with scoped(conn, agent_id=world.agent_id("B1")) as scope:
            assert [a.id for a in scope.fetch(Agent, "select * from agents")] == [
                world.agent_id("B1")]


def test_session_level_leftovers_are_overwritten(db: TestDB, world: World) -> None:
    """A session SET from an earlier borrower must not widen the next scope."""
    with _raw(db.dsn("tenant")) as conn:
        conn.execute(f"set maim.agent_id = '{world.agent_id('B1')}'")
        with scoped(conn, tenant_id=world.tenant_id("T1")) as scope:
            assert scope.scalar("select current_setting('maim.agent_id')") == ""
            ids = {a.id for a in scope.fetch(Agent, "select * from agents")}
        assert ids == {world.agent_id("A1"), world.agent_id("A2")}


def test_login_role_cannot_take_another_scope(db: TestDB, world: World) -> None:
    with pytest.raises(IsolationError, match="maim_admin"), connect(db.dsn("app"),
                                                                     admin=True) as adm:
        adm.fetch(Agent, "select * from agents")
    with pytest.raises(IsolationError), connect(db.dsn("app"),
                                                tenant_id=world.tenant_id("T1")) as ten:
        ten.fetch(Agent, "select * from agents")
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        assert len(app.fetch(Agent, "select * from agents")) == 1


def test_scope_needs_an_idle_autocommit_connection(db: TestDB, world: World) -> None:
    with psycopg.connect(db.dsn("app")) as conn:  # not autocommit
        with pytest.raises(ScopeError, match="autocommit"), scoped(
            conn, agent_id=world.agent_id("A1")):
            pass
        conn.autocommit = True
        with conn.transaction(), pytest.raises(ScopeError, match="already open"), scoped(
            conn, agent_id=world.agent_id("A1")):
            pass


def _frontend_syncs(trace: str) -> int:
    return sum(1 for line in trace.splitlines() if "\tF\t" in line and "\tSync" in line)


def test_scope_costs_no_extra_round_trip(db: TestDB, world: World) -> None:
    """BEGIN, the scope and the first statement leave in one pipeline, ended by one Sync."""
    with _raw(db.dsn("app")) as conn, tempfile.TemporaryFile("w+") as trace:
        with scoped(conn, agent_id=world.agent_id("A1")) as scope:
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            conn.pgconn.trace(trace.fileno())
            scope.fetch(Agent, "select * from agents")
            conn.pgconn.untrace()
            os.fsync(trace.fileno())
            trace.seek(0)
            text = trace.read()
        assert "BEGIN" in text.upper() and "set_config" in text
        assert _frontend_syncs(text) == 1, text


def test_leftover_session_state_is_reset_not_trusted(db: TestDB, world: World) -> None:
    """An earlier user left a session-level role and scope behind: the block must not run in
    them; the reset check in the scope statement notices, cleans up and retries."""
    a1 = world.agent_id("A1")
    with _raw(db.dsn("app")) as conn:
        conn.execute("set role maim_app")
        conn.execute(f"set maim.agent_id = '{world.agent_id('A2')}'")
        with scoped(conn, agent_id=a1) as scope:
            assert [a.id for a in scope.fetch(Agent, "select * from agents")] == [a1]
        after = conn.execute("select current_user, current_setting('maim.agent_id', true)")
        assert after.fetchone() == ("maim_test_app", "")


def test_a_dsn_that_sets_a_role_is_refused(db: TestDB, world: World) -> None:
    from tests.databases import with_db

    dsn = with_db(db.dsn("app"), db.name, options="-c role=maim_app")
    with pytest.raises(ScopeError, match="must not set `role`"), connect(
            dsn, agent_id=world.agent_id("A1")) as scope:
        scope.fetch(Agent, "select * from agents")


def test_what_the_client_sends_on_every_block_names_its_schemas() -> None:
    """The scope statements, the guard and the probes are parsed under the session's
    search_path, and re-parsed whenever it differs from the one they were planned under: a
    session may set it (and a plugin login may make it its default). So no operator or
    function in them is looked up through it (tests/test_pool.py and tests/test_unforgeable.py
    show what a lenient `=` did to the two that relied on it)."""
    import re

    from maim_db.pipeline import CITUS, GUARD, LIMITS, PROBE
    from maim_db.scope import SET_SCOPE, SET_SCOPE_BEFORE_0_10

    texts = [*SET_SCOPE.values(), *SET_SCOPE_BEFORE_0_10.values(),
             *(s.decode() for s in (GUARD, PROBE, CITUS, *LIMITS.values()))]
    keywords = {"and", "exists", "filter"}  # SQL syntax: nothing is looked up
    for text in texts:
        bare = re.sub(r"'[^']*'", "''", text).replace("operator(pg_catalog.=)", " ")
        assert not re.findall(r"[=<>!~]", bare), text
        assert set(re.findall(r"(?<![\w.])([a-z_]+)\s*\(", bare)) <= keywords, text
