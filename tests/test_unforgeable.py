"""Issue 10, as an attacker with a login: code that can run SQL cannot escalate to the owner,
forge an agent scope, read secret hashes, or pick up what an earlier borrower left behind.

Every test runs as the real login roles (tests/conftest.py: maim_test_app, _tenant, _admin,
_plugin); the superuser only sets the stage (a positive control, ANALYZE)."""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
import pytest
from psycopg import sql

from maim_db import (
    AsyncPool,
    ConfigurationError,
    DatabaseError,
    IsolationError,
    MaimDBError,
    Pool,
    ScopeError,
    aconnect,
    agent_scope,
    connect,
    job_scope,
    no_scope,
    scoped,
)
from maim_db.control import keys, plugins, tenancy
from maim_db.schema.audit import definers
from maim_db.tables import (
    Agent,
    ApiKey,
    ApiKeyInfo,
    Message,
    PersonInfo,
    PluginSetting,
    Tenant,
    User,
    UserProfile,
)
from tests.databases import (
    LOGINS,
    PASSWORD,
    TestDB,
    World,
    lenient_schema,
    plugin_login,
    with_db,
)
from tests.databases import issue_key as _key
from tests.samples import message

# -- helpers ---------------------------------------------------------------------------------


def _raw(db: TestDB, kind: str, **options: Any) -> psycopg.Connection[Any]:
    """A plain psycopg connection as a login: no wrapper, what a plugin or psql has."""
    login, _ = LOGINS[kind]
    dsn = with_db(db.server.superuser, db.name, user=login, password=PASSWORD, **options)
    return psycopg.connect(dsn, autocommit=True)


# -- 1. SECURITY DEFINER functions against pg_temp shadowing -------------------------------------

# Types a definer body might name, and the shadow each gets: a pg_temp domain over the real
# type whose CHECK runs the payload.
SHADOWED_TYPES = ("text", "boolean", "bool", "integer", "int", "int4", "bigint", "int8",
                  "bytea", "uuid", "timestamptz", "numeric", "name", "jsonb", "oid", "regclass",
                  "varchar")


def _arm(conn: psycopg.Connection[Any], relations: list[tuple[str, str]]) -> None:
    """Plant the payload: pg_temp.pwn() reports the role it runs as; every type above and
    every relation of public and maim gets a pg_temp stand-in that calls it."""
    conn.execute("""create function pg_temp.pwn(v anyelement) returns boolean
                    language plpgsql as $$
                    begin
                        raise warning 'pwn ran as %', current_user;
                        return true;
                    end $$""")
    for name in SHADOWED_TYPES:
        real = conn.execute("select typname::text from pg_type where oid = %s::regtype",
                            [name]).fetchone()
        assert real is not None
        conn.execute(sql.SQL("create domain pg_temp.{} as pg_catalog.{} check "
                             "(pg_temp.pwn(value))").format(sql.Identifier(name),
                                                            sql.Identifier(real[0])))
    for schema, rel in relations:
        conn.execute(sql.SQL("create temp view {} as select * from {}.{} where "
                             "pg_temp.pwn(1)").format(sql.Identifier(rel),
                                                      sql.Identifier(schema),
                                                      sql.Identifier(rel)))


def _hijacks(conn: psycopg.Connection[Any], call: sql.Composable,
             params: list[Any]) -> set[str]:
    """Run ``call`` on the armed connection; the roles other than the caller that the payload
    ran as."""
    ran_as: list[str] = []

    def handler(d: psycopg.errors.Diagnostic) -> None:
        ran_as.append((d.message_primary or "").removeprefix("pwn ran as "))

    conn.add_notice_handler(handler)
    try:
        with conn.transaction():
            conn.execute("savepoint s")
            # refused is fine; what matters is whose rights the payload got
            with suppress(psycopg.Error):
                conn.execute(call, params)
            conn.execute("rollback to savepoint s")
    finally:
        conn.remove_notice_handler(handler)
    me = conn.execute("select current_user").fetchone()
    assert me is not None
    return {role for role in ran_as if role != me[0]}


def _relations(db: TestDB) -> list[tuple[str, str]]:
    with psycopg.connect(db.superuser) as conn:
        return [(s, r) for s, r in conn.execute(
            "select n.nspname::text, c.relname::text from pg_class c "
            "join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname in ('public', 'maim') and c.relkind in ('r', 'v', 'p') "
            "order by 1, 2")]


def _call(function: str) -> tuple[sql.Composable, list[Any]]:
    """``select f($1, …)`` for a regprocedure signature, each argument a plausible value."""
    name, _, args = function.partition("(")
    types = [t.strip() for t in args.rstrip(")").split(",") if t.strip()]
    placeholders = sql.SQL(", ").join(
        sql.SQL("%s::pg_catalog.{}").format(sql.SQL(t)) for t in types)
    schema, _, fname = name.partition(".")
    return (sql.SQL("select * from {}.{}({})").format(
        sql.Identifier(schema), sql.Identifier(fname), placeholders), ["x"] * len(types))


@pytest.mark.parametrize("kind", sorted(LOGINS))
def test_no_definer_function_runs_a_callers_pg_temp_object_as_its_owner(
        db: TestDB, world: World, kind: str) -> None:
    relations = _relations(db)
    with psycopg.connect(db.superuser) as su:
        found = definers(su)
    assert {d.function for d in found} >= {
        "maim.open_agent_scope(text)", "maim.open_key_scope(text)",
        "maim.resolve_api_key(text)", "maim.agent_proven(text)"}
    secret = _key(db, world, "A1")
    with _raw(db, kind) as conn:
        _arm(conn, relations)
        for definer in found:
            query, params = _call(definer.function)
            for value in (world.agent_id("A1"), secret, "x"):
                assert _hijacks(conn, query, [value] * len(params)) == set(), definer.function


def test_definers_are_pinned_and_executable_only_by_the_roles_that_need_them(
        db: TestDB) -> None:
    with psycopg.connect(db.superuser) as su:
        found = {d.function: (d.search_path, d.executors, d.pinned) for d in definers(su)}
    pinned = "pg_catalog, pg_temp"
    assert found == {
        "maim.open_agent_scope(text)": (pinned, ("maim_app",), True),
        "maim.open_key_scope(text)": (pinned, ("maim_app", "maim_plugin"), True),
        "maim.resolve_api_key(text)": (pinned, ("maim_admin", "maim_app"), True),
        "maim.agent_proven(text)": (pinned, ("maim_admin", "maim_plugin", "maim_tenant"), True),
        "maim.login_setting(text)": (pinned, ("maim_tenant",), True),
        "maim.check_login(text,text)": (pinned, ("maim_tenant",), True),
    }


@pytest.mark.fresh_db  # adds a definer to maim
def test_the_payload_is_caught_when_a_definer_is_not_pinned(db: TestDB, world: World) -> None:
    """The check above can fail: the same attack on a definer pinned the old way (an empty
    search_path, as open_agent_scope was) runs the payload as maim_owner."""
    with psycopg.connect(db.superuser, autocommit=True) as su:
        su.execute("""create function maim.old_style(agent text) returns text
                      language plpgsql security definer set search_path = ''
                      as $$ declare v text := agent; begin return v; end $$""")
        su.execute("alter function maim.old_style(text) owner to maim_owner")
        su.execute("grant execute on function maim.old_style(text) to maim_app")
    with _raw(db, "app") as conn:
        _arm(conn, [])
        assert _hijacks(conn, sql.SQL("select maim.old_style(%s)"),
                        [world.agent_id("A1")]) == {"maim_owner"}


# -- 2. scopes a session cannot forge --------------------------------------------------------

def test_a_plugin_with_a_key_sees_its_agent_and_nothing_else(db: TestDB, world: World) -> None:
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    with connect(db.dsn("admin"), admin=True) as adm:
        adm.insert(Message(**{**message(2).given(), "agent_id": b1}))
    secret = _key(db, world, "A1")
    with connect(db.dsn("plugin"), api_key=secret) as p:
        p.insert(message(1))
        assert [a.id for a in p.find(Agent)] == [a1]
        assert {m.agent_id for m in p.fetch(Message, "select * from messages")} == {a1}
        assert p.scalar("select current_user") == "maim_plugin"
        # its tenant and plugin settings (on Citus, reference tables whose policies look up
        # the agent's tenant: it is never taken from a setting in a key scope)
        assert [t.id for t in p.find(Tenant)] == [world.tenant_id("T1")]
        assert {s.id for s in p.find(PluginSetting)} == {world.plugins["A1"].id,
                                                         world.plugins["T1"].id}
        assert [s.id for s in plugins.effective(p)] == [world.plugins["A1"].id]  # its own
    with connect(db.dsn("plugin"), api_key=secret) as p:
        assert p.scalar("select count(*) from messages") == 1


FORGERIES = [
    # the setting itself, each way a session can write it
    "select set_config('maim.agent_id', {b1}, true)",
    "select set_config('maim.agent_id', {b1}, false)",
    "set local maim.agent_id = {b1}",
    "set maim.agent_id = {b1}",
    # a proof made up, or one for another agent's name
    "select set_config('maim.agent_proof', repeat('0', 64), true), "
    "set_config('maim.agent_id', {b1}, true)",
    # the trusted door and the trusted roles
    "select maim.open_agent_scope({b1})",
    "set role maim_app",
    "set role maim_tenant",
    "set role maim_admin",
    "set role maim_owner",
    "select maim.resolve_api_key('mmc_x')",
]


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_plugin_cannot_forge_another_agents_scope(db: TestDB, world: World,
                                                    forgery: str) -> None:
    """Inside its key's block, whatever the plugin runs, the next read shows agent A or
    raises — never B."""
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    secret = _key(db, world, "A1")
    seen: list[str] = []
    with pytest.raises(IsolationError), connect(db.dsn("plugin"), api_key=secret) as p:
        p.execute("select 1")
        p.execute(sql.SQL(forgery).format(b1=sql.Literal(b1)))  # type: ignore[arg-type]
        seen = [a.id for a in p.fetch(Agent, "select * from agents")]
    assert seen in ([], [a1])


def test_a_plugin_tenant_setting_and_reset_role_widen_nothing(db: TestDB, world: World) -> None:
    a1 = world.agent_id("A1")
    secret = _key(db, world, "A1")
    with connect(db.dsn("plugin"), api_key=secret) as p:
        p.execute("select set_config('maim.tenant_id', %s, true)", [world.tenant_id("T2")])
        assert [a.id for a in p.find(Agent)] == [a1]
        p.execute("reset role")  # back to the login, which holds only maim_plugin
        assert p.scalar("select current_user") == LOGINS["plugin"][0]
        assert [a.id for a in p.fetch(Agent, "select * from agents")] == [a1]
    with pytest.raises(IsolationError), connect(db.dsn("plugin"), api_key=secret) as p:
        p.execute("reset role")
        p.insert(Message(**{**message(1).given(), "agent_id": world.agent_id("B1")}))


@pytest.mark.parametrize("login", ["app", "tenant", "admin"])
def test_a_key_scope_on_a_trusted_login_is_refused(db: TestDB, world: World,
                                                   login: str) -> None:
    """On a login that can become a trusted role, RESET ROLE (or SET LOCAL ROLE maim_app)
    inside a key block leaves the key's agent: on the runtime's login it read and updated
    another tenant's rows. A key scope runs on a plugin login only, and says so before the
    block runs. (A tenant or admin login is not in maim_plugin at all.)"""
    secret = _key(db, world, "A1")
    with connect(db.dsn("admin"), admin=True) as adm:
        used = adm.scalar("select count(*) from api_key_usage")
    refused = (f"login {LOGINS[login][0]} can become a trusted role, so a block opened from an"
               " API key on it could leave the key's agent: open API key scopes on a plugin "
               "login" if login == "app" else
               f'login "{LOGINS[login][0]}" is not in maim_plugin')
    with pytest.raises(ConfigurationError, match=re.escape(refused)), \
            connect(db.dsn(login), api_key=secret) as p:
        p.execute("reset role")
        p.execute("update agents set name = 'taken' where id = %s", [world.agent_id("B1")])
    with Pool(db.dsn(login), min_size=1, max_size=1) as pool, \
            pytest.raises(ConfigurationError, match=re.escape(refused)):
        pool.fetch(Agent, "select * from agents", api_key=secret)
    with connect(db.dsn("admin"), admin=True) as adm:
        assert adm.get(Agent, world.agent_id("B1")).name != "taken"
        assert adm.scalar("select count(*) from api_key_usage") == used  # nothing ran


@pytest.mark.parametrize("extra", ["grant maim_owner to {login}", "grant {group} to {login}",
                                   "alter role {login} createrole"])
def test_a_plugin_login_that_holds_anything_more_is_refused(db: TestDB, world: World,
                                                             extra: str) -> None:
    """Found in review: the check named only maim_app, maim_tenant and maim_admin. A plugin
    login that was also in maim_owner (SET ROLE maim_owner reads the proof secret), in a
    superuser group, or had CREATEROLE (grant itself maim_app) got its key scope."""
    secret = _key(db, world, "A1")
    tag = secrets.token_hex(4)
    login, group = f"maim_t_wide_{tag}", f"maim_t_group_{tag}"
    with psycopg.connect(db.server.superuser, autocommit=True) as su:
        su.execute(sql.SQL("create role {} superuser nologin").format(sql.Identifier(group)))
        su.execute(sql.SQL("create role {} login password {} in role maim_plugin").format(
            sql.Identifier(login), sql.Literal(PASSWORD)))
        su.execute(sql.SQL(extra).format(login=sql.Identifier(login),  # type: ignore[arg-type]
                                         group=sql.Identifier(group)))
    try:
        dsn = with_db(db.server.superuser, db.name, user=login, password=PASSWORD)
        with pytest.raises(ConfigurationError, match=f"login {login} can become a trusted "
                                                     "role"), \
                connect(dsn, api_key=secret) as p:
            p.execute("select 1")
    finally:
        with psycopg.connect(db.server.superuser, autocommit=True) as su:
            su.execute(sql.SQL("drop role {}, {}").format(sql.Identifier(login),
                                                         sql.Identifier(group)))


def test_a_proof_from_one_transaction_proves_nothing_in_the_next(db: TestDB,
                                                                 world: World) -> None:
    """psql as a plugin: the key opens A for one transaction; replaying the setting and the
    proof it wrote, in the next transaction or on another connection, is refused."""
    a1 = world.agent_id("A1")
    secret = _key(db, world, "A1")
    with _raw(db, "plugin") as conn, _raw(db, "plugin") as other:
        with conn.transaction():
            conn.execute("select maim.open_key_scope(%s)", [secret])
            proof = conn.execute("select current_setting('maim.agent_proof')").fetchone()
            assert conn.execute("select id from agents").fetchall() == [(a1,)]
        assert proof is not None and len(proof[0]) == 64
        for c in (conn, other):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not proven"), \
                    c.transaction():
                c.execute("select set_config('maim.agent_id', %s, true), "
                          "set_config('maim.agent_proof', %s, true)", [a1, proof[0]])
                c.execute("select id from agents")
        # the operator's path is not a plugin's: SET LOCAL alone raises too
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute(sql.SQL("set local maim.agent_id = {}").format(sql.Literal(a1)))
            conn.execute("select id from agents")


def test_a_proof_proves_nothing_in_the_next_transaction_of_the_same_message(
        db: TestDB, world: World) -> None:
    """Issue 32.7: transactions sent in one simple-query message share their start time
    (PostgreSQL takes it from the message), so a proof bound to pid and start alone was
    valid again in the next transaction of the same message. Carried over in a session
    setting of the plugin's own, it must prove nothing there."""
    a1 = world.agent_id("A1")
    secret = _key(db, world, "A1")
    with _raw(db, "plugin") as conn:
        # no parameters: psycopg sends the whole string as one simple-query message
        script = sql.SQL(
            "begin; select maim.open_key_scope({key}); "
            "select set_config('plugin.carried', current_setting('maim.agent_proof'), false); "
            "commit; "
            "begin; select set_config('maim.agent_id', {agent}, true), "
            "set_config('maim.agent_proof', current_setting('plugin.carried'), true); "
            "select id from agents; commit").format(key=sql.Literal(secret),
                                                    agent=sql.Literal(a1))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not proven"):
            conn.execute(script)


@pytest.mark.parametrize("scope", ["agent_id", "tenant_id", "admin"])
def test_a_plugin_login_opens_no_scope_but_a_keys(db: TestDB, world: World,
                                                  scope: str) -> None:
    value: Any = {"agent_id": world.agent_id("A1"), "tenant_id": world.tenant_id("T1"),
                  "admin": True}[scope]
    with pytest.raises(IsolationError), connect(db.dsn("plugin"), **{scope: value}) as p:
        p.execute("select 1")


def test_plugin_keys_work_through_every_entry_point(db: TestDB, world: World) -> None:
    a1 = world.agent_id("A1")
    secret = _key(db, world, "A1")
    with Pool(db.dsn("plugin"), min_size=1, max_size=1) as pool:
        assert [a.id for a in pool.fetch(Agent, "select * from agents", api_key=secret)] == [a1]
        with pool.connection(api_key=secret) as p:
            assert p.scalar("select maim.agent_id()") == a1

    async def run() -> list[str]:
        async with AsyncPool(db.dsn("plugin"), min_size=1, max_size=1) as apool, \
                apool.connection(api_key=secret) as p:
            first = [a.id for a in await p.find(Agent)]
        async with aconnect(db.dsn("plugin"), api_key=secret) as p:
            return first + [a.id for a in await p.find(Agent)]

    assert asyncio.run(run()) == [a1, a1]


def test_trusted_logins_keep_their_psql_paths(db: TestDB, world: World) -> None:
    a1, t1 = world.agent_id("A1"), world.tenant_id("T1")
    with _raw(db, "app") as conn, conn.transaction():
        conn.execute(sql.SQL("set local maim.agent_id = {}").format(sql.Literal(a1)))
        assert conn.execute("select id from agents").fetchall() == [(a1,)]
    with _raw(db, "tenant") as conn, conn.transaction():
        conn.execute(sql.SQL("set local maim.tenant_id = {}").format(sql.Literal(t1)))
        assert {r[0] for r in conn.execute("select id from agents")} == {
            a1, world.agent_id("A2")}


def test_the_wrapper_checks_suspension_whatever_was_set_before(db: TestDB,
                                                               world: World) -> None:
    a2 = world.agent_id("A2")
    with connect(db.dsn("admin"), admin=True) as adm:
        tenancy.set_agent_status(adm, a2, "suspended")
    with _raw(db, "app") as conn:
        conn.execute("select set_config('maim.agent_id', %s, false)", [a2])  # session level
        with pytest.raises(IsolationError, match="is suspended"), \
                scoped(conn, agent_id=a2) as app:
            app.find(Agent)


# -- 3. column privileges --------------------------------------------------------------------

def test_the_tenant_role_reads_no_secret_hash(db: TestDB, world: World) -> None:
    t1 = world.tenant_id("T1")
    for query in ("select hashed_password from users", "select key_hash from api_keys",
                  "select * from users", "select * from api_keys"):
        with pytest.raises(IsolationError), connect(db.dsn("tenant"), tenant_id=t1) as t:
            t.rows(query)
    for model in (User, ApiKey):
        with pytest.raises(IsolationError), connect(db.dsn("tenant"), tenant_id=t1) as t:
            t.find(model)
    with connect(db.dsn("tenant"), tenant_id=t1) as t:
        owner = t.find(UserProfile)
        listed = tenancy.list_keys(t).items
    assert [u.id for u in owner] == [world.users["U1"].id]
    assert not hasattr(owner[0], "hashed_password")
    assert {k.id for k in listed} == {world.keys["A1"].id, world.keys["A2"].id}
    assert all(isinstance(k, ApiKeyInfo) and not hasattr(k, "key_hash") for k in listed)


@pytest.mark.parametrize("table", ["users", "api_keys", "api_key_usage", "api_key_list"])
def test_a_plugin_has_no_access_to_users_or_keys(db: TestDB, world: World, table: str) -> None:
    secret = _key(db, world, "A1")
    with pytest.raises(IsolationError), connect(db.dsn("plugin"), api_key=secret) as p:
        p.rows(sql.SQL("select count(*) from {}").format(sql.Identifier(table)))


# -- 4. a connection is clean or reset before the next borrower --------------------------------

@contextmanager
def _one_connection(db: TestDB) -> Iterator[Pool]:
    with Pool(db.dsn("app"), min_size=1, max_size=1) as pool:
        yield pool


def test_listen_registrations_do_not_reach_the_next_borrower(db: TestDB, world: World) -> None:
    with _one_connection(db) as pool:
        with pool.connection(agent_id=world.agent_id("A1")) as a:
            a.execute("listen secrets")
        with pool.connection(agent_id=world.agent_id("B1")) as b:
            assert b.rows("select * from pg_listening_channels()") == []
            conn = b.connection
        with _raw(db, "app") as other:
            other.execute("notify secrets, 'for A only'")
        with pool.connection(agent_id=world.agent_id("B1")) as b:
            b.execute("select 1")
        assert [n.payload for n in conn.notifies(timeout=0.5, stop_after=1)] == []


def test_a_temporary_domain_does_not_reach_the_next_borrower(db: TestDB, world: World) -> None:
    """A pg_temp domain named uuid, refusing every value, would break every later insert."""
    with _one_connection(db) as pool:
        with pool.connection(agent_id=world.agent_id("A1")) as a:
            a.execute("create domain pg_temp.uuid as pg_catalog.uuid check (false)")
        with pool.connection(agent_id=world.agent_id("B1")) as b:
            assert b.scalar("select count(*) from pg_type "
                            "where typnamespace = pg_my_temp_schema()") == 0
            assert b.scalar("select 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid") is not None
            b.insert(message(1))


def test_a_session_search_path_does_not_reach_the_next_borrower(db: TestDB,
                                                                world: World) -> None:
    with _one_connection(db) as pool:
        with pool.connection(agent_id=world.agent_id("A1")) as a:
            a.execute("select set_config('search_path', 'maim', false)")
        with pool.connection(agent_id=world.agent_id("B1")) as b:
            assert b.scalar("show search_path") == "public, pg_temp"
            assert [x.id for x in b.fetch(Agent, "select * from agents")] == [
                world.agent_id("B1")]


def test_a_session_advisory_lock_does_not_reach_the_next_borrower(db: TestDB,
                                                                  world: World) -> None:
    with _one_connection(db) as pool, _raw(db, "app") as other:
        with pool.connection(agent_id=world.agent_id("A1")) as a:
            a.execute("select pg_advisory_lock(4242)")
        assert other.execute("select pg_try_advisory_lock(4242)").fetchone() == (False,)
        with pool.connection(agent_id=world.agent_id("B1")) as b:
            b.execute("select 1")
        assert other.execute("select pg_try_advisory_lock(4242)").fetchone() == (True,)


def test_a_cursor_with_hold_does_not_reach_the_next_borrower(db: TestDB, world: World) -> None:
    """A held cursor keeps the rows it read: the next borrower could FETCH A's messages."""
    with _one_connection(db) as pool:
        with pool.connection(agent_id=world.agent_id("A1")) as a:
            a.insert(message(1))
            a.execute("declare stolen cursor with hold for select * from messages")
        with pytest.raises(DatabaseError, match='cursor "stolen" does not exist'), \
                pool.connection(agent_id=world.agent_id("B1")) as b:
            b.rows("fetch all from stolen")


def test_a_large_object_descriptor_ends_with_its_block(db: TestDB, world: World) -> None:
    with _one_connection(db) as pool:
        with pool.connection(agent_id=world.agent_id("A1")) as a:
            oid = a.scalar("select lo_from_bytea(0, 'for A only')")
            fd = a.scalar("select lo_open(%s, 262144)", [oid])
        with pytest.raises(DatabaseError, match="invalid large-object descriptor"), \
                pool.connection(agent_id=world.agent_id("B1")) as b:
            b.scalar("select loread(%s, 100)", [fd])


# A prepared statement is session state too. A plugin that DEALLOCATEs one and PREPAREs its own
# SQL under the same name has the next borrower run that SQL in the borrower's scope: the
# statement that opens a key's scope hands over the key, a query hands over what it reads.
# The payload keeps the statement's behaviour (so the victim's block commits) and stashes the
# loot in a session setting, which the plugin reads in its next block.
HIJACKS = {
    "the key scope statement": ("%open_key_scope%",
                                " where pg_catalog.set_config('x.stolen', $1, false) > ''"),
    "a query": ("%from messages%",
                " where pg_catalog.set_config('x.stolen', (select string_agg("
                "processed_plain_text, ',') from messages), false) > ''"),
}


def _hijack(db: TestDB, world: World, plugin_dsn: str, target: str) -> None:
    """A plugin replaces a prepared statement; the next borrower must neither run it nor
    notice."""
    pattern, suffix = HIJACKS[target]
    a_key, b_key = _key(db, world, "A1"), _key(db, world, "B1")
    with connect(db.dsn("app"), agent_id=world.agent_id("B1")) as b:
        b.insert(message(1, text="B's secret message"))
    with Pool(plugin_dsn, min_size=1, max_size=1) as pool:
        for secret in [a_key, b_key] * 4:  # until whatever prepares statements has
            with pool.connection(api_key=secret) as p:
                p.fetch(Message, "select * from messages")
        with pool.connection(api_key=a_key) as p:
            found = p.rows("select name, statement, parameter_types::text[] "
                           "from pg_prepared_statements where statement like %s", [pattern])
            assert found, "nothing was prepared: the attack has no target"
            for name, statement, types in found:
                p.execute(sql.SQL("deallocate {}").format(sql.Identifier(name)))
                p.execute(sql.SQL("prepare {} {} as {}").format(
                    sql.Identifier(name),
                    sql.SQL("(" + ", ".join(types) + ")" if types else ""),
                    sql.SQL(statement + suffix)))  # type: ignore[arg-type]
        seen: list[str] | MaimDBError = []
        try:
            with pool.connection(api_key=b_key) as p:  # the victim
                seen = [m.processed_plain_text for m in p.fetch(Message,
                                                                "select * from messages")]
        except MaimDBError as err:
            seen = err
        with pool.connection(api_key=a_key) as p:
            stolen = p.scalar("select current_setting('x.stolen', true)")
    assert not stolen
    assert seen == ["B's secret message"]  # and the victim never noticed


@pytest.mark.parametrize("target", HIJACKS)
def test_a_replaced_prepared_statement_never_runs_for_the_next_borrower(
        db: TestDB, world: World, target: str) -> None:
    _hijack(db, world, db.dsn("plugin"), target)


@pytest.mark.parametrize("target", HIJACKS)
def test_the_guard_names_its_operators_schema(db: TestDB, world: World, target: str) -> None:
    """The guard is sent unnamed, so parsed under the session's search_path, which a plugin
    login may set for itself (ALTER ROLE … SET reaches its every later session; here a
    superuser sets it). A `=` that says yes to everything, in a schema ahead of pg_catalog
    (a superuser's: no maim role may create one), must not let a replaced statement pass."""
    with lenient_schema(db, ("bigint", "integer"), ("bigint", "bigint")) as lenient, \
            plugin_login(db) as dsn:
        with psycopg.connect(db.superuser, autocommit=True) as su:
            login = psycopg.conninfo.conninfo_to_dict(dsn)["user"]
            su.execute(sql.SQL("alter role {} set search_path = {}, pg_catalog, public")
                       .format(sql.Identifier(str(login)), sql.Identifier(lenient)))
        _hijack(db, world, dsn, target)


# -- 5. key usage does not serialise a key's users ------------------------------------------

@pytest.mark.fresh_db  # finds a key by name across tenants
def test_two_blocks_on_one_key_and_a_nested_one_all_proceed(db: TestDB, world: World) -> None:
    a1 = world.agent_id("A1")
    secret = _key(db, world, "A1")
    # lock_timeout turns a wait on the key row into an error instead of a hang
    waiting = with_db(db.server.superuser, db.name, user=LOGINS["plugin"][0],
                      password=PASSWORD, options="-c lock_timeout=3000")
    inner_done = threading.Event()
    with connect(db.dsn("plugin"), api_key=secret) as outer:
        assert outer.scalar("select maim.agent_id()") == a1
        with connect(waiting, api_key=secret) as nested:  # same key, block still open
            assert nested.scalar("select maim.agent_id()") == a1

        def concurrent() -> None:
            with connect(waiting, api_key=secret) as other:
                other.scalar("select maim.agent_id()")
            inner_done.set()

        worker = threading.Thread(target=concurrent)
        worker.start()
        worker.join(timeout=15)
        assert inner_done.is_set()
        with connect(with_db(db.server.superuser, db.name, user=LOGINS["admin"][0],
                             password=PASSWORD, options="-c lock_timeout=3000"),
                     admin=True) as adm:  # revoking does not wait for the open block either
            keys.revoke(adm, adm.find(ApiKey, {"name": "plugin A1"})[0].id)
    with connect(db.dsn("admin"), admin=True) as adm:
        assert adm.find(ApiKeyInfo, {"name": "plugin A1"})[0].usage_count == 3


# -- 6. ambient scope per job -----------------------------------------------------------------

def test_a_worker_started_inside_a_scope_serves_later_jobs_as_that_agent(
        db: TestDB, world: World) -> None:
    """The trap, then the two ways out: job_scope refuses the inherited scope, and a worker
    started under no_scope() serves each job as the agent it names."""
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")

    async def serve(jobs: asyncio.Queue[str], out: list[Any], guarded: bool) -> None:
        while (agent := await jobs.get()) != "stop":
            try:
                if guarded:
                    with job_scope(agent):
                        async with aconnect(db.dsn("app")) as d:
                            out.append((await d.find(Agent))[0].id)
                else:
                    async with aconnect(db.dsn("app")) as d:  # the ambient scope it inherited
                        out.append((await d.find(Agent))[0].id)
            except ScopeError as err:
                out.append(err)

    async def run(guarded: bool, start_under_none: bool) -> list[Any]:
        jobs: asyncio.Queue[str] = asyncio.Queue()
        out: list[Any] = []
        with agent_scope(a1):  # the request that happened to start the worker
            if start_under_none:
                with no_scope():
                    worker = asyncio.create_task(serve(jobs, out, guarded))
            else:
                worker = asyncio.create_task(serve(jobs, out, guarded))
        for agent in (a1, b1, "stop"):
            jobs.put_nowait(agent)
        await worker
        return out

    assert asyncio.run(run(guarded=False, start_under_none=False)) == [a1, a1]  # B served as A
    refused = asyncio.run(run(guarded=True, start_under_none=False))
    assert refused[0] == a1 and isinstance(refused[1], ScopeError)
    assert "no_scope()" in str(refused[1])
    assert asyncio.run(run(guarded=True, start_under_none=True)) == [a1, b1]


def test_a_generator_runs_under_its_consumers_scope(db: TestDB, world: World) -> None:
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")

    def agents_of_whoever_iterates() -> Iterator[str]:
        with connect(db.dsn("app")) as d:
            yield from (a.id for a in d.find(Agent))

    def agents_of(agent: str) -> Iterator[str]:
        with job_scope(agent), connect(db.dsn("app")) as d:
            yield from (a.id for a in d.find(Agent))

    with agent_scope(a1):
        loose, pinned = agents_of_whoever_iterates(), agents_of(a1)
    with agent_scope(b1):
        assert list(loose) == [b1]  # made under A, ran as B: the trap
        with pytest.raises(ScopeError, match="ambient scope"):
            list(pinned)


# -- 7. what EXPLAIN tells any scope ------------------------------------------------------------

def test_planner_estimates_reveal_other_agents_common_values(db: TestDB, world: World) -> None:
    """Pinned, documented limitation (docs/concepts.md): column statistics are hidden from
    the scoped roles, but the planner reads them for a leakproof operator such as text
    equality, so EXPLAIN's row estimate shows how common a value is across all agents."""
    b1 = world.agent_id("B1")
    with connect(db.dsn("admin"), admin=True) as adm:
        adm.insert_many(PersonInfo(agent_id=b1, person_id=f"p{i}", platform="qq",
                                   user_id=str(i), nickname="only-in-B" if i < 600 else None)
                        for i in range(1000))
    with psycopg.connect(db.superuser, autocommit=True) as su:
        su.execute("analyze person_info")
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as a:
        assert a.scalar("select count(*) from person_info where nickname = 'only-in-B'") == 0
        plan = a.scalar("explain (format json) select * from person_info "
                        "where nickname = 'only-in-B'")
    assert plan[0]["Plan"]["Plan Rows"] > 100
