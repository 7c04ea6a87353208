"""A single-user MaiBot's ``data/MaiBot.db`` into one agent: a 0.x file (SQLite, peewee era
0.7 to 0.12) into the 0.x tables, a 1.x file (SQLModel era, 1.0.0 to 1.2.1) into the
``maibot1`` tables.

The file is read through SQLite itself, so rows still in ``MaiBot.db-wal`` are seen, and by
column name after inspecting each table, because real files drift: types change between
releases, columns come and go, and MaiBot leaves ``*_backup_*`` and retired tables behind.
Values are converted to the target column's type; a value that cannot be converted either
falls back (kept as it was, or replaced by the column's default, and counted) or skips its row
(with the reason, and counted). A 1.x file is recognised by its schema version and tables
(:mod:`.known1`) and keeps its ids; rows 1.x itself discards when it upgrades a file are
dropped as a whole and named, and a row whose key the agent already holds is reported, never
merged. Anything that is not a MaiBot database, or a 1.x schema the importer does not know,
is refused before anything is written.

Writes happen in the agent's scope, so row-level security checks the import like any other
writer. Each source table is read in id order and written in batches; a batch is one
transaction that also moves the table's mark in ``import_progress``. A run that is killed
resumes after its last committed batch, and rerunning a finished import writes nothing.
docs/import-export.md has the mapping and every decision behind it.
"""

from __future__ import annotations

import queue
import secrets
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psycopg
from psycopg import sql

from ...connection import open_connection, run_scoped
from ...errors import ConfigurationError, ConflictError, InputError, MaimDBError
from ...row import Row
from ...scope import Scope, named_agent
from ...settings import settings, zone
from ..archive import copy_via_temp, insert_counted, names, temp_like
from ..progress import Progress
from .convert import Skip
from .known1 import dropped
from .plan import TABLES, TABLES1, Plan, TableMap, catalog, plan
from .report import ImportReport, TableReport
from .source import Bound, Source, open_source, source_key

BATCH: Final = 5000
#: About this many bytes of values per batch, whatever the row count: the reader keeps one
#: batch ahead, so this bounds the import's memory on files of few, huge rows.
BATCH_BYTES: Final = 16 * 2**20


def import_sqlite(path: Path, agent_id: str, *, dsn: str | None = None,
                  timezone: str | None = None, batch_size: int = BATCH,
                  batch_bytes: int = BATCH_BYTES, strict: bool = False,
                  progress: Progress | None = None) -> ImportReport:
    """Import the MaiBot database at ``path`` into ``agent_id``; see the module docstring.

    ``timezone``: how to read MaiBot's naive datetimes (llm_usage.timestamp, online_time, and
    every time of a 1.x file), which it wrote in the bot machine's local time; default: this
    machine's. A batch holds at most ``batch_size`` rows and about ``batch_bytes`` bytes.
    Values PostgreSQL cannot store (NUL characters, invalid UTF-8) are mended and listed in
    the report, or with ``strict`` refused.
    """
    started = time.perf_counter()
    path = Path(path)
    scope = named_agent(agent_id)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not (
            1 <= batch_size <= 100_000):
        raise InputError(f"batch size must be between 1 and 100000, got {batch_size}")
    if isinstance(batch_bytes, bool) or not isinstance(batch_bytes, int) or batch_bytes < 1:
        raise InputError(f"batch bytes must be a positive number of bytes, got {batch_bytes}")
    tz, tz_name = zone(timezone)
    if settings().pgbouncer:
        # The import's claim is a session advisory lock held across its batches; behind
        # PgBouncer in transaction mode each batch may run on another server connection.
        raise ConfigurationError("import-sqlite needs a direct connection to PostgreSQL, not "
                                 "PgBouncer (MAIMDB_PGBOUNCER is set); point MAIMDB_DSN at the "
                                 "server for the import")
    source = open_source(path)
    progress = progress or Progress()
    started_key: str | None = None  # the file's key once read: what a change is judged by
    try:
        key = started_key = source_key(source)
        tables = _tables(source)
        report = ImportReport(str(path), agent_id, key, source.format, tz_name)
        report.ignored_tables = sorted(t for t in source.tables
                                       if t not in {m.source for m in tables})
        if source.generation == 1:
            report.outside = _outside_1x(path)
        namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"maim-db:{agent_id}:{key}")
        bound = Bound(batch_size, batch_bytes, key, strict)
        # The claim has a connection of its own: every scope statement releases session-level
        # advisory locks (maim_db/scope.py), so it cannot live on the one the blocks use.
        with open_connection(dsn) as lock_conn, import_claim(lock_conn, scope, key), \
                open_connection(dsn) as conn:
            done = _progress(conn, scope, key)
            for tm in tables:
                if tm.source not in source.tables:
                    continue
                mark = _mark(source, tm)
                gone = dropped(tm.source, source.version) if source.generation == 1 else None
                if gone is not None:
                    report.tables.append(_drop(source, tm, gone.why))
                    continue
                p = plan(tm, source.tables[tm.source], catalog(conn, tm.model.qualified_table()),
                         namespace, tz, generation=source.generation, version=source.version)
                p.report.earlier = done.get(mark, (0, 0))[1]
                _import_table(conn, scope, source, p, done.get(mark, (0, 0))[0], bound,
                              progress, mark)
                report.tables.append(p.report)
    except sqlite3.Error as err:  # a damaged file, or one that is not quite MaiBot's shape
        # ... or one changed under the reader (overwritten in place): say that, if so
        if started_key is not None:
            source.check_unchanged(started_key)
        raise InputError(f"{path}: SQLite could not read it: {err}; any batches written before "
                         "it are kept, and a rerun resumes after them") from err
    finally:
        source.conn.close()
    report.seconds = time.perf_counter() - started
    return report


def _tables(source: Source) -> tuple[TableMap, ...]:
    return TABLES1 if source.generation == 1 else TABLES


def _mark(source: Source, tm: TableMap) -> str:
    """The table's name in ``import_progress``: 1.x's qualified, since four 1.x tables have
    a 0.x table's name (``images``, ``llm_usage``, ``person_info``, ``online_time``)."""
    return tm.model.qualified_table() if source.generation == 1 else tm.source


def _drop(source: Source, tm: TableMap, why: str) -> TableReport:
    """A table whose rows 1.x discards on upgrade: none written, all named in the report."""
    report = TableReport(tm.source, tm.model.qualified_table(), dropped=why)
    report.read = source.count_after(tm.source, 0)
    if report.read:
        report.skipped[f"dropped as a whole: {why}"] = report.read
    return report


#: What MaiBot 1.x keeps beside ``data/MaiBot.db`` that the import does not read: A_memorix's
#: memory (``src/A_memorix/paths.py``: ``data/a-memorix``, unless its ``storage.data_dir``
#: says otherwise), per-agent state the database cannot isolate.
OUTSIDE_1X: Final = (
    ("a-memorix/metadata/metadata.db", "A_memorix's memory store (its own SQLite file)"),
    ("a-memorix/vectors", "A_memorix's vectors (vectors.bin and its ids)"),
    ("a-memorix/graph", "A_memorix's graph (graph_adjacency.npz, graph_metadata.json)"),
)


def _outside_1x(path: Path) -> list[str]:
    """The memory MaiBot 1.x keeps outside ``MaiBot.db`` that is present beside ``path``
    (in its ``data`` directory): named in the report, not imported (a later step)."""
    found = []
    for rel, what in OUTSIDE_1X:
        there = path.parent / rel
        if there.exists():
            found.append(f"{there}: {what}")
    a_memorix = path.parent / "a-memorix"
    if a_memorix.is_dir() and not found:
        found.append(f"{a_memorix}: A_memorix's data directory")
    return found


def committed(path: Path, agent_id: str, *, dsn: str | None = None) -> dict[str, int]:
    """Rows that imports of the file at ``path`` have committed into ``agent_id`` so far, per
    target table: what a rerun resumes after (after a Ctrl-C, say)."""
    scope = named_agent(agent_id)
    source = open_source(Path(path))
    try:
        key = source_key(source)
    finally:
        source.conn.close()
    with open_connection(dsn) as conn:
        done = _progress(conn, scope, key)
    if source.generation == 1:
        return {tm.model.qualified_table(): done[_mark(source, tm)][1] for tm in TABLES1
                if _mark(source, tm) in done}
    return {tm.model.table: done[tm.source][1] for tm in TABLES if tm.source in done}


# A claim is live while its backend holds its advisory lock (a bigint key shows in pg_locks
# as classid = high 32 bits, objid = low 32 bits, objsubid = 1).
_LIVE: Final = """exists (select from pg_catalog.pg_locks l
                    where l.locktype = 'advisory' and l.granted and l.objsubid = 1
                      and l.pid = {c}.holder_pid
                      and (l.classid::bigint << 32 | l.objid::bigint) = {c}.lock_key)"""


@contextmanager
def import_claim(conn: psycopg.Connection[Any], scope: Scope, key: str) -> Iterator[None]:
    """One import of a given database into a given agent at a time.

    The claim is the agent's row in ``import_claims`` (migrations/0013), naming this backend
    and a random advisory lock that ``conn`` (which runs no other block) holds until the import
    ends or its process dies. Only the agent's scope can see or take the row; a claim whose
    backend no longer holds its lock is stale and taken over. So no other session can block
    an import by taking a lock first: the lock it could see in pg_locks decides nothing alone.
    """
    with run_scoped(conn, scope) as db:
        lock = secrets.randbits(62) + 1
        while not db.scalar("select pg_try_advisory_lock(%s)", [lock]):
            lock = secrets.randbits(62) + 1  # someone holds this one: no matter, take another
        me = db.scalar("select pg_backend_pid()")
        # Take a free claim, or a stale one by compare-and-swap on its holder: plain
        # statements, no subquery inside the write (Citus routes them to the agent's shard).
        # Each step can lose a race with another import starting or ending: look again.
        holder: tuple[Any, ...] | None = None
        for _ in range(3):
            if db.rows("insert into import_claims (source_key, holder_pid, lock_key) "
                       "values (%s, %s, %s) on conflict (agent_id, source_key) do nothing "
                       "returning 1", [key, me, lock]):
                break
            held = db.rows("select holder_pid, lock_key, claimed_at from import_claims "
                           "where source_key = %s", [key])
            if not held:
                continue  # its holder ended between the two: free again
            holder = held[0]
            if db.scalar(sql.SQL("select " + _LIVE.format(c="h")
                                 + " from (values (%s::integer, %s::bigint)) "
                                 "h(holder_pid, lock_key)"), list(holder[:2])):
                break  # held by a live import
            if db.rows("update import_claims set holder_pid = %s, lock_key = %s, "
                       "claimed_at = now() where source_key = %s and holder_pid = %s "
                       "and lock_key = %s returning 1", [me, lock, key, *holder[:2]]):
                holder = None
                break
        else:
            holder = holder or (None, None, None)
        if holder is not None:
            db.execute("select pg_advisory_unlock(%s)", [lock])
            pid, _, since = holder
            held_by = (f" (backend {pid}, since {since:%Y-%m-%d %H:%M:%S %Z})"
                       if pid is not None else "")
            raise ConflictError(f"another import of this database into agent {scope.id} is "
                                f"running{held_by}; wait for it to finish")
    try:
        yield
    finally:
        # a new block releases the lock first; a dead connection has released it already
        with suppress(psycopg.Error, MaimDBError), run_scoped(conn, scope) as db:
            db.execute("delete from import_claims where source_key = %s and lock_key = %s",
                       [key, lock])


def _progress(conn: psycopg.Connection[Any], scope: Scope,
              key: str) -> dict[str, tuple[int, int]]:
    with run_scoped(conn, scope) as db:
        rows = db.rows("select source_table, last_source_id, rows_written from import_progress"
                       " where source_key = %s", [key])
    return {t: (int(last), int(n)) for t, last, n in rows}


def _import_table(conn: psycopg.Connection[Any], scope: Scope, source: Source, p: Plan,
                  last_id: int, bound: Bound, progress: Progress, mark: str) -> None:
    report = p.report
    model = p.table.model
    progress.start(report.target, source.count_after(p.table.source, last_id))
    if last_id == 0 and (below := source.count_below(p.table.source)):
        # The cursor (and import_progress's mark) starts above 0; SQLite gives such an id
        # only when it is written explicitly, which MaiBot never does. Named, not lost.
        report.read += below
        report.skipped["an id of 0 or below (written explicitly; MaiBot never writes one): "
                       "not read"] += below
    # A 1.x row keeps its key: one the agent already holds (its own row, or another file's)
    # is a clash, reported by key, never merged. Which keys clash: those not returned.
    keys = [k for k in model.key if k != "agent_id"] if source.generation == 1 else []
    if keys and not set(keys) <= set(p.columns):
        keys = []  # a key the database fills cannot clash with one from the file
    # agent_id from the scope once per statement (an InitPlan), not the column default once
    # per row; the policies check it like any other value.
    insert = sql.SQL("insert into {t} (agent_id, {c}) select (select maim.agent_id()), {c} "
                     "from maim_import{conflict}").format(
        t=sql.Identifier(*model.table_path()), c=names(p.columns),
        conflict=sql.SQL(" on conflict do nothing"
                         if p.table.natural_key or source.generation == 1 else ""))
    at = [p.columns.index(k) for k in keys]

    def convert(rows: list[tuple[Any, ...]]) -> Batch:
        batch = Batch(last_id=rows[-1][0], read=len(rows))
        if p.missing_required:
            batch.skipped[p.missing_required] = len(rows)
            return batch
        for row in rows:
            try:
                batch.values.append(p.make(row))
            except Skip as skip:
                batch.skipped[str(skip)] += 1
        return batch

    binary = {c for c in p.source_columns if _is_binary(model, c)}
    batches = source.batches(p.table.source, p.source_columns, last_id, bound, report.altered,
                             binary)
    for batch in _prefetch(map(convert, batches)):  # converted on the reader thread
        written, clashed = _write(conn, scope, p, insert, batch.values, bound.key,
                                  batch.last_id, mark, keys, at)
        if clashed:
            report.skipped["clashes with a row this agent already has (the same primary or "
                           "unique key): the agent's row is kept, the file's is not "
                           "imported"] += len(clashed)
            report.clashes.extend(clashed)
        report.batches += 1
        report.skipped.update(batch.skipped)
        if p.table.natural_key and written < len(batch.values):
            natural = ", ".join(p.table.natural_key)
            report.skipped[f"this agent already has a row with the same {natural}"] += (
                len(batch.values) - written)
        report.read += batch.read
        report.written += written
        progress.advance(report.target, batch.read)
    progress.finish(report.target, report.written)


@dataclass
class Batch:
    """One batch read and converted: the values to write and what was skipped, and why."""

    last_id: int
    read: int
    values: list[list[Any]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


def _is_binary(model: type[Row], column: str) -> bool:
    field = model.model_fields.get(column)
    return field is not None and bytes in (field.annotation, *getattr(
        field.annotation, "__args__", ()))


def _write(conn: psycopg.Connection[Any], scope: Scope, p: Plan, insert: sql.Composed,
           values: list[list[Any]], key: str, last_id: int, mark: str,
           keys: list[str], at: list[int]) -> tuple[int, list[str]]:
    """One batch, one transaction: the rows and the table's new mark, or neither. With
    ``keys`` (the target's key columns, at ``at`` in a row), also the keys of the rows not
    written because the agent already holds a row with that primary or unique key."""
    written = 0
    clashed: list[str] = []
    with run_scoped(conn, scope) as db:
        # Not waiting for the WAL flush is safe here: a batch lost in a crash loses its
        # progress mark with it, and the rerun writes it again.
        db.execute("set local synchronous_commit = off")
        if values:
            with copy_via_temp(db, "maim_import",
                               temp_like("maim_import", p.table.model.table_path(),
                                         p.columns),
                               p.columns, types=p.types) as copy:
                for v in values:
                    copy.write_row(v)
            if keys:
                # As insert_counted: RETURNING makes Citus check each row on its shard.
                back = db.rows(sql.SQL("with written as ({} returning {}) select {} from "
                                       "written").format(insert, names(keys), names(keys)))
                written = len(back)
                if written < len(values):
                    kept = set(back)
                    clashed = [", ".join(f"{k} {v[i]!r}" for k, i in zip(keys, at, strict=True))
                               for v in values if tuple(v[i] for i in at) not in kept]
            else:
                written = insert_counted(db, insert)
        db.execute(
            """insert into import_progress (source_key, source_table, last_source_id,
                                            rows_written)
               values (%s, %s, %s, %s)
               on conflict (agent_id, source_key, source_table) do update
               set last_source_id = excluded.last_source_id,
                   rows_written = import_progress.rows_written + excluded.rows_written""",
            [key, mark, last_id, written])
    return written, clashed


def _prefetch(batches: Iterator[Batch]) -> Iterator[Batch]:
    """Read and convert the next batch while this one is written to PostgreSQL (which
    releases the GIL while it waits)."""
    ready: queue.Queue[Batch | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def read() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        ready.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(None)
        except BaseException as err:  # handed to the consumer, raised there
            ready.put(err)

    reader = threading.Thread(target=read, name="maim-import-reader", daemon=True)
    reader.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()
