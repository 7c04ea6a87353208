"""maimdb migrate / rollback / status, and the guarantees around yoyo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from maim_db import MigrationError
from maim_db.cli.output import report
from maim_db.schema import migrate
from maim_db.schema.audit import audit
from maim_db.schema.migrate import MIGRATIONS_DIR
from maim_db.tables import ALL_ROWS
from tests.cli import maimdb
from tests.databases import PASSWORD, TestDB

pytestmark = pytest.mark.fresh_db  # each test migrates or rolls back

TABLES = {row.table for row in ALL_ROWS}


def _tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {r[0] for r in conn.execute(
            "select tablename from pg_tables where schemaname = 'public' "
            "and tablename not like '%%yoyo%%'")}


def test_migrate_applies_everything_then_is_a_no_op(empty_db: TestDB) -> None:
    dsn = empty_db.superuser
    first = migrate.migrate(dsn)
    assert [m.id for m in first] == [m.id for m in migrate.load()]
    assert _tables(dsn) == TABLES
    assert migrate.migrate(dsn) == []
    state = migrate.status(dsn)
    assert not state.pending and not state.edited and len(state.applied) == len(first)


def test_dry_run_lists_and_changes_nothing(empty_db: TestDB) -> None:
    dsn = empty_db.superuser
    pending = migrate.migrate(dsn, dry_run=True)
    assert [m.id for m in pending] == [m.id for m in migrate.load()]
    assert _tables(dsn) == set()


def test_apply_rollback_apply_round_trip(empty_db: TestDB) -> None:
    dsn = empty_db.superuser
    applied = migrate.migrate(dsn)
    undone = migrate.rollback(dsn, steps=len(applied))
    assert [m.id for m in undone] == [m.id for m in reversed(applied)]
    assert _tables(dsn) == set()
    assert len(migrate.status(dsn).pending) == len(applied)
    assert [m.id for m in migrate.migrate(dsn)] == [m.id for m in applied]
    assert _tables(dsn) == TABLES


def test_rollback_refuses_nonsense_steps(empty_db: TestDB) -> None:
    with pytest.raises(MigrationError, match="at least 1"):
        migrate.rollback(empty_db.superuser, steps=0)
    applied = migrate.migrate(empty_db.superuser)
    with pytest.raises(MigrationError, match=r"more than the \d+ applied .*nothing was rolled"):
        migrate.rollback(empty_db.superuser, steps=len(applied) + 1)
    assert len(migrate.status(empty_db.superuser).applied) == len(applied)


def test_a_database_ahead_of_this_checkout_is_refused(empty_db: TestDB,
                                                      tmp_path: Path) -> None:
    """A newer maim_db migrated the database: an older checkout must neither report it at
    head nor roll back a migration under one it does not know."""
    dsn = empty_db.superuser
    newer = tmp_path / "newer"
    shutil.copytree(MIGRATIONS_DIR, newer)
    (newer / "9990_newer.sql").write_text("select 1;\n")
    (newer / "9990_newer.rollback.sql").write_text("select 1;\n")
    migrate.migrate(dsn, migrations_dir=newer)
    assert migrate.status(dsn).unknown == ["9990_newer"]
    for call in (lambda: migrate.migrate(dsn), lambda: migrate.migrate(dsn, dry_run=True),
                 lambda: migrate.rollback(dsn)):
        with pytest.raises(MigrationError, match="migrations this checkout does not: 9990"):
            call()
    assert len(migrate.status(dsn, migrations_dir=newer).applied) == len(migrate.load()) + 1
    result = maimdb("status", dsn=dsn)
    assert result.returncode == 1 and "not in this checkout" in result.stdout


def test_edited_migration_is_refused(empty_db: TestDB, tmp_path: Path) -> None:
    dsn = empty_db.superuser
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copy)
    migrate.migrate(dsn, migrations_dir=copy)
    first = sorted(copy.glob("0001_*.sql"))[0]
    first.write_text(first.read_text() + "\n-- a harmless-looking edit\n")
    with pytest.raises(MigrationError, match=r"(?s)edited after they ran.*0001_control_plane"):
        migrate.migrate(dsn, migrations_dir=copy)
    with pytest.raises(MigrationError, match="append-only"):
        migrate.migrate(dsn, migrations_dir=copy, dry_run=True)
    assert [m.id for m, _ in migrate.status(dsn, migrations_dir=copy).edited] == [
        "0001_control_plane"]


def test_a_migration_without_rollback_is_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_x.sql").write_text("select 1;")
    with pytest.raises(MigrationError, match="no rollback file"):
        migrate.load(tmp_path)


def test_audit_fails_a_migration_that_forgets_rls(empty_db: TestDB, tmp_path: Path) -> None:
    dsn = empty_db.superuser
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copy)
    (copy / "9999_leaky.sql").write_text("create table leaky (id int primary key);\n")
    (copy / "9999_leaky.rollback.sql").write_text("drop table leaky;\n")
    with pytest.raises(MigrationError, match=r"table leaky: row-level security is not enabled"):
        migrate.migrate(dsn, migrations_dir=copy)
    with psycopg.connect(dsn) as conn:
        problems = {str(f) for f in audit(conn)}
    assert problems == {"table leaky: row-level security is not enabled",
                        "table leaky: row-level security is not forced (the owner would "
                        "bypass it)", "table leaky: has no policy"}


def test_audit_is_clean_on_the_real_schema(db: TestDB) -> None:
    with psycopg.connect(db.superuser) as conn:
        assert audit(conn) == []


def test_migrations_own_their_objects_and_run_as_maim_owner(db: TestDB) -> None:
    with psycopg.connect(db.superuser) as conn:
        owners = {r[0] for r in conn.execute(
            "select tableowner from pg_tables where schemaname = 'public'")}
        roles = {r[0]: r[1:] for r in conn.execute(
            "select rolname, rolbypassrls, rolsuper, rolcanlogin from pg_roles "
            "where rolname like 'maim\\_%%' and rolname not like 'maim\\_test\\_%%'")}
    assert owners == {"maim_owner"}
    assert roles == {r: (False, False, False) for r in
                     ("maim_owner", "maim_app", "maim_tenant", "maim_admin", "maim_plugin")}


def test_a_database_owner_with_createrole_can_migrate(empty_db: TestDB,
                                                       template: str) -> None:
    """The documented non-superuser set-up, with the cluster's maim roles already created
    by someone else (the template fixture migrated as the superuser): PostgreSQL 16+ lets a
    CREATEROLE role grant only roles it holds ADMIN on, so it must be granted maim_owner."""
    name = f"{empty_db.name}_cr"
    with psycopg.connect(empty_db.superuser, autocommit=True) as su:
        # a password: local connections need one (the embedded server is scram, issue 32.7)
        su.execute(f'create role "{name}" login createrole password \'{PASSWORD}\'')
        su.execute(f'create database "{name}" owner "{name}"')
    try:
        dsn = make_conninfo(empty_db.superuser, user=name, dbname=name, password=PASSWORD)
        with psycopg.connect(dsn) as conn:
            version = conn.info.server_version
        if version >= 160000:  # PostgreSQL 15 lets any CREATEROLE role grant the membership
            with pytest.raises(MigrationError, match=f"GRANT maim_owner TO {name}"):
                migrate.migrate(dsn)
            with psycopg.connect(empty_db.superuser, autocommit=True) as su:
                su.execute(f'grant maim_owner to "{name}"')  # the documented step
        assert [m.id for m in migrate.migrate(dsn)] == [m.id for m in migrate.load()]
        assert migrate.migrate(dsn) == []
        with psycopg.connect(dsn) as conn:
            assert conn.execute("select current_user, rolsuper from pg_roles "
                                "where rolname = current_user").fetchone() == (name, False)
        assert _tables(dsn) == TABLES
    finally:
        with psycopg.connect(empty_db.superuser, autocommit=True) as su:
            su.execute(f'drop database if exists "{name}" with (force)')
            su.execute(f'drop owned by "{name}"')
            su.execute(f'drop role if exists "{name}"')


def test_concurrent_migrate_from_two_processes(empty_db: TestDB) -> None:
    env = dict(os.environ, MAIMDB_DSN=empty_db.superuser)
    procs = [subprocess.Popen([sys.executable, "-m", "maim_db.cli", "migrate"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(*p.communicate(timeout=120), p.returncode) for p in procs]
    assert [r[2] for r in results] == [0, 0], results
    outputs = sorted(r[0] for r in results)
    assert "nothing to apply" in outputs[1] and "applied 0001_control_plane" in outputs[0]
    with psycopg.connect(empty_db.superuser) as conn:
        applies = conn.execute("select migration_id, count(*) from _yoyo_log "
                               "where operation = 'apply' group by 1 order by 1").fetchall()
    assert applies == [(m.id, 1) for m in migrate.load()]


def test_cli_status_exit_codes(empty_db: TestDB) -> None:
    dsn = empty_db.superuser
    for command in ("audit", "snapshot"):  # "no findings" on an empty database means nothing
        unmigrated = maimdb(command, dsn=dsn)
        assert unmigrated.returncode == 1 and "is not migrated" in unmigrated.stderr
        assert unmigrated.stdout == ""
    pending = maimdb("status", dsn=dsn)
    assert pending.returncode == 1 and "pending" in pending.stdout
    server, first, *_ = maimdb("migrate", "--dry-run", dsn=dsn).stdout.splitlines()
    assert server.startswith("server: database ") and first.startswith("would apply")
    assert maimdb("migrate", dsn=dsn).returncode == 0
    done = maimdb("status", dsn=dsn)
    assert done.returncode == 0 and "applied" in done.stdout and "pending" not in done.stdout
    assert maimdb("audit", dsn=dsn).returncode == 0
    again = maimdb("migrate", dsn=dsn)
    assert again.returncode == 0 and "nothing to apply" in again.stdout


def test_cli_json_shapes(empty_db: TestDB) -> None:
    """`--json` on migrate and status: the shapes docs/operations.md documents."""
    dsn = empty_db.superuser
    ids_ = [m.id for m in migrate.load()]
    pending = maimdb("status", "--json", dsn=dsn)
    assert pending.returncode == 1
    assert json.loads(pending.stdout) == {"current": False, "migrations": [
        {"id": m.id, "state": "pending", "sha256": m.sha256} for m in migrate.load()]}
    dry = json.loads(maimdb("migrate", "--dry-run", "--json", dsn=dsn).stdout)
    assert dry["dry_run"] is True and dry["migrations"] == ids_ and dry["applied"] == []
    assert dry["server"].startswith("database ") and _tables(dsn) == set()
    done = maimdb("migrate", "--json", dsn=dsn)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["applied"] == ids_  # stdout is the JSON alone
    current = maimdb("status", "--json", dsn=dsn)
    assert current.returncode == 0
    assert json.loads(current.stdout) == {"current": True, "migrations": [
        {"id": m.id, "state": "applied", "sha256": m.sha256} for m in migrate.load()]}
    assert json.loads(maimdb("migrate", "--json", dsn=dsn).stdout)["applied"] == []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("insert into _yoyo_migration (migration_hash, migration_id, "
                     "applied_at_utc) values ('f' || repeat('0', 63), '9999_from_the_future', "
                     "now())")
        conn.execute("update maim.migration_checksums set sha256 = 'x' where migration_id = %s",
                     [ids_[0]])
    drifted = maimdb("status", "--json", dsn=dsn)
    assert drifted.returncode == 1
    shown = json.loads(drifted.stdout)
    assert shown["current"] is False and shown["migrations"][0]["state"] == "edited"
    assert shown["migrations"][-1] == {
        "id": "9999_from_the_future", "state": "unknown", "sha256": None}


def test_cli_reports_errors_in_one_line(empty_db: TestDB, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    bad = maimdb("status", dsn="host=/nonexistent-maimdb dbname=x connect_timeout=1")
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: cannot connect") and "Traceback" not in bad.stderr
    # a message of several lines (the edited-migration refusal) is still one line
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copy)
    migrate.migrate(empty_db.superuser, migrations_dir=copy)
    (copy / "0001_control_plane.sql").write_text("-- edited\n")
    with pytest.raises(MigrationError) as caught:
        migrate.migrate(empty_db.superuser, migrations_dir=copy)
    assert "\n" in str(caught.value)
    report(caught.value)  # how the CLI prints it
    printed = capsys.readouterr().err
    assert printed.count("\n") == 1 and "0001_control_plane" in printed
    # the environment is read as a command starts: still one line, exit 1
    env = dict(os.environ, MAIMDB_PGBOUNCER="maybe")
    for args in (["db", "status"], ["db", "url"], ["tenant", "list"]):
        weird = maimdb(*args, env=env)
        assert weird.returncode == 1 and "Traceback" not in weird.stderr, weird.stderr
        assert weird.stderr.count("\n") == 1 and "MAIMDB_PGBOUNCER" in weird.stderr
    usage = maimdb("db", "psql", "--as", "postgres", dsn=empty_db.superuser)
    assert usage.returncode == 2 and "--as" in usage.stderr


def test_rollback_says_what_it_drops_and_asks_first(empty_db: TestDB) -> None:
    """Issue 14: `rollback --steps 7 </dev/null` dropped `messages` with 200 rows, rc 0."""
    from maim_db import connect
    from tests.databases import build_world
    from tests.samples import message

    dsn = empty_db.superuser
    applied = migrate.migrate(dsn)
    world = build_world(empty_db)
    with connect(empty_db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        app.insert_many([message(n) for n in range(200)])
    steps = str(len(applied) - [m.id for m in applied].index("0005_runtime"))

    def messages() -> int:
        with psycopg.connect(dsn) as conn:
            row = conn.execute("select count(*) from messages").fetchone()
            return int(row[0]) if row else -1

    refused = maimdb("rollback", "--steps", steps, dsn=dsn)  # stdin is not a terminal
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "--yes" in refused.stderr
    assert "table messages (200 rows)" in refused.stdout
    assert messages() == 200 and not migrate.status(dsn).pending

    dry = maimdb("rollback", "--steps", steps, "--dry-run", dsn=dsn)
    assert dry.returncode == 0, dry.stderr
    assert "would roll back" in dry.stdout and "0005_runtime: drops " in dry.stdout
    as_json = json.loads(maimdb("rollback", "--steps", steps, "--dry-run", "--json",
                                 dsn=dsn).stdout)
    runtime = next(m for m in as_json["migrations"] if m["id"] == "0005_runtime")
    assert {"table": "messages", "column": None, "rows": 200, "exact": True} in runtime["drops"]
    assert as_json["dry_run"] is True and as_json["rolled_back"] == []
    assert messages() == 200 and not migrate.status(dsn).pending

    done = maimdb("rollback", "--steps", steps, "--yes", dsn=dsn)
    assert done.returncode == 0, done.stderr
    assert "rolled back 0005_runtime" in done.stdout
    assert "messages" not in _tables(dsn)
    assert len(migrate.status(dsn).pending) == int(steps)


def test_rollback_refuses_when_the_plan_went_stale(empty_db: TestDB) -> None:
    applied = migrate.migrate(empty_db.superuser)
    with pytest.raises(MigrationError, match="changed since the plan"):
        migrate.rollback(empty_db.superuser, steps=1, expect=[applied[0].id])
    assert not migrate.status(empty_db.superuser).pending


def test_a_migration_lock_another_login_holds_is_named_and_migrate_stops(db: TestDB) -> None:
    """Any login can take an advisory lock, the migration lock's too: migrate used to wait
    for ever. It waits MAIMDB_MIGRATE_LOCK_WAIT seconds, then names the session."""
    from tests.cli import one_line_error

    with psycopg.connect(db.dsn("plugin"), autocommit=True) as squatter:
        squatter.execute("select pg_advisory_lock(%s)", [migrate.LOCK_KEY])
        pid = squatter.info.backend_pid
        env = dict(os.environ, MAIMDB_MIGRATE_LOCK_WAIT="0.5")
        for command in (["migrate"], ["rollback", "--yes"]):
            line = one_line_error(maimdb(*command, dsn=db.superuser, env=env))
            assert f"another session holds the migration lock after 0.5 s: session pid {pid} " \
                   "(login maim_test_plugin" in line and "Nothing was changed" in line
    assert maimdb("migrate", dsn=db.superuser).returncode == 0  # the lock is free again
    assert migrate.status(db.superuser).pending == []


# -- one place for each scope function and policy (issue 33) ---------------------------------

HANDOVER = "0019_one_source"


def _source(dsn: str, signature: str) -> str | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select prosrc from pg_proc where oid = to_regprocedure(%s)",
                           [signature]).fetchone()
    return None if row is None else str(row[0])


def _body_in(migration: str, name: str) -> str:
    """The body (between the dollar quotes) of the last definition of ``name`` in a
    migration file."""
    text = next(path for path in MIGRATIONS_DIR.glob(f"{migration}_*.sql")
                if not path.name.endswith(".rollback.sql")).read_text()
    start = text.rindex(f" maim.{name}(")
    opened = text.index("$$", start) + 2
    return text[opened:text.index("$$", opened)]


def test_scope_definitions_are_re_applied_and_the_handover_rolls_back(
        empty_db: TestDB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An edit of open_key_scope in sql/20_scope.sql reaches the database by the next
    migrate, with nothing pending; rolling back 0019 gives the functions back to the
    migrations exactly as 0017 left them, and migrate hands them over again."""
    dsn = empty_db.superuser
    sql_dir = tmp_path / "sql"
    shutil.copytree(migrate.SQL_DIR, sql_dir)
    scope = sql_dir / "20_scope.sql"
    original = scope.read_text()
    hint = "hint = 'The key is unknown"
    assert original.count(hint) == 1
    scope.write_text(original.replace(hint, "hint = 'Edited: the key is unknown"))
    monkeypatch.setattr(migrate, "SQL_DIR", sql_dir)

    applied = [m.id for m in migrate.migrate(dsn)]
    since = applied[applied.index(HANDOVER):]  # the hand-over and the migrations after it
    assert "Edited: the key" in (_source(dsn, "maim.open_key_scope(text)") or "")

    scope.write_text(original.replace(hint, "hint = 'Edited again: the key is unknown"))
    assert migrate.migrate(dsn) == []
    assert "Edited again: the key" in (_source(dsn, "maim.open_key_scope(text)") or "")

    assert [m.id for m in migrate.rollback(dsn, steps=len(since))] == since[::-1]
    assert _source(dsn, "maim.open_key_scope(text)") == _body_in("0017", "open_key_scope")
    assert _source(dsn, "maim.isolate_agent_table(regclass)") \
        == _body_in("0017", "isolate_agent_table")
    assert _source(dsn, "maim.open_agent_scope(text)") == _body_in("0016", "open_agent_scope")
    assert _source(dsn, "maim.apply_policies(regclass,boolean)") is None
    with psycopg.connect(dsn) as conn:
        assert audit(conn) == []

    assert [m.id for m in migrate.migrate(dsn)] == since
    assert "Edited again: the key" in (_source(dsn, "maim.open_key_scope(text)") or "")


def test_migrate_brings_every_policy_back_to_its_definition(db: TestDB) -> None:
    """sql/30_policies.sql is the one source of every policy: a policy changed or dropped
    by hand is written back by the next migrate (and only where it differs)."""
    from maim_db.schema.snapshot import snapshot

    with psycopg.connect(db.superuser, autocommit=True) as conn:
        before = snapshot(conn)
        conn.execute("alter policy app_select on messages using (true)")
        conn.execute("alter policy tenant_select on users to maim_tenant, maim_app")
        conn.execute("drop policy tenant_select on agents")
        conn.execute("drop policy app_update on agent_active_states")
        conn.execute("create policy app_update on agent_active_states for all to maim_app "
                     "using (true)")
    assert migrate.migrate(db.superuser) == []
    with psycopg.connect(db.superuser, autocommit=True) as conn:
        assert snapshot(conn) == before


def test_each_scope_function_is_defined_in_one_place() -> None:
    """Every function and procedure of sql/20_scope.sql and sql/30_policies.sql is created
    there once, with its grants in the same file, and no migration from the hand-over on
    creates it again."""
    import re

    definition = re.compile(r"create\s+(?:or\s+replace\s+)?(?:function|procedure)\s+"
                            r"maim\.(\w+)\s*\(", re.I)
    defined: dict[str, str] = {}
    for path in sorted(migrate.SQL_DIR.glob("[2-9]*.sql")):
        text = path.read_text()
        for name in definition.findall(text):
            assert name not in defined, f"maim.{name} in {defined[name]} and {path.name}"
            defined[name] = path.name
            assert re.search(rf"(grant|revoke)\s+\w+(\s*,\s*\w+)*\s+on\s+"
                             rf"(function|procedure)\s+maim\.{name}\(", text, re.I), \
                f"maim.{name}: no grant beside its body in {path.name}"
    assert {"open_key_scope", "open_agent_scope", "resolve_api_key", "isolate_agent_table",
            "scope_proof", "agent_proven", "open_tenant_scope", "apply_policies"} <= set(defined)
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if path.name >= HANDOVER and not path.name.startswith(HANDOVER):
            again = set(definition.findall(path.read_text())) & set(defined)
            assert not again, f"{path.name} defines {again} again: edit sql/ instead"
