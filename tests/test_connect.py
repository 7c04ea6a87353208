"""The handle: typed rows, one transaction per block, typed errors that change nothing —
each test run through the sync API and the async one (tests/twins.py)."""

from __future__ import annotations

import pytest

import maim_db
from maim_db import (
    ConflictError,
    ConnectError,
    DatabaseError,
    InputError,
    NotFoundError,
    ScopeError,
    connect,
    ids,
)
from maim_db.scope import named_agent
from maim_db.tables import Agent, AgentActiveState, Tenant
from tests.databases import TestDB, World
from tests.samples import message
from tests.twins import Twin


def _agent_names(db: TestDB) -> set[str]:
    with connect(db.dsn("admin"), admin=True) as adm:
        return {a.name for a in adm.fetch(Agent, "select * from agents")}


@pytest.mark.fresh_db  # a fixed tenant name
def test_insert_returns_the_stored_row_with_server_defaults(db: TestDB, world: World,
                                                            twin: Twin) -> None:
    with twin.connect(db.dsn("admin"), admin=True) as adm:
        tenant = adm.insert(Tenant(id=ids.new_tenant_id(), tenant_name="fresh"))
    assert tenant.status == "active" and tenant.tenant_type == "personal"
    assert tenant.tenant_config == {}
    assert tenant.created_at == tenant.updated_at and tenant.created_at.tzinfo is not None


def test_agent_id_and_tenant_id_come_from_the_scope(db: TestDB, world: World, twin: Twin) -> None:
    with twin.connect(db.dsn("app"), agent_id=world.agent_id("A2")) as app:
        app.execute("delete from agent_active_states")
        state = app.insert(AgentActiveState(ttl_seconds=30))
    assert state.agent_id == world.agent_id("A2")
    assert state.tenant_id == world.tenant_id("T1")
    assert (state.expires_at - state.last_seen_at).total_seconds() == 30


def test_updated_at_follows_updates(db: TestDB, world: World, twin: Twin) -> None:
    with twin.connect(db.dsn("admin"), admin=True) as adm:
        adm.execute("update agents set name = 'renamed' where id = %s", [world.agent_id("A1")])
    with twin.connect(db.dsn("admin"), admin=True) as adm:
        agent = adm.get(Agent, world.agent_id("A1"))
    assert agent.updated_at > agent.created_at


@pytest.mark.fresh_db  # lists every agent
def test_block_commits_on_success_and_rolls_back_on_error(db: TestDB, world: World,
                                                          twin: Twin) -> None:
    with twin.connect(db.dsn("admin"), admin=True) as adm:
        adm.execute("update agents set name = 'kept' where id = %s", [world.agent_id("A1")])
    with pytest.raises(RuntimeError, match="boom"), twin.connect(db.dsn("admin"),
                                                               admin=True) as adm:
        adm.execute("update agents set name = 'lost' where id = %s", [world.agent_id("A2")])
        raise RuntimeError("boom")
    assert _agent_names(db) == {"kept", "bot A2", "bot B1"}


def test_get_and_fetch_one_raise_not_found(db: TestDB, world: World, twin: Twin) -> None:
    with twin.connect(db.dsn("admin"), admin=True) as adm:
        with pytest.raises(NotFoundError, match="agent_nope"):
            adm.get(Agent, "agent_nope")
        with pytest.raises(NotFoundError):
            adm.fetch_one(Agent, "select * from agents where false")
        with pytest.raises(InputError, match="keyed by"):
            adm.get(Agent, "a", "b")


@pytest.mark.fresh_db  # compares whole tables
@pytest.mark.parametrize("tenant_id", ["tenant bad", "agent_x", "tenant_" + "x" * 60])
def test_bad_ids_are_input_errors_and_change_nothing(db: TestDB, world: World,
                                                     tenant_id: str, twin: Twin) -> None:
    with pytest.raises(InputError, match="a tenant id must be tenant_") as info, twin.connect(
            db.dsn("admin"), admin=True) as adm:
        adm.insert(Tenant(id=tenant_id, tenant_name="bad"))
    assert info.value.constraint == "tenants_id_check"
    with twin.connect(db.dsn("admin"), admin=True) as adm:
        assert adm.scalar("select count(*) from tenants") == 2


@pytest.mark.parametrize(("column", "value"), [
    ("tenant_type", "corporate"), ("status", "deleted"), ("contact_email", "not-an-email")])
def test_enum_and_format_checks(db: TestDB, world: World, column: str, value: str,
                                twin: Twin) -> None:
    with pytest.raises(InputError), twin.connect(db.dsn("admin"), admin=True) as adm:
        adm.execute(f"update tenants set {column} = %s", [value])


def test_agent_names_are_unique_per_tenant_only(db: TestDB, world: World, twin: Twin) -> None:
    with pytest.raises(ConflictError) as info, twin.connect(db.dsn("admin"), admin=True) as adm:
        adm.insert(Agent(id=ids.new_agent_id(), tenant_id=world.tenant_id("T1"), name="bot A2"))
    assert info.value.constraint == "agents_tenant_id_name_key"
    with twin.connect(db.dsn("admin"), admin=True) as adm:  # same name, other tenant: fine
        adm.insert(Agent(id=ids.new_agent_id(), tenant_id=world.tenant_id("T2"), name="bot A2"))


def test_agent_needs_an_existing_tenant(db: TestDB, world: World, twin: Twin) -> None:
    with pytest.raises(ConflictError, match="tenant"), twin.connect(db.dsn("admin"),
                                                               admin=True) as adm:
        adm.insert(Agent(id=ids.new_agent_id(), tenant_id="tenant_missing", name="orphan"))


def test_key_must_belong_to_an_agent_of_its_tenant(db: TestDB, world: World, twin: Twin) -> None:
    """The composite foreign key: a key cannot name T1 and an agent of T2."""
    with pytest.raises(ConflictError), twin.connect(db.dsn("admin"), admin=True) as adm:
        adm.execute("update api_keys set agent_id = %s where id = %s",
                    [world.agent_id("B1"), world.keys["A1"].id])


def test_unknown_columns_are_refused_before_sql() -> None:
    with pytest.raises(ValueError, match="extra"):
        Tenant(id="tenant_x", tenant_name="x", colour="red")  # type: ignore[call-arg]


def test_unreachable_server_is_a_connect_error(twin: Twin) -> None:
    with pytest.raises(ConnectError, match="cannot connect"), twin.connect(
            "host=/nonexistent-maimdb dbname=x connect_timeout=1", admin=True):
        pass


def test_a_caught_server_error_does_not_pass_for_success(db: TestDB, world: World,
                                                         twin: Twin) -> None:
    """An error caught inside the block aborted the transaction; ending the block normally
    must not look like a commit."""
    tenant = ids.new_tenant_id()
    with pytest.raises(DatabaseError, match="nothing was committed"), twin.connect(
            db.dsn("admin"), admin=True) as adm:
        adm.insert(Tenant(id=tenant, tenant_name="lost"))
        with pytest.raises(ConflictError):
            adm.insert(Agent(id=ids.new_agent_id(), tenant_id="tenant_missing", name="x"))
    with twin.connect(db.dsn("admin"), admin=True) as adm, pytest.raises(NotFoundError):
        adm.get(Tenant, tenant)


def test_each_twin_runs_its_own_api(db: TestDB, world: World, twin: Twin) -> None:
    with twin.connect(db.dsn("admin"), admin=True) as adm:
        handle = getattr(adm, "_target", adm)
        assert type(handle).__name__ == {"sync": "Block", "async": "AsyncBlock"}[twin.name]
    # the old names stay, for code written before the rename
    assert maim_db.Database is maim_db.Block and maim_db.AsyncDatabase is maim_db.AsyncBlock


def test_a_snapshot_block_reads_one_committed_state_and_writes_nothing(
        db: TestDB, world: World, twin: Twin) -> None:
    a1 = world.agent_id("A1")
    with twin.open_connection(db.dsn("app")) as conn, pytest.raises(
            DatabaseError, match="read-only"), twin.run_scoped(
            conn, named_agent(a1), snapshot=True) as snap:
        before = snap.scalar("select ttl_seconds from agent_active_states")
        with connect(db.dsn("app"), agent_id=a1) as other:  # committed meanwhile
            other.execute("update agent_active_states set ttl_seconds = ttl_seconds + 1")
        assert snap.scalar("select ttl_seconds from agent_active_states") == before
        snap.execute("update agent_active_states set ttl_seconds = 1")
    with connect(db.dsn("app"), agent_id=a1) as after:
        assert after.scalar("select ttl_seconds from agent_active_states") == before + 1


def test_insert_many_and_permissions_on_an_open_connection(db: TestDB, world: World,
                                                           twin: Twin) -> None:
    a1 = world.agent_id("A1")
    with twin.open_connection(db.dsn("app")) as conn:
        with twin.scoped(conn, agent_id=a1) as mine:
            assert mine.insert_many([message(i) for i in range(3)]) == 3
            mine.require("config_write")  # a trusted scope holds every permission
            with pytest.raises(InputError, match="unknown permission"):
                mine.require("root")
        with twin.scoped(conn, agent_id=world.agent_id("B1")) as theirs:
            assert theirs.scalar("select count(*) from messages") == 0
        with twin.scoped(conn, agent_id=a1) as mine:
            assert mine.scalar("select count(*) from messages") == 3


def test_maimdb_timezone_says_what_naive_datetimes_mean(db: TestDB, world: World,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15: a naive datetime (MaiBot's `datetime.now()`) is a time in MAIMDB_TIMEZONE
    when it is set; unset, the server's TimeZone decides, as PostgreSQL casts it."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from maim_db import ConfigurationError
    from maim_db.tables.runtime import LLMUsage

    naive = datetime(2026, 12, 3, 20, 0, 0)
    usage = {"model_name": "m", "user_id": "u", "request_type": "chat", "endpoint": "/",
             "prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2, "cost": 0.0,
             "status": "ok"}
    a1 = world.agent_id("A1")
    monkeypatch.setenv("MAIMDB_TIMEZONE", "Asia/Shanghai")
    with connect(db.dsn("app"), agent_id=a1) as s:
        s.insert(LLMUsage(timestamp=naive, **usage))
        stored = s.scalar("select max(timestamp) from llm_usage")
        found = s.scalar("select count(*) from llm_usage where timestamp >= %s",
                         [naive - timedelta(minutes=1)])
    assert stored == naive.replace(tzinfo=ZoneInfo("Asia/Shanghai")) and found == 1
    monkeypatch.delenv("MAIMDB_TIMEZONE")
    with connect(db.dsn("app"), agent_id=a1) as s:
        server = s.scalar("select current_setting('TimeZone')")
        assert s.scalar("select %s::timestamptz", [naive]) == naive.replace(
            tzinfo=ZoneInfo(server))
    monkeypatch.setenv("MAIMDB_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ConfigurationError, match="MAIMDB_TIMEZONE: unknown time zone"), \
            connect(db.dsn("app"), agent_id=a1) as s:
        s.scalar("select 1")


def test_errors_carry_the_server_sqlstate_and_hint(db: TestDB, world: World, twin: Twin) -> None:
    """Code that must tell server errors apart beyond the class reads ``.sqlstate`` and
    ``.hint`` (the server's, set by the translation); an error maim_db raised itself has
    neither."""
    with pytest.raises(ScopeError) as unset, twin.connect(db.dsn("admin"), admin=True) as adm:
        adm.scalar("select maim.agent_id()")
    assert unset.value.sqlstate == "42501"
    assert unset.value.hint is not None and "maim.agent_id" in unset.value.hint
    with pytest.raises(ConflictError) as taken, twin.connect(db.dsn("admin"), admin=True) as adm:
        adm.insert(Agent(id=ids.new_agent_id(), tenant_id=world.tenant_id("T1"), name="bot A2"))
    assert taken.value.sqlstate == "23505" and taken.value.hint is None
    with pytest.raises(NotFoundError) as missing, twin.connect(db.dsn("admin"),
                                                               admin=True) as adm:
        adm.get(Agent, "agent_nope")
    assert missing.value.sqlstate is None and missing.value.hint is None
