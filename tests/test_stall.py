"""Issue 32.3, as an attacker with a plugin login: one plugin cannot stall every tenant.

A plugin login may take ACCESS EXCLUSIVE on a shared table, leave a transaction open or run a
query for ever, and it can lift any timeout its own session is given. The bound is on the
other side: trusted blocks wait for a lock at most ``MAIMDB_LOCK_TIMEOUT`` and then fail
with :class:`maim_db.BlockedError`; the watcher (``maimdb watch``, :mod:`maim_db.watch`) ends
the plugin's backend once it blocks anyone, idles in a transaction or runs too long. Every
wait here is bounded (a thread joined with a generous timeout); no test times anything."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from maim_db import BlockedError, MaimDBError, connect, scoped, watch
from maim_db.tables import Message
from tests.cli import maimdb
from tests.databases import LOGINS, PASSWORD, TestDB, World, with_db
from tests.databases import issue_key as _key
from tests.samples import message

pytestmark = pytest.mark.fresh_db  # tests alter roles and migrate

JOIN = 30.0  # seconds a thread may take before the test fails: far beyond any limit used


def _raw(db: TestDB, kind: str) -> psycopg.Connection[Any]:
    """A plain psycopg connection as a login: what a plugin has."""
    login, _ = LOGINS[kind]
    return psycopg.connect(with_db(db.server.superuser, db.name, user=login,
                                   password=PASSWORD), autocommit=True)


def _in_thread(work: Callable[[], Any]) -> Callable[[], Any]:
    """Run ``work`` in a thread; the returned call joins it (bounded) and returns its result
    or raises what it raised."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as err:  # handed to the test thread
            outcome["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()

    def join() -> Any:
        thread.join(JOIN)
        if thread.is_alive():
            pytest.fail(f"still blocked after {JOIN} s: nothing bounded the wait")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    return join


@pytest.fixture
def plugin_lock(db: TestDB, world: World) -> Iterator[psycopg.Connection[Any]]:
    """A plugin login, in agent A1's key scope, holding ACCESS EXCLUSIVE on messages."""
    secret = _key(db, world, "A1")
    conn = _raw(db, "plugin")
    conn.execute("begin")
    conn.execute("set local role maim_plugin")
    conn.execute("select maim.open_key_scope(%s)", [secret])
    conn.execute("lock table messages in access exclusive mode")
    yield conn
    conn.close()


def _read_messages(db: TestDB, agent_id: str) -> list[Message]:
    with connect(db.dsn("app"), agent_id=agent_id) as app:
        return app.find(Message, limit=5)


def test_a_read_blocked_by_a_plugins_lock_fails_typed(db: TestDB, world: World,
                                                      plugin_lock: psycopg.Connection[Any],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the watcher, another agent's read waits at most MAIMDB_LOCK_TIMEOUT, then
    fails with one typed error naming the cause; once the lock is gone it succeeds."""
    monkeypatch.setenv("MAIMDB_LOCK_TIMEOUT", "1")
    read = _in_thread(lambda: _read_messages(db, world.agent_id("B1")))
    with pytest.raises(BlockedError, match="lock") as caught:
        read()
    assert isinstance(caught.value, MaimDBError)
    write = _in_thread(lambda: _write_message(db, world.agent_id("B1")))
    with pytest.raises(BlockedError):
        write()
    plugin_lock.execute("rollback")
    assert _read_messages(db, world.agent_id("B1")) == []


def _write_message(db: TestDB, agent_id: str) -> Message:
    with connect(db.dsn("app"), agent_id=agent_id) as app:
        return app.insert(message(1))


# -- the watcher --------------------------------------------------------------------------------

WATCHER = "maim_test_watcher"


@pytest.fixture
def watcher_dsn(db: TestDB) -> str:
    """A login as an operator makes it (docs/operations.md): no maim role, no superuser,
    pg_signal_backend and pg_read_all_stats only."""
    with db.server.admin_conn() as conn:
        exists = conn.execute("select 1 from pg_roles where rolname = %s", [WATCHER]).fetchone()
        conn.execute(f"{'alter' if exists else 'create'} role {WATCHER} login password "
                     f"'{PASSWORD}' nosuperuser nobypassrls nocreaterole nocreatedb")
        conn.execute(f"grant pg_signal_backend, pg_read_all_stats to {WATCHER}")
    return with_db(db.server.superuser, db.name, user=WATCHER, password=PASSWORD)


def _until_ended(dsn: str, limits: watch.Limits, pid: int) -> list[watch.Ended]:
    """Tick (as ``maimdb watch`` does) until backend ``pid`` is ended; bounded."""
    ended: list[watch.Ended] = []
    with watch.connect(dsn) as conn:
        for _ in range(int(JOIN / 0.2)):
            ended += watch.tick(conn, limits)
            if any(e.pid == pid for e in ended):
                return ended
            time.sleep(0.2)
    pytest.fail(f"the watcher did not end backend {pid} within {JOIN} s")


@contextmanager
def _watching(dsn: str) -> Iterator[list[watch.Ended]]:
    """``maimdb watch`` in a thread, ending only blockers (after 1 s) while the block runs;
    yields what it ended."""
    ended: list[watch.Ended] = []
    stop = threading.Event()
    watcher = _in_thread(lambda: watch.run(
        dsn, watch.Limits(block=1, idle=None, transaction=None, interval=0.2),
        stop=stop, report=ended.append))
    try:
        yield ended
    finally:
        stop.set()
        watcher()


def _alive(conn: psycopg.Connection[Any]) -> bool:
    try:
        conn.execute("select 1")
    except psycopg.OperationalError:
        return False
    return True


def test_the_watcher_ends_a_plugin_that_blocks_and_the_read_succeeds(
        db: TestDB, world: World, plugin_lock: psycopg.Connection[Any], watcher_dsn: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAIMDB_LOCK_TIMEOUT", str(JOIN))  # the watcher, not the timeout, ends it
    blocker = plugin_lock.info.backend_pid
    with _watching(watcher_dsn) as ended:
        read = _in_thread(lambda: _read_messages(db, world.agent_id("B1")))
        assert read() == []
    assert [(e.pid, e.login) for e in ended] == [(blocker, LOGINS["plugin"][0])]
    assert ended[0].reason.startswith("blocked pid ")
    assert not _alive(plugin_lock)
    assert _write_message(db, world.agent_id("B1")).message_id == "m1"


def test_the_watcher_ends_a_plugin_idle_in_a_transaction_and_never_a_trusted_session(
        db: TestDB, world: World, watcher_dsn: str) -> None:
    secret = _key(db, world, "A1")
    plugin = _raw(db, "plugin")
    plugin.execute("begin")
    plugin.execute("select maim.open_key_scope(%s)", [secret])
    trusted = {kind: _raw(db, kind) for kind in ("app", "tenant", "admin")}
    for conn in trusted.values():  # open, idle, and (the runtime's) holding a lock
        conn.execute("begin")
        conn.execute("select 1")
    trusted["app"].execute("lock table person_info in access exclusive mode")
    try:
        limits = watch.Limits(block=0.5, idle=0.5, transaction=0.5, interval=0.2)
        ended = _until_ended(watcher_dsn, limits, plugin.info.backend_pid)
        assert {e.login for e in ended} == {LOGINS["plugin"][0]}
        assert "idle in a transaction" in ended[0].reason
        assert not _alive(plugin)
        for kind, conn in trusted.items():
            assert _alive(conn), f"the {kind} login's session was terminated"
        # nor the migrator's kind of session, a superuser's
        with db.server.admin_conn() as su:
            su.execute("begin")
            su.execute("select 1")
            with watch.connect(watcher_dsn) as conn:
                time.sleep(0.6)
                assert watch.tick(conn, limits) == []
            assert _alive(su)
    finally:
        for conn in trusted.values():
            conn.close()
        plugin.close()


def test_the_watcher_ends_a_plugin_query_that_runs_too_long(db: TestDB, world: World,
                                                           watcher_dsn: str) -> None:
    plugin = _raw(db, "plugin")
    pid = plugin.info.backend_pid
    sleeping = _in_thread(lambda: plugin.execute("select pg_sleep(600)"))
    try:
        ended = _until_ended(watcher_dsn, watch.Limits(block=None, idle=None, transaction=1,
                                                       interval=0.2), pid)
        assert "in one transaction" in next(e.reason for e in ended if e.pid == pid)
        with pytest.raises(psycopg.OperationalError):
            sleeping()
    finally:
        plugin.close()
    assert _read_messages(db, world.agent_id("B1")) == []


def test_a_plugin_cannot_stop_the_watcher_or_lift_the_trusted_timeout(
        db: TestDB, world: World, plugin_lock: psycopg.Connection[Any], watcher_dsn: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = _raw(db, "plugin")
    app = _raw(db, "app")
    try:
        with watch.connect(watcher_dsn) as watcher:
            for victim in (watcher.info.backend_pid, app.info.backend_pid):
                for signal in ("pg_terminate_backend", "pg_cancel_backend"):
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        plugin.execute(f"select {signal}(%s)", [victim])
            assert _alive(watcher)
        for statement in (f"alter role {LOGINS['app'][0]} set lock_timeout = 0",
                          "alter role maim_app set lock_timeout = 0",
                          f"alter database {db.name} set lock_timeout = 0",
                          "alter system set lock_timeout = 0"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                plugin.execute(statement)
        # a trusted session's own setting does not lift the block's either
        monkeypatch.setenv("MAIMDB_LOCK_TIMEOUT", "1")
        app.execute("set lock_timeout = 0")

        def read() -> list[Message]:
            with scoped(app, agent_id=world.agent_id("B1")) as s:
                return s.find(Message, limit=5)

        with pytest.raises(BlockedError) as caught:
            _in_thread(read)()
        assert caught.value.timeout == "lock_timeout"
    finally:
        plugin.close()
        app.close()


def test_login_create_makes_the_watchers_login_and_watch_once_uses_it(
        db: TestDB, world: World) -> None:
    name = f"maim_w{uuid.uuid4().hex[:10]}"
    made = maimdb("login", "create", name, "--as", "watcher", "--password-stdin", "--json",
                  dsn=db.superuser, stdin=PASSWORD + "\n")
    try:
        assert made.returncode == 0, made.stderr
        assert json.loads(made.stdout) == {"login": name, "role": "pg_signal_backend and "
                                           "pg_read_all_stats", "password": True,
                                           "connection_limit": None}
        with db.server.admin_conn() as su:
            assert su.execute("select rolsuper, rolbypassrls, rolcreaterole from pg_roles "
                              "where rolname = %s", [name]).fetchone() == (False, False, False)
        plugin = _raw(db, "plugin")
        plugin.execute("begin")
        plugin.execute("select 1")
        time.sleep(0.6)  # past --idle-after below: the state, not a timed assertion
        ran = maimdb("watch", "--once", "--idle-after", "0.5", "--block-after", "0",
                     "--transaction-after", "0",
                     dsn=with_db(db.server.superuser, db.name, user=name, password=PASSWORD))
        assert ran.returncode == 0, ran.stderr
        assert (f"terminated pid {plugin.info.backend_pid} (login {LOGINS['plugin'][0]}): "
                "idle in a transaction") in ran.stdout
        assert not _alive(plugin)
        plugin.close()
        # a bad limit is refused as a usage error, before anything runs
        bad = maimdb("watch", "--once", "--interval", "0", dsn=db.superuser)
        assert bad.returncode == 2 and "--interval" in bad.stderr
    finally:
        with db.server.admin_conn() as su:
            su.execute(f"drop role if exists {name}")


def test_the_watcher_ends_a_plugin_that_squats_the_migration_lock(
        db: TestDB, watcher_dsn: str) -> None:
    """Found in review: migrate polled for the lock, so no session ever waited on it and the
    watcher never saw the plugin holding it. Now migrate waits on the lock itself."""
    from maim_db.schema import migrate

    squatter = _raw(db, "plugin")
    squatter.execute("select pg_advisory_lock(%s)", [migrate.LOCK_KEY])
    try:
        with _watching(watcher_dsn) as ended, pytest.MonkeyPatch.context() as mp:
            mp.setenv("MAIMDB_MIGRATE_LOCK_WAIT", str(JOIN))
            migrated = _in_thread(lambda: migrate.migrate(db.superuser))
            assert migrated() == []  # got the lock once the squatter was ended; at head
    finally:
        squatter.close()
    assert [e.login for e in ended] == [LOGINS["plugin"][0]]


def test_a_plugin_queued_behind_another_plugin_ends_nobody(
        db: TestDB, world: World, watcher_dsn: str) -> None:
    """Found in review: plugin X queued an ACCESS EXCLUSIVE lock behind plugin Y's ordinary
    transaction, and the watcher ended Y ("blocked pid X"). Plugin waits are bounded by the
    transaction rule instead."""
    holder, queued = _raw(db, "plugin"), _raw(db, "plugin")
    for conn, agent in ((holder, "A1"), (queued, "B1")):
        conn.execute("begin")
        conn.execute("select pg_catalog.set_config('role', 'maim_plugin', true), "
                     "maim.open_key_scope(%s)", [_key(db, world, agent)])
    holder.execute("select count(*) from messages")
    lock = _in_thread(lambda: queued.execute("lock table messages in access exclusive mode"))
    try:
        with watch.connect(watcher_dsn) as conn:
            limits = watch.Limits(block=0.2, idle=None, transaction=None, interval=0.2)
            for _ in range(5):
                time.sleep(0.3)
                assert watch.tick(conn, limits) == []
        assert _alive(holder)
    finally:
        holder.execute("rollback")
        lock()
        queued.close()
        holder.close()
