"""Through a real PgBouncer in transaction mode: isolation holds, session state left on a
server connection by one client is caught before it reaches another, and a soak of threads
and asyncio tasks over few connections finds no row outside the scope that asked.

PgBouncer 1.18 (Debian 12) cannot keep server-side prepared statements per client, so
``pgbouncer=True`` turns them off; the last test shows what happens otherwise."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass, field

import psycopg
import pytest

from maim_db import AsyncPool, IsolationError, MaimDBError, Pool, ScopeError, connect, ids
from maim_db.tables import Agent, Tenant
from maim_db.tables.runtime import Message
from tests.databases import TestDB, World
from tests.samples import message

SOAK_SECONDS = float(os.environ.get("MAIMDB_SOAK_SECONDS", "3"))


@pytest.fixture(params=["direct", "pgbouncer"])
def route(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _dsn(db: TestDB, kind: str, route: str, request: pytest.FixtureRequest) -> str:
    if route == "direct":
        return db.dsn(kind)
    return db.bounced(kind, request.getfixturevalue("bouncer"))


def test_isolation_through_the_pooler(db: TestDB, world: World, route: str,
                                      request: pytest.FixtureRequest) -> None:
    dsn = _dsn(db, "app", route, request)
    with Pool(dsn, min_size=1, max_size=2, pgbouncer=route == "pgbouncer") as pool:
        for name in ("A1", "B1", "A2", "B1", "A1") * 3:
            with pool.connection(agent_id=world.agent_id(name)) as scope:
                assert [a.id for a in scope.find(Agent)] == [world.agent_id(name)]
        with pytest.raises(IsolationError), pool.connection(
                agent_id=world.agent_id("A1")) as scope:
            scope.execute("update agent_active_states set agent_id = %s",
                          [world.agent_id("B1")])
        with pytest.raises(ScopeError), pool.connection():
            pass


def test_session_state_left_behind_by_another_client_is_caught(
        db: TestDB, world: World, request: pytest.FixtureRequest) -> None:
    """In transaction mode a session-level SET sticks to the *server* connection and reaches
    whichever client gets it next; the reset check must catch it."""
    bounced = db.bounced("app", request.getfixturevalue("bouncer"))
    with psycopg.connect(bounced, autocommit=True, prepare_threshold=None) as rogue:
        rogue.execute(f"set maim.agent_id = '{world.agent_id('B1')}'")
        rogue.execute("set role maim_app")
    # pgbouncer's pool has at most 4 server connections: cycle through them all
    for _ in range(12):
        with connect(bounced, agent_id=world.agent_id("A1")) as s:
            assert [a.id for a in s.find(Agent)] == [world.agent_id("A1")]


@dataclass
class Tally:
    ops: int = 0
    rows: int = 0
    leaks: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, agent: str, rows: list[Message]) -> None:
        bad = [r for r in rows if r.agent_id != agent or agent not in (r.processed_plain_text
                                                                       or "")]
        with self.lock:
            self.ops += 1
            self.rows += len(rows)
            self.leaks += [f"{agent} saw {r.agent_id}: {r.processed_plain_text}" for r in bad]


def _agents(db: TestDB, n: int) -> list[str]:
    with connect(db.dsn("admin"), admin=True) as adm:
        tenant = adm.insert(Tenant(id=ids.new_tenant_id(),
                                   tenant_name=f"soak {uuid.uuid4().hex[:8]}"))
        agents = [adm.insert(Agent(id=ids.new_agent_id(), tenant_id=tenant.id,
                                   name=f"soak {i}")) for i in range(n)]
    return [a.id for a in agents]


def _chat(agent: str) -> str:
    return f"chat-{agent[-6:]}"


def test_soak(db: TestDB, route: str, request: pytest.FixtureRequest,
              capsys: pytest.CaptureFixture[str]) -> None:
    """Threads and asyncio tasks, a random agent per operation, reads and writes, over few
    connections; every row returned is checked against the scope that asked."""
    dsn = _dsn(db, "app", route, request)
    agents = _agents(db, 6)
    tally = Tally()
    stop = time.monotonic() + SOAK_SECONDS
    bouncer = route == "pgbouncer"

    def thread_worker(seed: int, pool: Pool) -> None:
        rnd = random.Random(seed)
        n = 0
        while time.monotonic() < stop:
            agent = rnd.choice(agents)
            with pool.connection(agent_id=agent) as scope:
                if rnd.random() < 0.4:
                    n += 1
                    scope.insert(message(n, _chat(agent), f"{agent} thread {seed} #{n}"))
                rows = scope.find(Message, order_by="-time", limit=20)
                rows += scope.fetch(Message, "select * from messages where chat_id = %s "
                                    "order by time desc limit 20", [_chat(rnd.choice(agents))])
            tally.check(agent, rows)

    async def task_worker(seed: int, pool: AsyncPool) -> None:
        rnd = random.Random(seed)
        n = 0
        while time.monotonic() < stop:
            agent = rnd.choice(agents)
            async with pool.connection(agent_id=agent) as scope:
                if rnd.random() < 0.4:
                    n += 1
                    await scope.insert(message(n, _chat(agent), f"{agent} task {seed} #{n}"))
                await asyncio.sleep(0)
                rows = await scope.find(Message, {"chat_id": _chat(agent)}, limit=20)
                rows += await scope.fetch(Message, "select * from messages order by time desc "
                                          "limit 20")
            tally.check(agent, rows)

    async def tasks() -> None:
        async with AsyncPool(dsn, min_size=2, max_size=3, pgbouncer=bouncer) as pool:
            await asyncio.gather(*(task_worker(100 + i, pool) for i in range(40)))

    with Pool(dsn, min_size=2, max_size=3, pgbouncer=bouncer) as pool:
        threads = [threading.Thread(target=thread_worker, args=(i, pool)) for i in range(4)]
        for t in threads:
            t.start()
        asyncio.run(tasks())
        for t in threads:
            t.join()
    with capsys.disabled():  # the soak's report belongs in the CI log, pass or fail
        print(f"\nsoak via {route}, {SOAK_SECONDS:g} s: {tally.ops} operations, "
              f"{tally.rows} rows checked, {len(tally.leaks)} leaks")
    assert tally.ops > 100 and tally.rows > 0
    assert tally.leaks == []


def _first_query_on_another_server(bounced: str, agent_id: str, *, pgbouncer: bool) -> None:
    """One client connection runs the same query often enough for psycopg to prepare it (on
    server connection X), then runs it again while another client holds X, so PgBouncer must
    hand it a server that never saw the statement. No timing is involved: the holder is kept
    only once its backend pid is X's."""
    with Pool(bounced, min_size=1, max_size=1, pgbouncer=pgbouncer) as pool:
        for _ in range(8):
            with pool.connection(agent_id=agent_id) as scope:
                assert len(scope.find(Agent)) == 1
                server = scope.scalar("select pg_backend_pid()")
        holders: list[psycopg.Connection[tuple[object, ...]]] = []
        try:
            for _ in range(4):  # default_pool_size: X is among the idle servers
                holder = psycopg.connect(bounced, prepare_threshold=None)
                holders.append(holder)
                if holder.execute("select pg_backend_pid()").fetchone() == (server,):
                    break
            else:
                pytest.fail("no client could be handed the server connection the pool used")
            for other in holders[:-1]:
                other.rollback()
            with pool.connection(agent_id=agent_id) as scope:
                assert scope.scalar("select pg_backend_pid()") != server
                assert len(scope.find(Agent)) == 1
        finally:
            for holder in holders:
                holder.close()


def test_prepared_statements_break_without_pgbouncer_mode(
        db: TestDB, world: World, request: pytest.FixtureRequest) -> None:
    """Why ``pgbouncer=True`` exists: with psycopg's default (prepare after 5 runs) a later
    transaction lands on a server connection that never saw the statement."""
    bounced = db.bounced("app", request.getfixturevalue("bouncer"))
    with pytest.raises(MaimDBError, match="prepared statement"):
        _first_query_on_another_server(bounced, world.agent_id("A1"), pgbouncer=False)
    _first_query_on_another_server(bounced, world.agent_id("A1"), pgbouncer=True)
