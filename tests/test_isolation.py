"""Each scope on each control-plane table, from both sides: what it sees and may change, and
what it cannot."""

from __future__ import annotations

import pytest

from maim_db import IsolationError, NotFoundError, connect
from maim_db.row import Row
from maim_db.tables import (
    Agent,
    AgentActiveState,
    ApiKey,
    ApiKeyInfo,
    PluginSetting,
    Tenant,
    User,
    UserProfile,
)
from tests.databases import TestDB, World

ALL = (User, Tenant, Agent, ApiKey, AgentActiveState, PluginSetting)


def _ids(rows: list[Row]) -> set[str]:
    return {str(getattr(r, r.key[0])) for r in rows}


def _all(dsn: str, model: type[Row], **scope: object) -> set[str]:
    columns = ", ".join(model.model_fields)  # a partial model names only what it may read
    with connect(dsn, **scope) as db:  # type: ignore[arg-type]
        return _ids(db.fetch(model, f"select {columns} from {model.table}"))  # type: ignore[arg-type]


# -- agent scope ---------------------------------------------------------------------------

def test_agent_sees_only_itself(db: TestDB, world: World) -> None:
    dsn, a1 = db.dsn("app"), world.agent_id("A1")
    assert _all(dsn, Agent, agent_id=a1) == {a1}
    assert _all(dsn, Tenant, agent_id=a1) == {world.tenant_id("T1")}
    assert _all(dsn, AgentActiveState, agent_id=a1) == {a1}
    assert _all(dsn, PluginSetting, agent_id=a1) == {str(world.plugins["A1"].id),
                                                     str(world.plugins["T1"].id)}
    b1 = world.agent_id("B1")
    assert _all(dsn, Agent, agent_id=b1) == {b1}
    assert _all(dsn, PluginSetting, agent_id=b1) == {str(world.plugins["B1"].id)}


@pytest.mark.parametrize("model", [ApiKey, User])
def test_agent_cannot_read_keys_or_users(db: TestDB, world: World, model: type[Row]) -> None:
    with pytest.raises(IsolationError, match=model.table) as info:
        _all(db.dsn("app"), model, agent_id=world.agent_id("A1"))
    assert info.value.table == model.table


def test_agent_get_of_another_agent_is_not_found(db: TestDB, world: World) -> None:
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        assert app.get(Agent, world.agent_id("A1")).name == "bot A1"
        with pytest.raises(NotFoundError):
            app.get(Agent, world.agent_id("A2"))
        with pytest.raises(NotFoundError):
            app.get(Tenant, world.tenant_id("T2"))


@pytest.mark.fresh_db  # compares whole tables
@pytest.mark.parametrize("statement", [
    "update agents set name = 'x'",
    "delete from agents",
    "update tenants set tenant_name = 'x'",
    "insert into agents (id, tenant_id, name) values ('agent_new', 'tenant_x', 'n')",
    "update plugin_settings set enabled = true",
])
def test_agent_cannot_write_the_control_plane(db: TestDB, world: World, statement: str) -> None:
    with pytest.raises(IsolationError), connect(db.dsn("app"),
                                                agent_id=world.agent_id("A1")) as app:
        app.execute(statement)
    assert _all(db.dsn("admin"), Agent, admin=True) == {a.id for a in world.agents.values()}


def test_agent_writes_its_own_activity_only(db: TestDB, world: World) -> None:
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    with connect(db.dsn("app"), agent_id=a1) as app:
        assert app.execute("update agent_active_states set ttl_seconds = 60") == 1
        assert app.execute("update agent_active_states set ttl_seconds = 60 "
                           "where agent_id = %s", [b1]) == 0
        assert app.execute("delete from agent_active_states where agent_id = %s", [b1]) == 0
        assert app.fetch(AgentActiveState, "delete from agent_active_states "
                         "where agent_id = %s returning *", [b1]) == []
    with connect(db.dsn("admin"), admin=True) as adm:
        states = {s.agent_id: s for s in adm.fetch(
            AgentActiveState, "select * from agent_active_states")}
    assert states[a1].ttl_seconds == 60
    assert states[b1].ttl_seconds == 300


@pytest.mark.fresh_db  # compares whole tables
def test_agent_cannot_insert_into_another_agent(db: TestDB, world: World) -> None:
    with connect(db.dsn("admin"), admin=True) as adm:
        adm.execute("delete from agent_active_states where agent_id = %s",
                    [world.agent_id("B1")])
    with pytest.raises(IsolationError, match="agent_active_states"), connect(
            db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        app.insert(AgentActiveState(agent_id=world.agent_id("B1"),
                                    tenant_id=world.tenant_id("T2")))
    assert _all(db.dsn("admin"), AgentActiveState, admin=True) == {
        world.agent_id("A1"), world.agent_id("A2")}


@pytest.mark.fresh_db  # compares whole tables
def test_agent_cannot_move_a_row_to_another_agent(db: TestDB, world: World) -> None:
    with pytest.raises(IsolationError, match="row-level security"), connect(
            db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        app.execute("update agent_active_states set agent_id = %s", [world.agent_id("A2")])
    assert _all(db.dsn("admin"), AgentActiveState, admin=True) == {
        a.id for a in world.agents.values()}


# -- tenant scope --------------------------------------------------------------------------

def test_tenant_sees_its_own_rows(db: TestDB, world: World) -> None:
    dsn, t1 = db.dsn("tenant"), world.tenant_id("T1")
    a1, a2 = world.agent_id("A1"), world.agent_id("A2")
    assert _all(dsn, Tenant, tenant_id=t1) == {t1}
    assert _all(dsn, Agent, tenant_id=t1) == {a1, a2}
    assert _all(dsn, ApiKeyInfo, tenant_id=t1) == {world.keys["A1"].id, world.keys["A2"].id}
    assert _all(dsn, AgentActiveState, tenant_id=t1) == {a1, a2}
    assert _all(dsn, UserProfile, tenant_id=t1) == {world.users["U1"].id}
    assert _all(dsn, PluginSetting, tenant_id=t1) == {
        str(world.plugins[k].id) for k in ("A1", "A2", "T1")}
    t2 = world.tenant_id("T2")
    assert _all(dsn, Agent, tenant_id=t2) == {world.agent_id("B1")}
    assert _all(dsn, UserProfile, tenant_id=t2) == {world.users["U2"].id}


@pytest.mark.parametrize("statement", [
    "update agents set name = 'x'",
    "delete from api_keys",
    "update tenants set status = 'suspended'",
    "delete from agent_active_states",
])
def test_tenant_is_read_only(db: TestDB, world: World, statement: str) -> None:
    with pytest.raises(IsolationError), connect(db.dsn("tenant"),
                                                tenant_id=world.tenant_id("T1")) as ten:
        ten.execute(statement)


# -- admin scope ---------------------------------------------------------------------------

@pytest.mark.fresh_db  # the admin sees every test's rows
@pytest.mark.parametrize("model", ALL)
def test_admin_sees_everything(db: TestDB, world: World, model: type[Row]) -> None:
    expected = {
        User: {u.id for u in world.users.values()},
        Tenant: {t.id for t in world.tenants.values()},
        Agent: {a.id for a in world.agents.values()},
        ApiKey: {k.id for k in world.keys.values()},
        AgentActiveState: {a.id for a in world.agents.values()},
        PluginSetting: {str(p.id) for p in world.plugins.values()},
    }[model]
    assert _all(db.dsn("admin"), model, admin=True) == expected


@pytest.mark.fresh_db  # counts rows across agents
def test_deleting_an_agent_cascades(db: TestDB, world: World) -> None:
    a1 = world.agent_id("A1")
    with connect(db.dsn("admin"), admin=True) as adm:
        assert adm.execute("delete from agents where id = %s", [a1]) == 1
    assert a1 not in _all(db.dsn("admin"), AgentActiveState, admin=True)
    assert world.keys["A1"].id not in _all(db.dsn("admin"), ApiKey, admin=True)
    assert str(world.plugins["A1"].id) not in _all(db.dsn("admin"), PluginSetting, admin=True)
    # and nothing of anyone else
    assert _all(db.dsn("admin"), Agent, admin=True) == {world.agent_id("A2"),
                                                        world.agent_id("B1")}
    assert len(_all(db.dsn("admin"), ApiKey, admin=True)) == 2


@pytest.mark.fresh_db  # counts rows across agents
def test_deleting_a_tenant_cascades_to_its_agents(db: TestDB, world: World) -> None:
    with connect(db.dsn("admin"), admin=True) as adm:
        adm.execute("delete from tenants where id = %s", [world.tenant_id("T1")])
    assert _all(db.dsn("admin"), Agent, admin=True) == {world.agent_id("B1")}
    assert _all(db.dsn("admin"), PluginSetting, admin=True) == {str(world.plugins["B1"].id)}
    assert _all(db.dsn("admin"), User, admin=True) == {u.id for u in world.users.values()}


def test_superuser_dsn_still_runs_under_rls(db: TestDB, world: World) -> None:
    """The embedded default connects as a superuser; the role switch puts it under RLS."""
    with connect(db.superuser, agent_id=world.agent_id("A1")) as app:
        assert _ids(app.fetch(Agent, "select * from agents")) == {world.agent_id("A1")}
    with pytest.raises(IsolationError), connect(db.superuser,
                                                agent_id=world.agent_id("A1")) as app:
        app.execute("select * from api_keys")
