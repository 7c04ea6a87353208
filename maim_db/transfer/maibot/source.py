"""Reading a MaiBot database: opened read-only through SQLite itself (so rows still in the
WAL are seen), checked to be a MaiBot 0.x file, read in bounded batches by column name, and
watched for being replaced or overwritten while the import runs. Values PostgreSQL cannot
store (NUL characters, invalid UTF-8) are mended and recorded, or refused when strict."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ...errors import ConflictError, InputError
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
        elif key_of_file(self.path) != key:
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


def key_of_file(path: Path) -> str:
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
