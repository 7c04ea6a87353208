"""``maimdb migrate`` / ``rollback`` / ``status``: yoyo, plus what yoyo lacks.

- an advisory lock, so two deploys at once serialize instead of racing;
- a SHA-256 of every applied migration (and its rollback), so an edited file is refused;
- ``sql/`` re-applied on every run: the roles and helpers before the migrations, the scope
  functions and policies (``sql/20_*`` on, the definitions) after them, once 0019 handed
  those over (docs/conventions.md, "Scope functions and policies");
- the audit (:mod:`maim_db.schema.audit`) after every change.

Migrations run as ``maim_owner`` (through the connection option ``role``), so they own what
they create and are subject to FORCE'd row-level security like everyone else.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from ..connection import open_connection
from ..errors import MigrationError
from ..settings import resolve_dsn, settings
from . import citus
from .audit import BOOKKEEPING, CONTROL_PLANE, audit
from .preconditions import Unmet, unmet


def _schema_dir(name: str) -> Path:
    """``migrations/`` or ``sql/``: beside the package in a checkout (an editable install),
    inside it in a wheel, where the build puts them (pyproject.toml)."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / name
    return packaged if packaged.is_dir() else package.parent / name


MIGRATIONS_DIR: Final = _schema_dir("migrations")
SQL_DIR: Final = _schema_dir("sql")

#: ``sql/`` files numbered from this on are the definitions: the scope functions and the
#: policies, re-applied after the pending migrations once :data:`HANDOVER` is applied.
DEFINITIONS_FROM: Final = 20
#: The migration that hands the scope functions and policies over to the definitions.
HANDOVER: Final = "0019_one_source"

# pg_advisory_lock key: the bytes "maimdb" as an integer, the same in every deployment.
LOCK_KEY: Final = int.from_bytes(b"maimdb", "big")

_CHECKSUMS: Final = """
create table if not exists maim.migration_checksums (
    migration_id text primary key,
    sha256       text not null,
    applied_at   timestamptz not null default now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    id: str
    path: Path
    sha256: str
    yoyo: Any  # yoyo.migrations.Migration


@dataclass(frozen=True, slots=True)
class State:
    applied: list[Migration]
    pending: list[Migration]
    edited: list[tuple[Migration, str]]  # applied, but the file changed: (migration, stored)
    # applied to the database, but not in this checkout (a newer maim_db migrated it)
    unknown: list[str] = field(default_factory=list)


def _rollback_file(path: Path) -> Path | None:
    """A SQL migration's rollback beside it; a Python one carries its rollback in its steps."""
    if path.suffix == ".py":
        return None
    return path.with_name(path.name.removesuffix(".sql") + ".rollback.sql")


def _checksum(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes())
    rollback = _rollback_file(path)
    if rollback is not None and rollback.exists():
        digest.update(b"\0rollback\0" + rollback.read_bytes())
    return digest.hexdigest()


def load(migrations_dir: Path = MIGRATIONS_DIR) -> list[Migration]:
    from yoyo import read_migrations

    if not migrations_dir.is_dir():
        raise MigrationError(f"migrations directory {migrations_dir} does not exist")
    found = []
    for m in read_migrations(str(migrations_dir)):
        rollback = _rollback_file(Path(m.path))
        if rollback is not None and not rollback.exists():
            raise MigrationError(f"migration {m.id} has no rollback file {rollback.name}")
        found.append(Migration(m.id, Path(m.path), _checksum(Path(m.path)), m))
    return found


def _yoyo_uri(dsn: str) -> str:
    """The DSN as a yoyo URI whose connections act as maim_owner."""
    from yoyo.connections import DatabaseURI

    params = {k: v for k, v in conninfo_to_dict(dsn).items() if v is not None}
    database = str(params.pop("dbname", "") or "")
    params["options"] = (str(params.get("options", "")) + " -c role=maim_owner").strip()
    # yoyo reads the database name from the URI path, dropping its first character.
    uri = DatabaseURI("postgresql+psycopg", None, None, None, None, "/" + database,
                      {k: str(v) for k, v in params.items()})
    return str(uri)


@contextmanager
def _backend(dsn: str) -> Iterator[Any]:
    from yoyo import get_backend

    try:
        backend = get_backend(_yoyo_uri(dsn))
    except Exception as err:
        raise MigrationError(f"yoyo could not connect as maim_owner: {err}") from err
    try:
        yield backend
    finally:
        backend.connection.close()


# Who holds the migration lock: any login can take an advisory lock, so a session that is
# not a migrate may hold it too (pg_locks spells a bigint key as two 32-bit halves).
_HOLDER: Final = """
    select a.pid, a.usename, coalesce(a.application_name, ''), a.backend_start
    from pg_catalog.pg_locks l join pg_catalog.pg_stat_activity a on a.pid = l.pid
    where l.locktype = 'advisory' and l.granted and l.objsubid = 1
      and l.database = (select oid from pg_catalog.pg_database
                        where datname = pg_catalog.current_database())
      and l.classid = %s::pg_catalog.oid and l.objid = %s::pg_catalog.oid
"""


def _take_lock(conn: psycopg.Connection[Any], wait: float) -> None:
    """Take the migration lock, waiting at most ``wait`` seconds; then name who holds it.
    A real lock wait (not a polling loop), so the watcher sees a session blocked by a
    plugin that squats the lock, and ends the plugin's session (maim_db.watch)."""
    try:
        conn.execute("select pg_catalog.set_config('lock_timeout', %s, false)",
                     [f"{max(1, round(wait * 1000))}ms"])
        conn.execute("select pg_advisory_lock(%s)", [LOCK_KEY])
    except pgerrors.LockNotAvailable:
        held = conn.execute(_HOLDER, [LOCK_KEY >> 32, LOCK_KEY & 0xFFFFFFFF]).fetchone()
        who = ("a session that has ended since, or a prepared transaction" if held is None else
               f"session pid {held[0]} (login {held[1]}"
               + (f", application {held[2]!r}" if held[2] else "")
               + f", connected {held[3]:%Y-%m-%d %H:%M:%S %Z})")
        raise MigrationError(
            f"another session holds the migration lock after {wait:g} s: {who}. If it is "
            "another migrate, wait for it; if not, end it (select pg_terminate_backend(pid))"
            " and run again; MAIMDB_MIGRATE_LOCK_WAIT sets the wait. Nothing was changed"
        ) from None
    finally:
        if not conn.closed:
            conn.execute("reset lock_timeout")


@contextmanager
def _locked(dsn: str | None) -> Iterator[tuple[str, psycopg.Connection[Any]]]:
    """A connection holding the migration lock for as long as the block runs."""
    resolved = resolve_dsn(dsn)
    with open_connection(resolved) as conn:
        _take_lock(conn, settings().migrate_lock_wait)
        try:
            yield resolved, conn
        finally:
            if not conn.closed:
                conn.execute("select pg_advisory_unlock(%s)", [LOCK_KEY])


def _sql_files(*, definitions: bool) -> list[Path]:
    """``sql/``'s files in order: those applied before the migrations, or the definitions."""
    return [path for path in sorted(SQL_DIR.glob("*.sql"))
            if (int(path.name.split("_", 1)[0]) >= DEFINITIONS_FROM) == definitions]


def _apply_sql_dir(conn: psycopg.Connection[Any]) -> None:
    """Re-apply sql/ before the migrations: the bootstrap as the connecting role, the
    helpers as maim_owner.

    Two transactions: on a Citus coordinator the second opens worker connections as
    maim_owner, which see only what the first committed (the schema ``maim`` above all)."""
    files = _sql_files(definitions=False)
    try:
        if citus.installed(conn):
            citus.prepare_roles(conn)
            citus.revoke_remote_sql(conn)
            citus.hide_worker_activity(conn)
        with conn.transaction():
            for path in files:
                if path.name.startswith("00_"):
                    conn.execute(path.read_text())
        with conn.transaction():
            conn.execute("set local role maim_owner")
            for path in files:
                if not path.name.startswith("00_"):
                    conn.execute(path.read_text())
            conn.execute(_CHECKSUMS)
    except psycopg.Error as err:
        raise MigrationError(f"applying {SQL_DIR.name}/ failed: {str(err).strip()}") from err


def _apply_definitions(conn: psycopg.Connection[Any]) -> None:
    """Re-apply the definitions (sql/20_scope.sql, sql/30_policies.sql) as maim_owner, in
    one transaction, after the migrations: from :data:`HANDOVER` on they, not the
    migrations, define the scope functions and the policies. Before it (a database an older
    release migrated, or one rolled back past it) the migrations' own versions stand."""
    if conn.execute("select to_regclass('public._yoyo_migration')").fetchone() == (None,):
        return
    handed_over = conn.execute("select exists (select from _yoyo_migration "
                               "where migration_id = %s)", [HANDOVER]).fetchone()
    if handed_over != (True,):
        return
    name = SQL_DIR.name
    try:
        with conn.transaction():
            conn.execute("set local role maim_owner")
            for path in _sql_files(definitions=True):
                name = f"{SQL_DIR.name}/{path.name}"
                conn.execute(path.read_text())
    except psycopg.Error as err:
        raise MigrationError(f"applying {name} failed: {str(err).strip()}") from err


def _state(conn: psycopg.Connection[Any], migrations: list[Migration]) -> State:
    try:
        return _read_state(conn, migrations)
    except psycopg.Error as err:
        raise MigrationError(f"cannot read the migration state: {str(err).strip()} (connect "
                             "as the role that migrates)") from err


def _read_state(conn: psycopg.Connection[Any], migrations: list[Migration]) -> State:
    applied_ids: dict[str, str] = {}
    stored: dict[str, str] = {}
    if conn.execute("select to_regclass('public._yoyo_migration')").fetchone() != (None,):
        applied_ids = dict(conn.execute(
            "select migration_hash, migration_id from _yoyo_migration").fetchall())
    if conn.execute("select to_regclass('maim.migration_checksums')").fetchone() != (None,):
        stored = dict(conn.execute("select migration_id, sha256 from maim.migration_checksums")
                      .fetchall())
    applied_hashes = set(applied_ids)
    known = {m.yoyo.hash for m in migrations}
    unknown = sorted(i for h, i in applied_ids.items() if h not in known)
    applied, pending, edited = [], [], []
    for m in migrations:
        if m.yoyo.hash in applied_hashes:
            applied.append(m)
            if m.id in stored and stored[m.id] != m.sha256:
                edited.append((m, stored[m.id]))
        else:
            pending.append(m)
    return State(applied, pending, edited, unknown)


def _refuse_edited(state: State) -> None:
    """Refuse to change a schema whose history does not match this checkout."""
    if state.unknown:
        raise MigrationError(
            f"the database has migrations this checkout does not: {', '.join(state.unknown)}; "
            "a newer maim_db migrated it — run that version, never an older one")
    if state.edited:
        lines = [f"  {m.id}: applied with sha256 {old[:12]}…, file now {m.sha256[:12]}…"
                 for m, old in state.edited]
        raise MigrationError(
            "applied migrations were edited after they ran:\n" + "\n".join(lines)
            + "\nMigrations are append-only: restore the applied file and fix forward with a "
            "new migration."
        )


def status(dsn: str | None = None, *, migrations_dir: Path = MIGRATIONS_DIR) -> State:
    """Applied, pending and edited migrations; changes nothing."""
    migrations = load(migrations_dir)
    with open_connection(dsn) as conn:
        return _state(conn, migrations)


@dataclass(frozen=True, slots=True)
class Plan:
    """What ``migrate`` would do now: the pending migrations, and the needs of theirs (and
    of every run) that are not met (:mod:`maim_db.schema.preconditions`)."""

    pending: list[Migration]
    unmet: list[Unmet]


def plan(dsn: str | None = None, *, migrations_dir: Path = MIGRATIONS_DIR) -> Plan:
    """The dry run: pending migrations and unmet preconditions; changes nothing."""
    migrations = load(migrations_dir)
    with open_connection(dsn) as conn:
        state = _state(conn, migrations)
        _refuse_edited(state)
        try:
            found = unmet(conn, [m.id for m in state.pending])
        except psycopg.Error as err:
            raise MigrationError(f"cannot check what the pending migrations need: "
                                 f"{str(err).strip()}") from err
    return Plan(state.pending, found)


def migrate_check(found: Plan) -> None:
    """Raise :class:`MigrationError` naming every unmet need of a :func:`plan`."""
    _refuse_unmet(found.unmet, found.pending)


def _refuse_unmet(found: list[Unmet], pending: list[Migration]) -> None:
    if found:
        raise MigrationError(
            "the pending migrations cannot all run: " + "; ".join(map(str, found))
            + ". Nothing was changed: meet " + ("this need" if len(found) == 1 else
                                                  "these needs")
            + ", then run `maimdb migrate` again",
            remaining=[m.id for m in pending], unmet=found)


def migrate(dsn: str | None = None, *, dry_run: bool = False,
            migrations_dir: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply every pending migration; return them. ``dry_run`` only lists them, after
    checking what they need. Either way an unmet need (:mod:`~maim_db.schema.
    preconditions`) is refused before anything is applied; a migration that fails anyway
    leaves the ones before it applied (each is its own transaction), and the error lists
    both those and the ones not applied."""
    if dry_run:
        found = plan(dsn, migrations_dir=migrations_dir)
        _refuse_unmet(found.unmet, found.pending)
        return found.pending
    migrations = load(migrations_dir)
    done: list[str] = []
    with _locked(dsn) as (resolved, conn):
        _apply_sql_dir(conn)
        state = _state(conn, migrations)  # inside the lock: another run may just have applied
        _refuse_edited(state)
        if state.pending:
            _refuse_unmet(unmet(conn, [m.id for m in state.pending], every_run=False),
                          state.pending)
            with _backend(resolved) as backend:
                for i, m in enumerate(state.pending):
                    try:
                        backend.apply_one(m.yoyo)
                    except Exception as err:
                        raise _stopped(m, err, done, state.pending[i:]) from err
                    _record(conn, m)
                    done.append(m.id)
        _record_missing(conn, state)
        _apply_definitions(conn)
        if citus.installed(conn):
            _distribute(conn)
            citus.seal_roles(conn)
        findings = audit(conn)
        if findings:
            raise MigrationError("schema audit failed after migrate (applied in this run: "
                                 f"{', '.join(done) or 'none'}):\n"
                                 + "\n".join(f"  {f}" for f in findings), applied=done)
        return state.pending


def _stopped(m: Migration, err: Exception, done: list[str],
             remaining: list[Migration]) -> MigrationError:
    """A migration failed part-way through a run: what is applied now, and what is not."""
    reason = str(err).strip().rstrip(".")
    return MigrationError(
        f"migration {m.id} failed: {reason}; applied in this run: {', '.join(done) or 'none'}; "
        f"not applied: {', '.join(r.id for r in remaining)}. Each migration is its own "
        f"transaction, so {m.id} left nothing behind: fix the cause and run `maimdb migrate` "
        "again, which continues there", applied=list(done), remaining=[r.id for r in remaining])


def _distribute(conn: psycopg.Connection[Any]) -> None:
    """On a Citus coordinator: every table not yet Citus's becomes a reference or a
    distributed table (maim_db/schema/citus.py), so a new agent table is distributed by the
    migrate that made it."""
    try:
        citus.distribute(conn, control_plane=CONTROL_PLANE, bookkeeping=BOOKKEEPING)
    except psycopg.Error as err:
        raise MigrationError(f"distributing the schema failed: {str(err).strip()}") from err


def _record(conn: psycopg.Connection[Any], m: Migration) -> None:
    conn.execute(
        "insert into maim.migration_checksums (migration_id, sha256) values (%s, %s)"
        " on conflict (migration_id) do update set sha256 = excluded.sha256, applied_at = now()",
        [m.id, m.sha256],
    )


def _record_missing(conn: psycopg.Connection[Any], state: State) -> None:
    """Adopt checksums for migrations applied before maim_db tracked them (e.g. by yoyo)."""
    for m in state.applied:
        conn.execute(
            "insert into maim.migration_checksums (migration_id, sha256) values (%s, %s)"
            " on conflict (migration_id) do nothing",
            [m.id, m.sha256],
        )


def rollback(dsn: str | None = None, *, steps: int = 1, expect: list[str] | None = None,
             migrations_dir: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Roll back the last ``steps`` applied migrations, newest first; return them. With
    ``expect`` (the ids a :func:`rollback_plan` showed), refuse if they are no longer the
    ones it would undo."""
    if steps < 1:
        raise MigrationError(f"--steps must be at least 1, got {steps}")
    migrations = load(migrations_dir)
    with _locked(dsn) as (resolved, conn):
        state = _state(conn, migrations)
        _refuse_edited(state)
        _refuse_too_many(state, steps)
        targets = list(reversed(state.applied))[:steps]
        if expect is not None and [m.id for m in targets] != expect:
            raise MigrationError("the applied migrations changed since the plan was shown; "
                                 "nothing was rolled back: run the command again")
        done: list[str] = []
        with _backend(resolved) as backend:
            for m in targets:
                try:
                    backend.rollback_one(m.yoyo)
                except Exception as err:
                    undone = ", ".join(done) or "none"
                    raise MigrationError(f"rollback of {m.id} failed: {err}; rolled back "
                                         f"before it: {undone}") from err
                conn.execute("delete from maim.migration_checksums where migration_id = %s",
                             [m.id])
                done.append(m.id)
        return targets


# What a rollback file destroys: our rollback files are plain DDL, one statement a line.
_DROP_TABLE = re.compile(r"^\s*drop\s+table\s+(?:if\s+exists\s+)?([^;]+);", re.I | re.M)
_DROP_COLUMN = re.compile(r"^\s*alter\s+table\s+(?:if\s+exists\s+)?(?:only\s+)?([\w.]+)"
                          r"\s+drop\s+column\s+(?:if\s+exists\s+)?(\w+)", re.I | re.M)


@dataclass(frozen=True, slots=True)
class Loss:
    """A table (or column) a rollback drops, and the rows in it now. ``exact`` is false when
    the connecting role is under row-level security, so ``rows`` is the planner's estimate
    (None: never analysed)."""

    table: str
    rows: int | None
    exact: bool
    column: str | None = None


@dataclass(frozen=True, slots=True)
class Undo:
    migration: Migration
    losses: list[Loss]


def _dropped(path: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Tables and (table, column) pairs a migration's rollback drops."""
    rollback = _rollback_file(path)
    if rollback is None or not rollback.exists():
        return [], []
    text = re.sub(r"--[^\n]*", "", rollback.read_text())
    tables = [name.strip() for m in _DROP_TABLE.finditer(text)
              for name in re.sub(r"\s+(cascade|restrict)\s*$", "", m.group(1), flags=re.I)
              .split(",")]
    return tables, [(m.group(1), m.group(2)) for m in _DROP_COLUMN.finditer(text)]


def _rows(conn: psycopg.Connection[Any], table: str, exact: bool) -> int | None:
    qualified = table if "." in table else f"public.{table}"
    if conn.execute("select to_regclass(%s)", [qualified]).fetchone() == (None,):
        return None
    if exact:
        schema, name = qualified.split(".", 1)
        row = conn.execute(sql.SQL("select count(*) from {}.{}").format(
            sql.Identifier(schema), sql.Identifier(name))).fetchone()
    else:
        row = conn.execute("select greatest(reltuples, -1)::bigint from pg_class "
                           "where oid = %s::regclass", [qualified]).fetchone()
    return None if row is None or row[0] < 0 else int(row[0])


def rollback_plan(dsn: str | None = None, *, steps: int = 1,
                  migrations_dir: Path = MIGRATIONS_DIR) -> list[Undo]:
    """What ``rollback(steps=…)`` would undo, newest first, with the tables and columns it
    drops and the rows in them now; changes nothing."""
    if steps < 1:
        raise MigrationError(f"--steps must be at least 1, got {steps}")
    migrations = load(migrations_dir)
    with open_connection(dsn) as conn:
        state = _state(conn, migrations)
        _refuse_edited(state)
        _refuse_too_many(state, steps)
        row = conn.execute("select rolsuper or rolbypassrls from pg_roles "
                           "where rolname = current_user").fetchone()
        exact = bool(row and row[0])
        plan = []
        for m in list(reversed(state.applied))[:steps]:
            tables, columns = _dropped(m.path)
            losses = [Loss(t, _rows(conn, t, exact), exact) for t in tables]
            losses += [Loss(t, _rows(conn, t, exact), exact, column=c) for t, c in columns]
            plan.append(Undo(m, losses))
        return plan


def _refuse_too_many(state: State, steps: int) -> None:
    if state.applied and steps > len(state.applied):
        raise MigrationError(f"--steps {steps} is more than the {len(state.applied)} "
                             "applied migration(s); nothing was rolled back")
