"""Reading a MaiBot database: opened read-only through SQLite itself (so rows still in the
WAL are seen), recognised as a MaiBot 0.x file or as one of the 1.x schemas the importer knows
(:mod:`.known1`), read in bounded batches by column name, and
watched for being replaced or overwritten while the import runs. Values PostgreSQL cannot
store (NUL characters, invalid UTF-8) are mended and recorded, or refused when strict."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ...errors import ConflictError, InputError
from .known1 import NEWEST, SCHEMAS
from .plan import TABLES
from .report import Altered


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
    is (device and inode), so that a file replaced during the import is noticed.
    ``generation`` is 0 or 1 (MaiBot 0.x or 1.x), ``version`` a 1.x file's schema version.
    ``cursor`` is what a table is read in order of and resumed after: 0.x's ``id``, and
    SQLite's ``rowid`` in 1.x, where some tables are keyed by text (``task_name``)."""

    conn: sqlite3.Connection
    tables: dict[str, list[str]]
    format: str
    path: Path = Path()
    identity: tuple[int, int] = (0, 0)
    generation: int = 0
    version: int = 0
    cursor: str = "id"

    def count_after(self, table: str, last_id: int) -> int:
        row = self.conn.execute(f"select count(*) from {quote(table)} where {self.cursor} > ?",
                                (last_id,)).fetchone()
        return int(row[0])

    def count_below(self, table: str) -> int:
        """Rows the cursor never reaches: a rowid of 0 or below."""
        row = self.conn.execute(f"select count(*) from {quote(table)} where {self.cursor} <= 0"
                                ).fetchone()
        return int(row[0])

    def batches(self, table: str, cols: Sequence[str], last_id: int, bound: Bound,
                altered: list[Altered], binary: Collection[str] = ()
                ) -> Iterator[list[tuple[Any, ...]]]:
        """Rows ``(cursor, *cols, size, nuls)`` after ``last_id`` in cursor order, a batch at
        a time. SQLite itself measures each row (bytes of its values) and flags the NULs in
        it, so a clean row costs Python nothing more; ``binary`` columns (bytea) may hold any
        byte and are neither flagged nor mended. Each batch is checked against the file the
        import started with after it is read, so no row read after a change is committed."""
        key = self.cursor  # a constant of this module, never a name from the file
        select = ", ".join([key, *map(quote, cols)])
        blobs = [f"cast({quote(c)} as blob)" for c in cols] or ["null"]
        size = " + ".join(f"coalesce(length({b}), 0)" for b in blobs)
        nuls = " + ".join([f"coalesce(instr(cast({quote(c)} as blob), x'00') > 0, 0)"
                           for c in cols if c not in binary] or ["0"])
        # Up to the newest row now: what a running bot adds meanwhile comes with the next run
        # (a bot writing as fast as the import reads would otherwise keep it going forever).
        (top,) = self.conn.execute(
            f"select coalesce(max({key}), 0) from {quote(table)}").fetchone()
        query = (f"select {select}, {size}, {nuls} from {quote(table)} "
                 f"where {key} > ? and {key} <= {int(top)} order by {key} limit ?")
        cols = [c if c not in binary else "" for c in cols]  # "": never mended
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
        else:
            try:
                same = key_of_file(self.path) == key
            except sqlite3.Error:  # overwritten in place by something that is no database
                what = "it is no longer a database SQLite can read"
            else:
                if same:
                    return
                what = "it now holds another bot's database (its oldest chat stream differs)"
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
        if not column:
            continue  # a binary column: any byte is a value
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
        return _open_1x(path, conn, version, names_)
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


def _open_1x(path: Path, conn: sqlite3.Connection, version: int, names_: list[str]) -> Source:
    """A MaiBot 1.x file, recognised by its schema: its declared version must be one a 1.x
    release leaves, and its tables must hold that version's columns (in any order: a table a
    step rebuilt keeps the columns it added at the end). Tables of no 1.x version (a plugin's)
    are left alone and named in the report."""
    try:
        newest = SCHEMAS[NEWEST]
        if version > NEWEST:
            raise InputError(
                f"{path} is a MaiBot 1.x database of schema version {version}, newer than the "
                f"newest this maim_db knows ({NEWEST}, MaiBot {newest.releases[-1]}); nothing "
                "was written. Upgrade maim_db to import it")
        schema = SCHEMAS.get(version)
        if schema is None:
            known = ", ".join(f"{v} ({s.releases[0]} to {s.releases[-1]})"
                              if len(s.releases) > 1 else f"{v} ({s.releases[0]})"
                              for v, s in SCHEMAS.items())
            raise InputError(
                f"{path} is a MaiBot 1.x database of schema version {version}, which no 1.x "
                f"release leaves behind (known: {known}); nothing was written. Start MaiBot "
                f"{newest.releases[-1]} on it once so that it finishes its upgrade, then import")
        tables = {t: [r[1] for r in conn.execute(f"pragma table_info({quote(t)})")]
                  for t in names_}
        later = sorted(t for t in names_ if t not in schema.tables
                       and any(t in s.tables for s in SCHEMAS.values()))
        for table, want in schema.tables.items():
            have = tables.get(table)
            what = None
            if later:
                what = f"it has a table {later[0]} that version {version} does not"
            elif have is None:
                what = f"it has no table {table}"
            elif missing := [c for c in want if c not in have]:
                what = f"table {table} has no column {missing[0]}"
            elif extra := [c for c in have if c not in want]:
                what = f"table {table} has a column {extra[0]} that version {version} does not"
            if what:
                raise InputError(
                    f"{path} declares MaiBot 1.x schema version {version} (MaiBot "
                    f"{schema.releases[0]}) but its tables do not match it: {_printable(what)}; "
                    "nothing was written")
    except BaseException:
        conn.close()
        raise
    st = os.stat(path)
    releases = (schema.releases[0] if len(schema.releases) == 1
                else f"{schema.releases[0]} to {schema.releases[-1]}")
    return Source(conn, tables, f"MaiBot 1.x, schema version {version} (MaiBot {releases})",
                  path, (st.st_dev, st.st_ino), generation=1, version=version, cursor="rowid")


def _printable(text: str) -> str:
    """A name from the file, safe on one terminal line (control characters escaped)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


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


def key_of_file(path: Path) -> str:
    """The source key read through a new connection: one whose page cache cannot answer
    for a file that was overwritten in place."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        generation = int(conn.execute("pragma user_version").fetchone()[0] > 0)
        return source_key(Source(conn, {}, "", generation=generation))
    finally:
        conn.close()


def source_key(source: Source) -> str:
    """What identifies this bot's database across copies and runs: a digest of its oldest
    stream by creation time (or its first message). Not the lowest stream id: MaiBot saves a
    stream with ``ChatStreams.replace()``, which in SQLite deletes the row and inserts it
    under a new id, keeping ``stream_id`` and ``create_time``; messages are only inserted.
    In a 1.x file: its oldest chat session, else its first message (a 0.x file that 1.x
    upgraded has no sessions: 1.x does not carry chat streams over)."""
    if source.generation == 1:
        keys = (("chat_sessions", "session_id, created_timestamp",
                 "created_timestamp, session_id"),
                ("mai_messages", "message_id, timestamp, session_id", "id"))
    else:
        keys = (("chat_streams", "stream_id, create_time", "create_time, stream_id"),
                ("messages", "message_id, time, chat_id", "id"))
    for table, cols, order in keys:
        row = source.conn.execute(
            f"select {cols} from {table} order by {order} limit 1").fetchone()
        if row is not None:
            return hashlib.sha256(repr((table, *row)).encode()).hexdigest()[:16]
    empty = b"empty MaiBot 1.x database" if source.generation == 1 else b"empty MaiBot database"
    return hashlib.sha256(empty).hexdigest()[:16]
