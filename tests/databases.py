"""The test databases and the world the isolation tests start from. ``conftest.py`` turns
them into fixtures; tests import the types from here, never from ``conftest``."""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from maim_db import connect, ids
from maim_db.control import keys
from maim_db.tables import Agent, AgentActiveState, ApiKey, PluginSetting, Tenant, User

PASSWORD = "maim-test-only"
LOGINS = {"app": ("maim_test_app", "maim_app"), "tenant": ("maim_test_tenant", "maim_tenant"),
          "admin": ("maim_test_admin", "maim_admin"), "plugin": ("maim_test_plugin", "maim_plugin")}
_counter = itertools.count()


def with_db(dsn: str, dbname: str, **overrides: Any) -> str:
    params = {k: v for k, v in conninfo_to_dict(dsn).items() if v is not None}
    params.update(dbname=dbname, **overrides)
    return make_conninfo(**params)


def make_logins(conn: psycopg.Connection[Any]) -> None:
    """The test logins, one per scope role, as top-level statements (so a Citus coordinator
    propagates them to its workers)."""
    for login, role in LOGINS.values():
        exists = conn.execute("select 1 from pg_roles where rolname = %s", [login]).fetchone()
        # a login left on a reused server keeps nothing that would bypass RLS
        conn.execute(sql.SQL("{} role {} login password {} nosuperuser nobypassrls "
                             "nocreaterole nocreatedb").format(
            sql.SQL("alter" if exists else "create"), sql.Identifier(login),
            sql.Literal(PASSWORD)))
        conn.execute(sql.SQL("grant {} to {}").format(sql.Identifier(role),
                                                      sql.Identifier(login)))
    unsafe = conn.execute("select rolname from pg_roles where rolname = any(%s) "
                          "and (rolsuper or rolbypassrls)",
                          [[login for login, _ in LOGINS.values()]]).fetchall()
    assert not unsafe, f"test logins must not bypass RLS: {unsafe}"


@dataclass
class Server:
    superuser: str  # database "postgres"
    label: str

    def admin_conn(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.superuser, autocommit=True)

    def create_database(self, template: str | None = None) -> str:
        name = f"maim_t{os.getpid()}_{next(_counter)}"
        query = sql.SQL("create database {}").format(sql.Identifier(name))
        with self.admin_conn() as conn:
            if template:
                query = sql.SQL("{} template {}").format(query, sql.Identifier(template))
                if conn.info.server_version >= 150000:
                    # a small template: copying its files beats writing every page to the
                    # WAL (15's default), several times over on a test server without fsync
                    query = sql.SQL("{} strategy file_copy").format(query)
            conn.execute(query)
        return name

    def drop_database(self, name: str) -> None:
        with self.admin_conn() as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(
                sql.Identifier(name)))


@dataclass
class TestDB:
    """One migrated database; ``dsn(kind)`` connects as the login role for that scope."""

    server: Server
    name: str

    __test__ = False

    @property
    def superuser(self) -> str:
        return with_db(self.server.superuser, self.name)

    def dsn(self, kind: str) -> str:
        login, _ = LOGINS[kind]
        return with_db(self.server.superuser, self.name, user=login, password=PASSWORD)

    def bounced(self, kind: str, bouncer: tuple[str, int]) -> str:
        """Like :meth:`dsn`, through PgBouncer."""
        login, _ = LOGINS[kind]
        return make_conninfo(host=bouncer[0], port=bouncer[1], dbname=self.name, user=login,
                             password=PASSWORD)


@dataclass
class World:
    """Two tenants: T1 (agents A1, A2, owner U1) and T2 (agent B1, owner U2), each agent with
    an activity row, a key and plugin settings; T1 also has a tenant-wide plugin default."""

    users: dict[str, User]
    tenants: dict[str, Tenant]
    agents: dict[str, Agent]
    keys: dict[str, ApiKey]
    states: dict[str, AgentActiveState]
    plugins: dict[str, PluginSetting]

    def agent_id(self, name: str) -> str:
        return self.agents[name].id

    def tenant_id(self, name: str) -> str:
        return self.tenants[name].id


def build_world(db: TestDB, tag: str = "") -> World:
    """Two tenants, three agents and their rows, written as the admin and app logins;
    ``tag`` ends the usernames (unique server-wide) where worlds share a database."""
    users: dict[str, User] = {}
    tenants: dict[str, Tenant] = {}
    agents: dict[str, Agent] = {}
    keys: dict[str, ApiKey] = {}
    plugins: dict[str, PluginSetting] = {}
    with connect(db.dsn("admin"), admin=True) as adm:
        for u in ("U1", "U2"):
            users[u] = adm.insert(User(id=ids.new_user_id(), username=f"user-{u}{tag}",
                                       hashed_password="x"))
        for t, owner in (("T1", "U1"), ("T2", "U2")):
            tenants[t] = adm.insert(Tenant(id=ids.new_tenant_id(), tenant_name=f"tenant {t}",
                                           owner_id=users[owner].id))
        for a, t in (("A1", "T1"), ("A2", "T1"), ("B1", "T2")):
            agents[a] = adm.insert(Agent(id=ids.new_agent_id(), tenant_id=tenants[t].id,
                                         name=f"bot {a}"))
            keys[a] = adm.insert(ApiKey(id=ids.new_key_id(), tenant_id=tenants[t].id,
                                        agent_id=agents[a].id, name=f"key {a}",
                                        key_hash=os.urandom(32), key_prefix="mmc_abcd"))
            plugins[a] = adm.insert(PluginSetting(tenant_id=tenants[t].id,
                                                  agent_id=agents[a].id, plugin_name="emoji"))
        plugins["T1"] = adm.insert(PluginSetting(tenant_id=tenants["T1"].id,
                                                 plugin_name="emoji", enabled=True))
    states: dict[str, AgentActiveState] = {}
    for a, agent in agents.items():
        with connect(db.dsn("app"), agent_id=agent.id) as app:
            states[a] = app.insert(AgentActiveState())
    return World(users, tenants, agents, keys, states, plugins)


def issue_key(db: TestDB, world: World, agent: str) -> str:
    """A fresh API key of ``agent`` (a world's name, "A1"), named ``plugin A1``, as the control
    plane issues it; its secret."""
    with connect(db.dsn("admin"), admin=True) as adm:
        return keys.issue(adm, agent_id=world.agent_id(agent), name=f"plugin {agent}",
                          permissions=["chat"]).secret


@contextmanager
def plugin_login(db: TestDB) -> Iterator[str]:
    """A plugin login of a test's own (a DSN for it), dropped afterwards: for tests where the
    login changes its own defaults or two agents' plugins share it."""
    name = f"maim_t_plugin_{secrets.token_hex(4)}"
    with psycopg.connect(db.server.superuser, autocommit=True) as su:
        su.execute(sql.SQL("create role {} login password {} in role maim_plugin").format(
            sql.Identifier(name), sql.Literal(PASSWORD)))
    try:
        yield with_db(db.server.superuser, db.name, user=name, password=PASSWORD)
    finally:
        with psycopg.connect(db.server.superuser, autocommit=True) as su:
            su.execute(sql.SQL("drop owned by {}").format(sql.Identifier(name)))
            su.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))


@contextmanager
def lenient_schema(db: TestDB, *types: tuple[str, str]) -> Iterator[str]:
    """A schema of a superuser's holding a `=` that says yes for each pair of ``types``, its
    name (unique: the Citus suite shares one database), dropped afterwards. On a session's
    search_path ahead of pg_catalog it stands in for every bare `=` the session parses."""
    name = f"lenient_{secrets.token_hex(4)}"
    with psycopg.connect(db.superuser, autocommit=True) as su:
        su.execute(sql.SQL("create schema {}").format(sql.Identifier(name)))
        for left, right in types:
            su.execute(sql.SQL("create function {}.yes({}, {}) returns boolean language sql"
                               " immutable as 'select true'").format(
                sql.Identifier(name), sql.SQL(left), sql.SQL(right)))
            su.execute(sql.SQL("create operator {}.= (leftarg = {}, rightarg = {},"
                               " function = {}.yes)").format(
                sql.Identifier(name), sql.SQL(left), sql.SQL(right), sql.Identifier(name)))
        su.execute(sql.SQL("grant usage on schema {} to public").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(db.superuser, autocommit=True) as su:
            su.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(name)))
