"""What a block leaves on its connection's session never changes what the next block's values
mean or whether it can run (issue 32, items 4 and 7): settings a key's block sets, a trusted
block's drift in the settings the server reports, role defaults a plugin login sets on
itself, temporary objects of every kind, and COPY."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql

from maim_db import DatabaseError, Pool, connect
from maim_db.tables import Agent, Message
from tests.databases import TestDB, World, plugin_login
from tests.databases import issue_key as _key
from tests.samples import message


@pytest.fixture
def plugins(db: TestDB) -> Iterator[Pool]:
    """One connection on the plugin login: whatever A's key block leaves, B's key block
    borrows next."""
    with Pool(db.dsn("plugin"), min_size=1, max_size=1) as pool:
        yield pool


# What each setting would do to the next block: values read or written differently, or a
# block that cannot run at all.
SETTINGS = {
    "client_encoding": "LATIN1",
    "TimeZone": "Pacific/Kiritimati",
    "DateStyle": "SQL, DMY",
    "IntervalStyle": "sql_standard",
    "extra_float_digits": "-15",
    "bytea_output": "escape",
    "standard_conforming_strings": "off",
    "default_transaction_read_only": "on",
    "row_security": "off",
    "default_transaction_isolation": "serializable",
    "statement_timeout": "1",
    "search_path": "pg_temp, public",
}


def _settings(handle: Any) -> dict[str, str]:
    return {name: handle.scalar("select current_setting(%s)", [name]) for name in SETTINGS}


def _round_trip(handle: Any) -> None:
    """The next block's own values come back as they were written."""
    written = message(7, text="你好, 世界").model_copy(update={"time": 1750000000.123456789})
    stored = handle.insert(written)
    assert stored.processed_plain_text == "你好, 世界"
    assert stored.time == 1750000000.123456789
    assert handle.scalar("select %s::float8", [1 / 3]) == 1 / 3
    assert handle.scalar("select '2026-07-01 12:00'::timestamp") == datetime(2026, 7, 1, 12)
    assert handle.scalar("select %s::bytea", [b"\x00\xffmaim"]) == b"\x00\xffmaim"


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_a_setting_a_key_block_leaves_does_not_reach_the_next_block(
        db: TestDB, world: World, plugins: Pool, setting: str) -> None:
    a_key, b_key = _key(db, world, "A1"), _key(db, world, "B1")
    with plugins.connection(api_key=b_key) as b:
        before = _settings(b)
    with plugins.connection(api_key=a_key) as a:  # a plugin's block, session level
        a.execute(sql.SQL("select set_config({}, {}, false)").format(
            sql.Literal(setting), sql.Literal(SETTINGS[setting])))
    with plugins.connection(api_key=b_key) as b:
        assert _settings(b) == before
        _round_trip(b)
    with connect(db.dsn("admin"), admin=True) as adm:
        (row,) = adm.find(Message, {"agent_id": world.agent_id("B1")})
        assert row.processed_plain_text == "你好, 世界"


@pytest.mark.parametrize("setting", ["client_encoding", "TimeZone", "DateStyle",
                                     "IntervalStyle", "standard_conforming_strings",
                                     "default_transaction_read_only"])
def test_a_reported_setting_a_trusted_block_changed_is_reset_for_the_next(
        db: TestDB, world: World, setting: str, caplog: pytest.LogCaptureFixture) -> None:
    """The runtime's own raw SQL is trusted with its scope, not with the next agent's block:
    a change in a setting the server reports to the client is seen at no cost and reset."""
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    with Pool(db.dsn("app"), min_size=1, max_size=1) as pool:
        with pool.connection(agent_id=b1) as b:
            before = _settings(b)
        with pool.connection(agent_id=a1) as a:
            a.execute(sql.SQL("set {} = {}").format(sql.Identifier(setting),
                                                     sql.Literal(SETTINGS[setting])))
        with caplog.at_level(logging.WARNING, logger="maim_db"), \
                pool.connection(agent_id=b1) as b:
            assert _settings(b) == before
            _round_trip(b)
        assert "reset" in caplog.text


@pytest.fixture
def own_login(db: TestDB) -> Iterator[str]:
    """A plugin login of this test's own: it changes its own defaults."""
    with plugin_login(db) as dsn:
        yield dsn


def test_role_defaults_a_plugin_login_sets_on_itself_do_not_reach_its_next_block(
        db: TestDB, world: World, own_login: str) -> None:
    """Plugins that share a login: one of them sets the login's defaults, which every later
    session of that login starts with."""
    a_key, b_key = _key(db, world, "A1"), _key(db, world, "B1")
    with connect(own_login, api_key=b_key) as b:
        before = _settings(b)
    with connect(own_login, api_key=a_key) as a:
        a.execute("reset role")  # back to the login, which may change its own defaults
        for name in ("extra_float_digits", "row_security", "default_transaction_read_only",
                     "IntervalStyle", "bytea_output", "client_encoding", "DateStyle",
                     "standard_conforming_strings", "default_transaction_isolation"):
            a.execute(sql.SQL("alter role current_user set {} = {}").format(
                sql.Identifier(name), sql.Literal(SETTINGS[name])))
    with connect(own_login, api_key=b_key) as b:  # a new session of the login
        after = _settings(b)
        _round_trip(b)
    changed = {k for k in SETTINGS if after[k] != before[k]}
    assert changed == set()


@pytest.mark.parametrize("temporary", [
    "create function pg_temp.now() returns timestamptz language sql"
    " as $$ select null::timestamptz $$",
    "create operator pg_temp.= (leftarg = text, rightarg = text, function = texteq)",
    "create collation pg_temp.c2 (locale = 'C')",
    "create text search configuration pg_temp.simple2 (copy = simple)",
    "create temporary table messages (id int)",
])
def test_temporary_objects_of_a_key_block_do_not_reach_the_next(
        db: TestDB, world: World, plugins: Pool, temporary: str) -> None:
    a_key, b_key = _key(db, world, "A1"), _key(db, world, "B1")
    with plugins.connection(api_key=a_key) as a:
        a.execute(temporary)  # type: ignore[arg-type]
    with plugins.connection(api_key=b_key) as b:
        left = b.scalar(
            "select (select count(*) from pg_proc where pronamespace = pg_my_temp_schema())"
            " + (select count(*) from pg_operator where oprnamespace = pg_my_temp_schema())"
            " + (select count(*) from pg_collation where collnamespace = pg_my_temp_schema())"
            " + (select count(*) from pg_ts_config where cfgnamespace = pg_my_temp_schema())"
            " + (select count(*) from pg_class where relnamespace = pg_my_temp_schema())")
        assert left == 0
        assert [a.id for a in b.find(Agent)] == [world.agent_id("B1")]


@pytest.mark.parametrize("copy", [
    "copy (select 1) to stdout",
    # (COPY FROM into an agent table is refused by RLS itself: a table of the block's own)
    "create temporary table t (x int); copy t from stdin",
])
def test_copy_in_a_block_is_a_typed_error_and_the_connection_is_discarded(
        db: TestDB, world: World, plugins: Pool, copy: str) -> None:
    a_key, b_key = _key(db, world, "A1"), _key(db, world, "B1")
    outcome: list[BaseException | None] = []
    pids: list[int] = []

    def run() -> None:
        try:
            with plugins.connection(api_key=a_key) as a:
                pids.append(a.scalar("select pg_backend_pid()"))
                for statement in copy.split("; "):
                    a.execute(statement)  # type: ignore[arg-type]
        except BaseException as err:  # what the block raised, to look at below
            outcome.append(err)
        else:
            outcome.append(None)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "a block that started COPY never returned"
    (raised,) = outcome
    assert isinstance(raised, DatabaseError) and "COPY cannot run in a maim_db block" in str(
        raised)
    with plugins.connection(api_key=b_key) as b:  # the pool serves on, from a new connection
        assert [a.id for a in b.find(Agent)] == [world.agent_id("B1")]
        assert b.scalar("select pg_backend_pid()") != pids[0]
    with psycopg.connect(db.superuser, autocommit=True) as su:  # the old one is gone
        for _ in range(100):
            gone = su.execute("select not exists (select from pg_stat_activity where pid = %s)",
                              [pids[0]]).fetchone()
            if gone == (True,):
                break
            time.sleep(0.1)
        assert gone == (True,)


def test_a_failed_close_never_lets_a_block_run_on_an_unreset_session(
        db: TestDB, world: World, plugins: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found in review: before libpq 17 a statement is closed by DEALLOCATE, which fails for
    a statement the plugin had dropped; sent in the reset's own segment, that failure undid
    the reset while the next agent's block still ran, and committed, with the plugin's
    TimeZone. Every row B commits is written with the session's own zone."""
    from maim_db import pipeline, preparing

    monkeypatch.setattr(pipeline, "CLOSE_IN_PROTOCOL", False)
    monkeypatch.setattr(preparing, "MAX_PREPARED", 2)
    a_key, b_key = _key(db, world, "A1"), _key(db, world, "B1")
    with plugins.connection(api_key=b_key) as b:
        zone = b.scalar("select current_setting('TimeZone')")
    failed = 0
    for n in range(6):
        insert = sql.SQL("insert into runtime_state (state_key, state_value) values ({}, "
                         "current_setting('TimeZone'))").format(sql.Literal(f"tz-{n}"))
        try:  # a failure is allowed anywhere (the connection heals); a wrong row is not
            with plugins.connection(api_key=b_key) as b:  # B's statement once: unprepared
                b.execute(insert)
                b.execute("delete from runtime_state where state_key = %s", [f"tz-{n}"])
            with plugins.connection(api_key=a_key) as a:
                # the plugin drops exactly the statement the client will close next, so
                # the guard's count still matches once the client has closed it
                oldest = pipeline.session(a.connection).cache.names()[0]
                a.execute("select set_config('TimeZone', 'Pacific/Kiritimati', false)")
                a.execute(sql.SQL("deallocate {}").format(sql.Identifier(oldest.decode())))
            # its second run prepares it and evicts (closes) the oldest: gone already
            plugins.execute(insert, api_key=b_key)
        except DatabaseError:
            failed += 1
    with connect(db.dsn("admin"), admin=True) as adm:
        zones = {z for (z,) in adm.rows("select state_value from runtime_state "
                                        "where agent_id = %s", [world.agent_id("B1")])}
    assert zones <= {zone}  # never the plugin's zone (it was, before)
    assert failed  # the dropped statement was found: a failure, not a wrong answer
    with plugins.connection(api_key=b_key) as b:  # and the connection serves on
        assert b.scalar("select current_setting('TimeZone')") == zone
