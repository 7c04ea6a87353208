"""The oldest release that can still use a database (issue 31): migration 0018 records it,
and maim_db refuses, once per connection, a database whose floor is above its own version."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from packaging.version import Version

from maim_db import OutdatedReleaseError, Pool, connect
from maim_db.release import at_least
from maim_db.tables import AgentActiveState
from maim_db.version import __version__
from tests.databases import LOGINS, TestDB, World
from tests.twins import Twin

pytestmark = pytest.mark.fresh_db  # tests replace maim.release_floor()


def _set_floor(db: TestDB, floor: str) -> None:
    """What a later migration that raises the floor does."""
    with psycopg.connect(db.superuser, autocommit=True) as conn:
        conn.execute("set role maim_owner")
        conn.execute(f"create or replace function maim.release_floor() returns text "
                     f"language sql immutable parallel safe as $$ select '{floor}'::text $$")


@pytest.mark.parametrize(("version", "floor"), [
    ("0.2.0", "0.2.0"), ("0.2", "0.2.0"), ("0.2.0", "0.2"), ("0.1.0", "0.2.0"),
    ("0.10.0", "0.9.0"), ("1.0.0", "0.99.99"), ("0.2.0rc1", "0.2.0"), ("0.2.0.dev3", "0.2.0"),
    ("0.2.0a1", "0.2.0"), ("0.2.0.post1", "0.2.0"), ("0.2.1.dev1", "0.2.0"),
    ("0.3.0+local", "0.3.0"), ("1!0.1.0", "9.0.0"), ("0.2.0b2.post1", "0.2.0"),
])
def test_at_least_is_pep_440(version: str, floor: str) -> None:
    assert at_least(version, floor) == (Version(version) >= Version(floor))


def test_the_floor_is_this_release_and_every_role_reads_it(db: TestDB) -> None:
    assert at_least(__version__, "0.2.0")
    for kind in LOGINS:
        with psycopg.connect(db.dsn(kind)) as conn:
            assert conn.execute("select maim.release_floor()").fetchone() == ("0.2.0",)


@pytest.fixture
def floor_above(db: TestDB, world: World) -> Iterator[TestDB]:
    """The world, then a floor above this release (as a newer release's migration sets)."""
    _set_floor(db, "9.0.0")
    yield db


def test_a_floor_above_this_release_is_refused(floor_above: TestDB, world: World,
                                               twin: Twin) -> None:
    db, agent = floor_above, world.agent_id("A1")
    line = (f"this database needs maim_db 9.0.0 or newer (migrated by a newer release); "
            f"this is maim_db {__version__}: upgrade this service")
    with pytest.raises(OutdatedReleaseError, match=r"needs maim_db 9\.0\.0 or newer") as caught, \
            twin.connect(db.dsn("app"), agent_id=agent) as handle:
        handle.execute("delete from agent_active_states")
    assert str(caught.value) == line
    with twin.Pool(db.dsn("app"), min_size=1, max_size=1) as pool:
        with pytest.raises(OutdatedReleaseError):
            pool.execute("delete from agent_active_states", agent_id=agent)
        with pytest.raises(OutdatedReleaseError), pool.connection(agent_id=agent) as handle:
            handle.execute("delete from agent_active_states")
    with psycopg.connect(db.superuser) as conn:  # nothing ran: the row is still there
        assert conn.execute("select count(*) from agent_active_states where agent_id = %s",
                            [agent]).fetchone() == (1,)


def test_the_bridge_refuses_a_floor_above_this_release(floor_above: TestDB,
                                                       world: World) -> None:
    from maim_db.peewee import ChatStreams, ScopedDatabase

    bridged = ScopedDatabase(floor_above.dsn("app"), agent_id=world.agent_id("A1"))
    try:
        with bridged.bind_ctx([ChatStreams]):
            with pytest.raises(OutdatedReleaseError):
                ChatStreams.select().count()
            with pytest.raises(OutdatedReleaseError), bridged.atomic():
                ChatStreams.select().count()
    finally:
        bridged.pool().close()


@pytest.mark.parametrize("floor", ["0.1.0", __version__])
def test_a_floor_at_or_below_this_release_is_served(db: TestDB, world: World, twin: Twin,
                                                    floor: str) -> None:
    _set_floor(db, floor)
    agent = world.agent_id("A1")
    with twin.connect(db.dsn("app"), agent_id=agent) as handle:
        assert len(handle.find(AgentActiveState)) == 1
    with twin.Pool(db.dsn("app"), min_size=1, max_size=1) as pool:
        assert len(pool.fetch(AgentActiveState, "select * from agent_active_states",
                              agent_id=agent)) == 1


def test_a_newer_but_compatible_schema_serves_this_release(db: TestDB, world: World) -> None:
    """A rolling upgrade: a newer release migrated (a migration this code does not know) and
    left the floor where it was, so services of this release keep working."""
    with psycopg.connect(db.superuser, autocommit=True) as conn:
        conn.execute("insert into _yoyo_migration (migration_hash, migration_id, "
                     "applied_at_utc) values ('f' || repeat('0', 63), '9999_from_the_future', "
                     "now())")
    _set_floor(db, __version__)
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        assert len(app.find(AgentActiveState)) == 1


def test_the_floor_is_read_once_per_connection(db: TestDB, world: World) -> None:
    """A pooled connection that was checked keeps serving (no statement per block); a new
    connection reads the floor again."""
    agent = world.agent_id("A1")
    with Pool(db.dsn("app"), min_size=1, max_size=1) as pool:
        assert len(pool.fetch(AgentActiveState, "select * from agent_active_states",
                              agent_id=agent)) == 1
        _set_floor(db, "9.0.0")
        with pool.connection(agent_id=agent) as handle:
            assert len(handle.find(AgentActiveState)) == 1
    with pytest.raises(OutdatedReleaseError), connect(db.dsn("app"), agent_id=agent) as app:
        app.find(AgentActiveState)
