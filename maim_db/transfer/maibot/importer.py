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

import ast
import hashlib
import json
import os
import queue
import secrets
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from functools import partial
from pathlib import Path
from typing import Any, Final, Literal, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from psycopg import sql

from ...connection import open_connection, run_scoped
from ...errors import ConfigurationError, ConflictError, InputError, MaimDBError
from ...row import Row
from ...scope import Scope, named_agent
from ...settings import settings
from ...tables import runtime as rt
from ..archive import copy_via_temp, names, temp_like

BATCH: Final = 5000
#: About this many bytes of values per batch, whatever the row count: the reader keeps one
#: batch ahead, so this bounds the import's memory on files of few, huge rows.
BATCH_BYTES: Final = 16 * 2**20


@dataclass(frozen=True)
class TableMap:
    """Where one MaiBot table goes. ``natural_key``: the target's unique key besides the id;
    a source row whose key the agent already holds is skipped, not overwritten."""

    source: str
    model: type[Row]
    natural_key: tuple[str, ...] = ()


#: Every MaiBot table with a home here, in import order. ``chat_history`` is MaiBot's topic
#: summary table; maim_db calls it ``chat_history_summary`` (its own ``chat_history`` is the
#: web back end's). The last three exist only in files written by the multi-user fork.
TABLES: Final[tuple[TableMap, ...]] = (
    TableMap("chat_streams", rt.ChatStream, ("stream_id",)),
    TableMap("expression", rt.Expression),
    TableMap("messages", rt.Message),
    TableMap("action_records", rt.ActionRecord),
    TableMap("llm_usage", rt.LLMUsage),
    TableMap("emoji", rt.Emoji, ("full_path",)),
    TableMap("images", rt.Image, ("path",)),
    TableMap("image_descriptions", rt.ImageDescription),
    TableMap("emoji_description_cache", rt.EmojiDescriptionCache, ("emoji_hash",)),
    TableMap("online_time", rt.OnlineTime),
    TableMap("person_info", rt.PersonInfo, ("person_id",)),
    TableMap("group_info", rt.GroupInfo, ("group_id",)),
    TableMap("jargon", rt.Jargon),
    TableMap("chat_history", rt.ChatHistorySummary),
    TableMap("thinking_back", rt.ThinkingBack),
    TableMap("runtime_state", rt.RuntimeState, ("state_key",)),
    TableMap("hippo_topic_cache", rt.HippoTopicCache, ("chat_id",)),
    TableMap("hippo_batch_state", rt.HippoBatchState, ("chat_id",)),
)

#: Tables MaiBot retired but never dropped (maibot-sqlite.md §2.2): known, and left alone.
RETIRED: Final = frozenset({"knowledges", "thinking_logs", "recalled_messages", "memory",
                            "graph_nodes", "graph_edges", "memory_chest", "memory_conflicts"})

# -- the report ------------------------------------------------------------------------------

@dataclass
class TableReport:
    source: str
    target: str
    read: int = 0
    written: int = 0
    earlier: int = 0  # written by earlier runs of this import
    skipped: Counter[str] = field(default_factory=Counter)
    fallback: Counter[str] = field(default_factory=Counter)
    ignored_columns: list[str] = field(default_factory=list)
    altered: list[Altered] = field(default_factory=list)  # every value mended on the way
    batches: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "read": self.read,
                "written": self.written, "earlier": self.earlier,
                "skipped": dict(self.skipped), "fallback": dict(self.fallback),
                "ignored_columns": self.ignored_columns, "batches": self.batches,
                "altered": [{"source_id": a.source_id, "column": a.column, "change": a.change}
                            for a in self.altered]}


@dataclass(frozen=True, slots=True)
class Altered:
    """One value the import could not store as the file holds it, and what it did instead."""

    source_id: int
    column: str
    change: str


@dataclass
class ImportReport:
    path: str
    agent_id: str
    source_key: str
    format: str
    timezone: str
    tables: list[TableReport] = field(default_factory=list)
    ignored_tables: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def table(self, target: str) -> TableReport:
        return next(t for t in self.tables if t.target == target)

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "agent_id": self.agent_id, "source_key": self.source_key,
                "format": self.format, "timezone": self.timezone,
                "seconds": round(self.seconds, 3), "ignored_tables": self.ignored_tables,
                "tables": [t.as_dict() for t in self.tables]}


class Progress:
    """Told how far each table has got; the CLI draws it, the library default is silent."""

    def start(self, table: str, total: int) -> None:
        """``table`` begins, with ``total`` rows to read."""

    def advance(self, table: str, rows: int) -> None:
        """``rows`` more rows of ``table`` were read and committed."""

    def finish(self, report: TableReport) -> None:
        """``table`` is done."""


# -- reading the file ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Bound:
    """How a table is read: at most ``rows`` rows and about ``bytes`` bytes of values per
    batch; ``key`` is what the file must still be; ``strict`` refuses values that would need
    mending."""

    rows: int
    bytes: int
    key: str
    strict: bool = False


NUL_REMOVED: Final = "NUL characters removed"
UTF8_REPLACED: Final = "invalid UTF-8 replaced by U+FFFD"


@dataclass(frozen=True)
class Source:
    """An opened MaiBot database: its tables and their columns, by name, and which file it
    is (device and inode), so that a file replaced during the import is noticed."""

    conn: sqlite3.Connection
    tables: dict[str, list[str]]
    format: str
    path: Path = Path()
    identity: tuple[int, int] = (0, 0)

    def count_after(self, table: str, last_id: int) -> int:
        row = self.conn.execute(f'select count(*) from "{table}" where id > ?',
                                (last_id,)).fetchone()
        return int(row[0])

    def batches(self, table: str, cols: Sequence[str], last_id: int, bound: Bound,
                altered: list[Altered]) -> Iterator[list[tuple[Any, ...]]]:
        """Rows ``(id, *cols, size, nuls)`` after ``last_id`` in id order, a batch at a time.
        SQLite itself measures each row (bytes of its values) and flags the NULs in it, so
        a clean row costs Python nothing more. Each batch is checked against the file the
        import started with after it is read, so no row read after a change is committed."""
        select = ", ".join(map(quote, ("id", *cols)))
        blobs = [f"cast({quote(c)} as blob)" for c in cols] or ["null"]
        size = " + ".join(f"coalesce(length({b}), 0)" for b in blobs)
        nuls = " + ".join(f"coalesce(instr({b}, x'00') > 0, 0)" for b in blobs)
        # Up to the newest row now: what a running bot adds meanwhile comes with the next run
        # (a bot writing as fast as the import reads would otherwise keep it going forever).
        (top,) = self.conn.execute(f"select coalesce(max(id), 0) from {quote(table)}").fetchone()
        query = (f"select {select}, {size}, {nuls} from {quote(table)} "
                 f"where id > ? and id <= {int(top)} order by id limit ?")
        while True:
            rows = self._read(query, last_id, bound, table, cols, altered)
            if not rows:
                return
            self.check_unchanged(bound.key)
            yield rows
            last_id = rows[-1][0]

    def _read(self, query: str, last_id: int, bound: Bound, table: str, cols: Sequence[str],
              altered: list[Altered]) -> list[tuple[Any, ...]]:
        mended: list[Altered] = []  # kept only for the read that succeeds
        try:
            rows = self._bounded(query, last_id, bound, table, cols, mended, lenient=False)
        except sqlite3.OperationalError as err:
            if "decode" not in str(err):
                raise
            # A text value that is not UTF-8: read this batch again decoding leniently
            # (invalid bytes become lone surrogates), and mend what that marks.
            mended.clear()
            self.conn.text_factory = _lenient
            try:
                rows = self._bounded(query, last_id, bound, table, cols, mended, lenient=True)
            finally:
                self.conn.text_factory = str
        altered.extend(mended)
        return rows

    def _bounded(self, query: str, last_id: int, bound: Bound, table: str,
                 cols: Sequence[str], altered: list[Altered], *,
                 lenient: bool) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        total = 0
        for row in self.conn.execute(query, (last_id, bound.rows)):
            if row[-1] or lenient:
                row = _mend(row, table, cols, altered, bound.strict)
            rows.append(row)
            total += row[-2]
            if total >= bound.bytes:
                break
        return rows

    def check_unchanged(self, key: str) -> None:
        """Refuse to go on when ``path`` is no longer the file the import started with."""
        try:
            st = os.stat(self.path)
            now: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            now = None
        if now != self.identity:
            what = "it was replaced by another file" if now else "it was removed"
        elif _key_of_file(self.path) != key:
            what = "it now holds another bot's database (its oldest chat stream differs)"
        else:
            return
        raise ConflictError(
            f"{self.path} changed during the import: {what}. Nothing read after the change "
            "was written; the batches before it came from the original file and are kept. "
            "Rerun the import once the file stays put")


def _lenient(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _mend(row: tuple[Any, ...], table: str, cols: Sequence[str], altered: list[Altered],
          strict: bool) -> tuple[Any, ...]:
    """``row`` with NULs removed and invalid UTF-8 replaced (PostgreSQL's text holds
    neither), each change recorded; with ``strict``, refused instead."""
    values = list(row)
    for i, column in enumerate(cols, 1):
        v = values[i]
        changes = []
        if isinstance(v, bytes) and b"\x00" in v:
            v = v.replace(b"\x00", b"")
            changes.append(NUL_REMOVED)
        elif isinstance(v, str):
            if "\x00" in v:
                v = v.replace("\x00", "")
                changes.append(NUL_REMOVED)
            if not v.isascii():
                try:
                    v.encode("utf-8")
                except UnicodeEncodeError:
                    v = v.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                    changes.append(UTF8_REPLACED)
        for change in changes:
            if strict:
                held = "NUL characters" if change == NUL_REMOVED else "bytes that are not UTF-8"
                raise InputError(f"{table} id {row[0]}, column {column}: the value holds "
                                 f"{held}, which PostgreSQL cannot store; --strict refuses it "
                                 f"(without it: {change}, and listed in the report). Batches "
                                 "before this one are kept")
            altered.append(Altered(int(row[0]), column, change))
        values[i] = v
    return tuple(values)


def quote(name: str) -> str:
    """An SQLite identifier, quoted: a file may hold any table or column name."""
    return '"' + name.replace('"', '""') + '"'


def open_source(path: Path) -> Source:
    """Open ``path`` read-only and check it is a MaiBot 0.x database; refuse anything else."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                               check_same_thread=False)
        version = int(conn.execute("pragma user_version").fetchone()[0])
        names_ = [r[0] for r in conn.execute(
            "select name from sqlite_master where type = 'table' order by name")]
    except sqlite3.DatabaseError as err:
        raise InputError(f"{path} is not an SQLite database ({err})") from None
    if version > 0 or "mai_messages" in names_ or "chat_sessions" in names_:
        conn.close()
        raise InputError(
            f"{path} is a MaiBot 1.x database (PRAGMA user_version = {version}); "
            "import-sqlite reads the 0.x (peewee) format of MaiBot 0.7 to 0.12. Import the 0.x "
            "file from before the upgrade (a backup of data/MaiBot.db); the __legacy_v1_* tables "
            "1.x keeps inside this file are not read.")
    if not {"messages", "chat_streams"} <= set(names_):
        conn.close()
        raise InputError(f"{path} is not a MaiBot database: it has no messages and "
                         "chat_streams tables")
    tables = {t: [r[1] for r in conn.execute(f"pragma table_info({quote(t)})")] for t in names_}
    for t, cols in tables.items():
        if t in {m.source for m in TABLES} and "id" not in cols:
            conn.close()
            raise InputError(f"{path}: table {t} has no id column; not a peewee-era MaiBot file")
    agents = sorted({row[0] for t in TABLES if "agent_id" in tables.get(t.source, ())
                     for row in conn.execute(f"select distinct agent_id from {quote(t.source)} "
                                             "where agent_id is not null")})
    if len(agents) > 1:
        # A file of the multi-agent fork (saas): its rows carry their own agent_id, which the
        # import replaces with the scope's. Merging several bots into one agent is refused.
        conn.close()
        shown = ", ".join(map(str, agents[:5])) + (", …" if len(agents) > 5 else "")
        raise InputError(f"{path} holds the rows of {len(agents)} agents ({shown}); "
                         "import-sqlite brings one bot's database into one agent")
    st = os.stat(path)
    return Source(conn, tables, _format(tables), path, (st.st_dev, st.st_ino))


def _format(tables: dict[str, list[str]]) -> str:
    """A description of the release the file comes from, by the columns it has."""
    messages = set(tables["messages"])
    if "intercept_message_level" in messages:
        era = "0.12"
    elif "emoji_description_cache" in tables:
        era = "0.11.6"
    elif "jargon" in tables:
        era = "0.11.2"
    elif "key_words" in messages:
        era = "0.10"
    elif "interest_value" in messages:
        era = "0.9"
    elif "action_records" in tables:
        era = "0.8"
    else:
        era = "0.7"
    return f"MaiBot 0.x (peewee), columns of {era} or later"


def _key_of_file(path: Path) -> str:
    """The source key read through a new connection: one whose page cache cannot answer
    for a file that was overwritten in place."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return source_key(Source(conn, {}, ""))
    finally:
        conn.close()


def source_key(source: Source) -> str:
    """What identifies this bot's database across copies and runs: a digest of its oldest
    stream by creation time (or its first message). Not the lowest stream id: MaiBot saves a
    stream with ``ChatStreams.replace()``, which in SQLite deletes the row and inserts it
    under a new id, keeping ``stream_id`` and ``create_time``; messages are only inserted."""
    for table, cols, order in (("chat_streams", "stream_id, create_time", "create_time, stream_id"),
                               ("messages", "message_id, time, chat_id", "id")):
        row = source.conn.execute(
            f"select {cols} from {table} order by {order} limit 1").fetchone()
        if row is not None:
            return hashlib.sha256(repr((table, *row)).encode()).hexdigest()[:16]
    return hashlib.sha256(b"empty MaiBot database").hexdigest()[:16]


# -- converting values -----------------------------------------------------------------------

class Skip(Exception):
    """This row cannot be imported; the message is the reason."""


Convert = Callable[[Any], Any]


def _base_type(annotation: Any) -> tuple[Any, bool]:
    args = get_args(annotation)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    if get_origin(annotation) is Literal:
        return str, False
    return annotation, False


def _number(value: str, column: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise Skip(f"{column}: not a number") from None


def _bool(v: Any, column: str) -> bool:
    if isinstance(v, int | float):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("1", "true", "t", "0", "false", "f"):
        return v.strip().lower() in ("1", "true", "t")
    raise Skip(f"{column}: not a boolean")


def converter(annotation: Any, column: str, tz: tzinfo, fallback: Counter[str],
              default: Any = None) -> Convert:
    """The function turning a SQLite value into one for ``column``: it returns the value,
    counts a fallback, or raises :class:`Skip`."""
    kind, nullable = _base_type(annotation)

    def missing() -> Any:
        if nullable:
            return None
        if default is not None:
            fallback[f"{column}: NULL replaced by the default {default!r}"] += 1
            return default
        raise Skip(f"{column} is NULL")

    if kind is str:
        def text(v: Any) -> Any:
            if type(v) is str:
                return v
            if v is None:
                return missing()
            if isinstance(v, bytes):
                fallback[f"{column}: bytes decoded as UTF-8 with replacement"] += 1
                return v.decode("utf-8", "replace")
            return str(v)
        return text
    if kind is float:
        def real(v: Any) -> Any:
            if type(v) is float:
                return v
            if v is None:
                return missing()
            if isinstance(v, int):
                return float(v)
            if isinstance(v, str):
                return _number(v, column)
            raise Skip(f"{column}: not a number")
        return real
    if kind is int:
        def integer(v: Any) -> Any:
            if type(v) is int:
                return v
            if v is None:
                return missing()
            number = _number(v, column) if isinstance(v, str) else v
            if isinstance(number, float):
                if not number.is_integer():
                    fallback[f"{column}: rounded to an integer"] += 1
                return round(number)
            raise Skip(f"{column}: not an integer")
        return integer
    if kind is bool:
        def boolean(v: Any) -> Any:
            return missing() if v is None else _bool(v, column)
        return boolean
    if kind is datetime:
        def moment(v: Any) -> Any:
            if v is None:
                return missing()
            if isinstance(v, int | float):
                return datetime.fromtimestamp(v, UTC)
            try:
                parsed = datetime.fromisoformat(str(v).strip())
            except ValueError:
                try:
                    return datetime.fromtimestamp(float(v), UTC)
                except ValueError:
                    raise Skip(f"{column}: not a date and time") from None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)
        return moment
    raise TypeError(f"no SQLite conversion for {column}: {annotation!r}")


def id_base(namespace: uuid.UUID, table: str) -> int:
    """The fixed part of the ids of rows imported from MaiBot's ``table``: see :func:`row_id`."""
    digest = int.from_bytes(uuid.uuid5(namespace, table).bytes[:8], "big")
    version8 = (digest & ~(0xF << 12)) | (0x8 << 12)
    return (version8 << 64) | (0x2 << 62)  # RFC 9562 variant bits


def row_id(base: int, source_id: int) -> uuid.UUID:
    """The id of the row imported from MaiBot's row ``source_id``: a version 8 UUID made of a
    digest of (agent, file, table) and the source id. Stable across runs (so a reference by
    MaiBot id can be rewritten without a lookup), it says where a row came from, and a
    table's rows arrive in key order, so the primary-key index is appended to rather than
    split at random places."""
    return uuid.UUID(int=base | source_id)


def selected_expressions(namespace: uuid.UUID, fallback: Counter[str]) -> Convert:
    """``str(list[int])`` of expression ids → a JSON list of the imported rows' ids."""
    base = id_base(namespace, "expression")

    def remap(v: Any) -> Any:
        if v is None or v == "":
            return v
        try:
            ids = json.loads(v)
        except (TypeError, ValueError):
            try:
                ids = ast.literal_eval(v)
            except (ValueError, SyntaxError):
                ids = None
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            fallback["selected_expressions: not a list of ids, kept as it was"] += 1
            return str(v)
        return json.dumps([str(row_id(base, i)) for i in ids])
    return remap


# -- planning one table ----------------------------------------------------------------------

@dataclass
class Plan:
    """How one source table's rows become target rows."""

    table: TableMap
    columns: list[str]  # target columns written, in order
    types: list[int]  # their PostgreSQL type oids, for binary COPY
    make: Callable[[tuple[Any, ...]], list[Any]]  # (id, *source columns) → values
    source_columns: list[str]
    report: TableReport
    missing_required: str | None = None


#: How a column's value is made: the Python type that passes through unchanged ("str",
#: "float", "int"), "bool" (0/1 looked up), or "value" (always the converter).
Fast = Literal["str", "float", "int", "bool", "value"]


def plan(tm: TableMap, source_cols: list[str], catalog: dict[str, tuple[int, Any]],
         namespace: uuid.UUID, tz: tzinfo) -> Plan:
    """``catalog``: target column → (type oid, constant default or None)."""
    report = TableReport(tm.source, tm.model.table)
    fields = tm.model.model_fields
    present = [c for c in source_cols if c != "id"]
    report.ignored_columns = [c for c in present
                              if c not in fields and c != "is_no_read_command"]
    read = [c for c in present if c in fields or c == "is_no_read_command"]
    index = {c: i + 1 for i, c in enumerate(read)}  # 0 is the source id
    columns: list[str] = []
    parts: list[tuple[Fast, bool, int, Callable[[Any], Any]]] = []  # how, nullable, where
    missing_required = None
    for name, info in fields.items():
        if name == "agent_id":
            continue
        if name == "id":
            columns.append("id")
            parts.append(("value", False, 0, partial(row_id, id_base(namespace, tm.source))))
            continue
        if name in index:
            convert = converter(info.annotation, name, tz, report.fallback, catalog[name][1])
            fast: Fast = _fast(info.annotation)
            if tm.source == "messages" and name == "selected_expressions":
                convert, fast = selected_expressions(namespace, report.fallback), "value"
            parts.append((fast, _base_type(info.annotation)[1], index[name], convert))
            columns.append(name)
        elif tm.source == "messages" and name == "intercept_message_level" \
                and "is_no_read_command" in index:
            # 0.11.6 marked commands not to read; 0.12 made that level 1 of a scale.
            parts.append(("value", False, index["is_no_read_command"],
                          lambda v: 1 if v else 0))
            columns.append(name)
        elif not info.is_required():
            continue  # the database fills it: NULL or the column default
        else:
            missing_required = f"the source has no {name} column, which {tm.model.table} needs"
    return Plan(tm, columns, [catalog[c][0] for c in columns], _compile(parts), read, report,
                missing_required)


def _fast(annotation: Any) -> Fast:
    kind, _ = _base_type(annotation)
    return {str: "str", float: "float", int: "int", bool: "bool"}.get(kind, "value")  # type: ignore[return-value]


def _compile(parts: list[tuple[Fast, bool, int, Callable[[Any], Any]]]) -> Callable[
        [tuple[Any, ...]], list[Any]]:
    """One function building a row's values, with the common case inline: a value SQLite
    already holds in the target's Python type passes through without a call. Generated
    once per table (as dataclasses generates ``__init__``): a call per column per row was
    most of the importer's own time."""
    env: dict[str, Any] = {"_BOOLS": {0: False, 1: True},
                           "_BOOLS_OR_NULL": {0: False, 1: True, None: None}}
    exprs = []
    for n, (fast, nullable, i, convert) in enumerate(parts):
        env[f"c{n}"] = convert
        null = " or x is None" if nullable else ""
        if fast in ("str", "float", "int"):
            exprs.append(f"(x if (x := row[{i}]).__class__ is {fast}{null} else c{n}(x))")
        elif fast == "bool":
            table = "_BOOLS_OR_NULL" if nullable else "_BOOLS"
            exprs.append(f"({table}[x] if (x := row[{i}]) in {table} else c{n}(x))")
        else:
            exprs.append(f"c{n}(row[{i}])")
    exec(f"def make(row):\n    return [{', '.join(exprs)}]", env)
    make: Callable[[tuple[Any, ...]], list[Any]] = env["make"]
    return make


def _catalog(conn: psycopg.Connection[Any], table: str) -> dict[str, tuple[int, Any]]:
    rows = conn.execute(
        """select a.attname, a.atttypid::int, pg_get_expr(d.adbin, d.adrelid)
           from pg_attribute a
           left join pg_attrdef d on (d.adrelid, d.adnum) = (a.attrelid, a.attnum)
           where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped""",
        [table]).fetchall()
    return {name: (oid, _constant(expr)) for name, oid, expr in rows}


def _constant(expr: str | None) -> Any:
    """A column default that is a plain constant, as a Python value; else None."""
    if expr is None:
        return None
    literal = expr.split("::")[0]
    if literal in ("true", "false"):
        return literal == "true"
    if literal == "''":
        return ""
    try:
        return int(literal)
    except ValueError:
        return None


# -- the import ------------------------------------------------------------------------------

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
    tz, tz_name = _timezone(timezone)
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
                p = plan(tm, source.tables[tm.source], _catalog(conn, tm.model.table),
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


def _timezone(name: str | None) -> tuple[tzinfo, str]:
    if name is None:
        local = datetime.now().astimezone().tzinfo
        assert local is not None
        return local, str(local)
    try:
        return ZoneInfo(name), name
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"unknown time zone {name!r}; use an IANA name such as "
                         "Asia/Shanghai") from None


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
        claimed = db.rows(sql.SQL(
            "insert into import_claims (source_key, holder_pid, lock_key) "
            "values (%s, pg_backend_pid(), %s) "
            "on conflict (agent_id, source_key) do update "
            "set holder_pid = excluded.holder_pid, lock_key = excluded.lock_key, "
            "claimed_at = now() where not " + _LIVE.format(c="import_claims")
            + " returning 1"), [key, lock])
        if not claimed:
            pid, since = db.rows("select holder_pid, claimed_at from import_claims "
                                 "where source_key = %s", [key])[0]
            db.execute("select pg_advisory_unlock(%s)", [lock])
            raise ConflictError(f"another import of this database into agent {scope.id} is "
                                f"running (backend {pid}, since {since:%Y-%m-%d %H:%M:%S %Z}); "
                                "wait for it to finish")
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
    progress.finish(report)


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
            written = db.execute(insert)
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
