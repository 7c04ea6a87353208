"""Pools, async, and the ambient scope: the scope follows the task, never the thread, and a
pooled connection never carries one block's scope into the next."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from maim_db import (
    AsyncPool,
    IsolationError,
    Pool,
    ScopeError,
    aconnect,
    agent_scope,
    tenant_scope,
)
from maim_db.tables import Agent, AgentActiveState
from tests.databases import TestDB, World, lenient_schema
from tests.twins import Twin


@pytest.fixture
def pool(db: TestDB, twin: Twin) -> Iterator[Pool]:
    """A one-connection pool, sync and async (tests/twins.py)."""
    with twin.Pool(db.dsn("app"), min_size=1, max_size=1) as p:
        yield p


@pytest.fixture
def sync_pool(db: TestDB) -> Iterator[Pool]:
    """For the tests of threads: the ambient scope and OS threads."""
    with Pool(db.dsn("app"), min_size=1, max_size=1) as p:
        yield p


def test_pool_runs_each_block_in_its_own_scope(pool: Pool, world: World) -> None:
    for name in ("A1", "B1", "A2", "A1"):
        with pool.connection(agent_id=world.agent_id(name)) as db:
            assert [a.id for a in db.find(Agent)] == [world.agent_id(name)]


def test_session_state_left_in_a_pooled_connection_is_reset(pool: Pool, world: World) -> None:
    with pool.connection(agent_id=world.agent_id("A1")) as db:
        # raw SQL that sets the scope at session level: it would outlive the transaction
        db.execute(f"set maim.agent_id = '{world.agent_id('A1')}'")
    with pytest.raises(ScopeError, match="no scope given"), pool.connection():
        pass
    with pool.connection(agent_id=world.agent_id("B1")) as db:
        assert [a.id for a in db.find(Agent)] == [world.agent_id("B1")]
        assert db.scalar("select current_setting('maim.agent_id')") == world.agent_id("B1")
    with pool.connection(agent_id=world.agent_id("B1")) as db:  # and the session is clean now
        db.connection.execute("select 1")
        assert db.connection.execute(
            "select current_setting('maim.agent_id', true)").fetchone() == ("",)


#: Every setting a scope function writes (migrations/0012, 0016): each is checked on arrival.
SCOPE_SETTINGS = ("agent_id", "tenant_id", "agent_proof", "agent_tenant", "tenant_agents",
                  "tenant_owner", "key_permissions")


@pytest.mark.parametrize("setting", SCOPE_SETTINGS)
def test_every_scope_setting_left_at_session_level_is_reset(
        db: TestDB, world: World, setting: str, caplog: pytest.LogCaptureFixture) -> None:
    """A scope setting written at session level outlives its block; the next borrower's
    reset check must see it, whichever it is (the policies on Citus read all of them)."""
    a1 = world.agent_id("A1")
    with Pool(db.dsn("app"), min_size=1, max_size=1) as pool:
        with pool.connection(agent_id=a1) as mine:
            mine.execute(f"set maim.{setting} = 'left behind'")
        with caplog.at_level("WARNING", logger="maim_db"), \
                pool.connection(agent_id=a1) as next_one:
            next_one.execute("select 1")
            conn = next_one.connection
        assert "resetting a connection" in caplog.text
        assert conn.execute(f"select current_setting('maim.{setting}', true)"
                            ).fetchone() in (("",), (None,))


def test_the_reset_check_names_its_operators_schema(
        db: TestDB, world: World, caplog: pytest.LogCaptureFixture) -> None:
    """The scope statement is parsed under the session's search_path (and again whenever
    it changes). An `=` on text that says yes to everything, in a schema the session puts
    ahead of pg_catalog (one a superuser made; no maim role may create one), must not make a
    leftover scope setting look clean."""
    a1 = world.agent_id("A1")
    with lenient_schema(db, ("text", "text")) as lenient, \
            Pool(db.dsn("app"), min_size=1, max_size=1) as pool:
        with pool.connection(agent_id=a1) as mine:
            conn = mine.connection
        # at session level, outside any block
        conn.execute(f"set search_path = {lenient}, pg_catalog, public")
        conn.execute("set maim.tenant_owner = 'left behind'")
        conn.commit()
        with caplog.at_level("WARNING", logger="maim_db"), \
                pool.connection(agent_id=a1) as next_one:
            next_one.execute("select 1")
        assert "resetting a connection" in caplog.text
        assert conn.execute("select current_setting('maim.tenant_owner', true)"
                            ).fetchone() in (("",), (None,))


@pytest.mark.fresh_db
@pytest.mark.parametrize("migrated_by_0_10", [True, False])
def test_the_reset_check_finds_temporary_objects_before_and_after_0_10(
        db: TestDB, world: World, migrated_by_0_10: bool,
        caplog: pytest.LogCaptureFixture) -> None:
    """Issue 36: the reset check asks maim.no_temp_objects() (0.10.0's migrate defines it)
    only where the session has a temporary schema. A database an older release migrated has
    no such function: a service upgraded first takes the inline probe there (chosen once per
    connection), and a temporary object is found either way."""
    a1 = world.agent_id("A1")
    if not migrated_by_0_10:
        with psycopg.connect(db.superuser, autocommit=True) as su:
            su.execute("drop function maim.no_temp_objects()")
    with Pool(db.dsn("app"), min_size=1, max_size=1) as pool:
        pool.execute("select 1", agent_id=a1)  # a connection that asked which form
        pool.execute("create temp table left_behind (x int)", agent_id=a1)
        with caplog.at_level("WARNING", logger="maim_db"), \
                pool.connection(agent_id=a1) as next_one:
            assert next_one.scalar("select count(*) from pg_catalog.pg_class"
                                   " where relnamespace = pg_catalog.pg_my_temp_schema()") == 0
        assert "resetting a connection" in caplog.text


@pytest.mark.parametrize("single", [False, True])
def test_a_temporary_table_never_reaches_the_next_borrower(db: TestDB, world: World,
                                                           single: bool, twin: Twin) -> None:
    """A temporary table named like a real one shadows it for the rest of the session: the
    next borrower's `select * from agents` would read the first agent's copy."""
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    with twin.Pool(db.dsn("app"), min_size=1, max_size=1) as pool:
        shadow = "create temp table agents as select * from public.agents"
        if single:
            pool.execute(shadow, agent_id=a1)
        else:
            with pool.connection(agent_id=a1) as mine:
                mine.execute(shadow)
                mine.execute("update pg_temp.agents set name = 'shadow'")  # its own copy
                assert [a.name for a in mine.fetch(Agent, "select * from pg_temp.agents")
                        ] == ["shadow"]
                # a block's search_path names pg_temp last: not even its own block is shadowed
                assert [a.name for a in mine.fetch(Agent, "select * from agents")] == ["bot A1"]
        # the next borrower's one-statement read is not even sent on the dirty connection
        assert [a.id for a in pool.fetch(Agent, "select * from agents", agent_id=b1)] == [b1]
        pool.execute(shadow, agent_id=a1)  # dirty it again, for a block this time
        for _ in range(2):
            with pool.connection(agent_id=b1) as next_user:
                assert [a.id for a in next_user.fetch(Agent, "select * from agents")] == [b1]
                assert next_user.scalar("select count(*) from pg_class "
                                        "where relnamespace = pg_my_temp_schema()") == 0
        assert [a.id for a in pool.fetch(Agent, "select * from agents", agent_id=a1)] == [a1]


def test_a_failed_block_returns_a_clean_connection(pool: Pool, world: World) -> None:
    with pytest.raises(IsolationError), pool.connection(agent_id=world.agent_id("A1")) as db:
        db.execute("select * from api_keys")
    with pool.connection(agent_id=world.agent_id("A2")) as db:
        assert [a.id for a in db.find(Agent)] == [world.agent_id("A2")]


def test_ambient_scope_and_explicit_scope_wins(pool: Pool, world: World) -> None:
    with agent_scope(world.agent_id("A1")):
        with pool.connection() as db:
            assert [a.id for a in db.find(Agent)] == [world.agent_id("A1")]
        with pool.connection(agent_id=world.agent_id("B1")) as db:
            assert [a.id for a in db.find(Agent)] == [world.agent_id("B1")]
    with pytest.raises(ScopeError, match="no scope given"), pool.connection():
        pass


def test_ambient_scope_does_not_cross_into_a_plain_thread(sync_pool: Pool, world: World) -> None:
    pool = sync_pool
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with pool.connection():
                pass
        except BaseException as err:
            errors.append(err)

    with agent_scope(world.agent_id("A1")):
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    assert len(errors) == 1 and isinstance(errors[0], ScopeError)


def test_ambient_scope_rejects_bad_ids() -> None:
    with pytest.raises(ScopeError):
        agent_scope("not-an-agent").__enter__()
    with pytest.raises(ScopeError):
        tenant_scope("agent_x").__enter__()


def test_threads_with_random_agents_never_see_another(db: TestDB, world: World) -> None:
    agents = [world.agent_id(n) for n in ("A1", "A2", "B1")]
    seen: list[tuple[str, set[str]]] = []
    with Pool(db.dsn("app"), min_size=2, max_size=2) as pool:
        def work(i: int) -> None:
            agent = random.Random(i).choice(agents)
            with pool.connection(agent_id=agent) as scope:
                rows = scope.find(AgentActiveState)
                scope.update(AgentActiveState, where={}, set={"ttl_seconds": 10 + i % 50})
            seen.append((agent, {r.agent_id for r in rows}))

        with ThreadPoolExecutor(max_workers=6) as ex:
            list(ex.map(work, range(300)))
    assert len(seen) == 300
    leaks = [(agent, ids) for agent, ids in seen if ids != {agent}]
    assert leaks == []


def test_async_pool_scope_follows_tasks(db: TestDB, world: World) -> None:
    agents = {n: world.agent_id(n) for n in ("A1", "A2", "B1")}

    async def main() -> list[tuple[str, list[str]]]:
        async with AsyncPool(db.dsn("app"), min_size=2, max_size=2) as pool:
            async def one(agent: str) -> tuple[str, list[str]]:
                async with pool.connection() as scope:  # the ambient scope of this task
                    await asyncio.sleep(0)
                    return agent, [a.id for a in await scope.find(Agent)]

            async def serve(agent: str) -> list[tuple[str, list[str]]]:
                with agent_scope(agent):
                    return await asyncio.gather(*(one(agent) for _ in range(20)))

            batches = await asyncio.gather(*(serve(a) for a in agents.values()))
            return [r for batch in batches for r in batch]

    results = asyncio.run(main())
    assert len(results) == 60
    assert all(ids == [agent] for agent, ids in results)


def test_to_thread_carries_the_ambient_scope(sync_pool: Pool, world: World) -> None:
    pool = sync_pool
    def in_thread() -> list[str]:
        with pool.connection() as db:
            return [a.id for a in db.find(Agent)]

    async def main() -> list[str]:
        with agent_scope(world.agent_id("A2")):
            return await asyncio.to_thread(in_thread)

    assert asyncio.run(main()) == [world.agent_id("A2")]


def test_aconnect_typed_operations(db: TestDB, world: World) -> None:
    async def main() -> None:
        async with aconnect(db.dsn("app"), agent_id=world.agent_id("A1")) as scope:
            state = await scope.upsert(AgentActiveState(ttl_seconds=42), on=["agent_id"])
            assert state.agent_id == world.agent_id("A1")
            assert (await scope.get(AgentActiveState)).ttl_seconds == 42
            assert await scope.scalar("select count(*) from agents") == 1
        with pytest.raises(IsolationError):
            async with aconnect(db.dsn("app"), agent_id=world.agent_id("A1")) as scope:
                await scope.execute("update agent_active_states set agent_id = %s",
                                    [world.agent_id("B1")])

    asyncio.run(main())


def test_one_statement_calls_commit_in_the_same_round_trip(db: TestDB, world: World) -> None:
    import os
    import tempfile

    import psycopg

    from maim_db.connection import run_scoped
    from maim_db.scope import resolve

    with psycopg.connect(db.dsn("app"), autocommit=True) as conn, \
            tempfile.TemporaryFile("w+") as trace:
        conn.pgconn.trace(trace.fileno())
        with run_scoped(conn, resolve(agent_id=world.agent_id("A1")), single=True) as scope:
            scope.execute("update agent_active_states set ttl_seconds = 77")
            with pytest.raises(ScopeError, match="single statement"):
                scope.execute("select 1")
        conn.pgconn.untrace()
        os.fsync(trace.fileno())
        trace.seek(0)
        text = trace.read()
    syncs = [line for line in text.splitlines() if "\tF\t" in line and "\tSync" in line]
    assert len(syncs) == 1 and '"begin"' not in text and '"commit"' not in text, text


def test_one_statement_scope_ends_with_its_implicit_transaction(db: TestDB,
                                                                world: World) -> None:
    import psycopg

    from maim_db.connection import run_scoped
    from maim_db.scope import resolve

    with psycopg.connect(db.dsn("app"), autocommit=True) as conn:
        with run_scoped(conn, resolve(agent_id=world.agent_id("A1")), single=True) as scope:
            assert [a.id for a in scope.find(Agent)] == [world.agent_id("A1")]
        after = conn.execute("select current_user, current_setting('maim.agent_id', true)")
        assert after.fetchone() == ("maim_test_app", "")
        with pytest.raises(IsolationError), run_scoped(
                conn, resolve(agent_id=world.agent_id("A1")), single=True) as scope:
            scope.execute("insert into agent_active_states (agent_id, tenant_id) "
                          "values (%s, %s)", [world.agent_id("B1"), world.tenant_id("T2")])
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with run_scoped(conn, resolve(agent_id=world.agent_id("B1")), single=True) as scope:
            assert scope.execute("update agent_active_states set ttl_seconds = 5") == 1


def test_pool_fetch_and_execute_are_scoped_transactions(pool: Pool, world: World) -> None:
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    assert [a.id for a in pool.fetch(Agent, "select * from agents", agent_id=a1)] == [a1]
    assert pool.execute("update agent_active_states set ttl_seconds = 9", agent_id=b1) == 1
    with pytest.raises(IsolationError):
        pool.execute("update agent_active_states set agent_id = %s", [a1], agent_id=b1)
    with pool.connection(agent_id=b1) as db:  # the committed write is there, the failed one not
        assert db.get(AgentActiveState).ttl_seconds == 9
    with agent_scope(a1):
        assert [a.id for a in pool.fetch(Agent, "select * from agents")] == [a1]

    async def main() -> None:
        async with AsyncPool(pool._pool.conninfo, max_size=1) as apool:
            rows = await apool.fetch(Agent, "select * from agents", agent_id=b1)
            assert [a.id for a in rows] == [b1]
            assert await apool.execute("select 1", agent_id=b1) == 1

    asyncio.run(main())


def test_a_connection_reset_again_and_again_keeps_serving(pool: Pool, world: World) -> None:
    """Any block can make the next one reset the session (a LISTEN will do). psycopg prepared
    the client's own ROLLBACK after five uses and DISCARD ALL dropped it: from the sixth
    reset on, every block on the connection failed."""
    for _ in range(8):
        with pool.connection(agent_id=world.agent_id("A1")) as db:
            db.execute("listen anything")
        with pool.connection(agent_id=world.agent_id("B1")) as db:
            assert [a.id for a in db.find(Agent)] == [world.agent_id("B1")]
