"""Generic typed operations: find, update, delete, upsert, insert_many."""

from __future__ import annotations

import pytest

from maim_db import InputError, connect, ids
from maim_db.tables import Agent, AgentActiveState, PluginSetting, Tenant
from tests.databases import TestDB, World


def test_find_filters_orders_and_limits(db: TestDB, world: World) -> None:
    t1 = world.tenant_id("T1")
    with connect(db.dsn("admin"), admin=True) as adm:
        names = [a.name for a in adm.find(Agent, {"tenant_id": t1}, order_by="-name")]
        assert names == ["bot A2", "bot A1"]
        first = min(world.agents.values(), key=lambda a: (a.tenant_id, a.name))
        assert adm.find(Agent, order_by=["tenant_id", "name"], limit=1) == [first]
        both = adm.find(Agent, {"id": [world.agent_id("A1"), world.agent_id("B1")]},
                        order_by="name")
        assert [a.name for a in both] == ["bot A1", "bot B1"]
        assert adm.find(Agent, {"description": None, "tenant_id": t1}, limit=1)[0].tenant_id == t1
        assert adm.find(Agent, {"name": "nobody"}) == []


@pytest.mark.parametrize(("call", "message"), [
    (lambda db: db.find(Agent, {"colour": "red"}), "no column 'colour'"),
    (lambda db: db.find(Agent, order_by="-colour"), "no column 'colour'"),
    (lambda db: db.find(Agent, limit=-1), "non-negative"),
    (lambda db: db.update(Agent, where={}, set={}), "at least one column"),
    (lambda db: db.update(Agent, where={"id; drop table agents": 1}, set={"name": "x"}),
     "no column"),
    (lambda db: db.delete(Agent, where={"nme": "x"}), "no column 'nme'"),
    (lambda db: db.insert_many([Tenant(id="tenant_a", tenant_name="a"),
                                Agent(id="agent_a", tenant_id="tenant_a", name="a")]),
     "one model"),
    (lambda db: db.upsert(PluginSetting(tenant_id="tenant_a", plugin_name="x"),
                          on=["tenant_id", "agent_id", "plugin_name"]), "needs values"),
    # only {} means "every row": other empty or non-mapping values are mistakes
    (lambda db: db.delete(Agent, where=None), "mapping"),
    (lambda db: db.delete(Agent, where=[]), "mapping"),
    (lambda db: db.update(Agent, where="", set={"name": "x"}), "mapping"),
    (lambda db: db.update(Agent, where={}, set=[("name", "x")]), "mapping"),
    (lambda db: db.find(Agent, "id = 'x'"), "mapping"),
    (lambda db: db.find(Agent, []), "mapping"),
    (lambda db: db.find(Agent, order_by=None), "column name"),
    (lambda db: db.find(Agent, order_by=[1]), "column name"),
    (lambda db: db.insert({"id": "tenant_a", "tenant_name": "a"}), "row model"),
    (lambda db: db.insert(Tenant), "row model"),
    (lambda db: db.insert_many([{"id": "tenant_a"}]), "row model"),
    (lambda db: db.insert_many(Tenant(id="tenant_a", tenant_name="a")), "list of rows"),
    (lambda db: db.upsert(Tenant(id="tenant_a", tenant_name="a"), on=[]), "unique key"),
    (lambda db: db.upsert(Tenant(id="tenant_a", tenant_name="a"), on="idd"), "no column"),
])
@pytest.mark.fresh_db  # compares whole tables
def test_bad_input_is_refused_before_sql(db: TestDB, world: World, call: object,
                                         message: str) -> None:
    with connect(db.dsn("admin"), admin=True) as adm:
        with pytest.raises(InputError, match=message):
            call(adm)  # type: ignore[operator]
        # nothing was sent: the transaction never opened
        assert not adm._opened
    with connect(db.dsn("admin"), admin=True) as adm:
        assert len(adm.find(Agent)) == 3


@pytest.mark.fresh_db  # counts rows across agents
def test_update_and_delete_report_counts(db: TestDB, world: World) -> None:
    with connect(db.dsn("admin"), admin=True) as adm:
        assert adm.update(Agent, where={"tenant_id": world.tenant_id("T1")},
                          set={"status": "suspended", "config": {"a": [1, "二"]}}) == 2
        assert adm.delete(Agent, where={"id": world.agent_id("B1")}) == 1
    with connect(db.dsn("admin"), admin=True) as adm:
        agents = adm.find(Agent, order_by="name")
    assert [(a.name, a.status, a.config) for a in agents] == [
        ("bot A1", "suspended", {"a": [1, "二"]}), ("bot A2", "suspended", {"a": [1, "二"]})]


@pytest.mark.fresh_db  # compares whole tables
def test_update_in_agent_scope_only_reaches_the_agent(db: TestDB, world: World) -> None:
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        assert app.update(AgentActiveState, where={}, set={"ttl_seconds": 5}) == 1
        assert app.delete(AgentActiveState, where={"agent_id": world.agent_id("A2")}) == 0
    with connect(db.dsn("admin"), admin=True) as adm:
        ttls = {s.agent_id: s.ttl_seconds for s in adm.find(AgentActiveState)}
    assert ttls == {world.agent_id("A1"): 5, world.agent_id("A2"): 300,
                    world.agent_id("B1"): 300}


def test_upsert_is_the_activity_touch(db: TestDB, world: World) -> None:
    a1 = world.agent_id("A1")
    with connect(db.dsn("app"), agent_id=a1) as app:
        first = app.upsert(AgentActiveState(ttl_seconds=10), on=["agent_id"])
        second = app.upsert(AgentActiveState(ttl_seconds=20), on="agent_id")
        assert len(app.find(AgentActiveState)) == 1
    assert first.agent_id == second.agent_id == a1
    assert (second.expires_at - second.last_seen_at).total_seconds() == 20


def test_upsert_on_a_natural_key(db: TestDB, world: World) -> None:
    t1 = world.tenant_id("T1")
    with connect(db.dsn("admin"), admin=True) as adm:
        row = adm.upsert(PluginSetting(tenant_id=t1, agent_id=None, plugin_name="emoji",
                                       enabled=False, config={"x": 1}),
                         on=["tenant_id", "agent_id", "plugin_name"])
        assert row.id == world.plugins["T1"].id and row.config == {"x": 1} and not row.enabled
        assert len(adm.find(PluginSetting, {"tenant_id": t1})) == 3


def test_insert_many_uses_defaults_per_row(db: TestDB, world: World) -> None:
    tenants = [Tenant(id=ids.new_tenant_id(), tenant_name=f"bulk {i}") for i in range(2500)]
    tenants[7] = Tenant(id=ids.new_tenant_id(), tenant_name="typed", tenant_type="enterprise")
    with connect(db.dsn("admin"), admin=True) as adm:
        assert adm.insert_many(tenants[:2000]) == 2000
        assert adm.insert_many(t for t in tenants[2000:]) == 500  # any iterable of rows
        assert adm.insert_many([]) == 0
    with connect(db.dsn("admin"), admin=True) as adm:
        assert adm.scalar("select count(*) from tenants where tenant_name like 'bulk %%'") == 2499
        assert adm.find(Tenant, {"tenant_name": "typed"})[0].tenant_type == "enterprise"
        assert adm.find(Tenant, {"tenant_name": "bulk 3"})[0].tenant_type == "personal"


def test_insert_many_of_uniform_rows_keeps_every_value(db: TestDB, world: World) -> None:
    """Rows that all give the same fields take the pre-rendered statement, 1000 a time."""
    tenants = [Tenant(id=ids.new_tenant_id(), tenant_name=f"uniform {i}",
                      tenant_config={"n": i, "名": ["麦麦", None]}) for i in range(2345)]
    with connect(db.dsn("admin"), admin=True) as adm:
        assert adm.insert_many(tenants) == 2345
    with connect(db.dsn("admin"), admin=True) as adm:
        stored = {t.id: t for t in adm.find(Tenant, {"id": [t.id for t in tenants]})}
    assert len(stored) == 2345
    assert all(stored[t.id].tenant_config == t.tenant_config and
               stored[t.id].tenant_name == t.tenant_name for t in tenants)


def test_insert_many_is_all_or_nothing(db: TestDB, world: World) -> None:
    good = [Tenant(id=ids.new_tenant_id(), tenant_name=f"ok {i}") for i in range(3)]
    bad = Tenant(id="tenant_bad!", tenant_name="bad")
    with pytest.raises(InputError), connect(db.dsn("admin"), admin=True) as adm:
        adm.insert_many([*good, bad])
    with connect(db.dsn("admin"), admin=True) as adm:
        assert adm.find(Tenant, {"tenant_name": "ok 0"}) == []
