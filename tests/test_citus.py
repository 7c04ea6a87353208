"""Issue 16: maim_db on a Citus cluster (tools/citus.py: one coordinator, two workers).

``MAIMDB_TEST_CITUS_DSN`` is the coordinator's superuser DSN (its database ``maim``); .ci/run
builds the cluster, sets it and ``MAIMDB_REQUIRE_CITUS`` (so a missing cluster fails rather
than skips). Everything runs through the coordinator as the real login roles; the cluster's
one database is shared, so every test works on a world of its own (fresh ids)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from maim_db.schema import audit, citus, migrate
from tests.databases import Server, TestDB, World, build_world, make_logins

DSN = os.environ.get("MAIMDB_TEST_CITUS_DSN")

if not DSN:
    if os.environ.get("MAIMDB_REQUIRE_CITUS"):
        raise RuntimeError("MAIMDB_REQUIRE_CITUS is set but MAIMDB_TEST_CITUS_DSN is not "
                           "(python tools/citus.py start DIR prints it)")
    pytest.skip("no Citus cluster: set MAIMDB_TEST_CITUS_DSN (python tools/citus.py build && "
                "python tools/citus.py start DIR)", allow_module_level=True)

from tests import (  # noqa: E402
    test_isolation,
    test_isolation_matrix,
    test_rls_pitfalls,
    test_unforgeable,
)

#: Tests of those modules that do not run here, and why. The cluster has one database, which
#: every test's world shares (its own tests, not Citus, make these need a database alone).
NOT_ON_THE_CLUSTER = {
    "test_agent_cannot_write_the_control_plane":
        "checks that the admin sees exactly its world's agents afterwards",
    "test_agent_cannot_insert_into_another_agent": "same: every row of the table, admin scope",
    "test_agent_cannot_move_a_row_to_another_agent": "same",
    "test_admin_sees_everything": "counts every row of the database",
    "test_deleting_an_agent_cascades": "counts every row of the database",
    "test_deleting_a_tenant_cascades_to_its_agents": "counts every row of the database",
    "test_two_blocks_on_one_key_and_a_nested_one_all_proceed":
        "finds its key by name ('plugin A1'), which every world's key for A1 shares",
    "test_the_payload_is_caught_when_a_definer_is_not_pinned":
        "creates an unpinned SECURITY DEFINER function, which the shared database would keep "
        "(and the next migrate's audit would refuse)",
}

# The tests (and their fixtures) of the modules above, collected here against the cluster:
# this module's `db` and `world` (below) replace the conftest's for them.
for _module in (test_isolation, test_isolation_matrix, test_rls_pitfalls, test_unforgeable):
    for _name, _value in vars(_module).items():
        is_fixture = hasattr(_value, "_fixture_function_marker")
        if ((_name.startswith("test_") or is_fixture) and _name not in NOT_ON_THE_CLUSTER
                and _name not in ("db", "world")):
            globals()[_name] = _value


@pytest.fixture(scope="session")
def cluster() -> Iterator[Server]:
    """The coordinator, migrated, with the test logins."""
    assert DSN
    migrate.migrate(DSN)
    with psycopg.connect(DSN, autocommit=True) as conn:
        make_logins(conn)
    yield Server(DSN, "citus")


@pytest.fixture
def db(cluster: Server) -> TestDB:  # the conftest's db, on the cluster's one database
    return TestDB(cluster, str(conninfo_to_dict(DSN or "")["dbname"]))


@pytest.fixture
def world(db: TestDB) -> World:
    return build_world(db, tag=f"-{uuid.uuid4().hex[:8]}")


# -- the cluster itself ------------------------------------------------------------------------

def _workers(conn: psycopg.Connection[Any]) -> list[str]:
    return [make_conninfo(DSN or "", host=n.name, port=n.port)
            for n in citus.nodes(conn) if n.role == "worker"]


def test_migrate_on_the_coordinator_is_a_no_op_the_second_time(cluster: Server) -> None:
    assert DSN
    assert migrate.migrate(DSN) == []
    with psycopg.connect(DSN, autocommit=True) as conn:
        assert audit.audit(conn) == []
        assert [n.role for n in citus.nodes(conn)] == ["coordinator", "worker", "worker"]


def test_every_node_has_the_roles_and_the_scope_functions(cluster: Server) -> None:
    assert DSN
    with psycopg.connect(DSN, autocommit=True) as conn:
        workers = _workers(conn)
        want = conn.execute("select proname from pg_proc where pronamespace = 'maim'::regnamespace "
                            "order by 1").fetchall()
    assert len(workers) == 2 and len(want) >= 12
    for worker in workers:
        with psycopg.connect(worker, autocommit=True) as w:
            roles = dict(w.execute("select rolname, rolcanlogin and not rolbypassrls "
                                   "from pg_roles where rolname = any(%s)",
                                   [list(citus.ROLES)]).fetchall())
            assert roles == dict.fromkeys(citus.ROLES, True)
            assert w.execute("select proname from pg_proc where pronamespace = "
                             "'maim'::regnamespace order by 1").fetchall() == want


@pytest.mark.parametrize("role", citus.ROLES)
def test_a_login_that_knows_only_a_group_roles_name_cannot_log_in_as_it(
        cluster: Server, role: str) -> None:
    """The group roles need LOGIN for Citus's node connections; only Citus has their
    password (pg_dist_authinfo), so naming one is not enough, on any node."""
    assert DSN
    with psycopg.connect(DSN, autocommit=True) as conn:
        nodes = [DSN, *_workers(conn)]
    for node in nodes:
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(make_conninfo(node, user=role), connect_timeout=5).close()


def test_status_shows_the_clusters_nodes(cluster: Server) -> None:
    assert DSN
    shown = subprocess.run([sys.executable, "-m", "maim_db.cli", "status", "--json"],
                           env={**os.environ, "MAIMDB_DSN": DSN}, capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    nodes = json.loads(shown.stdout)["nodes"]
    assert [(n["role"], n["active"]) for n in nodes] == [
        ("coordinator", True), ("worker", True), ("worker", True)]
    assert len({n["port"] for n in nodes}) == 3


@pytest.mark.xfail(strict=True, reason=(
    "not yet (issue 16): the policies write the scope as `(select maim.agent_id())`, a "
    "subquery, which Citus refuses in policies on distributed tables; the scope is set with "
    "set_config(), which Citus does not send to the workers (SET LOCAL with "
    "citus.propagate_set_commands = 'local' is); and a key scope's proof is bound to the "
    "coordinator backend's pid — docs/scaling.md"))
def test_every_agent_table_is_distributed_by_agent_id(cluster: Server) -> None:
    assert DSN
    with psycopg.connect(DSN, autocommit=True) as conn:
        distributed = {t for (t,) in conn.execute(
            "select logicalrelid::regclass::text from pg_dist_partition "
            "where partmethod = 'h' and column_to_column_name(logicalrelid, partkey) "
            "= 'agent_id'")}
    agent_tables = {m.table for m in test_isolation_matrix.AGENT_TABLES}
    assert agent_tables and agent_tables <= distributed


def test_a_plugin_cannot_run_sql_on_other_nodes_through_citus(db: TestDB, world: World) -> None:
    """Citus grants its run-SQL-elsewhere functions to PUBLIC; through them a plugin's block
    would open a worker session as maim_plugin. migrate revokes them; the audit checks."""
    with psycopg.connect(db.dsn("plugin"), autocommit=True) as p:
        for query in ("select * from run_command_on_workers('select 1')",
                      "select * from run_command_on_all_nodes('select 1')",
                      "select * from master_run_on_worker(array['localhost'], array[1], "
                      "array['select 1'], false)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                p.execute(query)
    with (psycopg.connect(db.dsn("app"), autocommit=True) as app,
          pytest.raises(psycopg.errors.InsufficientPrivilege)):
        app.execute("select * from run_command_on_workers('select 1')")


def test_the_audit_finds_a_run_sql_function_granted_back(cluster: Server) -> None:
    assert DSN
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("grant execute on function run_command_on_workers(text, boolean) "
                     "to maim_plugin")
        try:
            found = [str(f) for f in audit.audit(conn)]
        finally:
            conn.execute("revoke execute on function run_command_on_workers(text, boolean) "
                         "from maim_plugin")
        # maim_app too: it is a member of maim_plugin
        assert found == [f"function run_command_on_workers(text,boolean): {role} may run SQL "
                         "on other Citus nodes through it (`maimdb migrate` revokes it from "
                         "PUBLIC)" for role in ("maim_app", "maim_plugin")]
        assert audit.audit(conn) == []
