"""API keys from the outside: issue, resolve, scope from a key, and every way a key stops
working — checked through maim_app, the way the runtime meets them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from maim_db import (
    AsyncPool,
    AuthenticationError,
    ConflictError,
    InputError,
    IsolationError,
    Pool,
    aconnect,
    connect,
)
from maim_db.connection import run_scoped
from maim_db.control import keys, tenancy
from maim_db.scope import Scope
from maim_db.tables import Agent, ApiKey, ApiKeyInfo
from tests.databases import TestDB, World


def _issue(db: TestDB, world: World, agent: str = "A1", **kw: object) -> keys.IssuedKey:
    with connect(db.dsn("admin"), admin=True) as adm:
        return keys.issue(adm, agent_id=world.agent_id(agent), name=kw.pop("name", "runtime"),
                          permissions=kw.pop("permissions", ["chat"]), **kw)  # type: ignore[arg-type]


def test_secret_is_shown_once_and_only_its_hash_is_stored(db: TestDB, world: World) -> None:
    issued = _issue(db, world)
    assert issued.secret.startswith("mmc_") and len(issued.secret) == 47
    assert issued.secret not in repr(issued)
    assert issued.record.key_prefix == issued.secret[:12]
    with psycopg.connect(db.superuser) as conn:
        stored = conn.execute("select row_to_json(k)::text from api_keys k where id = %s",
                              [issued.record.id]).fetchone()
    assert stored is not None and issued.secret[12:] not in stored[0]


def test_resolve_and_scope_from_a_key(db: TestDB, world: World) -> None:
    issued = _issue(db, world, permissions=["chat", "config_read"])
    resolved = keys.resolve(issued.secret, db.dsn("app"))
    assert (resolved.agent_id, resolved.tenant_id) == (world.agent_id("A1"),
                                                       world.tenant_id("T1"))
    resolved.require("chat")
    with pytest.raises(AuthenticationError, match="config_write"):
        resolved.require("config_write")
    with connect(db.dsn("plugin"), api_key=issued.secret) as scope:
        assert [a.id for a in scope.find(Agent)] == [world.agent_id("A1")]
        assert scope.scope.agent_id == world.agent_id("A1")
    with pytest.raises(IsolationError), connect(db.dsn("plugin"), api_key=issued.secret) as scope:
        scope.find(ApiKey)
    with connect(db.dsn("admin"), admin=True) as adm:
        used = adm.get(ApiKeyInfo, issued.record.id)
    assert used.usage_count == 2 and used.last_used_at is not None


@pytest.mark.parametrize("secret", [
    "mmc_" + "A" * 43, "mmc_", "not-a-key", "mmc_" + "😀" * 10, "x" * 10000,
    # the original's format: base64 of "tenant_agent_random_v1" — a hand-built key must fail
    "mmc_dGVuYW50X2Y0MmRlODQ5OWRkN19hZ2VudF9mZjE2NzhiZmE2MzNfNTRjYjBmYzMxNDIzX3Yx",
])
def test_unknown_or_malformed_keys_are_refused(db: TestDB, world: World, secret: str) -> None:
    _issue(db, world)
    with pytest.raises(AuthenticationError, match="invalid API key"):
        keys.resolve(secret, db.dsn("app"))
    with pytest.raises(AuthenticationError), connect(db.dsn("plugin"), api_key=secret) as scope:
        scope.find(Agent)


def test_empty_key_is_refused_before_sql() -> None:
    with pytest.raises(AuthenticationError), connect("host=/nonexistent dbname=x",
                                                     api_key=""):
        pass


def _refused(db: TestDB, secret: str) -> None:
    with pytest.raises(AuthenticationError):
        keys.resolve(secret, db.dsn("app"))
    with pytest.raises(AuthenticationError), connect(db.dsn("plugin"), api_key=secret) as scope:
        scope.find(Agent)


def test_revoked_expired_and_suspended_keys_stop_working(db: TestDB, world: World) -> None:
    revoked, expired, agent_off, tenant_off, fine = (
        _issue(db, world, agent, name=f"k{i}")
        for i, agent in enumerate(["A1", "A1", "A2", "B1", "A1"]))
    with connect(db.dsn("admin"), admin=True) as adm:
        keys.revoke(adm, revoked.record.id)
        keys.expire(adm, expired.record.id, datetime.now(UTC) - timedelta(seconds=1))
        tenancy.set_agent_status(adm, world.agent_id("A2"), "suspended")
        tenancy.set_tenant_status(adm, world.tenant_id("T2"), "suspended")
    for k in (revoked, expired, agent_off, tenant_off):
        _refused(db, k.secret)
    assert keys.resolve(fine.secret, db.dsn("app")).agent_id == world.agent_id("A1")
    with connect(db.dsn("admin"), admin=True) as adm:  # refusals recorded no use
        assert adm.get(ApiKeyInfo, revoked.record.id).usage_count == 0


def test_a_suspended_agent_cannot_open_scope(db: TestDB, world: World) -> None:
    with connect(db.dsn("admin"), admin=True) as adm:
        tenancy.set_agent_status(adm, world.agent_id("A2"), "suspended")
        tenancy.set_tenant_status(adm, world.tenant_id("T2"), "suspended")
    with pytest.raises(IsolationError, match="is suspended"), connect(
            db.dsn("app"), agent_id=world.agent_id("A2")) as scope:
        scope.find(Agent)
    with pytest.raises(IsolationError, match=r"tenant of agent .* is suspended"), connect(
            db.dsn("app"), agent_id=world.agent_id("B1")) as scope:
        scope.find(Agent)
    with pytest.raises(IsolationError, match="no such agent agent_000000000000"), connect(
            db.dsn("app"), agent_id="agent_000000000000") as scope:
        scope.find(Agent)
    with connect(db.dsn("admin"), admin=True) as adm:
        tenancy.set_agent_status(adm, world.agent_id("A2"), "active")
    with connect(db.dsn("app"), agent_id=world.agent_id("A2")) as scope:
        assert len(scope.find(Agent)) == 1


def test_a_dead_key_cannot_be_rotated_back_to_life(db: TestDB, world: World) -> None:
    revoked, expired = _issue(db, world, name="revoked"), _issue(db, world, name="expired")
    soon = datetime.now(UTC) + timedelta(hours=1)
    with connect(db.dsn("admin"), admin=True) as adm:
        keys.revoke(adm, revoked.record.id)
        keys.expire(adm, expired.record.id, datetime.now(UTC) - timedelta(seconds=1))
        before = adm.scalar("select count(*) from api_keys")
    for key, state in ((revoked, "is disabled"), (expired, "expired at")):
        with pytest.raises(InputError, match=state), connect(db.dsn("admin"), admin=True) as adm:
            keys.rotate(adm, key.record.id, old_valid_until=soon)
        with pytest.raises(AuthenticationError):
            keys.resolve(key.secret, db.dsn("app"))
    with connect(db.dsn("admin"), admin=True) as adm:
        assert adm.scalar("select count(*) from api_keys") == before


@pytest.mark.parametrize(("call", "message"), [
    (lambda adm, k: keys.expire(adm, k, None), "timezone-aware datetime"),  # not "never"
    (lambda adm, k: keys.expire(adm, k, datetime(2030, 1, 1)), "timezone-aware"),  # naive
    (lambda adm, k: keys.rotate(adm, k, old_valid_until=None), "timezone-aware"),
    (lambda adm, k: keys.rotate(adm, k, old_valid_until="tomorrow"), "timezone-aware"),
    (lambda adm, k: keys.revoke(adm, 123), "invalid key id"),
    (lambda adm, k: keys.revoke(adm, "agent_x"), "invalid key id"),
])
def test_key_changes_check_their_arguments(db: TestDB, world: World, call: Any,
                                           message: str) -> None:
    key = _issue(db, world)
    with pytest.raises(InputError, match=message), connect(db.dsn("admin"), admin=True) as adm:
        call(adm, key.record.id)
    with connect(db.dsn("admin"), admin=True) as adm:
        row = adm.get(ApiKey, key.record.id)
    assert (row.status, row.expires_at, row.replaced_by) == ("active", None, None)


def test_rotation_keeps_the_old_key_until_its_deadline(db: TestDB, world: World) -> None:
    old = _issue(db, world, permissions=["chat", "analytics"])
    deadline = datetime.now(UTC) + timedelta(hours=1)
    with connect(db.dsn("admin"), admin=True) as adm:
        new = keys.rotate(adm, old.record.id, old_valid_until=deadline)
        with pytest.raises(InputError, match="already rotated"):
            keys.rotate(adm, old.record.id, old_valid_until=datetime.now(UTC))
        stored = adm.get(ApiKey, old.record.id)
    assert (stored.expires_at, stored.replaced_by) == (deadline, new.record.id)
    assert new.record.name == "runtime" and new.record.permissions == ["chat", "analytics"]
    assert keys.resolve(old.secret, db.dsn("app")).key_id == old.record.id
    assert keys.resolve(new.secret, db.dsn("app")).key_id == new.record.id


def test_rotation_with_an_immediate_deadline_stops_the_old_key(db: TestDB,
                                                               world: World) -> None:
    """The deadline alone stops the old key: nothing else is called after the rotation."""
    old = _issue(db, world)
    with connect(db.dsn("admin"), admin=True) as adm:
        new = keys.rotate(adm, old.record.id, old_valid_until=datetime.now(UTC))
    _refused(db, old.secret)
    assert keys.resolve(new.secret, db.dsn("app")).key_id == new.record.id


def test_a_key_scope_carries_the_keys_permissions(db: TestDB, world: World) -> None:
    issued = _issue(db, world, permissions=["chat", "analytics"])
    with connect(db.dsn("plugin"), api_key=issued.secret) as scope:
        scope.require("chat")  # resolves the key: the first statement of the block
        assert scope.scope.permissions == ("chat", "analytics")
        with pytest.raises(AuthenticationError, match="lacks the 'config_write'"):
            scope.require("config_write")
        assert [a.id for a in scope.find(Agent)] == [world.agent_id("A1")]


@pytest.mark.parametrize("agent_status, tenant_status", [
    ("archived", "active"), ("inactive", "active"), ("active", "inactive")])
def test_every_status_but_active_stops_scope_and_keys(db: TestDB, world: World,
                                                      agent_status: str,
                                                      tenant_status: str) -> None:
    issued = _issue(db, world, "A1")
    with connect(db.dsn("admin"), admin=True) as adm:
        tenancy.set_agent_status(adm, world.agent_id("A1"), agent_status)  # type: ignore[arg-type]
        tenancy.set_tenant_status(adm, world.tenant_id("T1"), tenant_status)  # type: ignore[arg-type]
    _refused(db, issued.secret)
    stopped = agent_status if agent_status != "active" else tenant_status
    with pytest.raises(IsolationError, match=f"is {stopped}"), \
            connect(db.dsn("app"), agent_id=world.agent_id("A1")) as scope:
        scope.find(Agent)
    with connect(db.dsn("admin"), admin=True) as adm:  # reactivating brings the key back
        tenancy.set_agent_status(adm, world.agent_id("A1"), "active")
        tenancy.set_tenant_status(adm, world.tenant_id("T1"), "active")
    assert keys.resolve(issued.secret, db.dsn("app")).agent_id == world.agent_id("A1")


def test_the_key_of_a_deleted_agent_is_gone(db: TestDB, world: World) -> None:
    issued = _issue(db, world, "A2")
    with connect(db.dsn("admin"), admin=True) as adm:
        tenancy.delete_agent(adm, world.agent_id("A2"))
        assert adm.find(ApiKey, {"id": issued.record.id}) == []
    _refused(db, issued.secret)


def test_a_bad_key_is_refused_by_every_entry_point(db: TestDB, world: World) -> None:
    bad = "mmc_" + "B" * 43
    with Pool(db.dsn("plugin"), min_size=1, max_size=1) as pool:
        with pytest.raises(AuthenticationError):
            pool.fetch(Agent, "select * from agents", api_key=bad)
        with pytest.raises(AuthenticationError), pool.connection(api_key=bad) as scope:
            scope.find(Agent)

    async def run() -> None:
        async with AsyncPool(db.dsn("plugin"), min_size=1, max_size=1) as apool:
            with pytest.raises(AuthenticationError):
                await apool.fetch(Agent, "select * from agents", api_key=bad)
        with pytest.raises(AuthenticationError):
            async with aconnect(db.dsn("plugin"), api_key=bad) as ascope:
                await ascope.find(Agent)
        async with aconnect(db.dsn("admin"), admin=True) as adm:
            with pytest.raises(AuthenticationError):
                await keys.aresolve_in(adm, bad)

    asyncio.run(run())
    with connect(db.dsn("admin"), admin=True) as adm, pytest.raises(AuthenticationError):
        keys.resolve_in(adm, bad)


def test_key_names_and_permissions_are_checked(db: TestDB, world: World) -> None:
    _issue(db, world, name="dup")
    with pytest.raises(ConflictError, match="already has a key named 'dup'") as info:
        _issue(db, world, "A2", name="dup")  # same tenant
    assert info.value.constraint == "api_keys_tenant_name"
    _issue(db, world, "B1", name="dup")  # other tenant: fine
    with connect(db.dsn("admin"), admin=True) as adm:
        before = adm.scalar("select count(*) from api_keys")
    for kw, message in (({"expires_at": datetime.now(UTC) - timedelta(days=1)}, "in the past"),
                        ({"permissions": ["root"]}, "unknown permission"),
                        ({"permissions": "chat"}, "list of names"),  # not c, h, a, t
                        ({"name": None}, "name"),
                        ({"expires_at": "tomorrow"}, "expires_at")):
        with pytest.raises(InputError, match=message):
            _issue(db, world, **kw)
    with connect(db.dsn("admin"), admin=True) as adm:
        assert adm.scalar("select count(*) from api_keys") == before  # nothing was written


def test_maim_app_cannot_read_keys_or_call_resolver_tricks(db: TestDB, world: World) -> None:
    issued = _issue(db, world)
    with pytest.raises(IsolationError), connect(db.dsn("app"),
                                                agent_id=world.agent_id("A1")) as scope:
        scope.rows("select key_hash from api_keys")
    with connect(db.dsn("app"), agent_id=world.agent_id("B1")) as scope:
        # resolving someone else's key inside my scope does not widen my scope
        assert scope.rows("select agent_id from maim.resolve_api_key(%s)",
                          [issued.secret]) == [(world.agent_id("A1"),)]
        assert [a.id for a in scope.find(Agent)] == [world.agent_id("B1")]


def test_key_usage_of_dead_backends_is_folded_and_no_use_is_lost(db: TestDB,
                                                                 world: World) -> None:
    """Issue 32.7: api_key_usage had one row per key and backend pid, never pruned, so a key
    used by short-lived connections grew without bound. A backend's first use of a key folds
    the rows of backends that have ended into its own: rows stay at most one per live
    backend that used the key, plus one, and the total count of uses is exact."""
    issued = _issue(db, world)
    ended = 6
    for _ in range(ended):  # each its own backend, ended after two uses
        with psycopg.connect(db.dsn("plugin"), autocommit=True) as conn:
            for _ in range(2):
                with conn.transaction():
                    conn.execute("select maim.open_key_scope(%s)", [issued.secret])
            pid = conn.info.backend_pid
        with psycopg.connect(db.superuser, autocommit=True) as su:  # wait for it to end
            su.execute("select pg_terminate_backend(%s::int, 10000)", [pid])
    with psycopg.connect(db.dsn("plugin"), autocommit=True) as live:  # still open below
        with live.transaction():
            live.execute("select maim.open_key_scope(%s)", [issued.secret])
        with connect(db.dsn("plugin"), api_key=issued.secret) as scope:  # one more backend
            scope.execute("select 1")
        with psycopg.connect(db.superuser, autocommit=True) as su:
            # counted in both tables since 0022: recent uses, and those moved (durable)
            rows = [su.execute(sql.SQL("select count(*), coalesce(sum(uses), 0) from {}"
                                       " where key_id = %s").format(sql.Identifier(table)),
                               [issued.record.id]).fetchone() or (0, 0)
                    for table in ("api_key_usage", "api_key_usage_recent")]
        alive = 2  # `live`, and the block's connection if it has not ended yet
        assert all(count <= alive + 1 for count, _ in rows), rows
        assert sum(uses for _, uses in rows) == 2 * ended + 2
    with connect(db.dsn("admin"), admin=True) as adm:
        assert adm.get(ApiKeyInfo, issued.record.id).usage_count == 2 * ended + 2


def test_the_fold_takes_no_live_backends_row(db: TestDB, world: World) -> None:
    """The fold asks who is alive at the moment it folds: PostgreSQL keeps a transaction's
    first view of the activity list, so a plugin that looked at pg_stat_activity before a
    second backend first used the key would otherwise fold that live backend's row into its
    own, lock it and stall that backend's next key block (found by review)."""
    issued = _issue(db, world)
    with psycopg.connect(db.dsn("plugin")) as taker:
        taker.execute("select count(*) from pg_stat_activity")  # the view, kept from here on
        with psycopg.connect(db.dsn("plugin"), autocommit=True) as victim:  # not in the view
            with victim.transaction():
                victim.execute("select maim.open_key_scope(%s)", [issued.secret])
            taker.execute("select maim.open_key_scope(%s)", [issued.secret])
            with victim.transaction():  # its own row: neither folded nor locked by the taker
                victim.execute("set local lock_timeout = '2s'")
                victim.execute("select maim.open_key_scope(%s)", [issued.secret])
        taker.rollback()


def test_key_blocks_open_at_once_never_wait_for_each_other(
        db: TestDB, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 32 (Citus): every key block records its use, and on a cluster api_key_usage was
    a reference table, whose every UPDATE takes an ExclusiveLock on the table's one shard to
    the end of the transaction: while one plugin kept its key block open, every other key
    block of every tenant waited (up to the watcher's bound). Two agents' key blocks, and a
    second backend on the first key, all run and write while the first block stays open.
    The timeouts make a wait fail fast, as a typed error, rather than hang: on Citus the lock
    was taken through the first worker, where the block's lock timeout does not reach, so the
    statement timeout is the one that ends it."""
    monkeypatch.setenv("MAIMDB_LOCK_TIMEOUT", "1")
    monkeypatch.setenv("MAIMDB_STATEMENT_TIMEOUT", "5")
    a1, b1 = _issue(db, world, "A1"), _issue(db, world, "B1")
    with connect(db.dsn("plugin"), api_key=a1.secret) as first:
        first.execute("insert into runtime_state (state_key) values ('first')")
        for n, (issued, agent) in enumerate(((b1, "B1"), (a1, "A1"), (b1, "B1"))):
            with connect(db.dsn("plugin"), api_key=issued.secret) as other:
                other.execute("insert into runtime_state (state_key) values (%s)",
                              [f"while-open-{n}"])
                assert other.scope.agent_id == world.agent_id(agent)
    with connect(db.dsn("admin"), admin=True) as adm:
        assert adm.get(ApiKeyInfo, a1.record.id).usage_count == 2
        assert adm.get(ApiKeyInfo, b1.record.id).usage_count == 2


def _key_block_wal(db: TestDB, conn: psycopg.Connection[Any], secret: str
                   ) -> list[tuple[str, str]]:
    """The WAL records a key block on ``conn`` that only reads wrote under its own
    transaction id, as (resource manager, record type), read back with pg_walinspect by the
    superuser."""
    with psycopg.connect(db.superuser, autocommit=True) as su:
        su.execute("create extension if not exists pg_walinspect")
        start = su.execute("select pg_current_wal_insert_lsn()").fetchone()
        with run_scoped(conn, Scope("key", secret)) as block:
            xid = block.scalar("select pg_current_xact_id()::text")
            assert [a.id for a in block.find(Agent)]  # it reads
        # pg_walinspect reads only flushed WAL; the block did not wait for its flush
        end = su.execute("select pg_switch_wal()").fetchone()
        assert start and end
        return [(rm, kind) for rm, kind in su.execute(
            "select resource_manager, record_type from pg_get_wal_records_info(%s, %s)"
            " where xid::text = %s order by start_lsn", [start[0], end[0], xid]).fetchall()]


@pytest.mark.fresh_db
def test_a_key_block_that_only_reads_writes_no_wal_of_its_own(db: TestDB, world: World) -> None:
    """Issue 36: counting a key's use was the only WAL of a block that only reads, so every
    such block waited for a WAL flush at commit (3.8 x its time on an fsync'd server). The
    use is counted in an unlogged table now: the block's one record is its commit, which a
    transaction without other WAL does not wait to flush."""
    issued = _issue(db, world)
    with psycopg.connect(db.dsn("plugin"), autocommit=True) as conn:
        # the backend's first use makes its row (its foreign key check locks the key's row)
        first = _key_block_wal(db, conn, issued.secret)
        assert ("Transaction", "COMMIT") in first
        # a pooled connection's later blocks: each a use of the key, counted, no WAL of its
        # own but the commit record
        assert _key_block_wal(db, conn, issued.secret) == [("Transaction", "COMMIT")]
        assert _key_block_wal(db, conn, issued.secret) == [("Transaction", "COMMIT")]
    with connect(db.dsn("admin"), admin=True) as adm:
        assert adm.get(ApiKeyInfo, issued.record.id).usage_count == 3


def test_recent_uses_become_durable_at_the_first_use_after_ten_seconds(
        db: TestDB, world: World) -> None:
    """The recent count moves into the backend's api_key_usage row (which a crash keeps) with
    its first use of the key once ten seconds have passed: the one block that waits for a
    flush. Until then the durable row does not change; the total never does but by one."""
    issued = _issue(db, world)

    def counts(su: psycopg.Connection[Any]) -> tuple[Any, ...]:
        return su.execute(
            "select (select coalesce(sum(uses), 0) from api_key_usage where key_id = %(k)s),"
            " (select coalesce(sum(uses), 0) from api_key_usage_recent where key_id = %(k)s)",
            {"k": issued.record.id}).fetchone() or ()

    with psycopg.connect(db.dsn("plugin"), autocommit=True) as conn, \
            psycopg.connect(db.superuser, autocommit=True) as su:
        for _ in range(3):
            with conn.transaction():
                conn.execute("select maim.open_key_scope(%s)", [issued.secret])
        assert counts(su) == (0, 3)
        su.execute("update api_key_usage_recent set since = since - interval '11 seconds'"
                   " where key_id = %s", [issued.record.id])
        with conn.transaction():
            conn.execute("select maim.open_key_scope(%s)", [issued.secret])
        assert counts(su) == (4, 0)
        with conn.transaction():
            conn.execute("select maim.open_key_scope(%s)", [issued.secret])
        assert counts(su) == (4, 1)
        # what a crash does to an unlogged table: the recent uses go, the durable stay, and
        # the next use counts on
        su.execute("truncate api_key_usage_recent")
        with conn.transaction():
            conn.execute("select maim.open_key_scope(%s)", [issued.secret])
        assert counts(su) == (4, 1)
        pid = conn.info.backend_pid
    with psycopg.connect(db.superuser, autocommit=True) as su:  # the backend has ended
        su.execute("select pg_terminate_backend(%s::int, 10000)", [pid])
        # a new backend's first use folds the ended one's rows of both tables into its own
        with psycopg.connect(db.dsn("plugin"), autocommit=True) as conn:
            with conn.transaction():
                conn.execute("select maim.open_key_scope(%s)", [issued.secret])
            assert su.execute(
                "select array_agg(distinct backend) from (select backend from api_key_usage"
                " where key_id = %(k)s union all select backend from api_key_usage_recent"
                " where key_id = %(k)s) b", {"k": issued.record.id}).fetchone() == (
                    [conn.info.backend_pid],)
            assert counts(su) == (4, 2)
    with connect(db.dsn("admin"), admin=True) as adm:
        assert adm.get(ApiKeyInfo, issued.record.id).usage_count == 6


def test_uses_of_ended_backends_become_durable_ten_seconds_after_they_were_counted(
        db: TestDB, world: World) -> None:
    """Found by review: a backend's recent uses moved only at its own next use, so with a
    connection per use (every use a first use) none ever became durable, and a crash lost a
    key's whole count. A first use folds ended backends' recent uses with their oldest
    `since`, and moves them once that is 10 s old."""
    issued = _issue(db, world)
    pids = []
    for _ in range(2):
        with connect(db.dsn("plugin"), api_key=issued.secret) as block:
            pids.append(block.scalar("select pg_backend_pid()"))
    with psycopg.connect(db.superuser, autocommit=True) as su:
        for pid in pids:  # wait for each to have ended
            su.execute("select pg_terminate_backend(%s::int, 10000)", [pid])
        su.execute("update api_key_usage_recent set since = since - interval '1 minute'"
                   " where key_id = %s", [issued.record.id])
        with connect(db.dsn("plugin"), api_key=issued.secret) as block:
            block.scalar("select 1")
        durable = su.execute("select coalesce(sum(uses), 0) from api_key_usage"
                             " where key_id = %s", [issued.record.id]).fetchone()
    assert durable is not None and durable[0] >= 2
    with connect(db.dsn("admin"), admin=True) as adm:
        assert adm.get(ApiKeyInfo, issued.record.id).usage_count == 3
