"""``maimdb db dump|restore|reset`` (issue 31, item 6): a whole database out and back in, as
the operator runs them, checked as the real logins (rows, isolation, policies, grants)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from maim_db import connect, embedded
from maim_db.schema import migrate
from maim_db.schema.audit import audit
from maim_db.schema.snapshot import snapshot
from maim_db.tables import Agent
from maim_db.tables.maibot1 import Messages
from maim_db.tables.runtime import Message
from tests.cli import maimdb, one_line_error
from tests.databases import Server, TestDB, World, build_world, make_logins, with_db
from tests.samples import message

pytestmark = pytest.mark.fresh_db  # a dump holds every tenant; a restore replaces the database

PG15 = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture
def tools_on_path(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH finds a pg_dump/pg_restore that can read PostgreSQL 18 (the
    wheel's, behind two small scripts), as an operator's PATH would."""
    where = tmp_path / "bin"
    where.mkdir()
    for tool in ("pg_dump", "pg_restore"):
        script = where / tool
        script.write_text(f'#!/bin/sh\nexec "{embedded.bin_dir() / tool}" "$@"\n')
        script.chmod(0o755)
    return dict(os.environ, PATH=f"{where}:{os.environ['PATH']}")


def _fill(db: TestDB, world: World) -> None:
    for agent, n in (("A1", 5), ("B1", 3)):
        with connect(db.dsn("app"), agent_id=world.agent_id(agent)) as s:
            s.insert_many([message(i) for i in range(n)])
            s.insert_many([Messages(message_id=f"m{i}", platform="qq", user_id="u",
                                    user_nickname="n", session_id="s") for i in range(n)])


def _seen(db: TestDB, world: World) -> dict[str, tuple[list[str], int, int]]:
    """What each agent's scope sees, as the app login: its agents, its messages and its
    MaiBot 1.x messages (schema maibot1)."""
    seen = {}
    for agent in ("A1", "A2", "B1"):
        with connect(db.dsn("app"), agent_id=world.agent_id(agent)) as s:
            seen[agent] = ([a.id for a in s.find(Agent)],
                           len(s.fetch(Message, "select * from messages")),
                           len(s.find(Messages)))
    return seen


def _empty(db: TestDB) -> bool:
    with psycopg.connect(db.superuser) as conn:
        return conn.execute("select not exists (select from pg_namespace where nspname = "
                            "'maim') and not exists (select from pg_class c join pg_namespace "
                            "n on n.oid = c.relnamespace where n.nspname = 'public')"
                            ).fetchone() == (True,)


def test_dump_and_restore_keep_rows_isolation_policies_and_grants(
        server: Server, db: TestDB, world: World, tmp_path: Path,
        tools_on_path: dict[str, str]) -> None:
    _fill(db, world)
    dump = tmp_path / "all.dump"
    made = maimdb("db", "dump", str(dump), dsn=db.superuser, env=tools_on_path)
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600
    assert dump.read_bytes()[:5] == b"PGDMP"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left

    fresh = TestDB(server, server.create_database())
    try:
        restored = maimdb("db", "restore", str(dump), dsn=fresh.superuser, env=tools_on_path)
        assert restored.returncode == 0, restored.stderr
        assert "audit: no findings" in restored.stdout
        expected = {"A1": ([world.agent_id("A1")], 5, 5), "A2": ([world.agent_id("A2")], 0, 0),
                    "B1": ([world.agent_id("B1")], 3, 3)}
        assert _seen(fresh, world) == expected == _seen(db, world)
        with connect(fresh.dsn("tenant"), tenant_id=world.tenant_id("T1")) as t:
            assert sorted(a.id for a in t.find(Agent)) == sorted(
                [world.agent_id("A1"), world.agent_id("A2")])
        with psycopg.connect(fresh.superuser) as new, psycopg.connect(db.superuser) as old:
            assert audit(new) == []
            assert snapshot(new) == snapshot(old)  # policies, grants, function bodies
        state = migrate.status(fresh.superuser)
        assert state.pending == [] and state.edited == [] and state.unknown == []
    finally:
        server.drop_database(fresh.name)


def test_restore_refuses_a_database_that_holds_anything(
        db: TestDB, world: World, tmp_path: Path, tools_on_path: dict[str, str]) -> None:
    _fill(db, world)
    dump = tmp_path / "all.dump"
    assert maimdb("db", "dump", str(dump), dsn=db.superuser, env=tools_on_path).returncode == 0
    before = _seen(db, world)
    line = one_line_error(maimdb("db", "restore", str(dump), dsn=db.superuser,
                                 env=tools_on_path))
    assert f'database "{db.name}"' in line and "is not empty" in line
    assert "maimdb db reset" in line
    assert _seen(db, world) == before


def test_bad_files_are_one_line_and_change_nothing(
        db: TestDB, empty_db: TestDB, tmp_path: Path, tools_on_path: dict[str, str]) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a dump\n")
    missing = tmp_path / "missing.dump"
    for path, says in ((missing, "no such file"), (text, "not a pg_dump archive"),
                       (tmp_path, "is a directory")):
        line = one_line_error(maimdb("db", "restore", str(path), dsn=empty_db.superuser,
                                     env=tools_on_path))
        assert str(path) in line and says in line.lower(), line
        assert _empty(empty_db)
    for path in (tmp_path / "nowhere" / "all.dump", tmp_path):
        line = one_line_error(maimdb("db", "dump", str(path), dsn=db.superuser,
                                     env=tools_on_path))
        assert str(path) in line, line
    assert not (tmp_path / "nowhere").exists()
    # a login that cannot read every row (grants, forced row-level security) is refused,
    # never given a partial dump
    line = one_line_error(maimdb("db", "dump", str(tmp_path / "app.dump"), dsn=db.dsn("app"),
                                 env=tools_on_path))
    assert "pg_dump failed" in line and "permission denied" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "notes.txt"]
    # a dump cut short: pg_restore fails part-way, in its one transaction
    whole = tmp_path / "whole.dump"
    assert maimdb("db", "dump", str(whole), dsn=db.superuser, env=tools_on_path).returncode == 0
    cut = tmp_path / "cut.dump"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    line = one_line_error(maimdb("db", "restore", str(cut), dsn=empty_db.superuser,
                                 env=tools_on_path))
    assert "nothing was restored" in line or str(cut) in line, line
    assert _empty(empty_db)
    whole.unlink()
    cut.unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "notes.txt"]


@pytest.mark.skipif(not (PG15 / "pg_dump").exists(), reason="Debian's postgresql-15 binaries")
def test_tools_too_old_for_the_server_are_refused(
        db: TestDB, empty_db: TestDB, tmp_path: Path, tools_on_path: dict[str, str]) -> None:
    old = dict(os.environ, PATH=f"{PG15}:{os.environ['PATH']}")
    with psycopg.connect(db.superuser) as conn:
        major = conn.info.server_version // 10000
    if major <= 15:
        pytest.skip("the test server is PostgreSQL 15")
    dump = tmp_path / "all.dump"
    line = one_line_error(maimdb("db", "dump", str(dump), dsn=db.superuser, env=old))
    assert f"pg_dump 15 cannot dump PostgreSQL {major}" in line, line
    assert not dump.exists()
    assert maimdb("db", "dump", str(dump), dsn=db.superuser, env=tools_on_path).returncode == 0
    line = one_line_error(maimdb("db", "restore", str(dump), dsn=empty_db.superuser, env=old))
    assert f"pg_restore 15 cannot restore PostgreSQL {major}" in line, line
    assert _empty(empty_db)


# -- the embedded server ----------------------------------------------------------------------

@pytest.fixture
def embedded_env(open_dir: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k != "MAIMDB_DSN"}
    env["MAIMDB_DATA_DIR"] = str(open_dir / "data" / "postgres")
    yield env
    subprocess.run([sys.executable, "-m", "maim_db.cli", "db", "stop"], env=env,
                   capture_output=True, timeout=120)


def test_embedded_dump_reset_restore(embedded_env: dict[str, str], open_dir: Path,
                                     tmp_path: Path) -> None:
    env = embedded_env
    assert maimdb("migrate", env=env).returncode == 0
    url = maimdb("db", "url", env=env).stdout.strip()
    with psycopg.connect(with_db(url, "postgres"), autocommit=True) as conn:
        make_logins(conn)
    db = TestDB(Server(with_db(url, "postgres"), "embedded"), "maim")
    world = build_world(db)
    _fill(db, world)
    before = _seen(db, world)

    dump = tmp_path / "maim.dump"
    made = maimdb("db", "dump", str(dump), env=env)
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600

    refused = one_line_error(maimdb("db", "reset", env=env))
    assert "--yes" in refused
    assert _seen(db, world) == before
    elsewhere = one_line_error(maimdb("db", "reset", "--yes", env=dict(env, MAIMDB_DSN=url)))
    assert "MAIMDB_DSN" in elsewhere and "embedded" in elsewhere
    assert _seen(db, world) == before

    reset = maimdb("db", "reset", "--yes", env=env)
    assert reset.returncode == 0, reset.stderr
    assert _empty(db)
    assert maimdb("status", env=env).returncode == 1  # an empty database: not migrated

    restored = maimdb("db", "restore", str(dump), env=env)
    assert restored.returncode == 0, restored.stderr
    assert _seen(db, world) == before
    assert maimdb("status", env=env).returncode == 0
    assert maimdb("audit", env=env).returncode == 0

    # a new server (disaster recovery): no maim roles yet; the restore makes them
    other = dict(env, MAIMDB_DATA_DIR=str(open_dir / "other" / "postgres"))
    try:
        started = maimdb("db", "start", env=other)
        assert started.returncode == 0, started.stderr
        url = maimdb("db", "url", env=other).stdout.strip()
        with psycopg.connect(with_db(url, "postgres")) as conn:
            assert conn.execute("select count(*) from pg_roles where rolname like 'maim%'"
                                ).fetchone() == (0,)
        restored = maimdb("db", "restore", str(dump), env=other)
        assert restored.returncode == 0, restored.stderr
        with psycopg.connect(with_db(url, "postgres"), autocommit=True) as conn:
            make_logins(conn)  # the services' logins are the operator's, as on any server
        assert _seen(TestDB(Server(with_db(url, "postgres"), "other"), "maim"), world) == before
    finally:
        maimdb("db", "stop", env=other)
