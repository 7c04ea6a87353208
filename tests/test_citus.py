"""Issue 16: maim_db on a Citus cluster (tools/citus.py: one coordinator, two workers).

``MAIMDB_TEST_CITUS_DSN`` is the coordinator's superuser DSN (its database ``maim``); .ci/run
builds the cluster, sets it and ``MAIMDB_REQUIRE_CITUS`` (so a missing cluster fails rather
than skips). Everything runs through the coordinator as the real login roles; the cluster's
one database is shared, so every test works on a world of its own (fresh ids)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from maim_db import ConflictError, IsolationError, MaimDBError, Pool, agent_scope, connect, peewee
from maim_db.schema import audit, citus, migrate
from maim_db.tables import ApiKeyInfo, Message, RuntimeState
from tests.databases import LOGINS, PASSWORD, Server, TestDB, World, build_world, make_logins

DSN = os.environ.get("MAIMDB_TEST_CITUS_DSN")

if not DSN:
    if os.environ.get("MAIMDB_REQUIRE_CITUS"):
        raise RuntimeError("MAIMDB_REQUIRE_CITUS is set but MAIMDB_TEST_CITUS_DSN is not "
                           "(python tools/citus.py start DIR prints it)")
    pytest.skip("no Citus cluster: set MAIMDB_TEST_CITUS_DSN (python tools/citus.py build && "
                "python tools/citus.py start DIR)", allow_module_level=True)

from tests import (  # noqa: E402
    test_flow,
    test_import_maibot1,
    test_import_sqlite,
    test_isolation,
    test_isolation_matrix,
    test_keys,
    test_maibot1,
    test_operator_mistakes,
    test_peewee_bridge,
    test_pgbouncer,
    test_rls_pitfalls,
    test_sqlalchemy,
    test_sqlalchemy_tables,
    test_sqlmodel,
    test_transfer,
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
    "test_planner_statistics_are_hidden_from_scoped_roles":
        "ANALYZE of a distributed table fills pg_statistic on the workers' shards, not on the "
        "coordinator, so the coordinator's pg_stats has nothing for the test to hide",
    "test_extended_statistics_are_hidden_from_scoped_roles": "same, pg_stats_ext",
    "test_users_made_here_own_tenants_and_have_no_password":
        "makes a user with a fixed name and counts every user of the database",
    "test_old_names_without_text_do_not_stop_the_migration":
        "migrates a database of its own (empty_db) from an old version",
    "test_tenant_and_admin_scopes": "counts every agent of the database in admin scope",
    "test_the_scope_setting_is_trusted_inside_a_transaction":
        "pins that set_config() re-sets the scope; on Citus set_config reaches no worker and "
        "SET LOCAL does: test_a_scope_reset_inside_a_block_is_set_local_on_the_cluster",
}

# The tests (and their fixtures) of the modules above, collected here against the cluster:
# this module's `db` and `world` (below) replace the conftest's for them.
for _module in (test_isolation, test_isolation_matrix, test_rls_pitfalls, test_unforgeable,
                test_flow, test_import_sqlite, test_import_maibot1, test_transfer,
                test_pgbouncer, test_operator_mistakes, test_peewee_bridge, test_sqlalchemy,
                test_sqlalchemy_tables, test_maibot1, test_sqlmodel):
    for _name, _value in vars(_module).items():
        is_fixture = hasattr(_value, "_fixture_function_marker")
        if ((_name.startswith("test_") or is_fixture) and _name not in NOT_ON_THE_CLUSTER
                and _name not in ("db", "world")):
            marks = getattr(_module, "pytestmark", [])  # e.g. test_transfer's secret_key
            for _mark in ([] if is_fixture else marks if isinstance(marks, list) else [marks]):
                _value = _mark(_value)
            globals()[_name] = _value


# Issue 32.7: a key's first use on a backend folds ended backends' rows of api_key_usage
# with FOR UPDATE SKIP LOCKED; the same test, on the cluster.
test_key_usage_of_dead_backends_is_folded_and_no_use_is_lost = (
    test_keys.test_key_usage_of_dead_backends_is_folded_and_no_use_is_lost)
# And every key block writes api_key_usage: open at once, none waits for another.
test_key_blocks_open_at_once_never_wait_for_each_other = (
    test_keys.test_key_blocks_open_at_once_never_wait_for_each_other)


#: How maim_db begins a key block (maim_db/handle.py). NOT DEFERRABLE, which Citus names in
#: the BEGIN it sends the workers, is what a worker's proof check asks for: a raw key block
#: here begins the same way.
KEY_BEGIN = "begin isolation level read committed, read write, not deferrable"


@contextlib.contextmanager
def _key_block(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """A raw transaction on an autocommit connection, begun as a key block is."""
    conn.execute(KEY_BEGIN)
    try:
        yield conn
    except BaseException:
        conn.execute("rollback")
        raise
    conn.execute("commit")


@pytest.fixture(scope="session")
def cluster() -> Iterator[Server]:
    """The coordinator, migrated, with the test logins."""
    assert DSN
    migrate.migrate(DSN)
    with psycopg.connect(DSN, autocommit=True) as conn:
        make_logins(conn)
        citus.seal_roles(conn)  # granting a group role to a login marks it distributed again
    yield Server(DSN, "citus")


@pytest.fixture
def db(cluster: Server) -> TestDB:  # the conftest's db, on the cluster's one database
    return TestDB(cluster, str(conninfo_to_dict(DSN or "")["dbname"]))


@pytest.fixture
def world(db: TestDB) -> World:
    return build_world(db, tag=f"-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="session")
def bouncer(cluster: Server) -> Iterator[tuple[str, int]]:
    """PgBouncer in transaction mode in front of the coordinator (test_pgbouncer's)."""
    from tests import pgbouncer

    with pgbouncer.for_the_tests(cluster.superuser) as address:
        yield address


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
        with pytest.raises(psycopg.OperationalError, match=r"rejects|certificate"):
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


def test_every_agent_table_is_distributed_by_agent_id_and_co_located(cluster: Server) -> None:
    """migrate distributes the schema: the agent tables by agent_id, all in one co-location
    group (so a join on agent_id stays on one node), the control plane as reference tables
    but api_key_usage, which every key block writes: by key_id (a reference table's writes
    wait for each other)."""
    assert DSN
    with psycopg.connect(DSN, autocommit=True) as conn:
        tables = {t: (kind, column, group) for t, kind, column, group in conn.execute(
            "select table_name::text, citus_table_type, distribution_column, colocation_id "
            "from citus_tables")}
    agent_tables = {m.table_name() for m in test_isolation_matrix.AGENT_TABLES}
    assert agent_tables and all(tables[t][:2] == ("distributed", "agent_id")
                                for t in agent_tables)
    assert len({tables[t][2] for t in agent_tables}) == 1
    assert {t for t, (kind, _, _) in tables.items() if kind == "reference"} == {
        "users", "tenants", "agents", "api_keys", "plugin_settings",
        "maim.scope_secret"}  # the key-scope secret, for the workers (migrations/0017)
    assert tables["api_key_usage"][:2] == ("distributed", "key_id")


def test_every_shard_carries_its_tables_policies(cluster: Server) -> None:
    """The policies are on the shards, where the rows are: on each worker, each shard of
    messages has the nine policies of messages, written for the shard."""
    assert DSN
    with psycopg.connect(DSN, autocommit=True) as conn:
        workers = _workers(conn)
        shards = conn.execute("select count(*) from pg_dist_shard "
                              "where logicalrelid = 'messages'::regclass").fetchone()
    assert shards is not None
    seen = 0
    for worker in workers:
        with psycopg.connect(worker, autocommit=True) as w:
            w.execute("set citus.override_table_visibility = off")  # shards are hidden else
            rows = w.execute(
                "select c.relname, count(p.polname), bool_and(c.relforcerowsecurity), "
                "bool_or(pg_get_expr(p.polqual, p.polrelid) ilike '%%select%%') "
                "from pg_class c join pg_policy p on p.polrelid = c.oid "
                "where c.relname ~ '^messages_[0-9]+$' group by 1").fetchall()
        assert rows and all(n == 9 and forced and not sub for _, n, forced, sub in rows), rows
        seen += len(rows)
    assert seen == shards[0]


def _policies_by_table(text: str) -> dict[str, list[str]]:
    """A snapshot's policy lines, by table."""
    found: dict[str, list[str]] = {}
    table = ""
    for line in text.splitlines():
        if line.startswith("table "):
            table = line.split()[1]
        elif line.startswith("  policy "):
            found.setdefault(table, []).append(line)
    return found


def test_the_live_policies_are_the_committed_citus_form(cluster: Server) -> None:
    """Issue 33.3: the policies the coordinator holds are, table by table and to the letter,
    sql/schema.citus.snapshot's — the file review reads, made on one server from the same
    definition (sql/30_policies.sql) as the one-server form."""
    assert DSN
    from maim_db.schema.snapshot import snapshot

    committed = _policies_by_table(
        (Path(migrate.SQL_DIR) / "schema.citus.snapshot").read_text(encoding="utf-8"))
    with psycopg.connect(DSN, autocommit=True) as conn:
        live = _policies_by_table(snapshot(conn))
    assert committed and {t: live.get(t) for t in committed} == committed


def test_a_scope_reset_inside_a_block_is_set_local_on_the_cluster(db: TestDB, world: World) -> None:
    """The limit test_rls_pitfalls pins on one server, as it is on Citus: raw SQL in a
    maim_app block can re-set the scope with SET LOCAL (sent to the workers too), while
    set_config() changes only the coordinator's copy — the shards keep the block's agent."""
    a, b = world.agent_id("A1"), world.agent_id("B1")
    for agent, key in ((a, "a-only"), (b, "b-only")):
        with connect(db.dsn("app"), agent_id=agent) as s:
            s.execute("insert into runtime_state (state_key, state_value) values (%s, '1')",
                      [key])
    with connect(db.dsn("app"), agent_id=a) as s:
        s.execute("select set_config('maim.agent_id', %s, true)", [b])
        assert s.rows("select state_key from runtime_state") == [("a-only",)]
    with connect(db.dsn("app"), agent_id=a) as s:
        s.execute(sql.SQL("set local maim.agent_id = {}").format(sql.Literal(b)))
        assert s.rows("select state_key from runtime_state") == [("b-only",)]
    with connect(db.dsn("app"), agent_id=a) as s:  # and it ends with the transaction
        assert s.rows("select state_key from runtime_state") == [("a-only",)]


def test_one_statement_pool_calls_hold_on_the_shards(db: TestDB, world: World) -> None:
    """Pool.fetch/execute/result run a statement without BEGIN on one server; Citus sends a
    worker the scope's SET LOCAL only inside a transaction block, so there the one round trip
    carries BEGIN and COMMIT too. Router and multi-shard, agent, key and tenant scope."""
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    secret = test_unforgeable._key(db, world, "A1")
    with Pool(db.dsn("app"), min_size=1, max_size=1) as pool:
        for agent in (a1, b1):
            assert pool.execute("insert into runtime_state (state_key) values (%s)",
                                [f"one-{agent}"], agent_id=agent) == 1
        everywhere = "select state_key from runtime_state where state_key like 'one-%%'"
        routed = everywhere + " and agent_id = %s"
        assert pool.result(everywhere, agent_id=a1).rows == [(f"one-{a1}",)]
        assert pool.result(routed, [b1], agent_id=a1).rows == []
        assert pool.result(routed, [b1], agent_id=b1).rows == [(f"one-{b1}",)]
        with Pool(db.dsn("plugin"), min_size=1, max_size=1) as plugins:  # a key's own login
            assert plugins.result(everywhere, api_key=secret).rows == [(f"one-{a1}",)]
        with pytest.raises(ConflictError):  # a failed one rolls back, and the next is clean
            pool.execute("insert into runtime_state (state_key) values (%s)", [f"one-{a1}"],
                         agent_id=a1)
        assert pool.result("select count(*) from runtime_state where state_key = %s",
                           [f"one-{a1}"], agent_id=a1).rows == [(1,)]
    with Pool(db.dsn("tenant"), min_size=1, max_size=1) as pool:
        assert pool.result(everywhere + " order by 1", tenant_id=world.tenant_id("T1")
                           ).rows == [(f"one-{a1}",)]


def test_a_plugin_cannot_run_sql_on_other_nodes_through_citus(db: TestDB, world: World) -> None:
    """Citus grants its run-SQL-elsewhere functions to PUBLIC; through them a plugin's block
    would open a worker session as maim_plugin. migrate revokes them; the audit checks."""
    with psycopg.connect(db.dsn("plugin"), autocommit=True) as p:
        for query in ("select * from run_command_on_workers('select 1')",
                      "select * from run_command_on_all_nodes('select 1')",
                      "select * from master_run_on_worker(array['localhost'], array[1], "
                      "array['select 1'], false)",
                      # a distributed id of its choosing would replay an old key-scope proof
                      "select assign_distributed_transaction_id(0, 1, now())"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                p.execute(query)
    with (psycopg.connect(db.dsn("app"), autocommit=True) as app,
          pytest.raises(psycopg.errors.InsufficientPrivilege)):
        app.execute("select * from run_command_on_workers('select 1')")


_MINE = "from runtime_state where agent_id = maim.agent_id()"


@pytest.mark.parametrize("query", [
    f"select state_key {_MINE} and citus_run_local_command('select 1')::text is not null",
    f"select citus_run_local_command('select 1')::text {_MINE}",
    f"select run_command_on_workers('select 1') {_MINE}",
    f"select state_key {_MINE} and (select count(*) from run_command_on_workers('select 1')) > 0",
])
def test_nor_through_an_expression_the_shard_query_carries(db: TestDB, world: World,
                                                           query: str) -> None:
    """A function in a router query's WHERE or select list runs on the worker, as
    maim_plugin: the coordinator's revoke alone did not stop it (it ran there until migrate
    revoked the functions on every worker too). A row makes the worker evaluate it."""
    secret = test_unforgeable._key(db, world, "A1")
    with connect(db.dsn("plugin"), api_key=secret) as p:
        p.execute("insert into runtime_state (state_key) values ('evaluated')")
    with pytest.raises(IsolationError, match="permission denied for function"), \
            connect(db.dsn("plugin"), api_key=secret) as p:
        p.rows(query)


def _shard_commands(conn: Any, call: Any) -> list[str]:
    """The commands the coordinator sends to shards while ``call`` runs."""
    sent: list[str] = []
    conn.connection.add_notice_handler(
        lambda d: sent.append(d.message_primary or "")
        if (d.message_primary or "").startswith("issuing") else None)
    conn.execute("set local citus.log_remote_commands = on")
    conn.execute("set local client_min_messages = log")
    call()
    return [c for c in sent if re.search(r"\bpublic\.\w+_\d+\b", c)]  # <table>_<shard id>


@pytest.mark.parametrize("scope", ["agent", "key"])
def test_the_table_helpers_route_an_agent_s_query_to_its_shard(db: TestDB, world: World,
                                                                scope: str) -> None:
    """In agent scope find/update/delete name the agent: the policy alone would add it after
    Citus has planned the query, which then goes to every shard."""
    a1 = world.agent_id("A1")
    where = {"chat_id": "c1"}
    opened = (connect(db.dsn("app"), agent_id=a1) if scope == "agent" else
              connect(db.dsn("plugin"), api_key=test_unforgeable._key(db, world, "A1")))
    with opened as conn:
        conn.execute("insert into runtime_state (state_key) values ('routed')")
        for call in (lambda: conn.find(RuntimeState, {"state_key": "routed"}),
                     lambda: conn.update(RuntimeState, where={"state_key": "routed"},
                                         set={"state_key": "moved"}),
                     lambda: conn.delete(RuntimeState, where={}),
                     lambda: conn.find(Message, where)):
            sent = _shard_commands(conn, call)
            assert len(sent) == 1, sent
        assert conn.find(RuntimeState) == []


def test_the_peewee_bridge_routes_an_agent_s_query_to_its_shard(db: TestDB,
                                                               world: World) -> None:
    """As the table helpers: MaiBot's queries through the bridge name the scope's agent."""
    m = peewee.Messages
    pool = Pool(db.dsn("app"), min_size=1, max_size=1)
    bridge = peewee.ScopedDatabase(pool=pool)
    with bridge.bind_ctx(peewee.MODELS), agent_scope(world.agent_id("A1")), bridge.atomic():
        block = bridge._block()  # the block's connection, for the coordinator's notices
        assert block is not None
        for call in (lambda: m.select().where(m.chat_id == "c1").count(),
                     lambda: m.select().where(m.message_id == "m1").exists(),
                     lambda: m.update(is_emoji=True).where(m.chat_id == "c1").execute(),
                     lambda: m.delete().where(m.chat_id == "c1").execute()):
            sent = _shard_commands(block.handle, call)
            assert len(sent) == 1, sent
    pool.close()


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
        # and on a worker, where a shard query's expressions run
        workers = [f"{n.name}:{n.port}" for n in citus.nodes(conn) if n.role == "worker"]
        conn.execute("select run_command_on_workers(%s)",
                     ["grant execute on function citus_run_local_command(text) to public"])
        try:
            found = [str(f) for f in audit.audit(conn)]
        finally:
            migrate.migrate(DSN)  # which revokes it again
        assert set(found) == {
            f"function citus_run_local_command(text) on {w}: {role} may run SQL on other "
            "Citus nodes through it (`maimdb migrate` revokes it from PUBLIC)"
            for role in citus.ROLES for w in workers}, found
        assert audit.audit(conn) == []


def test_a_key_scope_holds_on_the_shards_and_its_proof_does_not_replay(db: TestDB,
                                                                      world: World) -> None:
    """The proof a worker checks is bound to the distributed transaction (migrations/0017):
    the key's own block reads its agent's rows from the shards, router and multi-shard; the
    same proof, SET LOCAL (so sent to the workers) in the next transaction, is refused
    there."""
    a1 = world.agent_id("A1")
    with connect(db.dsn("app"), agent_id=a1) as app:
        app.execute("insert into runtime_state (state_key) values ('a1-state')")
    secret = test_unforgeable._key(db, world, "A1")
    router = sql.SQL("select state_key from runtime_state where agent_id = {}").format(
        sql.Literal(a1))
    with test_unforgeable._raw(db, "plugin") as conn:
        with _key_block(conn):
            # as the wrapper's blocks do: Citus logs into a worker as the current role, and a
            # worker admits only the group roles (an application login is refused there);
            # set_config, not SET LOCAL ROLE, which Citus would send to the worker too
            conn.execute("select set_config('role', 'maim_plugin', true)")
            conn.execute("select maim.open_key_scope(%s)", [secret])
            proof = conn.execute("select current_setting('maim.agent_proof')").fetchone()
            assert conn.execute(router).fetchall() == [("a1-state",)]
            assert conn.execute("select state_key from runtime_state").fetchall() == [
                ("a1-state",)]
        assert proof is not None
        for query in (router, sql.SQL("select state_key from runtime_state")):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not proven"), \
                    _key_block(conn):
                conn.execute("select set_config('role', 'maim_plugin', true)")
                conn.execute(sql.SQL("set local maim.agent_id = {}").format(sql.Literal(a1)))
                conn.execute(sql.SQL("set local maim.agent_proof = {}").format(
                    sql.Literal(proof[0])))
                conn.execute(query)


def test_a_later_migration_s_agent_table_is_distributed_with_its_policies(
        cluster: Server, tmp_path: Path) -> None:
    """A migration that adds an agent table, run by `maimdb migrate` on the coordinator:
    the table comes out distributed by agent_id, co-located, its shards carrying its
    policies, and the audit clean. (Rolled back after, so the cluster's history stays this
    checkout's.)"""
    assert DSN
    migrations = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, migrations)
    (migrations / "9999_later_agent_table.sql").write_text(
        "create table later_notes (\n"
        "    agent_id text not null default maim.agent_id()\n"
        "             references agents (id) on delete cascade,\n"
        "    id uuid not null default gen_random_uuid(),\n"
        "    note text not null,\n"
        "    primary key (agent_id, id)\n"
        ");\n"
        "call maim.isolate_agent_table('later_notes');\n")
    (migrations / "9999_later_agent_table.rollback.sql").write_text("drop table later_notes;\n")
    applied = migrate.migrate(DSN, migrations_dir=migrations)
    try:
        assert [m.id for m in applied] == ["9999_later_agent_table"]
        with psycopg.connect(DSN, autocommit=True) as conn:
            placed = conn.execute(
                "select t.distribution_column, t.colocation_id = a.colocation_id "
                "from citus_tables t, citus_tables a "
                "where t.table_name = 'later_notes'::regclass "
                "and a.table_name = %s::regclass", [citus.ANCHOR]).fetchone()
            assert placed == ("agent_id", True)
            assert audit.audit(conn) == []
            policies = conn.execute(
                "select count(*) from pg_policy where polrelid = 'later_notes'::regclass "
                "and pg_get_expr(polqual, polrelid) ilike '%%select%%'").fetchone()
            assert policies == (0,)  # written for the shards
    finally:
        migrate.rollback(DSN, steps=1, migrations_dir=migrations)


def test_key_usage_shares_no_colocation_group_with_the_agent_tables(
        db: TestDB, world: World) -> None:
    """Co-located with the agent tables, a key block's usage write (as maim_owner) and its
    first multi-shard read (as maim_plugin) touch one placement group on one worker under two
    users, which Citus refuses ("modified in this transaction by a different user"). A fresh
    migrate once distributed api_key_usage before the anchor, and the anchor, by default,
    joined its group; the audit names such a cluster."""
    assert DSN
    with psycopg.connect(DSN, autocommit=True) as conn:
        groups = dict(conn.execute(
            "select logicalrelid::text, colocationid from pg_dist_partition "
            "where logicalrelid::text in ('api_key_usage', %s)", [citus.ANCHOR]).fetchall())
    assert groups["api_key_usage"] != groups[citus.ANCHOR]
    issued = test_keys._issue(db, world)
    with connect(db.dsn("plugin"), api_key=issued.secret) as p:
        assert p.fetch(Message, sql.SQL("select * from messages")) == []


def test_key_usage_left_a_reference_table_is_distributed_by_the_next_migrate(
        db: TestDB, world: World) -> None:
    """A cluster an older release distributed has api_key_usage as a reference table, on
    which every key block waited for any open one. Rolling 0021 back (and 0022 above it)
    leaves it so (as that release expects), and the audit names it; the next migrate
    distributes it by key_id with its rows, its foreign key and the view's grants, and the
    audit is clean again."""
    assert DSN
    issued = test_keys._issue(db, world)
    with connect(db.dsn("plugin"), api_key=issued.secret) as p:
        p.execute("select 1")

    def placed(conn: psycopg.Connection[Any]) -> tuple[Any, ...] | None:
        return conn.execute(
            "select citus_table_type, distribution_column, "
            "(select count(*) from pg_constraint where conrelid = 'api_key_usage'::regclass "
            "and contype = 'f') from citus_tables "
            "where table_name = 'api_key_usage'::regclass").fetchone()

    try:
        # 0022 first (it moves the recent uses into api_key_usage), then 0021
        assert [m.id for m in migrate.rollback(DSN, steps=2)] == ["0022_key_usage_recent",
                                                                  "0021_key_usage_by_key"]
        with psycopg.connect(DSN, autocommit=True) as conn:
            assert placed(conn) == ("reference", "<none>", 1)
            assert [str(f) for f in audit.audit(conn) if "api_key_usage" in str(f)] == [
                "table api_key_usage: is not distributed by key_id: as a reference table "
                "every key block waits for any key block left open (`maimdb migrate` "
                "distributes it)"]
    finally:
        migrate.migrate(DSN)
    with psycopg.connect(DSN, autocommit=True) as conn:
        assert placed(conn) == ("distributed", "key_id", 1)
        assert audit.audit(conn) == []
    with connect(db.dsn("admin"), admin=True) as adm:
        assert adm.get(ApiKeyInfo, issued.record.id).usage_count == 1


def test_a_policy_changed_by_hand_is_back_on_every_shard_after_migrate(
        cluster: Server) -> None:
    """sql/30_policies.sql on a cluster: migrate alters a policy that differs from its
    definition on the distributed table, and Citus carries that to every shard (the audit
    compares each shard's policies with its table's)."""
    assert DSN
    with psycopg.connect(DSN, autocommit=True) as conn:
        before = _snapshot(conn)
        policies = _policies_by_table(before)["messages"]
        citus.mark_roles_distributed(conn)  # DDL naming the group roles, as migrate does
        try:
            conn.execute("alter policy tenant_select on messages using (true)")
        finally:
            citus.seal_roles(conn)
        assert _policies_by_table(_snapshot(conn))["messages"] != policies
    assert migrate.migrate(DSN) == []
    with psycopg.connect(DSN, autocommit=True) as conn:
        assert _snapshot(conn) == before
        assert audit.audit(conn) == []


def _snapshot(conn: psycopg.Connection[Any]) -> str:
    from maim_db.schema.snapshot import snapshot

    return snapshot(conn)


def test_the_audit_finds_what_distribution_needs(cluster: Server) -> None:
    """A shard without its table's forced row-level security, and an agent table left on
    the coordinator alone, are findings."""
    assert DSN
    with psycopg.connect(DSN, autocommit=True) as conn:
        shard = conn.execute(
            "select shard_name(logicalrelid, shardid), n.nodename, n.nodeport "
            "from pg_dist_shard join pg_dist_placement using (shardid) "
            "join pg_dist_node n using (groupid) "
            "where logicalrelid = 'messages'::regclass order by shardid limit 1").fetchone()
        assert shard is not None
        name, host, port = shard
        worker = make_conninfo(DSN, host=host, port=port)
        with psycopg.connect(worker, autocommit=True) as w:
            w.execute("set citus.override_table_visibility = off")
            w.execute(sql.SQL("alter table {} no force row level security").format(
                sql.Identifier(name)))
            try:
                found = [str(f) for f in audit.audit(conn)]
            finally:
                w.execute(sql.SQL("alter table {} force row level security").format(
                    sql.Identifier(name)))
        assert found == [f"table {name} on {host}:{port}: does not carry its table's "
                         "policies and forced row-level security"]
        # Committed before it is dropped: Citus leaves a table created and dropped in one
        # transaction on the workers (seen here), where it blocks the next create.
        # DDL that names the group roles needs them marked distributed, as migrate does
        # around its own (sealed again after: issue 32.2)
        citus.mark_roles_distributed(conn)
        with conn.transaction():
            conn.execute("set local role maim_owner")
            conn.execute("create table local_notes (agent_id text not null default "
                         "maim.agent_id() references agents (id) on delete cascade, "
                         "id uuid not null default gen_random_uuid(), primary key (agent_id, id))")
            conn.execute("call maim.isolate_agent_table('local_notes')")
        try:
            found = [str(f) for f in audit.audit(conn)]
        finally:
            conn.execute("drop table local_notes")
            citus.seal_roles(conn)
        assert "table local_notes: is not distributed by agent_id (`maimdb migrate` " \
               "distributes it)" in found
        assert audit.audit(conn) == []


# -- issue 32.1 and 32.2: a worker admits only Citus; a block cannot change a group role --------

def _nodes() -> list[str]:
    assert DSN
    with psycopg.connect(DSN, autocommit=True) as conn:
        return [DSN, *_workers(conn)]


@pytest.mark.parametrize("kind", sorted(LOGINS))
def test_a_worker_admits_no_application_login(db: TestDB, kind: str) -> None:
    """Only Citus has business on a worker: an application login (its own password, as
    scaling.md's "the application's logins stay as they are" left them) is refused there."""
    login, _ = LOGINS[kind]
    with psycopg.connect(DSN or "", autocommit=True) as conn:
        workers = _workers(conn)
    for worker in workers:
        with pytest.raises(psycopg.OperationalError, match=r"rejects|certificate"):
            psycopg.connect(make_conninfo(worker, user=login, password=PASSWORD),
                            connect_timeout=5).close()


def test_a_proof_read_on_a_worker_cannot_be_replayed_there(db: TestDB, world: World) -> None:
    """Issue 32.1, as it was done: while A1's key block is open, a plugin session on a worker
    takes A1's distributed transaction id and proof (both travel to the worker as query text,
    readable in pg_stat_activity there) and reads A1's shard. It must get no session there,
    or nothing of A1's if it had one."""
    a1 = world.agent_id("A1")
    with connect(db.dsn("app"), agent_id=a1) as app:
        app.execute("insert into runtime_state (state_key) values ('a1-secret')")
    secret = test_unforgeable._key(db, world, "A1")
    with psycopg.connect(DSN or "", autocommit=True) as conn:
        shard = conn.execute(
            "select shard_name('runtime_state'::regclass, s.shardid), n.nodename, n.nodeport "
            "from pg_dist_shard s join pg_dist_placement using (shardid) "
            "join pg_dist_node n using (groupid) where s.shardid = "
            "get_shard_id_for_distribution_column('runtime_state', %s::text)", [a1]).fetchone()
    assert shard is not None
    name, host, port = shard
    login, _ = LOGINS["plugin"]
    stolen: list[Any] = []
    with test_unforgeable._raw(db, "plugin") as victim, _key_block(victim):
        victim.execute("select set_config('role', 'maim_plugin', true)")  # as the wrapper
        victim.execute("select maim.open_key_scope(%s)", [secret])
        assert victim.execute("select state_key from runtime_state where agent_id = %s",
                              [a1]).fetchall() == [("a1-secret",)]
        proof = victim.execute("select current_setting('maim.agent_proof')").fetchone()
        tid = victim.execute("select initiator_node_identifier, transaction_number, "
                             "transaction_stamp from get_current_transaction_id()").fetchone()
        assert proof and tid
        try:
            thief = psycopg.connect(make_conninfo(DSN or "", host=host, port=port, user=login,
                                                  password=PASSWORD), connect_timeout=5)
        except psycopg.OperationalError:
            thief = None  # refused: what a worker must do
        if thief is not None:
            with thief:
                thief.execute("set citus.override_table_visibility = off")
                thief.execute("select assign_distributed_transaction_id(%s::int, %s::bigint, "
                              "%s::timestamptz)", tid)
                thief.execute("select set_config('maim.agent_proof', %s, true), "
                              "set_config('maim.agent_id', %s, true)", [proof[0], a1])
                try:
                    stolen = thief.execute(sql.SQL("select state_key from {}").format(
                        sql.Identifier(name))).fetchall()
                except psycopg.Error:
                    stolen = []
    assert stolen == []


def _authinfo_password() -> str | None:
    """The group roles' password as tools/citus.py gave it to Citus (none with certificates)."""
    with psycopg.connect(DSN or "", autocommit=True) as conn:
        row = conn.execute("select authinfo from pg_dist_authinfo "
                           "where rolename = 'maim_plugin' and nodeid = 0").fetchone()
    found = re.search(r"password=(\S+)", row[0]) if row else None
    return found.group(1) if found else None


def _restore_maim_plugin(nodes: list[str], password: str | None) -> None:
    """What a test that changed maim_plugin must leave: no defaults, Citus's credential."""
    for node in nodes:
        with psycopg.connect(node, autocommit=True) as conn:
            conn.execute("set citus.enable_alter_role_propagation = off")
            conn.execute("set citus.enable_alter_role_set_propagation = off")
            conn.execute("alter role maim_plugin reset all")
            conn.execute(sql.SQL("alter role maim_plugin in database {} reset all").format(
                sql.Identifier(conn.info.dbname)))
            conn.execute(sql.SQL("alter role maim_plugin password {}").format(
                sql.Literal(password)))


def _key_block_works(db: TestDB, secret: str, agent: str) -> None:
    with connect(db.dsn("plugin"), api_key=secret) as p:  # a write on the agent's shard
        p.execute("insert into runtime_state (state_key) values (%s)",
                  [f"after-{uuid.uuid4().hex[:6]}"])
        assert p.rows("select count(*) from runtime_state where agent_id = %s", [agent])


@pytest.mark.parametrize("change", [
    "alter role maim_plugin set default_transaction_read_only = on",
    "alter role maim_plugin in database maim set statement_timeout = 1",
    "alter role current_user set default_transaction_read_only = on",
    "alter role maim_plugin password 'chosen-by-the-plugin'",
])
def test_a_key_block_cannot_change_its_group_role(db: TestDB, world: World,
                                                  change: str) -> None:
    """Issue 32.2: inside a key block current_user is maim_plugin, and PostgreSQL lets a role
    change its own password and defaults; Citus propagated both to every node and logs into
    the workers as maim_plugin. Whatever the block runs, no node's maim_plugin changes: every
    plugin of every tenant still works, and the plugin cannot log in as maim_plugin."""
    nodes = _nodes()
    password = _authinfo_password()
    secret = test_unforgeable._key(db, world, "A1")
    a1 = world.agent_id("A1")
    try:
        # refused is as good as harmless
        with contextlib.suppress(psycopg.Error, MaimDBError), \
                connect(db.dsn("plugin"), api_key=secret) as p:
            p.execute(change)
        for node in nodes[1:]:
            with psycopg.connect(node, autocommit=True) as conn:
                assert conn.execute(
                    "select count(*) from pg_db_role_setting "
                    "where setrole = 'maim_plugin'::regrole").fetchone() == (0,), node
        _key_block_works(db, secret, a1)
        _key_block_works(db, test_unforgeable._key(db, world, "B1"), world.agent_id("B1"))
        for node in nodes:
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(make_conninfo(node, user="maim_plugin",
                                              password="chosen-by-the-plugin"),
                                connect_timeout=5).close()
    finally:
        _restore_maim_plugin(nodes, password)


def test_a_block_that_leaves_its_role_gets_one_typed_line_from_the_workers(
        db: TestDB, world: World) -> None:
    """After RESET ROLE a key block runs as the plugin's login, which no worker admits (issue
    32.1); Citus's refusal to connect is an IsolationError in one line naming the node, not a
    DatabaseError quoting pg_hba."""
    secret = test_unforgeable._key(db, world, "A1")
    with pytest.raises(IsolationError) as refused, \
            connect(db.dsn("plugin"), api_key=secret) as p:
        p.execute("reset role")
        p.rows("select state_key from runtime_state")
    assert "\n" not in str(refused.value)
    assert re.match(rf"isolation violation: Citus node localhost:\d+ refused the block's role "
                    rf"{LOGINS['plugin'][0]} ", str(refused.value)), str(refused.value)


def test_the_audit_finds_a_node_whose_pg_hba_admits_more_than_citus(cluster: Server) -> None:
    """Issue 32.1's defence is who a worker admits: the maim group roles by Citus's client
    certificate, and the operator. The audit reads every node's pg_hba.conf (as the server
    would load it): a worker line that admits an application login, or any node's line that
    admits a group role by something a block can change (its password), is a finding."""
    assert DSN
    login, _ = LOGINS["plugin"]
    with psycopg.connect(DSN, autocommit=True) as conn:
        assert audit.audit(conn) == []
        worker = _workers(conn)[0]
        with psycopg.connect(worker, autocommit=True) as w:
            shown = w.execute("show hba_file").fetchone()
            node = f"{w.info.host}:{w.info.port}"
        assert shown is not None
        hba = Path(shown[0])
        original = hba.read_text()
        hba.write_text(f"host all {login} 127.0.0.1/32 scram-sha-256\n"
                       "host all maim_plugin 127.0.0.1/32 scram-sha-256\n"
                       "host all all 10.0.0.0/8 reject\n"  # not in front of the next line
                       "hostssl all all 0.0.0.0/0 trust\n" + original)
        try:
            found = [str(f) for f in audit.audit(conn)]
        finally:
            hba.write_text(original)
        assert found == [
            f"pg_hba.conf line 1 on {node}: admits {login} (scram-sha-256); a worker admits "
            "only the maim group roles, by Citus's certificate",
            f"pg_hba.conf line 2 on {node}: admits group role maim_plugin by scram-sha-256, "
            "not by certificate (a block can set its group role's password)",
            f"pg_hba.conf line 4 on {node}: admits group roles maim_owner, maim_app, "
            "maim_tenant, maim_admin, maim_plugin by trust, not by certificate (a block can "
            "set its group role's password)",
            f"pg_hba.conf line 4 on {node}: admits every login (trust); a worker admits only "
            "the maim group roles, by Citus's certificate"], found
        assert audit.audit(conn) == []


def _prepare_holding_messages(db: TestDB, *, as_group_role: bool = False,
                               gid: str | None = None) -> str:
    """A plugin's transaction holding ACCESS EXCLUSIVE on the coordinator's messages,
    prepared, its session gone; its gid."""
    gid = gid or f"plugin-{uuid.uuid4().hex[:8]}"
    with test_unforgeable._raw(db, "plugin") as plugin:
        plugin.execute("begin")
        if as_group_role:
            plugin.execute("set local role maim_plugin")
        plugin.execute("set local citus.enable_ddl_propagation = off")
        plugin.execute("lock table messages in access exclusive mode")
        plugin.execute(sql.SQL("prepare transaction {}").format(sql.Literal(gid)))
    return gid


def _forget_prepared(gid: str) -> None:
    with psycopg.connect(DSN or "", autocommit=True) as su:
        if su.execute("select 1 from pg_prepared_xacts where gid = %s", [gid]).fetchone():
            su.execute(sql.SQL("rollback prepared {}").format(sql.Literal(gid)))


@pytest.mark.parametrize("owner", ["login", "group role", "Citus's form, no such node",
                                   "Citus's form, a live backend's pid",
                                   "Citus's form, a number past int8, a live backend's pid"])
def test_a_plugins_prepared_transaction_stalls_no_one_past_the_watchers_bound(
        db: TestDB, world: World, owner: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Citus needs max_prepared_transactions > 0, and a prepared transaction keeps its locks
    with no session left for the watcher to end: a plugin took ACCESS EXCLUSIVE on the
    coordinator's messages (DDL propagation off, so no worker is involved and Citus lets it
    prepare), prepared, and left. The watcher rolls back a plugin's prepared transaction
    past its limit, so another agent's read waiting behind it succeeds (issue 32.3). A gid in
    Citus's own form names a node group: one that no node has is not Citus's to recover, so
    it is the watcher's (found by review: `citus_99_…` was left alone for good). One of this
    node's group naming a live backend in a transaction is in flight only if that backend's
    distributed transaction has the gid's number, as Citus's recovery judges it (a forged
    one waited for that recovery, a minute)."""
    from maim_db import watch
    from tests import test_stall

    assert DSN
    monkeypatch.setenv("MAIMDB_LOCK_TIMEOUT", "10")  # the watcher, not the timeout, ends it
    busy = psycopg.connect(DSN)  # a backend in a transaction begun before the prepare
    busy.execute("select 1")
    forged = (f"citus_99_{uuid.uuid4().int % 100000}_1_1" if owner.endswith("no such node")
              else f"citus_0_{busy.info.backend_pid}_{'9' * 20 if 'int8' in owner else '7'}_1"
              if owner.endswith("pid") else None)
    gid = _prepare_holding_messages(db, as_group_role=owner == "group role", gid=forged)
    try:
        ended: list[watch.Ended] = []
        stop = threading.Event()
        watcher = test_stall._in_thread(lambda: watch.run(
            DSN, watch.Limits(block=1, idle=None, transaction=None, prepared=1, interval=0.2),
            stop=stop, report=ended.append))
        try:
            read = test_stall._in_thread(
                lambda: test_stall._read_messages(db, world.agent_id("B1")))
            assert read() == []
        finally:
            stop.set()
            watcher()
        want = "maim_plugin" if owner == "group role" else LOGINS["plugin"][0]
        assert [(e.login, e.gid) for e in ended] == [(want, gid)]
        assert ended[0].reason.startswith("prepared transaction held for ")
    finally:
        busy.close()
        _forget_prepared(gid)


def test_a_watcher_that_may_not_roll_back_a_prepared_transaction_says_so_once(
        db: TestDB, world: World, caplog: pytest.LogCaptureFixture) -> None:
    """Only a superuser (or the owner) may ROLLBACK PREPARED: the operator's watcher login
    (pg_signal_backend, pg_read_all_stats) cannot, logs it once, and goes on ticking."""
    import time

    from maim_db import watch
    from tests import test_stall

    watcher_dsn = test_stall.watcher_dsn.__wrapped__(db)  # the fixture, on the cluster
    gid = _prepare_holding_messages(db)
    try:
        time.sleep(0.3)  # past the limit below: the state, not a timed assertion
        with watch.connect(watcher_dsn) as conn, caplog.at_level("ERROR", "maim_db.watch"):
            limits = watch.Limits(block=None, idle=None, transaction=None, prepared=0.1)
            assert watch.tick(conn, limits) == [] and watch.tick(conn, limits) == []
        said = [r.getMessage() for r in caplog.records if gid in r.getMessage()]
        assert len(said) == 1 and "run the watcher as a superuser" in said[0], said
    finally:
        _forget_prepared(gid)


def test_a_shard_query_reads_no_proof_on_a_worker_and_replays_none(db: TestDB,
                                                                   world: World) -> None:
    """Issue 32.1, what remains once a worker admits only Citus: a function in a shard query
    runs on the worker as the block's role, which may read the query text of every
    connection of a role it has the privileges of (maim_plugin's own, and maim_app is a
    member of maim_plugin), and Citus sends a key block's `set local maim.agent_proof = '…'`
    and its distributed id to the worker as query text. The workers keep no query text
    (track_activities off for the database, `maimdb migrate`). A marker in the victim's last
    shard query stands in for the proof, which shows only between Citus's BEGIN and the
    first query; the reader is a runtime block, since a second key block waits for the first
    on the cluster (api_key_usage, a reference table: docs/decisions.md). And a proof that
    was seen anyway proves nothing in another key block's shard query: its worker
    transaction already holds Citus's id, so a function there cannot take the victim's."""
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    with connect(db.dsn("app"), agent_id=a1) as app:
        app.execute("insert into runtime_state (state_key) values ('a1-secret')")
    with connect(db.dsn("app"), agent_id=b1) as app:
        app.execute("insert into runtime_state (state_key) values ('b1-own')")
    a1_key, b1_key = test_unforgeable._key(db, world, "A1"), test_unforgeable._key(db, world, "B1")
    marker = f"marker-{uuid.uuid4().hex}"
    read = ("select string_agg(coalesce(pg_catalog.pg_stat_get_backend_activity(b), ''), ' ') "
            "from runtime_state r, pg_catalog.pg_stat_get_backend_idset() b "
            "where r.agent_id = %s")
    with test_unforgeable._raw(db, "plugin") as victim:
        with _key_block(victim):
            victim.execute("select set_config('role', 'maim_plugin', true)")  # as the wrapper
            victim.execute("select maim.open_key_scope(%s)", [a1_key])
            assert victim.execute(sql.SQL(
                "select state_key, {} from runtime_state where agent_id = {}").format(
                sql.Literal(marker), sql.Literal(a1))).fetchall() == [("a1-secret", marker)]
            proof = victim.execute("select current_setting('maim.agent_proof')").fetchone()
            tid = victim.execute("select initiator_node_identifier, transaction_number, "
                                 "transaction_stamp from get_current_transaction_id()"
                                 ).fetchone()
            assert proof and tid
            # the victim's worker connection idles on its last text; read it from A1's worker
            with connect(db.dsn("app"), agent_id=a1) as reader:
                seen = reader.scalar(read, [a1])
            assert seen is not None  # it ran, on A1's worker
            assert marker not in seen
        with test_unforgeable._raw(db, "plugin") as thief, \
                pytest.raises(psycopg.Error, match="already been assigned a transaction id"), \
                _key_block(thief):
            thief.execute("select set_config('role', 'maim_plugin', true)")
            thief.execute("select maim.open_key_scope(%s)", [b1_key])
            thief.execute(
                "select r.state_key from pg_catalog.assign_distributed_transaction_id("
                "%s::int, %s::bigint, %s::timestamptz) a, "
                "set_config('maim.agent_proof', %s, true) p, "
                "set_config('maim.agent_id', %s, true) g, runtime_state r "
                "where r.agent_id = %s", [*tid, proof[0], a1, b1])


def test_the_audit_names_a_worker_that_keeps_query_text(cluster: Server) -> None:
    """A worker whose database records its sessions' query text (track_activities) is an
    audit finding, on every worker; the next migrate turns it off again."""
    assert DSN
    with psycopg.connect(DSN, autocommit=True) as conn:
        assert audit.audit(conn) == []
        workers = [f"{n.name}:{n.port}" for n in citus.nodes(conn) if n.role == "worker"]
        conn.execute("select run_command_on_workers(%s)", [
            "do $$ begin perform set_config('citus.enable_ddl_propagation', 'off', true); "
            "execute format('alter database %I reset track_activities', current_database()); "
            "end $$"])
        try:
            found = [str(f) for f in audit.audit(conn)]
        finally:
            migrate.migrate(DSN)  # which turns it off again
        assert [f for f in found if "query text" in f] == [
            f"worker {w}: records its sessions' query text, where a shard query's function can "
            "read a key's proof that Citus sent another connection (`maimdb migrate` sets "
            "track_activities off for the database there)" for w in workers], found
        assert audit.audit(conn) == []


def test_a_raw_key_block_not_begun_as_maim_db_begins_one_proves_nothing_on_a_worker(
        db: TestDB, world: World) -> None:
    """A plugin's own key block on the cluster (no maim_db) must begin NOT DEFERRABLE, as
    maim_db's do: otherwise its shard queries are refused, with a hint that says so."""
    secret = test_unforgeable._key(db, world, "A1")
    with test_unforgeable._raw(db, "plugin") as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege, match="not proven") as refused, \
            conn.transaction():
        conn.execute("select set_config('role', 'maim_plugin', true)")
        conn.execute("select maim.open_key_scope(%s)", [secret])
        conn.execute("select state_key from runtime_state where agent_id = %s",
                     [world.agent_id("A1")])
    assert "NOT DEFERRABLE" in (refused.value.diag.message_hint or "")


def test_a_seen_proof_proves_nothing_in_an_autocommit_shard_query(db: TestDB,
                                                                  world: World) -> None:
    """The replay that worked once the proof was seen (the workers no longer show it):
    outside any block, where Citus sends a single-shard read without BEGIN and without a
    distributed id, function scans LATERAL to the victim's shard assign the victim's id and
    set its proof and agent before the shard's policy runs. A worker now takes a proof only
    in a transaction begun NOT DEFERRABLE, as Citus begins a key block's; no statement can
    give its own transaction that mark (was a strict xfail)."""
    a1 = world.agent_id("A1")
    with connect(db.dsn("app"), agent_id=a1) as app:
        app.execute("insert into runtime_state (state_key) values ('a1-secret')")
    secret = test_unforgeable._key(db, world, "A1")
    stolen: list[Any] = []
    with test_unforgeable._raw(db, "plugin") as victim, _key_block(victim), \
            test_unforgeable._raw(db, "plugin") as thief:
        victim.execute("select set_config('role', 'maim_plugin', true)")  # as the wrapper
        victim.execute("select maim.open_key_scope(%s)", [secret])
        victim.execute("select count(*) from runtime_state where agent_id = %s", [a1])
        proof = victim.execute("select current_setting('maim.agent_proof')").fetchone()
        tid = victim.execute("select initiator_node_identifier, transaction_number, "
                             "transaction_stamp from get_current_transaction_id()").fetchone()
        assert proof and tid
        thief.execute("set role maim_plugin")  # a worker admits the group role, not the login
        with contextlib.suppress(psycopg.Error):
            stolen = thief.execute(
                "select x.state_key from pg_catalog.assign_distributed_transaction_id("
                "%s::int, %s::bigint, %s::timestamptz) a, "
                "set_config('maim.agent_proof', %s, true) p, "
                "set_config('maim.agent_id', %s, true) g, "
                "lateral (select r.state_key from runtime_state r where r.agent_id = %s "
                "and g is not null and p is not null and a is not null offset 0) x",
                [*tid, proof[0], a1, a1]).fetchall()
    assert stolen == []
