"""One import of a MaiBot file into an agent at a time, and nobody else can stop it (issue 11,
item 9). The import used to hold a session advisory lock whose key any session could compute
or read in pg_locks, and take first: that agent's imports were then refused for as long as
the other session liked. Now the claim is a row the agent owns (import_claims), live only
while its own backend holds the random lock the row names."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from maim_db import IsolationError, connect
from maim_db.scope import named_agent
from maim_db.transfer.maibot import import_claim, import_sqlite, open_source, source_key
from tests import maibot_files as mf
from tests.databases import TestDB, World


def _file(tmp_path: Path) -> tuple[Path, str]:
    path = mf.build(tmp_path / "MaiBot.db", "0.12")
    source = open_source(path)
    try:
        return path, source_key(source)
    finally:
        source.conn.close()


def _import(db: TestDB, path: Path, agent: str) -> int:
    report = import_sqlite(path, agent, dsn=db.dsn("app"), timezone="Asia/Shanghai")
    return report.table("messages").written


def _claims(db: TestDB, agent: str) -> int:
    with connect(db.dsn("app"), agent_id=agent) as s:
        return int(s.scalar("select count(*) from import_claims"))


def _advisory_keys(conn: psycopg.Connection[object]) -> list[int]:
    """Every advisory lock key held by anyone, as an observer reads them in pg_locks."""
    rows = conn.execute("select (classid::bigint << 32 | objid::bigint) from pg_locks "
                        "where locktype = 'advisory' and objsubid = 1 and granted").fetchall()
    return [int(k) for (k,) in rows]


def test_no_other_session_can_block_an_import(db: TestDB, world: World, tmp_path: Path) -> None:
    a1 = world.agent_id("A1")
    path, key = _file(tmp_path)
    with psycopg.connect(db.dsn("tenant"), autocommit=True) as attacker:
        # the key the import used to lock, computable by anyone who knows the agent and file
        attacker.execute("select pg_advisory_lock(hashtextextended(%s, 0))",
                         [f"maim_db import {a1} {key}"])
        # and whatever lock a running import holds now, read off pg_locks and taken after
        with psycopg.connect(db.dsn("app"), autocommit=True) as running:
            with import_claim(running, named_agent(a1), key):
                seen = set(_advisory_keys(attacker))
                with connect(db.dsn("app"), agent_id=a1) as s:
                    claimed = s.scalar("select lock_key from import_claims")
            assert claimed in seen  # the running import's lock, as anyone can read it
        for lock in seen:
            attacker.execute("select pg_advisory_lock(%s)", [lock])
        assert _import(db, path, a1) == len(mf.canonical()["messages"])
    assert _claims(db, a1) == 0  # a finished import leaves no claim


def test_another_scope_cannot_see_or_take_an_agents_claim(db: TestDB, world: World,
                                                          tmp_path: Path) -> None:
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    _, key = _file(tmp_path)
    with psycopg.connect(db.dsn("app"), autocommit=True) as running, \
            import_claim(running, named_agent(a1), key):
        assert _claims(db, a1) == 1
        with connect(db.dsn("app"), agent_id=b1) as other:
            assert other.scalar("select count(*) from import_claims") == 0
            assert other.execute("delete from import_claims") == 0
            assert other.execute("update import_claims set holder_pid = 0") == 0
        with pytest.raises(IsolationError), connect(db.dsn("app"), agent_id=b1) as other:
            other.execute("insert into import_claims (agent_id, source_key, holder_pid, "
                          "lock_key) values (%s, %s, 1, 1)", [a1, "0" * 16])
        with connect(db.dsn("tenant"), tenant_id=world.tenant_id("T2")) as tenant:
            assert tenant.scalar("select count(*) from import_claims") == 0
        assert _claims(db, a1) == 1


def test_a_dead_imports_claim_is_taken_over(db: TestDB, world: World, tmp_path: Path) -> None:
    """A killed import cannot release its claim; its backend's lock goes with it, and the
    next import takes the claim over instead of waiting for anyone."""
    a1 = world.agent_id("A1")
    path, key = _file(tmp_path)
    dead = psycopg.connect(db.dsn("app"), autocommit=True)
    claim = import_claim(dead, named_agent(a1), key)
    claim.__enter__()  # never left: the process "dies" holding it
    dead.close()
    assert _claims(db, a1) == 1
    assert _import(db, path, a1) == len(mf.canonical()["messages"])
    assert _claims(db, a1) == 0
