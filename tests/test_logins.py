"""A production install on a server the operator runs (issue 31, item 5): a CREATEROLE database
owner migrates and makes one login per service with `maimdb login`; each login then does its
job, and a login used for a scope it lacks the role for is told so as a missing grant, not as
an isolation violation."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from maim_db import IsolationError, MissingRoleError, connect
from maim_db.control import activity, keys
from maim_db.tables import Agent, AgentActiveState
from tests.cli import maimdb, one_line_error
from tests.databases import LOGINS, Server, TestDB, World, with_db

pytestmark = pytest.mark.fresh_db  # logins and grants are cluster-wide state

PASSWORD = "correct horse battery staple"


# -- a missing membership is a missing grant ------------------------------------------------


@pytest.mark.parametrize(("kind", "scope", "role"), [
    ("tenant", {"admin": True}, "maim_admin"),
    ("plugin", {"agent_id": "agent_000000000000"}, "maim_app"),
    ("app", {"tenant_id": "tenant_000000000000"}, "maim_tenant"),
])
def test_a_login_without_the_role_is_told_it_lacks_the_grant(db: TestDB, kind: str,
                                                              scope: dict[str, Any],
                                                              role: str) -> None:
    with pytest.raises(MissingRoleError) as caught, connect(db.dsn(kind), **scope) as conn:
        conn.execute("select 1")
    text = str(caught.value)
    assert f'login "{LOGINS[kind][0]}" is not in {role}' in text, text
    assert "docs/operations.md" in text and "isolation violation" not in text
    assert (caught.value.login, caught.value.role) == (LOGINS[kind][0], role)
    # code that caught the refusal as IsolationError still does: the scope was refused
    assert isinstance(caught.value, IsolationError)


def test_the_cli_says_the_grant_is_missing_in_one_line(db: TestDB) -> None:
    line = one_line_error(maimdb("tenant", "create", "prod", dsn=db.dsn("tenant")))
    assert f'login "{LOGINS["tenant"][0]}" is not in maim_admin' in line, line
    assert "isolation" not in line and "docs/operations.md" in line


def test_a_refusal_by_the_policies_is_still_an_isolation_violation(db: TestDB,
                                                                    world: World) -> None:
    with pytest.raises(IsolationError, match="isolation violation") as caught, \
            connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        app.execute("insert into agent_active_states (agent_id, tenant_id) values (%s, %s)",
                    [world.agent_id("B1"), world.tenant_id("T2")])
    assert not isinstance(caught.value, MissingRoleError)


# -- `maimdb db psql --as plugin` -----------------------------------------------------------


def test_psql_as_plugin_opens_only_its_keys_agent(db: TestDB, world: World) -> None:
    a1 = world.agent_id("A1")
    with connect(db.dsn("admin"), admin=True) as adm:
        secret = keys.issue(adm, agent_id=a1, name="psql", permissions=["chat"]).secret
    session = maimdb("db", "psql", "--as", "plugin", "-X", "-v", "ON_ERROR_STOP=1",
                     dsn=db.dsn("plugin"), stdin=(
                         "BEGIN;\n"
                         f"SELECT maim.open_key_scope('{secret}');\n"
                         "SELECT 'seen:' || id FROM agents;\n"
                         "SELECT 'as:' || current_user;\n"
                         "COMMIT;\n"))
    assert session.returncode == 0, session.stderr
    assert re.findall(r"seen:(\S+)", session.stdout) == [a1]
    assert "as:maim_plugin" in session.stdout
    refused = maimdb("db", "psql", "--as", "plugin", "-X", dsn=db.dsn("plugin"),
                     stdin=f"BEGIN;\nSET LOCAL maim.agent_id = '{a1}';\n"
                           "SELECT 'seen:' || id FROM agents;\nCOMMIT;\n")
    assert "seen:" not in refused.stdout and "not proven" in refused.stderr


# -- the walkthrough: docs/operations.md, "A production install" ----------------------------


@dataclass
class Migrator:
    """A non-superuser CREATEROLE role that owns the database, as docs/operations.md sets up."""

    server: Server
    name: str  # the role and its database
    prefix: str  # for the logins it makes: unique per run, the server is shared

    def dsn(self, user: str | None = None) -> str:
        return with_db(self.server.superuser, self.name, user=user or self.name,
                       password=PASSWORD)


def _superuser(server: Server, name: str) -> psycopg.Connection[Any]:
    return psycopg.connect(with_db(server.superuser, name), autocommit=True)


@pytest.fixture
def migrator(server: Server, template: str) -> Iterator[Migrator]:
    """Made after the template's migrate, so the maim roles exist and were made by another
    role: the harder of the two set-ups docs/operations.md describes."""
    name = f"maim_m{uuid.uuid4().hex[:12]}"
    role = sql.Identifier(name)
    with server.admin_conn() as su:
        # docs/operations.md, step 1 (a superuser, once)
        su.execute(sql.SQL("create role {} login createrole password {}").format(
            role, sql.Literal(PASSWORD)))
        su.execute(sql.SQL("create database {} owner {}").format(role, role))
        if su.info.server_version >= 160000:
            # the maim roles already exist on this server (the template's migrate made them):
            # the documented grants for a migrator that did not create them
            su.execute(sql.SQL("grant maim_owner to {}").format(role))
            su.execute(sql.SQL("grant maim_admin, maim_app, maim_tenant, maim_plugin to {} "
                               "with admin option, inherit false, set false").format(role))
    try:
        yield Migrator(server, name, prefix=name)
    finally:
        with server.admin_conn() as su:
            su.execute(sql.SQL("drop database if exists {} with (force)").format(role))
            for (login,) in su.execute("select rolname from pg_roles where rolname like %s",
                                       [name + "\\_%"]).fetchall():
                su.execute(sql.SQL("drop role {}").format(sql.Identifier(login)))
            su.execute(sql.SQL("drop owned by {}").format(role))
            su.execute(sql.SQL("drop role {}").format(role))


def _json(result: Any) -> Any:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_the_production_walkthrough(migrator: Migrator) -> None:
    m = migrator
    assert maimdb("migrate", dsn=m.dsn()).returncode == 0
    # the migrator is not the control plane: the issue's first stumble, now a missing grant
    line = one_line_error(maimdb("tenant", "create", "prod", dsn=m.dsn()))
    assert f'login "{m.name}" is not in maim_admin' in line and "isolation" not in line

    logins = {kind: f"{m.prefix}_{kind}" for kind in ("admin", "app", "tenant", "plugin")}
    for kind, login in logins.items():
        made = maimdb("login", "create", login, "--as", kind, "--password-stdin", "--json",
                      dsn=m.dsn(), stdin=PASSWORD + "\n")
        assert PASSWORD not in made.stdout + made.stderr
        assert _json(made) == {"login": login, "role": f"maim_{kind}", "password": True,
                               "connection_limit": 10 if kind == "plugin" else None}
    listed = {row["login"]: row for row in _json(maimdb("login", "list", "--json",
                                                         dsn=m.dsn()))["items"]}
    for kind, login in logins.items():
        assert listed[login]["roles"] == [f"maim_{kind}"] and listed[login]["problems"] == []

    with _superuser(m.server, m.name) as su:  # nothing a login holds bypasses RLS
        rows = su.execute("select rolname, rolsuper, rolbypassrls, rolcreaterole, "
                          "rolcreatedb, rolpassword like 'SCRAM-SHA-256$%%' "
                          "from pg_authid where rolname = any(%s) order by 1",
                          [list(logins.values())]).fetchall()
    assert rows == sorted((login, False, False, False, False, True)
                          for login in logins.values())
    with _superuser(m.server, m.name) as su:  # a plugin cannot take every connection
        limits = dict(su.execute("select rolname, rolconnlimit from pg_roles "
                                 "where rolname = any(%s)", [list(logins.values())]).fetchall())
    assert limits == {login: 10 if kind == "plugin" else -1 for kind, login in logins.items()}

    # the control plane, as its login
    tenant = _json(maimdb("tenant", "create", "prod", "--json", dsn=m.dsn(logins["admin"])))
    agent = _json(maimdb("agent", "create", "bot", "--tenant", tenant["id"], "--json",
                         dsn=m.dsn(logins["admin"])))
    key = _json(maimdb("key", "create", "plugin", "--agent", agent["id"], "--json",
                       dsn=m.dsn(logins["admin"])))
    # the runtime: an agent block
    with connect(m.dsn(logins["app"]), agent_id=agent["id"]) as app:
        activity.touch(app, ttl_seconds=60)
    # the web back end: a tenant read
    with connect(m.dsn(logins["tenant"]), tenant_id=tenant["id"]) as web:
        assert [a.id for a in web.find(Agent)] == [agent["id"]]
        assert [s.agent_id for s in web.find(AgentActiveState)] == [agent["id"]]
    # a plugin: its key's scope, and nothing else
    with connect(m.dsn(logins["plugin"]), api_key=key["secret"]) as plugin:
        assert plugin.scalar("select maim.agent_id()") == agent["id"]
    with pytest.raises(MissingRoleError), \
            connect(m.dsn(logins["plugin"]), agent_id=agent["id"]) as plugin:
        plugin.execute("select 1")


def test_login_create_refuses_what_would_weaken_isolation(migrator: Migrator) -> None:
    m = migrator
    assert maimdb("migrate", dsn=m.dsn()).returncode == 0
    plugin, app = f"{m.prefix}_plugin", f"{m.prefix}_app"
    assert maimdb("login", "create", plugin, "--as", "plugin", dsn=m.dsn()).returncode == 0
    assert maimdb("login", "create", app, "--as", "app", dsn=m.dsn()).returncode == 0
    hostile = f'{m.prefix}_x"; drop role {m.name}; --'
    group = f"{m.prefix}_group"  # a login the plugin's login is a member of
    with _superuser(m.server, m.name) as su:
        su.execute(sql.SQL("create role {} login").format(sql.Identifier(group)))
        su.execute(sql.SQL("grant {} to {}").format(sql.Identifier(group),
                                                   sql.Identifier(plugin)))
    for args, says in [
        ((plugin, "--as", "app"), f'"{plugin}" already exists'),
        (("login", "grant", plugin, "--as", "app"), "already in maim_plugin"),
        (("login", "grant", app, "--as", "plugin"), "already in maim_app"),
        (("login", "grant", app, "--as", "admin"), "already in maim_app"),
        (("login", "grant", m.name, "--as", "admin"), "can become maim_owner"),
        (("login", "grant", group, "--as", "app"), "has members, which would gain maim_app"),
        (("maim_app", "--as", "admin"), "is a maim_db group role"),
        (("pg_monitor_x", "--as", "app"), "names starting with pg_ are reserved"),
        (("x" * 64, "--as", "app"), "63 bytes"),
        (("a\tb", "--as", "app"), "control characters"),
        ((f"{m.prefix}_y", "--as", "owner"), "--as must be one of admin, app, tenant, plugin"),
    ]:
        full = args if args[0] == "login" else ("login", "create", *args)
        result = maimdb(*full, dsn=m.dsn())
        if says.startswith("--as"):
            assert result.returncode == 2 and "owner" in result.stderr, result.stderr
            continue
        assert says in one_line_error(result), (full, result.stderr)
    # an identifier is an identifier: the quote stays in the name, nothing runs
    made = maimdb("login", "create", hostile, "--as", "tenant", "--json", dsn=m.dsn())
    assert _json(made)["login"] == hostile
    with _superuser(m.server, m.name) as su:
        assert su.execute("select 1 from pg_roles where rolname = %s", [m.name]).fetchone()
        assert su.execute("select pg_has_role(%s, 'maim_tenant', 'member'), "
                          "pg_has_role(%s, 'maim_app', 'member')",
                          [hostile, plugin]).fetchone() == (True, False)
    # what was made by hand is listed with what is wrong with it
    two = f"{m.prefix}_two"
    with _superuser(m.server, m.name) as su:
        su.execute(sql.SQL("create role {} login bypassrls in role maim_app, maim_tenant")
                   .format(sql.Identifier(two)))
    listed = {row["login"]: row for row in _json(maimdb("login", "list", "--json",
                                                         dsn=m.dsn()))["items"]}
    assert listed[two]["roles"] == ["maim_app", "maim_tenant"]
    assert [p.split(":")[0] for p in listed[two]["problems"]] == [
        "BYPASSRLS", "holds maim_app and maim_tenant"]
    assert listed[plugin]["problems"] == []
    assert (listed[m.name]["roles"], listed[m.name]["problems"]) == (["maim_owner"], [])
    # an empty password is refused, not set
    empty = maimdb("login", "create", f"{m.prefix}_z", "--as", "app", "--password-stdin",
                   dsn=m.dsn(), stdin="\n")
    assert "password is empty" in one_line_error(empty)
