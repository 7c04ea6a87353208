"""A single-user MaiBot's ``data/MaiBot.db`` (SQLite, peewee era 0.7 to 0.12) into one agent.

The file is read through SQLite itself, so rows still in ``MaiBot.db-wal`` are seen, and by
column name after inspecting each table, because real files drift: types change between
releases, columns come and go, and MaiBot leaves ``*_backup_*`` and retired tables behind.
Values are converted to the target column's type; a value that cannot be converted either
falls back (kept as it was, or replaced by the column's default, and counted) or skips its row
(with the reason, and counted). A MaiBot 1.x file and anything that is not a MaiBot database
are refused before anything is written.

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
from ...scope import Scope, named_agent
from ...settings import settings, zone
from ..archive import copy_via_temp, insert_counted, names, temp_like
from ..progress import Progress
from .convert import Skip
from .plan import TABLES, Plan, catalog, plan
from .report import ImportReport
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

    ``timezone``: how to read MaiBot's naive datetimes (llm_usage.timestamp, online_time),
    which it wrote in the bot machine's local time; default: this machine's. A batch holds at
    most ``batch_size`` rows and about ``batch_bytes`` bytes. Values PostgreSQL cannot store
    (NUL characters, invalid UTF-8) are mended and listed in the report, or with ``strict``
    refused.
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
    try:
        key = source_key(source)
        report = ImportReport(str(path), agent_id, key, source.format, tz_name)
        report.ignored_tables = sorted(t for t in source.tables
                                       if t not in {m.source for m in TABLES})
        namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"maim-db:{agent_id}:{key}")
        bound = Bound(batch_size, batch_bytes, key, strict)
        # The claim has a connection of its own: every scope statement releases session-level
        # advisory locks (maim_db/scope.py), so it cannot live on the one the blocks use.
        with open_connection(dsn) as lock_conn, import_claim(lock_conn, scope, key), \
                open_connection(dsn) as conn:
            done = _progress(conn, scope, key)
            for tm in TABLES:
                if tm.source not in source.tables:
                    continue
                p = plan(tm, source.tables[tm.source], catalog(conn, tm.model.table),
                         namespace, tz)
                p.report.earlier = done.get(tm.source, (0, 0))[1]
                _import_table(conn, scope, source, p, done.get(tm.source, (0, 0))[0], bound,
                              progress)
                report.tables.append(p.report)
    except sqlite3.Error as err:  # a damaged file, or one that is not quite MaiBot's shape
        raise InputError(f"{path}: SQLite could not read it: {err}; any batches written before "
                         "it are kept, and a rerun resumes after them") from err
    finally:
        source.conn.close()
    report.seconds = time.perf_counter() - started
    return report


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
                  last_id: int, bound: Bound, progress: Progress) -> None:
    report = p.report
    progress.start(report.target, source.count_after(p.table.source, last_id))
    # agent_id from the scope once per statement (an InitPlan), not the column default once
    # per row; the policies check it like any other value.
    insert = sql.SQL("insert into {t} (agent_id, {c}) select (select maim.agent_id()), {c} "
                     "from maim_import{conflict}").format(
        t=sql.Identifier(p.table.model.table), c=names(p.columns),
        conflict=sql.SQL(" on conflict do nothing" if p.table.natural_key else ""))

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

    batches = source.batches(p.table.source, p.source_columns, last_id, bound, report.altered)
    for batch in _prefetch(map(convert, batches)):  # converted on the reader thread
        written = _write(conn, scope, p, insert, batch.values, bound.key, batch.last_id)
        report.batches += 1
        report.skipped.update(batch.skipped)
        if p.table.natural_key and written < len(batch.values):
            keys = ", ".join(p.table.natural_key)
            report.skipped[f"this agent already has a row with the same {keys}"] += (
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


def _write(conn: psycopg.Connection[Any], scope: Scope, p: Plan, insert: sql.Composed,
           values: list[list[Any]], key: str, last_id: int) -> int:
    """One batch, one transaction: the rows and the table's new mark, or neither."""
    written = 0
    with run_scoped(conn, scope) as db:
        # Not waiting for the WAL flush is safe here: a batch lost in a crash loses its
        # progress mark with it, and the rerun writes it again.
        db.execute("set local synchronous_commit = off")
        if values:
            with copy_via_temp(db, "maim_import",
                               temp_like("maim_import", p.table.model.table, p.columns),
                               p.columns, types=p.types) as copy:
                for v in values:
                    copy.write_row(v)
            written = insert_counted(db, insert)
        db.execute(
            """insert into import_progress (source_key, source_table, last_source_id,
                                            rows_written)
               values (%s, %s, %s, %s)
               on conflict (agent_id, source_key, source_table) do update
               set last_source_id = excluded.last_source_id,
                   rows_written = import_progress.rows_written + excluded.rows_written""",
            [key, p.table.source, last_id, written])
    return written


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
