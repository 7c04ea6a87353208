"""Input the library cannot use is a typed MaimDBError, before anything changes — found by
trying each entry point with what a hurried caller might pass."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from maim_db import (
    AsyncPool,
    AuthenticationError,
    ConfigurationError,
    InputError,
    Pool,
    aconnect,
    agent_scope,
    connect,
)
from maim_db.context import current
from maim_db.control import config as cd
from maim_db.control import plugins
from maim_db.tables import AgentActiveState, PluginSetting
from tests.databases import TestDB, World


@pytest.mark.parametrize("dsn", ["garbage", "host='unterminated", "postgresql://[::1"])
def test_a_dsn_that_does_not_parse_is_a_configuration_error(dsn: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid DSN"), connect(dsn, admin=True):
        pass
    with pytest.raises(ConfigurationError, match="invalid DSN"):
        Pool(dsn)  # at once, not after the pool's 30 s timeout

    async def main() -> None:
        async with aconnect(dsn, admin=True):
            pass

    with pytest.raises(ConfigurationError, match="invalid DSN"):
        asyncio.run(main())


def test_a_bad_environment_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAIMDB_PGBOUNCER", "maybe")
    with pytest.raises(ConfigurationError, match="MAIMDB_PGBOUNCER"), \
            connect("host=/nonexistent dbname=x", admin=True):
        pass


def test_text_postgresql_cannot_hold_is_an_input_error(db: TestDB, world: World) -> None:
    lone_surrogate = "\ud800"
    with pytest.raises(InputError), connect(db.dsn("app"), agent_id=world.agent_id("A1")) as s:
        s.rows("select %s", [lone_surrogate])
    with pytest.raises(AuthenticationError), connect(db.dsn("app"), api_key=lone_surrogate):
        pass

    async def main() -> None:
        async with AsyncPool(db.dsn("app"), min_size=1, max_size=1) as pool:
            with pytest.raises(InputError):
                await pool.fetch(AgentActiveState, "select * from agent_active_states "
                                 "where agent_id = %s", [lone_surrogate],
                                 agent_id=world.agent_id("A1"))

    asyncio.run(main())


def test_async_pool_inserts_like_the_sync_one(db: TestDB, world: World) -> None:
    async def main() -> tuple[AgentActiveState, list[AgentActiveState]]:
        async with AsyncPool(db.dsn("app"), min_size=1, max_size=1) as pool:
            await pool.execute("delete from agent_active_states", agent_id=world.agent_id("A1"))
            row = await pool.insert(AgentActiveState(ttl_seconds=42),
                                    agent_id=world.agent_id("A1"))
            mine = await pool.fetch(AgentActiveState, "select * from agent_active_states",
                                    agent_id=world.agent_id("A1"))
            return row, mine

    row, mine = asyncio.run(main())
    assert row.agent_id == world.agent_id("A1") and mine == [row]


def test_plugin_settings_check_values_and_keep_an_unsent_config(db: TestDB,
                                                                world: World) -> None:
    t1 = world.tenant_id("T1")
    with connect(db.dsn("admin"), admin=True) as adm:
        plugins.configure(adm, tenant_id=t1, plugin_name="tts", enabled=True,
                          config={"voice": "小麦"})
        # turning it off says nothing about its config: the config stays
        off = plugins.configure(adm, tenant_id=t1, plugin_name="tts", enabled=False)
        assert (off.enabled, off.config) == (False, {"voice": "小麦"})
        before = len(adm.find(PluginSetting))
    for kw in ({"config": "x"}, {"config": []}, {"enabled": None}):
        args: dict[str, Any] = {"enabled": True, **kw}
        with pytest.raises(InputError), connect(db.dsn("admin"), admin=True) as adm:
            plugins.configure(adm, tenant_id=t1, plugin_name="new", **args)
    with connect(db.dsn("admin"), admin=True) as adm:
        assert len(adm.find(PluginSetting)) == before


def test_an_agent_scope_object_can_be_entered_again(world: World) -> None:
    scope = agent_scope(world.agent_id("A1"))
    for _ in range(2):
        with scope, scope:  # re-entrant too
            ambient = current()
            assert ambient is not None and ambient.id == world.agent_id("A1")
        assert current() is None


@pytest.mark.parametrize(("patch", "message"), [
    ({"config_overrides": {"chat": {"talk_value": float("nan")}}}, "finite number"),
    ({"config_overrides": {"chat": {"talk_value": float("inf")}}}, "finite number"),
    ({"config_overrides": {"model": {"model_task_config": {"replyer": {"model_list": None}}}}},
     "holds a null"),
])
def test_config_values_that_cannot_be_stored_or_exported(db: TestDB, world: World,
                                                         patch: dict[str, Any],
                                                         message: str) -> None:
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as s:
        before = cd.read(s)
    with pytest.raises(InputError, match=message), \
            connect(db.dsn("app"), agent_id=world.agent_id("A1")) as s:
        cd.update(s, patch)
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as s:
        assert cd.read(s) == before
        cd.to_toml(cd.read(s))  # and what is stored still exports


@pytest.mark.parametrize(("model_toml", "message"), [
    ('api_providers = "x"', "array of tables"),
    ("[api_providers]\nname = 'p'", "array of tables"),
    ("models = [1]", r"models\[0\] must be a table"),
])
def test_model_toml_of_the_wrong_shape_is_an_input_error(model_toml: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        cd.from_toml("", model_toml)
