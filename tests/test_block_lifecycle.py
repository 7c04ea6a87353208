"""A block is one transaction: its handle dies with it, and statements inside it cannot end
it quietly or be fetched from when they return nothing. Each test that can runs through the
sync API and the async one (tests/twins.py)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from maim_db import (
    AsyncPool,
    ConnectError,
    DatabaseError,
    InputError,
    Pool,
    ScopeError,
    aconnect,
    connect,
)
from maim_db.connection import run_scoped
from maim_db.scope import Scope
from maim_db.tables import AgentActiveState
from tests.databases import TestDB, World
from tests.twins import Twin


def _ttl(db: TestDB, agent: str) -> int:
    with connect(db.dsn("app"), agent_id=agent) as s:
        return int(s.scalar("select ttl_seconds from agent_active_states"))


def test_a_pooled_handle_is_dead_after_its_block(db: TestDB, world: World, twin: Twin) -> None:
    """With one pooled connection, a kept handle would otherwise run inside the next
    borrower's transaction — in the next borrower's scope."""
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    before = _ttl(db, b1)
    with twin.Pool(db.dsn("app"), min_size=1, max_size=1) as pool:
        with pool.connection(agent_id=a1) as kept:
            assert [r.agent_id for r in kept.find(AgentActiveState)] == [a1]
        with pool.connection(agent_id=b1) as current:
            with pytest.raises(ScopeError, match="block has ended"):
                kept.find(AgentActiveState)
            with pytest.raises(ScopeError, match="block has ended"):
                kept.update(AgentActiveState, where={}, set={"ttl_seconds": 999})
            assert [r.agent_id for r in current.find(AgentActiveState)] == [b1]
    assert _ttl(db, b1) == before


def test_a_connect_handle_is_dead_after_its_block(db: TestDB, world: World, twin: Twin) -> None:
    with twin.connect(db.dsn("app"), agent_id=world.agent_id("A1")) as kept:
        kept.find(AgentActiveState)
    with pytest.raises(ScopeError, match="block has ended"):
        kept.execute("select 1")


def test_an_async_handle_is_dead_after_its_block(db: TestDB, world: World) -> None:
    async def main() -> None:
        async with AsyncPool(db.dsn("app"), min_size=1, max_size=1) as pool:
            async with pool.connection(agent_id=world.agent_id("A1")) as kept:
                await kept.find(AgentActiveState)
            async with pool.connection(agent_id=world.agent_id("B1")):
                with pytest.raises(ScopeError, match="block has ended"):
                    await kept.update(AgentActiveState, where={}, set={"ttl_seconds": 999})
        async with aconnect(db.dsn("app"), agent_id=world.agent_id("A1")) as once:
            await once.find(AgentActiveState)
        with pytest.raises(ScopeError, match="block has ended"):
            await once.rows("select 1")

    before = _ttl(db, world.agent_id("B1"))
    asyncio.run(main())
    assert _ttl(db, world.agent_id("B1")) == before


@pytest.mark.parametrize("statement", ["rollback", "commit"])
def test_ending_the_transaction_inside_the_block_is_an_error(
        db: TestDB, world: World, statement: str,
        twin: Twin) -> None:
    a1 = world.agent_id("A1")
    before = _ttl(db, a1)
    with pytest.raises(ScopeError, match="COMMIT or ROLLBACK statement"), \
            twin.connect(db.dsn("app"), agent_id=a1) as s:
        s.update(AgentActiveState, where={}, set={"ttl_seconds": before + 1})
        s.execute(statement)  # type: ignore[arg-type]
    # the error tells the truth either way: what the statement did, stands
    assert _ttl(db, a1) == (before + 1 if statement == "commit" else before)


def test_fetching_from_a_statement_without_rows_is_refused_and_rolled_back(
        db: TestDB, world: World,
        twin: Twin) -> None:
    a1 = world.agent_id("A1")
    before = _ttl(db, a1)
    for fetch in ("rows", "scalar"):
        with pytest.raises(InputError, match="returns no rows"), \
                twin.connect(db.dsn("app"), agent_id=a1) as s:
            getattr(s, fetch)("update agent_active_states set ttl_seconds = 7")
    with pytest.raises(InputError, match="returns no rows"), \
            twin.connect(db.dsn("app"), agent_id=a1) as s:
        s.fetch(AgentActiveState, "update agent_active_states set ttl_seconds = 7")
    assert _ttl(db, a1) == before
    with twin.connect(db.dsn("app"), agent_id=a1) as s:  # a statement that does return rows
        assert s.rows("update agent_active_states set ttl_seconds = 8 "
                      "returning ttl_seconds") == [(8,)]


@pytest.mark.parametrize(("query", "params"), [
    ("select %s", "abc"),  # a string is not a parameter list
    ("select %s", {"a": 1}),  # named parameters for a positional placeholder
    ("select %s, %s", [1]),  # too few
    ("select %s", [object()]),  # a value psycopg cannot send
    (None, None),
])
def test_wrong_query_arguments_are_input_errors(db: TestDB, world: World, query: object,
                                                params: object,
        twin: Twin) -> None:
    with pytest.raises(InputError), twin.connect(db.dsn("app"), agent_id=world.agent_id("A1")) as s:
        s.rows(query, params)  # type: ignore[arg-type]


def test_a_value_json_cannot_hold_is_an_input_error(db: TestDB, world: World, twin: Twin) -> None:
    a1 = world.agent_id("A1")
    with pytest.raises(InputError), twin.connect(db.dsn("admin"), admin=True) as adm:
        adm.execute("update agents set config = config")  # the transaction is open
        adm.execute("update agents set config = %s where id = %s", [{"a": object()}, a1])


def test_a_closed_or_unopened_pool_is_a_typed_error(db: TestDB, world: World) -> None:
    pool = Pool(db.dsn("app"), min_size=1, max_size=1)
    pool.close()
    with pytest.raises(ConnectError, match="closed"):
        pool.fetch(AgentActiveState, "select * from agent_active_states",
                   agent_id=world.agent_id("A1"))

    async def unopened() -> None:
        apool = AsyncPool(db.dsn("app"), min_size=1, max_size=1)
        with pytest.raises(ConnectError, match="open"):
            await apool.fetch(AgentActiveState, "select * from agent_active_states",
                              agent_id=world.agent_id("A1"))

    asyncio.run(unopened())


def test_an_error_caught_inside_a_block_is_still_reported(db: TestDB, world: World,
                                                          twin: Twin) -> None:
    with pytest.raises(DatabaseError, match="nothing was committed"), \
            twin.connect(db.dsn("app"), agent_id=world.agent_id("A1")) as s, \
            pytest.raises(InputError):  # caught inside the block
        s.execute("select 1/0")


def test_a_blocks_context_manager_is_entered_once(db: TestDB, world: World) -> None:
    """One `pool.connection(...)` object is one block (found by review of issue 36, when the
    block became a plain class): entered again — nested, or by another task while the first
    is open — its exit would end the other's block and give back the other's connection while
    that block still ran statements, as another agent's code."""
    a1 = world.agent_id("A1")
    with Pool(db.dsn("app"), min_size=2, max_size=2) as pool:
        cm = pool.connection(agent_id=a1)
        with cm as first:
            first.scalar("select 1")
            with pytest.raises(ScopeError, match="entered already"), cm:
                pass
            assert first.scalar("select maim.agent_id()") == a1
        with pool.connection(agent_id=a1) as a, pool.connection(agent_id=a1) as b:  # no leak
            assert a.scalar("select pg_backend_pid()") != b.scalar("select pg_backend_pid()")
        with pytest.raises(ScopeError, match="entered already"), cm:
            pass
    with psycopg.connect(db.dsn("app"), autocommit=True) as conn:
        scoped = run_scoped(conn, Scope("agent", a1))
        with scoped as block:
            block.scalar("select 1")
            with pytest.raises(ScopeError, match="entered already"), scoped:
                pass


def test_an_async_blocks_context_manager_is_entered_once(db: TestDB, world: World) -> None:
    a1 = world.agent_id("A1")

    async def main() -> None:
        async with AsyncPool(db.dsn("app"), min_size=1, max_size=2) as pool:
            cm = pool.connection(agent_id=a1)
            async with cm as first:
                with pytest.raises(ScopeError, match="entered already"):
                    async with cm:
                        pass
                assert await first.scalar("select maim.agent_id()") == a1

    asyncio.run(main())
