"""The fast path (maim_db.pipeline): statements prepared per connection, and the guard that keeps
a replaced or dropped prepared statement from reaching the next block. The attacks themselves
are in tests/test_unforgeable.py."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import sql

from maim_db import DatabaseError, InputError, Pool
from maim_db.preparing import MAX_PREPARED
from maim_db.tables import Agent
from tests.databases import TestDB, World
from tests.databases import issue_key as _key


@contextmanager
def _one(db: TestDB, world: World) -> Iterator[tuple[Pool, psycopg.Connection[Any]]]:
    """A pool of one connection (the app login) and that connection."""
    with Pool(db.dsn("app"), min_size=1, max_size=1) as pool:
        with pool.connection(agent_id=world.agent_id("A2")) as s:
            conn = s.connection
        yield pool, conn


@contextmanager
def _plugins(db: TestDB, world: World) -> Iterator[tuple[Pool, psycopg.Connection[Any]]]:
    """A pool of one connection on the plugin login (the only one a key scope opens on) and
    that connection."""
    with Pool(db.dsn("plugin"), min_size=1, max_size=1) as pool:
        with pool.connection(api_key=_key(db, world, "A2")) as s:
            s.execute("select 1")  # a key's block has run: the next one sends the guard
            conn = s.connection
        yield pool, conn


def _keyed(pool: Pool, secret: str) -> list[str]:
    with pool.connection(api_key=secret) as p:
        return [a.id for a in p.find(Agent)]


def _superuser(db: TestDB) -> str:
    from tests.databases import with_db

    return with_db(db.server.superuser, db.name)


def _traced(conn: psycopg.Connection[Any], run: Callable[[], Any]) -> str:
    with tempfile.TemporaryFile("w+") as trace:
        conn.pgconn.trace(trace.fileno())
        try:
            run()
        finally:
            conn.pgconn.untrace()
        os.fsync(trace.fileno())
        trace.seek(0)
        return trace.read()


def _guards(trace: str) -> int:
    """How many times the guard was sent: parsed (unnamed, or named when it is prepared),
    or bound by the name it was prepared under."""
    sent, names = 0, set()
    for line in trace.splitlines():
        if "\tF\t" not in line:
            continue
        if "\tParse\t" in line and "pg_prepared_statements" in line:
            name = line.split("\tParse\t", 1)[1].split('"')[1]
            if name:
                names.add(name)
            else:  # unnamed: sent and run at once
                sent += 1
        elif "\tBind\t" in line and line.split("\tBind\t", 1)[1].split('"')[3] in names:
            sent += 1
    return sent


def _agents(pool: Pool, agent: str) -> list[str]:
    with pool.connection(agent_id=agent) as s:
        return [a.id for a in s.find(Agent)]


def test_the_guard_is_sent_only_after_untrusted_code(db: TestDB, world: World) -> None:
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    with _one(db, world) as (pool, conn):
        def trusted() -> None:
            for agent in (a1, b1, a1, b1):
                assert _agents(pool, agent) == [agent]

        assert _guards(_traced(conn, trusted)) == 0
    a_key, b_key = _key(db, world, "A1"), _key(db, world, "B1")
    with _plugins(db, world) as (pool, conn):
        def after_keys() -> None:  # each block follows a key's: the first one's too
            for secret, agent in ((a_key, a1), (b_key, b1), (a_key, a1)):
                assert _keyed(pool, secret) == [agent]

        assert _guards(_traced(conn, after_keys)) == 3


@pytest.mark.parametrize("drop", [
    "deallocate all",
    "do $$ begin execute 'deallocate all'; end $$",  # no command tag tells the client
])
def test_statements_a_key_block_drops_are_not_missed_by_the_next(
        db: TestDB, world: World, drop: str, caplog: pytest.LogCaptureFixture) -> None:
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    a_key, b_key = _key(db, world, "A1"), _key(db, world, "B1")
    with _plugins(db, world) as (pool, _):
        for _ in range(3):
            assert _keyed(pool, b_key) == [b1]
        with pool.connection(api_key=a_key) as p:
            p.execute(drop)  # type: ignore[arg-type]
        with caplog.at_level(logging.WARNING, logger="maim_db"):
            assert _keyed(pool, b_key) == [b1]
        assert "resetting a connection" in caplog.text
        assert _keyed(pool, a_key) == [a1]


def test_statements_a_trusted_block_drops_in_sql_are_prepared_again(db: TestDB,
                                                                   world: World) -> None:
    b1 = world.agent_id("B1")
    with _one(db, world) as (pool, _):
        for _ in range(3):
            assert _agents(pool, b1) == [b1]
        with pool.connection(agent_id=b1) as s:
            s.execute("deallocate all")
        assert _agents(pool, b1) == [b1]


def test_statements_dropped_unseen_by_trusted_code_fail_once_then_heal(db: TestDB,
                                                                      world: World) -> None:
    """Trusted code that drops statements where the client cannot see it (dynamic SQL) gets
    one clear error, not a wrong answer; the connection is checked and reset after it."""
    b1 = world.agent_id("B1")
    with _one(db, world) as (pool, _):
        for _ in range(3):
            assert _agents(pool, b1) == [b1]
        with pool.connection(agent_id=b1) as s:
            s.execute("do $$ begin execute 'deallocate all'; end $$")
        with pytest.raises(DatabaseError, match=r"prepared statement .* does not exist"):
            _agents(pool, b1)
        assert _agents(pool, b1) == [b1]
        assert _agents(pool, b1) == [b1]


def test_at_most_max_prepared_statements_stay_prepared(
        db: TestDB, world: World, caplog: pytest.LogCaptureFixture) -> None:
    """The oldest statement is closed beyond MAX_PREPARED (by the protocol's Close from libpq
    17 on, by DEALLOCATE before), and the guard after a key's block counts what was closed."""
    secret = _key(db, world, "A1")
    with _plugins(db, world) as (pool, _):
        for n in range(MAX_PREPARED + 20):
            for _ in range(2):  # prepared from the second use on
                with pool.connection(api_key=secret) as s:
                    assert s.scalar(sql.SQL("select {}::int").format(sql.Literal(n))) == n
        with pool.connection(api_key=secret) as s:
            held = s.scalar("select count(*) from pg_prepared_statements")
        assert MAX_PREPARED - 5 <= held <= MAX_PREPARED
        with caplog.at_level(logging.WARNING, logger="maim_db"):
            assert _keyed(pool, secret) == [world.agent_id("A1")]  # counted: no reset
        assert "resetting" not in caplog.text


@pytest.mark.fresh_db  # creates and alters a table
def test_a_table_changed_under_a_prepared_statement(db: TestDB, world: World) -> None:
    a1 = world.agent_id("A1")
    with psycopg.connect(_superuser(db), autocommit=True) as su:
        su.execute("create table probe (x int); insert into probe values (1); "
                   "grant select on probe to maim_app")
        with _one(db, world) as (pool, _):
            for _ in range(3):
                with pool.connection(agent_id=a1) as s:
                    assert s.rows("select * from probe") == [(1,)]
            su.execute("alter table probe add column y int default 2")
            with pytest.raises(DatabaseError, match="cached plan must not change result"), \
                    pool.connection(agent_id=a1) as s:
                s.rows("select * from probe")
            with pool.connection(agent_id=a1) as s:
                assert s.rows("select * from probe") == [(1, 2)]


def test_an_interrupt_with_results_pending_closes_the_connection_quietly(
        db: TestDB, world: World, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (or any BaseException) landing in the round trip's own code, after the pipeline
    is sent and before its results are in, leaves a connection that can neither leave
    pipeline mode nor roll back. It is closed there and then: no "error ignored in rollback"
    on the way out (seen once under `maimdb import-sqlite`), and a pool opens a new one."""
    from maim_db import connect
    from maim_db.pipeline import Session

    a1 = world.agent_id("A1")
    real = Session.pipeline

    def interrupted(self: Session, calls: list[Any]) -> Any:
        sending = real(self, calls)
        next(sending)  # sent; waiting for the server
        sending.throw(KeyboardInterrupt())
        yield  # never reached: the throw raises

    with _one(db, world) as (pool, first), caplog.at_level(logging.WARNING):
        with monkeypatch.context() as patch:
            patch.setattr(Session, "pipeline", interrupted)
            with pytest.raises(KeyboardInterrupt), pool.connection(agent_id=a1) as s:
                s.scalar("select pg_sleep(0.2)")
            with pytest.raises(KeyboardInterrupt), connect(db.dsn("app"), agent_id=a1) as c:
                c.scalar("select pg_sleep(0.2)")
        assert first.closed and c.connection.closed
        assert _agents(pool, a1) == [a1]  # a new connection
    assert "error ignored" not in caplog.text and "rollback" not in caplog.text, caplog.text


def test_find_with_any_limit_is_one_prepared_statement(db: TestDB, world: World) -> None:
    """LIMIT is a parameter, not a literal: a page of 1, 2 or 3 rows runs one prepared
    statement, not one per page size (each held on every pooled connection)."""
    with _one(db, world) as (pool, _):
        for _ in range(2):  # prepared from the second use on
            for n in (1, 2, 3):
                with pool.connection(agent_id=world.agent_id("A2")) as s:
                    assert len(s.find(Agent, limit=n)) == 1  # one agent in scope
                    assert s.find(Agent, limit=0) == []
        with pool.connection(agent_id=world.agent_id("A2")) as s:
            held = s.rows("select statement from pg_prepared_statements"
                          " where statement ~ 'agents.* limit'")
        with pytest.raises(InputError), pool.connection(agent_id=world.agent_id("A2")) as s:
            s.find(Agent, limit=2**63)  # beyond bigint, as LIMIT is
    assert len(held) == 1, held
