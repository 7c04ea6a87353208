"""The control plane for AsyncDatabase as well (issue 34, item 4): written once, async, and
generated; pages by offset and by keyset; an agent's configuration reset to its defaults; the
web back end's login check, as the real logins."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

import bcrypt
import psycopg
import pytest

from maim_db import (
    AuthenticationError,
    InputError,
    IsolationError,
    ScopeError,
    aconnect,
    connect,
)
from maim_db.control import activity, config, keys, plugins, tenancy
from maim_db.control.config import document
from maim_db.tables import Message, User
from tests.databases import TestDB, World
from tests.samples import message

MODULES = [tenancy, keys, activity, plugins, document]


# -- both flavours ---------------------------------------------------------------------------

@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_every_function_has_its_async_twin_in_the_same_module(module: ModuleType) -> None:
    sync = {n: f for n, f in vars(module).items() if inspect.isfunction(f)
            and not n.startswith("_") and f.__module__ == module.__name__}
    twins = {n: f for n, f in vars(module).items() if inspect.iscoroutinefunction(f)
             and not n.startswith("_")}
    assert sync and twins
    for name, function in sync.items():
        if "db" not in inspect.signature(function).parameters and name not in (
                "resolve", "check_login"):
            continue  # pure helpers (new_secret, hash_secret) need no twin
        twin = twins.get("a" + name)
        assert twin is not None, f"{module.__name__}.{name} has no async twin"
        params = list(inspect.signature(function).parameters)
        assert list(inspect.signature(twin).parameters) == params, name


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_the_async_control_plane_end_to_end(db: TestDB, world: World) -> None:
    """A tenant, an agent, a key, a plugin setting, a touch, the configuration: all through
    AsyncDatabase, as the admin and app logins."""

    async def main() -> None:
        async with aconnect(db.dsn("admin"), admin=True) as adm:
            user = await tenancy.acreate_user(adm, "async-owner", email="a@example.org")
            tenant = await tenancy.acreate_tenant(adm, "async tenant", owner_id=user.id)
            agent = await tenancy.acreate_agent(adm, "async bot", tenant_id=tenant.id)
            issued = await keys.aissue(adm, agent_id=agent.id, name="k",
                                       permissions=["chat", "config_write"])
            await plugins.aconfigure(adm, tenant_id=tenant.id, plugin_name="emoji",
                                     enabled=True)
            page = await tenancy.alist_agents(adm, tenant_id=tenant.id)
            assert [a.id for a in page.items] == [agent.id] and page.total == 1
            assert isinstance(page, tenancy.Page)  # one Page class for both flavours
        resolved = await keys.aresolve(issued.secret, db.dsn("app"))
        assert resolved.agent_id == agent.id and isinstance(resolved, keys.ResolvedKey)
        async with aconnect(db.dsn("app"), agent_id=agent.id) as app:
            state = await activity.atouch(app, ttl_seconds=60)
            assert state.agent_id == agent.id
            assert [s.plugin_name for s in await plugins.aeffective(app)] == ["emoji"]
            doc = await config.aupdate(app, {"persona": {"personality": "calm"}})
            assert doc["persona"]["personality"] == "calm"
        async with aconnect(db.dsn("plugin"), api_key=issued.secret) as key:
            assert (await config.aread(key))["persona"]["personality"] == "calm"
        async with aconnect(db.dsn("admin"), admin=True) as adm:
            gone = await tenancy.adelete_tenant(adm, tenant.id)
            assert gone["agents"] == 1

    _run(main())


# -- pages -----------------------------------------------------------------------------------

def _messages(db: TestDB, agent: str, n: int) -> None:
    with connect(db.dsn("app"), agent_id=agent) as app:
        app.insert_many(message(i) for i in range(n))


def test_find_pages_by_offset_and_by_keyset(db: TestDB, world: World) -> None:
    a1 = world.agent_id("A1")
    _messages(db, a1, 7)
    with connect(db.dsn("app"), agent_id=a1) as app:
        everything = app.find(Message, order_by="time")
        assert app.find(Message, order_by="time", limit=3, offset=3) == everything[3:6]
        seen, after = [], None
        while page := app.find(Message, order_by="time", limit=3, after=after):
            seen.extend(page)
            after = page[-1]
        assert seen == everything
        # descending, and mixed directions (the key, appended, follows the last one)
        down = app.find(Message, order_by="-time")
        assert app.find(Message, order_by="-time", limit=2, after=down[1]) == down[2:4]
        mixed = app.find(Message, order_by=["chat_id", "-time"])
        assert app.find(Message, order_by=["chat_id", "-time"], after=mixed[2]) == mixed[3:]
        # a mapping of the ordered columns, the key included, works as well as a row
        row = everything[4]
        assert app.find(Message, order_by="time", after={"time": row.time, "id": row.id}) == \
            everything[5:]


def test_afind_pages_too(db: TestDB, world: World) -> None:
    a1 = world.agent_id("A1")
    _messages(db, a1, 5)

    async def main() -> tuple[list[Message], list[Message], list[Message]]:
        async with aconnect(db.dsn("app"), agent_id=a1) as app:
            everything = await app.find(Message, order_by="time")
            by_offset = await app.find(Message, order_by="time", limit=2, offset=2)
            by_key = await app.find(Message, order_by="time", limit=2, after=everything[1])
            return everything, by_offset, by_key

    everything, by_offset, by_key = _run(main())
    assert by_offset == everything[2:4] == by_key


@pytest.mark.parametrize(("kw", "message_"), [
    ({"offset": -1}, "offset must be a non-negative integer"),
    ({"offset": "2"}, "offset must be a non-negative integer"),
    ({"offset": 1, "after": {"time": 1.0}}, "offset= or after=, not both"),
    ({"after": {"time": 1.0}}, r"missing \['id'\]"),
    ({"after": {"time": None, "id": "x"}}, "cannot seek past NULL"),
    ({"after": 5}, "after="),
])
def test_bad_pages_are_input_errors(db: TestDB, world: World, kw: dict[str, Any],
                                    message_: str) -> None:
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app, \
            pytest.raises(InputError, match=message_):
        app.find(Message, order_by="time", **kw)


def test_tenancy_listings_page_by_offset(db: TestDB, world: World) -> None:
    with connect(db.dsn("admin"), admin=True) as adm:
        every = tenancy.list_agents(adm).items
        assert tenancy.list_agents(adm, limit=1, offset=1).items == every[1:2]


# -- reset -----------------------------------------------------------------------------------

def test_reset_puts_the_configuration_back_to_the_defaults(db: TestDB, world: World) -> None:
    a1, a2 = world.agent_id("A1"), world.agent_id("A2")
    with connect(db.dsn("app"), agent_id=a1) as app:
        fresh = config.read(app)
    for agent in (a1, a2):
        with connect(db.dsn("app"), agent_id=agent) as app:
            config.update(app, {"persona": {"personality": "grumpy"},
                                "config_overrides": {"chat": {"talk_value": 0.25}, "model": {
                                    "models": [{"name": "m", "model_identifier": "x",
                                                "api_provider": "p"}],
                                    "api_providers": [{"name": "p", "base_url": None,
                                                       "api_key": None}]}}})
    with connect(db.dsn("app"), agent_id=a1) as app:
        assert config.reset(app) == fresh
        assert config.read(app) == fresh
    with connect(db.dsn("app"), agent_id=a2) as app:  # another agent's stays
        assert config.read(app)["persona"]["personality"] == "grumpy"
    with connect(db.dsn("admin"), admin=True) as adm:  # admin names the agent
        assert config.reset(adm, a2) == fresh


def test_reset_needs_write_rights(db: TestDB, world: World) -> None:
    a1 = world.agent_id("A1")
    with connect(db.dsn("app"), agent_id=a1) as app:
        config.update(app, {"persona": {"personality": "kept"}})
    with pytest.raises(IsolationError), \
            connect(db.dsn("tenant"), tenant_id=world.tenant_id("T1")) as ten:
        document.reset(ten, a1)
    with connect(db.dsn("admin"), admin=True) as adm:
        secret = keys.issue(adm, agent_id=a1, name="read only",
                            permissions=["config_read"]).secret
    with pytest.raises(AuthenticationError, match="config_write"), \
            connect(db.dsn("plugin"), api_key=secret) as key:
        config.reset(key)
    with pytest.raises(ScopeError), connect(db.dsn("app"), agent_id=a1) as app:
        config.reset(app, world.agent_id("A2"))
    with connect(db.dsn("app"), agent_id=a1) as app:
        assert config.read(app)["persona"]["personality"] == "kept"


# -- the web back end's login check ----------------------------------------------------------

def _hasher(password: str) -> Callable[[str], str]:
    """What MaimWebBackend's security.verify_password does, around the stored setting."""
    return lambda setting: bcrypt.hashpw(password.encode(), setting.encode()).decode()


def _with_password(db: TestDB, world: World, user: str, password: str) -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    with connect(db.dsn("admin"), admin=True) as adm:
        tenancy.set_password_hash(adm, world.users[user].id, hashed)
    return world.users[user].username


def test_a_login_is_checked_as_the_tenant_login(db: TestDB, world: World) -> None:
    name = _with_password(db, world, "U1", "s3cret")
    user = tenancy.check_login(name, _hasher("s3cret"), db.dsn("tenant"))
    assert user.id == world.users["U1"].id and not hasattr(user, "hashed_password")
    for username, password in ((name, "wrong"), ("nobody", "s3cret"),
                               (world.users["U2"].username, "x")):  # U2 has no bcrypt hash
        with pytest.raises(AuthenticationError, match=r"^incorrect username or password$"):
            tenancy.check_login(username, _hasher(password), db.dsn("tenant"))


def test_the_async_login_check(db: TestDB, world: World) -> None:
    name = _with_password(db, world, "U2", "pw")
    user = _run(tenancy.acheck_login(name, _hasher("pw"), db.dsn("tenant")))
    assert user.username == name


def test_an_inactive_user_with_the_right_password_is_told_so(db: TestDB, world: World) -> None:
    name = _with_password(db, world, "U1", "pw")
    with connect(db.dsn("admin"), admin=True) as adm:
        adm.update(User, where={"id": world.users["U1"].id}, set={"is_active": False})
    with pytest.raises(AuthenticationError, match="inactive"):
        tenancy.check_login(name, _hasher("pw"), db.dsn("tenant"))
    with pytest.raises(AuthenticationError, match="incorrect"):
        tenancy.check_login(name, _hasher("nope"), db.dsn("tenant"))


def test_an_unknown_user_costs_a_hashing_too(db: TestDB, world: World) -> None:
    settings: list[str] = []

    def hasher(setting: str) -> str:
        settings.append(setting)
        return bcrypt.hashpw(b"x", setting.encode()).decode()

    with pytest.raises(AuthenticationError):
        tenancy.check_login("nobody", hasher, db.dsn("tenant"))
    assert settings == [tenancy.DECOY_SETTING]


def test_the_tenant_login_gets_no_hash_by_any_door(db: TestDB, world: World) -> None:
    _with_password(db, world, "U1", "pw")
    with psycopg.connect(db.dsn("tenant")) as conn:
        conn.execute("set role maim_tenant")
        setting = conn.execute("select maim.login_setting(%s)",
                               [world.users["U1"].username]).fetchone()
        assert setting is not None and len(setting[0]) == 29  # salt and cost, no hash
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select hashed_password from users")


@pytest.mark.parametrize("kind", ["app", "plugin", "admin"])
def test_other_logins_cannot_check_logins(db: TestDB, world: World, kind: str) -> None:
    name = _with_password(db, world, "U1", "pw")
    with psycopg.connect(db.dsn(kind)) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("select maim.login_setting(%s)", [name])


@pytest.mark.parametrize("bad", ["!", "plain", "$2b$12$short", None])
def test_only_a_bcrypt_hash_is_stored(db: TestDB, world: World, bad: Any) -> None:
    with pytest.raises(InputError, match="bcrypt"), connect(db.dsn("admin"), admin=True) as adm:
        tenancy.set_password_hash(adm, world.users["U1"].id, bad)


def test_the_async_twins_share_the_agent_listing(db: TestDB, world: World) -> None:
    async def main() -> list[str]:
        async with aconnect(db.dsn("admin"), admin=True) as adm:
            return [a.id for a in (await tenancy.alist_agents(adm, limit=2, offset=1)).items]

    with connect(db.dsn("admin"), admin=True) as adm:
        expected = [a.id for a in tenancy.list_agents(adm).items][1:3]
    assert _run(main()) == expected
