"""Fixtures: one server per run, the schema migrated once into a template database, one
clone of it per test module that its tests share — each with a world of its own, kept apart
by the product's own row-level security — and a fresh clone for a test marked ``fresh_db``
(docs/conventions.md, "Tests"). Code under test connects through login roles that are members
of maim_app, maim_tenant, maim_admin and maim_plugin — never as a superuser, which would
bypass RLS."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from maim_db.schema import migrate
from tests.databases import (
    Server,
    TestDB,
    World,
    build_world,
    make_logins,
    with_db,
)
from tests.server import superuser_dsn

# `twin`: one test through the sync API and the async one
pytest_plugins = ["tests.twins"]


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    """One server per run; under ``pytest -n`` one per worker (embedded, or
    ``MAIMDB_TEST_DSN_GW0``, ``_GW1``, ...)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if (worker and os.environ.get("MAIMDB_TEST_DSN")
            and not os.environ.get(f"MAIMDB_TEST_DSN_{worker.upper()}")):
        # roles and role settings are cluster-wide, and some tests change them
        pytest.fail(f"pytest -n with MAIMDB_TEST_DSN: the workers would share one server's "
                    f"roles; give each its own (MAIMDB_TEST_DSN_{worker.upper()}, ...) or "
                    f"run without -n")
    with superuser_dsn() as (dsn, label):
        yield Server(dsn, label)


@pytest.fixture(scope="session")
def template(server: Server) -> Iterator[str]:
    name = server.create_database()
    migrate.migrate(with_db(server.superuser, name))
    with server.admin_conn() as conn:
        make_logins(conn)
    yield name
    server.drop_database(name)


@pytest.fixture(scope="session")
def bouncer(server: Server, template: str) -> Iterator[tuple[str, int]]:
    """(host, port) of a PgBouncer in transaction mode in front of the test server."""
    from tests import pgbouncer

    with pgbouncer.for_the_tests(server.superuser) as address:
        yield address


@pytest.fixture(scope="module")
def shared_db(server: Server, template: str) -> Iterator[TestDB]:
    """The module's database: cloning one per test was most of the suite's time."""
    name = server.create_database(template=template)
    yield TestDB(server, name)
    server.drop_database(name)


@pytest.fixture
def db(request: pytest.FixtureRequest, server: Server, template: str) -> Iterator[TestDB]:
    """The module's shared database; a fresh clone when the test is marked ``fresh_db`` (it
    migrates, rolls back, changes the schema or server-wide state, or counts across agents)."""
    if request.node.get_closest_marker("fresh_db") is None:
        yield request.getfixturevalue("shared_db")
        return
    name = server.create_database(template=template)
    yield TestDB(server, name)
    server.drop_database(name)


@pytest.fixture
def empty_db(server: Server, template: str) -> Iterator[TestDB]:
    """A database with nothing migrated. The roles and the test logins exist (they are
    cluster-wide; the template made them), so a test that migrates it can connect as they
    do in every other test, run alone or not."""
    name = server.create_database()
    yield TestDB(server, name)
    server.drop_database(name)


@pytest.fixture
def world(db: TestDB) -> World:
    """Two tenants and three agents of this test alone, in a database other tests may share."""
    return build_world(db, tag=f"-w{next(_worlds)}")


_worlds = itertools.count()


@pytest.fixture
def secret_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh MAIMDB_SECRET_KEY for this test (and the CLI processes it starts)."""
    from maim_db import crypto

    key = crypto.new_key()
    monkeypatch.setenv(crypto.ENV, key)
    monkeypatch.delenv(crypto.FALLBACKS_ENV, raising=False)
    yield key


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory the server's OS user can reach: as root the server runs as another user,
    and pytest's tmp_path is under a 0700 directory that maim_db will not open."""
    made = Path(tempfile.mkdtemp(prefix="maimdb-t-"))
    made.chmod(0o755)
    yield made
    shutil.rmtree(made, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that never asks for the ``server`` fixture (style, layout, packaging, the
    embedded server's own tests, CLI parsing, README statics) gives the same result on any
    PostgreSQL: it is marked ``server_independent``, and .ci/run's second server skips it.
    (test_citus's ``cluster`` is a server too.)"""
    for item in items:
        if not {"server", "cluster"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.server_independent)
