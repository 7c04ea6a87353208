"""``maimdb import-sqlite`` for MaiBot 1.x files (issue 35, item 4): files of every schema
a 1.x release leaves, built from the DDL its own code creates (tests/maibot1_files.py), come
into the ``maibot1`` tables exactly, ids kept; what 1.x itself drops on upgrade is dropped
whole and named; reruns write nothing; a clash with the agent's own rows is reported; the
0.x importer's hostile-file guarantees hold; files of unknown or mismatched schemas are
refused in one line, before anything is written."""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from psycopg import sql

from maim_db import ConflictError, InputError, connect
from maim_db.tables import maibot1 as m1
from maim_db.transfer.maibot import (
    NUL_REMOVED,
    UTF8_REPLACED,
    ImportReport,
    Progress,
    committed,
    import_sqlite,
    open_source,
)
from maim_db.transfer.maibot.known1 import NEWEST, SCHEMAS, dropped
from maim_db.transfer.maibot.plan import TABLES1
from tests import maibot1_files as f1
from tests import maibot_files as mf
from tests.cli import maimdb
from tests.databases import TestDB, World
from tests.maibot_files import overwrite

SHANGHAI = ZoneInfo("Asia/Shanghai")
MODELS = {m.table: m for m in m1.ROWS}


def _import(db: TestDB, path: Path, agent: str, **kw: Any) -> ImportReport:
    return import_sqlite(path, agent, dsn=db.dsn("app"), timezone="Asia/Shanghai", **kw)


def _counts(db: TestDB, agent: str) -> dict[str, int]:
    query = sql.SQL(" union all ").join(
        sql.SQL("select {}, count(*) from {}").format(sql.Literal(m.table),
                                                      sql.Identifier(*m.table_path()))
        for m in m1.ROWS)
    with connect(db.dsn("app"), agent_id=agent) as s:
        return {t: int(n) for t, n in s.rows(query)}


def _compare(db: TestDB, agent: str, source: dict[str, list[dict[str, Any]]],
             version: int) -> int:
    """Every row of every table the import keeps equals the file's, column for column, by
    key (ids as the file has them). Returns the number of values compared."""
    compared = 0
    with connect(db.dsn("app"), agent_id=agent) as s:
        for table, want in source.items():
            model = MODELS.get(table)
            if model is None:
                continue
            key = [k for k in model.key if k != "agent_id"]
            got = {tuple(getattr(r, k) for k in key): r for r in s.find(model)}
            if dropped(table, version):
                assert not got, table
                continue
            assert len(got) == len(want), table
            for w in want:
                g = got[tuple(w[k] for k in key)]
                for col, v in w.items():
                    if col not in model.model_fields:
                        continue  # a column 1.2.1 no longer has (reported as ignored)
                    expected = mf.expected_value(model, col, v, SHANGHAI)
                    assert getattr(g, col) == expected, (table, w, col)
                    compared += 1
    return compared


# -- the schemas 1.x releases leave, recognised ------------------------------------------------

def test_the_known_schemas_are_the_recorded_ones() -> None:
    """known1.SCHEMAS (what the package ships) holds each recorded release's columns."""
    for release in f1.RELEASES:
        facts = f1.facts(release)
        schema = SCHEMAS[facts["user_version"]]
        assert release in schema.releases
        conn = sqlite3.connect(":memory:")
        f1.create(conn, release)
        assert {t: tuple(c for c, *_ in f1.table_info(conn, t))
                for t in facts["tables"]} == schema.tables
        conn.close()
    assert NEWEST == 40 and SCHEMAS[NEWEST].tables.keys() == {m.table for m in m1.ROWS}
    for table, cols in SCHEMAS[NEWEST].tables.items():  # 1.2.1's columns are the models'
        assert set(cols) == set(MODELS[table].model_fields) - {"agent_id"}, table


@pytest.mark.parametrize("release", f1.RELEASES)
def test_each_release_is_recognised(tmp_path: Path, release: str) -> None:
    source = open_source(f1.build(tmp_path / "MaiBot.db", release))
    try:
        version = f1.facts(release)["user_version"]
        assert (source.generation, source.version, source.cursor) == (1, version, "rowid")
        assert source.format.startswith(f"MaiBot 1.x, schema version {version} (MaiBot ")
    finally:
        source.conn.close()


def _nothing_written(db: TestDB, agent: str) -> None:
    assert not any(_counts(db, agent).values())


def test_a_newer_schema_is_refused_naming_both_versions(db: TestDB, world: World,
                                                        tmp_path: Path) -> None:
    a1 = world.agent_id("A1")
    path = mf.edit(f1.build(tmp_path / "MaiBot.db"), "pragma user_version = 41")
    with pytest.raises(InputError, match=r"schema version 41, newer than the newest this "
                                         r"maim_db knows \(40, MaiBot 1\.2\.1\); nothing was "
                                         "written"):
        _import(db, path, a1)
    _nothing_written(db, a1)
    result = maimdb("import-sqlite", str(path), "--agent", a1, dsn=db.dsn("app"))
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1 and "schema version 41" in result.stderr
    assert "newest this maim_db knows (40" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(("edit", "first"), [
    ("alter table mai_messages drop column reply_frequency",
     "table mai_messages has no column reply_frequency"),
    ("alter table chat_sessions add column extra text",
     "table chat_sessions has a column extra that version 40 does not"),
    ("drop table binary_data", "it has no table binary_data"),
    ("pragma user_version = 36", "declares MaiBot 1.x schema version 36 (MaiBot 1.0.12) but "
     "its tables do not match it: it has a table bot_platform_accounts that version 36 does "
     "not"),
], ids=["missing-column", "extra-column", "missing-table", "older-version-declared"])
def test_tables_not_matching_their_version_name_the_first_difference(
        db: TestDB, world: World, tmp_path: Path, edit: str, first: str) -> None:
    a1 = world.agent_id("A1")
    path = mf.edit(f1.build(tmp_path / "MaiBot.db"), edit)
    with pytest.raises(InputError, match="do not match it") as err:
        _import(db, path, a1)
    assert first in str(err.value) and "nothing was written" in str(err.value)
    assert "\n" not in str(err.value)
    _nothing_written(db, a1)


@pytest.mark.parametrize("version", [3, 31])
def test_a_version_no_release_leaves_is_refused(db: TestDB, world: World, tmp_path: Path,
                                                version: int) -> None:
    """A file stopped inside an upgrade (31: between 1.0.7's 29 and 1.0.8's 34; 3: the
    legacy 0.x conversion's first steps): MaiBot itself finishes it first."""
    a1 = world.agent_id("A1")
    path = mf.edit(f1.build(tmp_path / "MaiBot.db"), f"pragma user_version = {version}")
    with pytest.raises(InputError, match=f"schema version {version}, which no 1.x release "
                                         r"leaves behind \(known: 26 \(1\.0\.0 to 1\.0\.2\), "):
        _import(db, path, a1)
    _nothing_written(db, a1)


# -- every row of every table, exactly ---------------------------------------------------------

@pytest.mark.parametrize("release", f1.RELEASES)
def test_every_value_of_every_1x_release(db: TestDB, world: World, tmp_path: Path,
                                      release: str) -> None:
    a1 = world.agent_id("A1")
    path = f1.build(tmp_path / "MaiBot.db", release)
    version = f1.facts(release)["user_version"]
    report = _import(db, path, a1)
    source = f1.read_all(path)
    for t in report.tables:
        gone = dropped(t.source, version)
        assert t.read == len(source[t.source]), t.source
        assert t.written == (0 if gone else t.read), (t.source, dict(t.skipped))
        assert not t.fallback and not t.clashes and not t.altered, t.source
        assert t.dropped == (gone.why if gone else None)
    assert {t.source for t in report.tables} == set(source)
    assert _compare(db, a1, source, version) > 600
    with connect(db.dsn("app"), agent_id=a1) as s:  # ids as the file has them, 2^53-1 too
        assert {m.id for m in s.find(m1.Messages)} == {1, 2, f1.BIG_ID, 4}


def test_what_1x_drops_on_upgrade_is_dropped_whole_and_named(db: TestDB, world: World,
                                                              tmp_path: Path) -> None:
    """1.0.0's global high_frequency_terms (its v28→v29 step discards them) and its
    tool_records (v27→v28 empties the table): none kept, every one named; the columns 1.2.1
    no longer has are listed, and the ones it added are filled as 1.x's steps fill them."""
    a1 = world.agent_id("A1")
    report = _import(db, f1.build(tmp_path / "MaiBot.db", "1.0.0"), a1)
    terms, tools = report.table("maibot1.high_frequency_terms"), report.table(
        "maibot1.tool_records")
    for t, step in ((terms, "v28→v29"), (tools, "v27→v28")):
        assert (t.read, t.written) == (4, 0) and step in (t.dropped or "")
        assert list(t.skipped.values()) == [4] and "dropped as a whole" in next(iter(t.skipped))
    assert report.table("maibot1.behavior_scene_clusters").ignored_columns == ["score"]
    assert report.table("maibot1.llm_usage").ignored_columns == ["endpoint", "user_type"]
    assert report.table("maibot1.jargons").ignored_columns == ["raw_content"]
    with connect(db.dsn("app"), agent_id=a1) as s:
        assert {u.session_id for u in s.find(m1.ModelUsage)} == {""}  # as v29→v30 fills it
        assert {j.evidence_messages for j in s.find(m1.Jargon)} == {None}
    as_json = report.as_dict()["tables"]
    assert any(t["dropped"] and t["source"] == "high_frequency_terms" for t in as_json)


def test_a_0x_file_that_1x_upgraded(db: TestDB, world: World, tmp_path: Path) -> None:
    """tests/maibot_files.py's 0.12 file after MaiBot 1.2.1 itself upgraded it (its legacy
    v1→v2 conversion and every step to v40): all of it arrives, as 1.2.1 left it."""
    a1 = world.agent_id("A1")
    path = f1.build_upgraded(tmp_path / "MaiBot.db")
    report = _import(db, path, a1)
    source = f1.read_all(path)
    assert {t.target: t.written for t in report.tables if t.written} == {
        f"maibot1.{t}": len(rows) for t, rows in source.items() if rows}
    assert _compare(db, a1, source, 40) > 400
    with connect(db.dsn("app"), agent_id=a1) as s:
        first = s.find(m1.Messages, order_by="id")[0]
    assert first.message_id == "900001" and first.raw_content is not None
    # 1.2.1 wrote the 0.x epoch time as a naive local time: read in --timezone, the instant
    # is the 0.x file's (tests/maibot_files.py: 1,750,000,000.25 + 7.5)
    assert first.timestamp is not None and first.timestamp.timestamp() == 1_750_000_007.75


def test_naive_times_are_read_in_the_timezone_given(db: TestDB, world: World,
                                                    tmp_path: Path) -> None:
    a1, a2 = world.agent_id("A1"), world.agent_id("A2")
    path = f1.build(tmp_path / "MaiBot.db")
    import_sqlite(path, a1, dsn=db.dsn("app"), timezone="UTC")
    _import(db, path, a2)
    with connect(db.dsn("app"), agent_id=a1) as s:
        utc = {u.id: u.timestamp for u in s.find(m1.ModelUsage)}
    with connect(db.dsn("app"), agent_id=a2) as s:
        shanghai = {u.id: u.timestamp for u in s.find(m1.ModelUsage)}
    differences = {(t - s_t).total_seconds() for i, t in utc.items()
                   if t is not None and (s_t := shanghai[i]) is not None}
    assert differences == {8 * 3600}  # 20:30 in Shanghai is 8 hours before 20:30 in UTC


# -- rerun, resume, the agent's own rows -------------------------------------------------------

def test_a_rerun_writes_nothing_and_a_stopped_import_resumes(db: TestDB, world: World,
                                                             tmp_path: Path) -> None:
    a1 = world.agent_id("A1")
    path = f1.build(tmp_path / "MaiBot.db", messages=30)

    class StopAfter(Progress):
        seen = 0

        def advance(self, table: str, rows: int) -> None:
            if table == "maibot1.mai_messages":
                self.seen += 1
                if self.seen == 3:
                    raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _import(db, path, a1, batch_size=4, progress=StopAfter())
    partial = committed(path, a1, dsn=db.dsn("app"))["maibot1.mai_messages"]
    assert 8 <= partial < 30
    again = _import(db, path, a1)
    msgs = again.table("maibot1.mai_messages")
    assert (msgs.earlier, msgs.written) == (partial, 30 - partial) and not msgs.clashes
    third = _import(db, path, a1)
    assert sum(t.written for t in third.tables) == 0
    assert not any(t.clashes for t in third.tables)
    assert _counts(db, a1)["mai_messages"] == 30
    assert _compare(db, a1, f1.read_all(path), 40) > 600


def test_a_clash_with_the_agents_own_rows_is_reported_not_merged(db: TestDB, world: World,
                                                                 tmp_path: Path) -> None:
    """The agent already has a row with a file row's id, and another with a file row's
    unique session_id: both file rows are reported by key, the agent's rows stay as they
    were, and everything else arrives."""
    a1 = world.agent_id("A1")
    path = f1.build(tmp_path / "MaiBot.db")
    source = f1.read_all(path)
    with connect(db.dsn("app"), agent_id=a1) as s:
        s.insert(m1.Messages(id=2, message_id="mine", platform="qq", user_id="u",
                             user_nickname="n", session_id="s"))
        theirs = source["chat_sessions"][0]
        s.insert(m1.ChatSession(id=999, session_id=theirs["session_id"], user_id="mine",
                                platform="qq", created_timestamp=datetime.now(SHANGHAI),
                                last_active_timestamp=datetime.now(SHANGHAI)))
    report = _import(db, path, a1)
    msgs, sessions = report.table("maibot1.mai_messages"), report.table("maibot1.chat_sessions")
    assert msgs.clashes == ["id 2"] and msgs.written == len(source["mai_messages"]) - 1
    assert sessions.clashes == [f"id {theirs['id']}"]
    assert sessions.written == len(source["chat_sessions"]) - 1
    assert all("the agent's row is kept" in r for r in (*msgs.skipped, *sessions.skipped))
    with connect(db.dsn("app"), agent_id=a1) as s:
        assert s.get(m1.Messages, 2).message_id == "mine"
        assert {c.user_id for c in s.find(m1.ChatSession)
                if c.session_id == theirs["session_id"]} == {"mine"}
    shown = maimdb("import-sqlite", str(path), "--agent", world.agent_id("A1"),
                   dsn=db.dsn("app"))  # a rerun: nothing new, so nothing clashes
    assert shown.returncode == 0 and "already has" not in shown.stdout, shown.stderr


def test_the_import_writes_only_into_the_named_agent(db: TestDB, world: World,
                                                     tmp_path: Path) -> None:
    a1, a2 = world.agent_id("A1"), world.agent_id("A2")
    _import(db, f1.build(tmp_path / "MaiBot.db"), a1)
    assert sum(_counts(db, a1).values()) > 0 and not any(_counts(db, a2).values())


# -- the 0.x importer's hostile-file guarantees ------------------------------------------------

def test_rows_in_an_uncheckpointed_wal_are_imported(db: TestDB, world: World,
                                                    tmp_path: Path) -> None:
    a1 = world.agent_id("A1")
    path = f1.build(tmp_path / "MaiBot.db")
    live = sqlite3.connect(path, isolation_level=None)
    try:
        live.execute("pragma journal_mode = wal")
        live.execute("pragma wal_autocheckpoint = 0")
        live.execute("insert into mai_messages (id, message_id, timestamp, platform, user_id, "
                     "user_nickname, is_mentioned, is_at, session_id, is_emoji, is_picture, "
                     "is_command, is_notify) select 100, 'in-the-wal', timestamp, platform, "
                     "user_id, user_nickname, 0, 0, session_id, 0, 0, 0, 0 from mai_messages "
                     "where id = 1")
        assert (tmp_path / "MaiBot.db-wal").stat().st_size > 0
        report = _import(db, path, a1)
    finally:
        live.close()
    assert report.table("maibot1.mai_messages").written == 5
    with connect(db.dsn("app"), agent_id=a1) as s:
        assert s.get(m1.Messages, 100).message_id == "in-the-wal"


def test_nul_and_invalid_utf8_are_mended_and_listed_bytes_kept(db: TestDB, world: World,
                                                               tmp_path: Path) -> None:
    a1 = world.agent_id("A1")
    path = mf.edit(f1.build(tmp_path / "MaiBot.db"),
                 "update mai_messages set processed_plain_text = 'a' || char(0) || 'b' "
                 "where id = 1",
                 "update mai_messages set user_nickname = cast(x'61ff62' as text) where id = 2")
    report = _import(db, path, a1)
    msgs = report.table("maibot1.mai_messages")
    assert {(a.source_id, a.column, a.change) for a in msgs.altered} == {
        (1, "processed_plain_text", NUL_REMOVED), (2, "user_nickname", UTF8_REPLACED)}
    with connect(db.dsn("app"), agent_id=a1) as s:
        got = {m.id: m for m in s.find(m1.Messages)}
    assert got[1].processed_plain_text == "ab" and got[2].user_nickname == "a\ufffdb"
    # raw_content is msgpack bytes: NULs and any byte are its value, never mended
    raw = f1.read_all(path)["mai_messages"]
    assert [got[r["id"]].raw_content for r in raw] == [r["raw_content"] for r in raw]
    assert any(b"\x00" in (r["raw_content"] or b"") for r in raw)
    with pytest.raises(InputError, match="--strict refuses it"):
        _import(db, path, world.agent_id("A2"), strict=True)


def test_batches_are_bounded_by_bytes(db: TestDB, world: World, tmp_path: Path) -> None:
    a1 = world.agent_id("A1")
    path = mf.edit(f1.build(tmp_path / "MaiBot.db", messages=10),
                 f"update mai_messages set raw_content = zeroblob(300000), "
                 f"processed_plain_text = '{'长' * 1000}'")
    msgs = _import(db, path, a1, batch_bytes=2**20).table("maibot1.mai_messages")
    assert (msgs.written, msgs.batches) == (10, 3)  # 4 rows pass 1 MiB, 4, then 2
    with connect(db.dsn("app"), agent_id=a1) as s:
        assert {m.raw_content for m in s.find(m1.Messages)} == {bytes(300000)}


class _ReplaceAfterFirstBatch(Progress):
    def __init__(self, path: Path, other: Path) -> None:
        self.path, self.other, self.done = path, other, False

    def advance(self, table: str, rows: int) -> None:
        if not self.done:
            self.done = True
            overwrite(self.path, self.other)  # same inode, other contents, all at once


def test_a_file_changed_during_the_import_stops_it(db: TestDB, world: World,
                                                   tmp_path: Path) -> None:
    a1 = world.agent_id("A1")
    path = f1.build(tmp_path / "MaiBot.db")
    other = mf.edit(f1.build(tmp_path / "other.db"),
                  "update chat_sessions set session_id = 'other-' || session_id, "
                  "created_timestamp = '2020-01-01 00:00:00'")
    with pytest.raises(ConflictError, match=r"changed during the import: .*another bot's "
                                            r"database.*Nothing read after the change"):
        _import(db, path, a1, batch_size=1, progress=_ReplaceAfterFirstBatch(path, other))
    with connect(db.dsn("app"), agent_id=a1) as s:
        assert not any(c.session_id.startswith("other-") for c in s.find(m1.ChatSession))
    os.remove(path)
    os.replace(other, path)


def test_names_from_the_file_are_shown_inert(db: TestDB, world: World, tmp_path: Path) -> None:
    evil = "evil\x1b[31m\x1b]8;;http://evil.example\x1b\\link\x9b2J[bold]"
    a1 = world.agent_id("A1")
    quoted = evil.replace('"', '""')
    path = mf.edit(f1.build(tmp_path / "MaiBot.db"),
                 f'create table "{quoted}" (id integer primary key)')
    result = maimdb("import-sqlite", str(path), "--agent", a1, dsn=db.dsn("app"))
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout + result.stderr and "[bold]" in result.stdout
    bad = mf.edit(f1.build(tmp_path / "bad.db"), f'alter table images add column "{quoted}" text')
    refused = maimdb("import-sqlite", str(bad), "--agent", a1, dsn=db.dsn("app"))
    assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1
    assert "\x1b" not in refused.stderr and "has a column evil" in refused.stderr


# -- what 1.x keeps outside MaiBot.db --------------------------------------------------------

def test_a_memorix_beside_the_file_is_named_not_imported(db: TestDB, world: World,
                                                         tmp_path: Path) -> None:
    a1 = world.agent_id("A1")
    data = tmp_path / "data"
    (data / "a-memorix" / "metadata").mkdir(parents=True)
    (data / "a-memorix" / "metadata" / "metadata.db").write_bytes(b"")
    (data / "a-memorix" / "vectors").mkdir()
    path = f1.build(data / "MaiBot.db")
    report = _import(db, path, a1)
    assert [o.split(": ")[1] for o in report.outside] == [
        "A_memorix's memory store (its own SQLite file)",
        "A_memorix's vectors (vectors.bin and its ids)"]
    shown = maimdb("import-sqlite", str(path), "--agent", a1, dsn=db.dsn("app"))
    assert "kept outside MaiBot.db, not imported (a later step)" in shown.stdout
    assert not _import(db, f1.build(tmp_path / "MaiBot.db"), world.agent_id("A2")).outside


def test_every_1x_table_has_a_plan() -> None:
    assert [t.source for t in TABLES1] == [m.table for m in m1.ROWS]


def test_an_id_the_tables_cannot_hold_is_skipped_with_the_reason(db: TestDB, world: World,
                                                                 tmp_path: Path) -> None:
    """The maibot1 tables hold JavaScript-safe ids (a CHECK); a file's id past 2^53 - 1
    (SQLite's go to 2^63 - 1) skips that row, named, instead of failing its whole batch."""
    a1 = world.agent_id("A1")
    path = mf.edit(f1.build(tmp_path / "MaiBot.db"),
                 f"update mai_messages set id = {2**53} where id = 2",
                 f"update maisaka_monitor_events set event_id = {2**60} where event_id = 1",
                 "update binary_data set id = -5 where id = 2")
    report = _import(db, path, a1)
    msgs, events = (report.table("maibot1.mai_messages"),
                    report.table("maibot1.maisaka_monitor_events"))
    assert (msgs.written, dict(msgs.skipped)) == (3, {
        "id beyond 2^53 - 1, the largest the maibot1 tables hold (JavaScript-safe ids)": 1})
    assert events.written == 3 and sum(events.skipped.values()) == 1
    # a rowid below 1 (only ever written explicitly) is out of the cursor's reach: named
    blobs = report.table("maibot1.binary_data")
    assert (blobs.read, blobs.written) == (4, 3)
    assert list(blobs.skipped) == ["an id of 0 or below (written explicitly; MaiBot never "
                                   "writes one): not read"]
    with connect(db.dsn("app"), agent_id=a1) as s:
        assert {m.id for m in s.find(m1.Messages)} == {1, f1.BIG_ID, 4}


def test_a_file_overwritten_with_garbage_mid_import_is_a_change_not_damage(
        db: TestDB, world: World, tmp_path: Path) -> None:
    """Overwritten in place while SQLite reads it, a file may stop being a database under
    the reader (a page of the other file, or of none): that is the file changing, and the
    error says so, not that the file was damaged all along."""
    a1 = world.agent_id("A1")
    path = f1.build(tmp_path / "MaiBot.db", messages=40)
    size = path.stat().st_size

    class Overwrite(Progress):
        done = False

        def advance(self, table: str, rows: int) -> None:
            if not self.done:
                self.done = True
                with open(path, "r+b") as f:  # same inode, no longer an SQLite file
                    f.write(bytes(range(256)) * (size // 256))

    with pytest.raises(ConflictError, match=r"changed during the import: it is no longer a "
                                            r"database SQLite can read.*Nothing read after"):
        _import(db, path, a1, batch_size=4, progress=Overwrite())
