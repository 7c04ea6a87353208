"""SQLAlchemy engines on maim_db scopes (issue 34, items 1-2): every transaction of a Session,
a Connection or an AsyncSession runs in the scope ambient when it begins, opened by the same
scope statement as every maim_db block, as the real logins."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from maim_db import (
    ConfigurationError,
    ScopeError,
    agent_scope,
    connect,
    key_scope,
    tenant_scope,
)
from maim_db.control import tenancy
from maim_db.errors import MaimDBError
from maim_db.sqlalchemy import create_async_engine, create_engine, engine_url
from tests.databases import TestDB, World
from tests.databases import issue_key as _key
from tests.samples import message

pytestmark = pytest.mark.filterwarnings("error::sqlalchemy.exc.SAWarning")


def _insert(session: Session, agent_id: str | None = None, n: int = 1) -> Any:
    """An INSERT of a sample message (with ``agent_id`` when given), as SQL text."""
    row = message(n).given()
    if agent_id is not None:
        row["agent_id"] = agent_id
    cols = ", ".join(row)
    return session.execute(text(f"insert into messages ({cols}) values "
                                f"({', '.join(':' + c for c in row)})"), row)


def _ainsert_sql(agent_id: str | None = None, n: int = 1) -> tuple[Any, dict[str, Any]]:
    row = message(n).given()
    if agent_id is not None:
        row["agent_id"] = agent_id
    return (text(f"insert into messages ({', '.join(row)}) values "
                 f"({', '.join(':' + c for c in row)})"), row)


@pytest.fixture
def engine(db: TestDB) -> Iterator[Any]:
    made = create_engine(db.dsn("app"), pool_size=1, max_overflow=0)
    yield made
    made.dispose()


# -- the URL ---------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["postgresql+asyncpg://u@h/db", "postgresql+psycopg2://u@h/db",
                                 "postgresql+pg8000://u@h/db"])
def test_another_driver_is_one_clear_line(url: str) -> None:
    with pytest.raises(ConfigurationError, match="runs on psycopg 3, not the driver") as info:
        create_engine(url)
    assert "\n" not in str(info.value)


def test_another_database_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="runs on PostgreSQL"):
        create_engine("mysql+pymysql://u@h/db")


def test_a_libpq_dsn_and_a_url_name_the_same_server(db: TestDB) -> None:
    url = engine_url(db.dsn("app"))
    assert url.drivername == "postgresql+maim_db"
    assert url.username == "maim_test_app"
    assert engine_url(url.set(drivername="postgresql+psycopg")) == url


# -- no scope, no SQL ------------------------------------------------------------------------

def _frontend_queries(trace: str) -> int:
    return sum(1 for line in trace.splitlines()
               if "\tF\t" in line and ("\tParse" in line or "\tQuery" in line))


def test_no_scope_raises_before_any_sql(engine: Any, world: World) -> None:
    with engine.connect() as warm:  # the dialect's first-connect checks are done
        warm.rollback()
    raw = engine.raw_connection()
    conn = raw.driver_connection
    with tempfile.TemporaryFile("w+") as trace:
        conn.pgconn.trace(trace.fileno())
        try:
            with pytest.raises(ScopeError, match="no scope for this transaction"):
                raw.cursor().execute("select * from agents")
            raw.close()  # back to the pool (one connection): the Session gets it again
            with Session(bind=engine) as s, pytest.raises(ScopeError, match="no scope"):
                s.execute(text("select id from agents")).all()
        finally:
            conn.pgconn.untrace()
            os.fsync(trace.fileno())
            trace.seek(0)
            sent = trace.read()
    assert _frontend_queries(sent) == 0, sent


# -- two agents ------------------------------------------------------------------------------

def test_two_agents_through_sessions_each_see_their_own(db: TestDB, world: World) -> None:
    engine = create_engine(db.dsn("app"), pool_size=1, max_overflow=0)  # one connection
    a1, a2 = world.agent_id("A1"), world.agent_id("A2")
    for agent, n in ((a1, 1), (a2, 2)):
        with agent_scope(agent), Session(engine) as s, s.begin():
            _insert(s, n=n)
    for agent, n in ((a1, 1), (a2, 2)):
        with agent_scope(agent), Session(engine) as s:
            assert s.scalars(text("select id from agents")).all() == [agent]
            assert s.scalars(text("select message_id from messages")).all() == [f"m{n}"]
    engine.dispose()


def test_one_session_follows_the_ambient_scope_of_each_transaction(engine: Any,
                                                                   world: World) -> None:
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    with Session(engine) as s:
        with agent_scope(a1):
            assert s.scalars(text("select id from agents")).all() == [a1]
            s.commit()
        with agent_scope(b1):
            assert s.scalars(text("select id from agents")).all() == [b1]
            s.rollback()


def test_a_transaction_used_after_the_scope_changed_is_refused(engine: Any,
                                                               world: World) -> None:
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    with Session(engine) as s:
        with agent_scope(a1):
            assert s.scalars(text("select id from agents")).all() == [a1]
        for other in (agent_scope(b1), tenant_scope(world.tenant_id("T1"))):
            with other, pytest.raises(ScopeError, match="began in scope agent " + a1):
                s.execute(text("select id from agents")).all()
        with pytest.raises(ScopeError, match="is now none"):
            s.execute(text("select id from agents")).all()
        with agent_scope(a1):  # the scope it began with: still usable, still A1
            assert s.scalars(text("select id from agents")).all() == [a1]


def test_two_agents_through_async_sessions_in_concurrent_tasks(db: TestDB,
                                                              world: World) -> None:
    a1, a2, b1 = world.agent_id("A1"), world.agent_id("A2"), world.agent_id("B1")

    async def main() -> None:
        engine = create_async_engine(db.dsn("app"), pool_size=2, max_overflow=0)
        sessions = async_sessionmaker(engine)

        async def work(agent: str, n: int) -> list[str]:
            seen: list[str] = []
            with agent_scope(agent):
                for i in range(5):
                    async with sessions() as s, s.begin():
                        query, row = _ainsert_sql(n=n * 10 + i)
                        await s.execute(query, row)
                        await asyncio.sleep(0)
                        seen += (await s.scalars(text("select distinct agent_id from messages"
                                                      ))).all()
                        seen += (await s.scalars(text("select id from agents"))).all()
            return seen

        seen = await asyncio.gather(work(a1, 1), work(a2, 2), work(b1, 3))
        for agent, got in zip((a1, a2, b1), seen, strict=True):
            assert set(got) == {agent}
        async with AsyncSession(engine) as s:
            with agent_scope(a2):
                count = (await s.execute(text("select count(*) from messages"))).scalar()
        assert count == 5
        await engine.dispose()

    asyncio.run(main())


# -- writes ----------------------------------------------------------------------------------

def test_a_write_of_another_agents_id_is_refused(engine: Any, world: World) -> None:
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    with agent_scope(a1), Session(engine) as s:
        with pytest.raises(exc.ProgrammingError, match="row-level security") as info:
            _insert(s, agent_id=b1)  # the transaction's first statement
        assert isinstance(info.value.orig, psycopg.errors.InsufficientPrivilege)
        s.rollback()
        _insert(s, n=1)
        with pytest.raises(exc.ProgrammingError, match="row-level security"):
            _insert(s, agent_id=b1, n=2)  # a later statement
        s.rollback()
    with agent_scope(b1), Session(engine) as s:
        assert s.scalar(text("select count(*) from messages")) == 0


def test_an_unfiltered_update_touches_only_the_scope(engine: Any, world: World) -> None:
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    for agent in (a1, b1):
        with agent_scope(agent), Session(engine) as s, s.begin():
            _insert(s, n=1)
            _insert(s, n=2)
    with agent_scope(a1), Session(engine) as s, s.begin():
        result: Any = s.execute(text("update messages set processed_plain_text = 'mine'"))
        assert result.rowcount == 2
        deleted: Any = s.execute(text("delete from messages where message_id = 'm2'"))
        assert deleted.rowcount == 1
    with agent_scope(b1), Session(engine) as s:
        assert s.execute(text("select message_id, processed_plain_text from messages "
                              "where processed_plain_text = 'mine'")).all() == []
        assert s.scalar(text("select count(*) from messages")) == 2


# -- the scope statement's checks --------------------------------------------------------------

def test_a_suspended_agent_is_refused_at_begin(engine: Any, db: TestDB, world: World) -> None:
    a1 = world.agent_id("A1")
    with connect(db.dsn("admin"), admin=True) as adm:
        tenancy.set_agent_status(adm, a1, "suspended")
    with agent_scope(a1), Session(engine) as s, pytest.raises(MaimDBError, match="suspended"):
        s.execute(text("select 1")).all()


@pytest.mark.fresh_db  # the admin sees every test's rows
def test_tenant_and_admin_scopes(db: TestDB, world: World) -> None:
    t1 = world.tenant_id("T1")
    agents = {world.agent_id("A1"), world.agent_id("A2")}
    tenant = create_engine(db.dsn("tenant"))
    with tenant_scope(t1), Session(tenant) as s:
        assert set(s.scalars(text("select id from agents")).all()) == agents
    with Session(create_engine(db.dsn("tenant"), tenant_id=t1)) as s:
        assert set(s.scalars(text("select id from agents")).all()) == agents
    admin = create_engine(db.dsn("admin"), admin=True)
    with agent_scope(world.agent_id("A1")), Session(admin) as s:  # the engine's scope wins
        assert s.scalar(text("select count(*) from agents")) == 3
    tenant.dispose()
    admin.dispose()


# -- a plugin login with a key --------------------------------------------------------------

FORGERIES = [
    "select set_config('maim.agent_id', :b1, false)",
    "select set_config('maim.agent_id', :b1, true)",
    "set role maim_app",
    "reset role",
    "set role maim_admin",
]


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_plugin_with_key_scope_cannot_forge_its_way_out(db: TestDB, world: World,
                                                          forgery: str) -> None:
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    secret = _key(db, world, "A1")
    engine = create_engine(db.dsn("plugin"), pool_size=1, max_overflow=0)
    seen: list[str] = []
    with key_scope(secret), Session(engine) as s:
        assert s.scalars(text("select id from agents")).all() == [a1]
        try:
            s.execute(text(forgery), {"b1": b1})
            seen = list(s.scalars(text("select id from agents")))
            _insert(s, agent_id=b1)
            pytest.fail("the plugin wrote another agent's row")
        except (exc.DBAPIError, MaimDBError):
            s.rollback()
    assert seen in ([], [a1])
    with key_scope(secret), Session(engine) as s:  # the next transaction, same connection
        assert s.scalars(text("select id from agents")).all() == [a1]
        assert s.scalar(text("select current_user")) == "maim_plugin"
    # the plugin login cannot open agent scope
    with agent_scope(b1), Session(engine) as s, pytest.raises((exc.DBAPIError, MaimDBError)):
        s.scalars(text("select id from agents")).all()
    engine.dispose()


def test_key_scope_on_a_trusted_login_is_a_configuration_error(engine: Any, db: TestDB,
                                                               world: World) -> None:
    secret = _key(db, world, "A1")
    with key_scope(secret), Session(engine) as s, \
            pytest.raises(ConfigurationError, match="open API key scopes on a plugin login"):
        s.execute(text("select 1")).all()


# -- pool hygiene ----------------------------------------------------------------------------

def test_what_a_keys_block_leaves_never_reaches_the_next_transaction(
        db: TestDB, world: World) -> None:
    """A key's transaction SETs at session level, LISTENs and makes a temp table; the next
    transaction on the same pooled connection, another agent's, sees none of it."""
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    secret = _key(db, world, "A1")
    engine = create_engine(db.dsn("plugin"), pool_size=1, max_overflow=0)
    other_secret = _key(db, world, "B1")
    with key_scope(secret), Session(engine) as s, s.begin():
        s.execute(text("select set_config('work_mem', '7MB', false)"))
        s.execute(text("set search_path = pg_temp, public"))
        s.execute(text("listen stolen"))
        s.execute(text("create temp table agents (id text)"))
        s.execute(text("insert into pg_temp.agents values (:b1)"), {"b1": b1})
    with key_scope(other_secret), Session(engine) as s:
        assert s.scalars(text("select id from agents")).all() == [b1]
        assert s.scalar(text("select current_setting('work_mem')")) != "7MB"
        assert s.scalar(text("select count(*) from pg_listening_channels()")) == 0
        assert s.scalar(text("select count(*) from pg_class where relnamespace = "
                             "pg_my_temp_schema()")) == 0
    assert engine.pool.checkedin() == 1  # type: ignore[attr-defined]  # one connection served both
    engine.dispose()
    del a1


def test_a_trusted_session_level_setting_is_reset_before_the_next_agent(
        engine: Any, world: World) -> None:
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    with agent_scope(a1), Session(engine) as s, s.begin():
        s.execute(text("set DateStyle = 'German'"))
    with agent_scope(b1), Session(engine) as s:
        assert s.scalar(text("show DateStyle")) == "ISO, MDY"
        assert s.scalars(text("select id from agents")).all() == [b1]


# -- ORM and executemany ---------------------------------------------------------------------

def test_executemany_runs_in_the_scope(engine: Any, world: World) -> None:
    a1 = world.agent_id("A1")
    with agent_scope(a1), Session(engine) as s, s.begin():
        _insert(s, n=1)
        _insert(s, n=2)
        result: Any = s.execute(text("update messages set processed_plain_text = :t "
                                "where message_id = :m"),
                           [{"t": "x", "m": "m1"}, {"t": "y", "m": "m2"}])
        assert result.rowcount == 2
    with agent_scope(a1), Session(engine) as s:
        assert sorted(s.scalars(text("select processed_plain_text from messages"))) == ["x",
                                                                                       "y"]
