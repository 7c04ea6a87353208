"""The importer against hostile or damaged MaiBot files (issue 11, items 5-8): values
PostgreSQL cannot store, files of few huge rows, a file that changes under the import, and
names crafted to drive the operator's terminal."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from maim_db import ConflictError, InputError, connect
from maim_db.tables import runtime as rt
from maim_db.transfer.maibot import (
    NUL_REMOVED,
    UTF8_REPLACED,
    ImportReport,
    Progress,
    TableReport,
    import_sqlite,
)
from tests import maibot_files as mf
from tests.databases import TestDB, World


def _import(db: TestDB, path: Path, agent: str, **kw: Any) -> ImportReport:
    return import_sqlite(path, agent, dsn=db.dsn("app"), timezone="Asia/Shanghai", **kw)


def _messages(db: TestDB, agent: str) -> dict[str, rt.Message]:
    with connect(db.dsn("app"), agent_id=agent) as s:
        return {m.message_id: m for m in s.find(rt.Message)}


def _cli(db: TestDB, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, MAIMDB_DSN=db.dsn("app"))
    return subprocess.run([sys.executable, "-m", "maim_db.cli", *args], env=env,
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL)


# -- 5. NUL characters and invalid UTF-8 ---------------------------------------------------------

def _damaged(tmp_path: Path) -> Path:
    """A real 0.12 file with what broken clients and pasted binaries leave behind."""
    return mf.edit(mf.build(tmp_path / "MaiBot.db", "0.12"),
                 "update messages set processed_plain_text = 'a' || char(0) || 'b' where id = 3",
                 "update messages set display_message = cast(x'61ff62' as text) where id = 5",
                 "update messages set user_nickname = x'6e00' where id = 7",  # a BLOB with NUL
                 "update chat_streams set group_name = cast(x'e4b8ad00ff' as text) where id = 1")


def test_nul_and_invalid_utf8_are_mended_and_listed(db: TestDB, world: World,
                                                     tmp_path: Path) -> None:
    a1 = world.agent_id("A1")
    path = _damaged(tmp_path)
    report = _import(db, path, a1)
    messages = report.table("messages")
    assert messages.written == len(mf.canonical()["messages"])
    assert [(a.source_id, a.column, a.change) for a in messages.altered] == [
        (3, "processed_plain_text", NUL_REMOVED), (5, "display_message", UTF8_REPLACED),
        (7, "user_nickname", NUL_REMOVED)]
    assert [(a.source_id, a.column) for a in report.table("chat_streams").altered] == [
        (1, "group_name"), (1, "group_name")]
    with sqlite3.connect(path) as conn:
        ids = dict(conn.execute("select id, message_id from messages where id in (3, 5, 7)"))
    conn.close()
    stored = _messages(db, a1)
    assert stored[ids[3]].processed_plain_text == "ab"
    assert stored[ids[5]].display_message == "a\ufffdb"
    assert stored[ids[7]].user_nickname == "n"
    with connect(db.dsn("app"), agent_id=a1) as s:
        assert s.find(rt.ChatStream, {"group_name": "中\ufffd"})
    assert {"source_id": 3, "column": "processed_plain_text", "change": NUL_REMOVED} in \
        report.as_dict()["tables"][2]["altered"]
    again = _import(db, path, a1)  # the rerun is clean: nothing read, nothing written
    assert sum(t.written for t in again.tables) == 0


def test_strict_refuses_what_it_would_mend(db: TestDB, world: World, tmp_path: Path) -> None:
    a1 = world.agent_id("A1")
    path = mf.edit(mf.build(tmp_path / "MaiBot.db", "0.12"),
                 "update messages set processed_plain_text = 'a' || char(0) where id = 3")
    with pytest.raises(InputError, match=r"messages id 3, column processed_plain_text: the "
                                         r"value holds NUL characters.*--strict refuses it"):
        _import(db, path, a1, strict=True)
    assert not _messages(db, a1)  # that batch was never written
    path = mf.edit(path, "update messages set processed_plain_text = 'ok' where id = 3",
                 "update messages set display_message = cast(x'ff' as text) where id = 9")
    with pytest.raises(InputError, match=r"messages id 9, column display_message: .*not UTF-8"):
        _import(db, path, a1, strict=True)
    result = _cli(db, "import-sqlite", str(path), "--agent", a1, "--strict")
    errors = [line for line in result.stderr.splitlines() if line.startswith(b"error:")]
    assert result.returncode == 1 and len(errors) == 1
    assert b"messages id 9, column display_message" in errors[0]


def test_the_cli_lists_altered_values(db: TestDB, world: World, tmp_path: Path) -> None:
    a1 = world.agent_id("A1")
    result = _cli(db, "import-sqlite", str(_damaged(tmp_path)), "--agent", a1,
                  "--timezone", "Asia/Shanghai")
    assert result.returncode == 0, result.stderr
    shown = b" ".join(result.stdout.split())  # unwrapped
    assert (b"messages: 3 values altered to fit PostgreSQL: id 3 processed_plain_text "
            b"(NUL characters removed), id 5 display_message (invalid UTF-8 replaced by "
            b"U+FFFD)") in shown


# -- 6. batches bounded by bytes -----------------------------------------------------------------

def test_batches_are_bounded_by_bytes_too(db: TestDB, world: World, tmp_path: Path) -> None:
    a1, a2 = world.agent_id("A1"), world.agent_id("A2")
    path = mf.edit(mf.build(tmp_path / "MaiBot.db", "0.12", messages=10),
                 f"update messages set processed_plain_text = '{'长' * 70_000}'")  # ~205 kB
    bounded = _import(db, path, a1, batch_bytes=2**20).table("messages")
    assert (bounded.written, bounded.batches) == (10, 2)  # 6 rows pass 1 MiB, then 4
    whole = _import(db, path, a2, batch_bytes=2**30).table("messages")
    assert (whole.written, whole.batches) == (10, 1)
    assert {m.processed_plain_text for m in _messages(db, a1).values()} == {"长" * 70_000}


# -- 7. a file that changes during the import ------------------------------------------------

class _ReplaceAfterFirstBatch(Progress):
    def __init__(self, path: Path, other: Path, *, in_place: bool) -> None:
        self.path, self.other, self.in_place, self.done = path, other, in_place, False

    def advance(self, table: str, rows: int) -> None:
        if not self.done:
            self.done = True
            if self.in_place:
                mf.overwrite(self.path, self.other)  # same inode, other contents, at once
            else:
                os.replace(self.other, self.path)


def _other_bot(path: Path) -> Path:
    return mf.edit(mf.build(path, "0.12"),
                 "update chat_streams set stream_id = 'other-' || stream_id, "
                 "create_time = create_time - 1000",
                 "update messages set message_id = 'other-' || message_id")


@pytest.mark.parametrize("in_place", [False, True], ids=["replaced", "overwritten"])
def test_a_file_changed_during_the_import_stops_it(db: TestDB, world: World, tmp_path: Path,
                                                   in_place: bool) -> None:
    a1 = world.agent_id("A1")
    path = mf.build(tmp_path / "MaiBot.db", "0.12")
    other = _other_bot(tmp_path / "other.db")
    what = "another bot's database" if in_place else "replaced by another file"
    with pytest.raises(ConflictError, match=f"changed during the import: .*{what}.*Nothing "
                                            "read after the change was written"):
        _import(db, path, a1, batch_size=1,
                progress=_ReplaceAfterFirstBatch(path, other, in_place=in_place))
    held = _messages(db, a1)
    assert not any(m.startswith("other-") for m in held)  # nothing of the other bot's
    with connect(db.dsn("app"), agent_id=a1) as s:
        assert not any(c.stream_id.startswith("other-") for c in s.find(rt.ChatStream))
    rerun = _import(db, path, a1)  # the file as it is now, all of it, once
    assert rerun.table("messages").written == len(mf.canonical()["messages"])
    assert sum(m.startswith("other-") for m in _messages(db, a1)) == len(
        mf.canonical()["messages"])


def test_a_live_bot_appending_is_not_a_change(db: TestDB, world: World, tmp_path: Path) -> None:
    """Rows a running bot adds mid-import are not a changed file: the import goes on, reads
    each table up to its newest row at the table's start, and the next run brings the rest
    (before, a bot writing one row per batch kept the import chasing it for ever)."""
    a1 = world.agent_id("A1")
    path = mf.build(tmp_path / "MaiBot.db", "0.12")
    cols = ", ".join(c for c in mf.columns("0.12")["messages"] if c not in ("id", "message_id"))
    added, at_start = 0, -1

    class Append(Progress):
        def start(self, table: str, total: int) -> None:
            nonlocal at_start
            if table == "messages":
                at_start = added

        def advance(self, table: str, rows: int) -> None:
            nonlocal added
            added += 1
            mf.edit(path, f"insert into messages (message_id, {cols}) select 'live-{added}', "
                        f"{cols} from messages where id = 1")

    first = _import(db, path, a1, batch_size=5, progress=Append())
    # what was there when the messages table began, not what came while it was read
    assert first.table("messages").written == len(mf.canonical()["messages"]) + at_start
    before = added
    assert before > at_start
    rerun = _import(db, path, a1).table("messages")
    assert rerun.written == before - at_start and added == before
    assert sum(m.startswith("live-") for m in _messages(db, a1)) == added


# -- 8. names from the file never drive the terminal ---------------------------------------------

EVIL = "evil\x1b[31m\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\\x9b2J[bold]"


def test_names_from_the_file_are_shown_inert(db: TestDB, world: World, tmp_path: Path) -> None:
    a1 = world.agent_id("A1")
    path = mf.build(tmp_path / "MaiBot.db", "0.12")
    quoted = EVIL.replace('"', '""')
    mf.edit(path, f'create table "{quoted}" (id integer primary key)',
          f'alter table messages add column "{quoted}" text')
    for args in ((), ("--json",)):
        result = _cli(db, "import-sqlite", str(path), "--agent", a1, *args)
        assert result.returncode == 0, result.stderr
        shown = result.stdout + result.stderr
        assert b"\x1b" not in shown and "\x9b".encode() not in shown, shown
    assert b"[bold]" in result.stdout  # shown as text, not read as markup
    table = _cli(db, "import-sqlite", str(path), "--agent", a1).stdout
    assert b"evil\\x1b[31m\\x1b]8;;http://evil.example" in table
    # an error that quotes the file (the agents of a multi-agent fork's file) is inert too
    fork = mf.edit(mf.build(tmp_path / "fork.db", "0.12"),
                 "alter table messages add column agent_id text",
                 f"update messages set agent_id = case when id % 2 = 0 then 'a' else "
                 f"'{quoted}' end")
    refused = _cli(db, "import-sqlite", str(fork), "--agent", a1)
    assert refused.returncode == 1 and b"holds the rows of 2 agents" in refused.stderr
    assert b"\x1b" not in refused.stderr and len(refused.stderr.splitlines()) == 1


def test_a_table_report_is_plain_data() -> None:
    """The report keeps names as they are; only what prints them escapes (maim_db/cli/output.py)."""
    report = TableReport("messages", "messages", ignored_columns=[EVIL])
    assert report.as_dict()["ignored_columns"] == [EVIL]


def test_a_row_with_an_id_of_0_or_below_is_named_not_lost(db: TestDB, world: World,
                                                          tmp_path: Path) -> None:
    """The importer reads a table by its id from 1 up (the resumable cursor); a row whose id
    was written as 0 or below was never read and never counted. It is counted and named."""
    a1 = world.agent_id("A1")
    path = mf.edit(mf.build(tmp_path / "MaiBot.db", "0.12"),
                   "update messages set id = -7 where id = 2")
    report = _import(db, path, a1)
    messages = report.table("messages")
    assert messages.read == messages.written + 1
    assert list(messages.skipped) == [
        "an id of 0 or below (written explicitly; MaiBot never writes one): not read"]
