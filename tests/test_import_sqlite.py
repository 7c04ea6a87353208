"""``maimdb import-sqlite``: MaiBot files of several releases come in with exact counts and
values, in the named agent only; reruns and resumed runs leave one copy of each row; a 1.x
file stopped inside its own upgrade and anything that is not a MaiBot database are refused
before anything is written (1.x files: tests/test_import_maibot1.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest

from maim_db import (
    ConfigurationError,
    ConflictError,
    InputError,
    IsolationError,
    ScopeError,
    connect,
)
from maim_db.control import tenancy
from maim_db.scope import named_agent
from maim_db.tables import runtime as rt
from maim_db.tables.imports import ImportProgress
from maim_db.transfer.archive import agent_counts
from maim_db.transfer.maibot import (
    TABLES,
    ImportReport,
    committed,
    import_claim,
    import_sqlite,
    open_source,
    source_key,
)
from tests import maibot_files as mf
from tests.cli import maimdb
from tests.databases import TestDB, World

TARGET = {t.source: t.model.table for t in TABLES}
RUNTIME = [t.model for t in TABLES]
SHANGHAI = timezone(timedelta(hours=8))


def _counts(db: TestDB, agent: str) -> dict[str, int]:
    with connect(db.dsn("app"), agent_id=agent) as s:
        return agent_counts(s, [*RUNTIME, ImportProgress])


def _import(db: TestDB, path: Path, agent: str, **kw: Any) -> ImportReport:
    return import_sqlite(path, agent, dsn=db.dsn("app"), timezone="Asia/Shanghai", **kw)


def _expected(release: str) -> dict[str, int]:
    rows = mf.canonical()
    return {TARGET[t]: len(rows[t]) for t in mf.columns(release) if t in TARGET}


@pytest.mark.parametrize("release", ["0.7", "0.10", "0.11.6", "0.12"])
def test_each_release_imports_with_exact_counts(db: TestDB, world: World, tmp_path: Path,
                                                release: str) -> None:
    a1 = world.agent_id("A1")
    report = _import(db, mf.build(tmp_path / "MaiBot.db", release), a1)
    expected = _expected(release)
    assert {t.target: t.written for t in report.tables} == expected
    assert {t.target: t.read for t in report.tables} == expected
    assert all(not t.skipped and not t.fallback for t in report.tables)
    counts = _counts(db, a1)
    assert {t: counts[t] for t in expected} == expected
    assert all(counts[t] == 0 for t in counts if t not in expected and t != "import_progress")
    retired = {"0.7": ["knowledges", "recalled_messages"], "0.10": ["graph_nodes"]}
    assert report.ignored_tables == sorted(retired.get(release, []))


@pytest.mark.parametrize("release", ["0.7", "0.10", "0.11.6", "0.12"])
def test_every_value_of_every_release(db: TestDB, world: World, tmp_path: Path,
                                      release: str) -> None:
    """Each imported row, in id order (imported ids follow MaiBot's), equals its source row
    column for column, converted to the target's type."""
    a1 = world.agent_id("A1")
    _import(db, mf.build(tmp_path / "MaiBot.db", release), a1)
    source = mf.canonical()
    compared = 0
    with connect(db.dsn("app"), agent_id=a1) as s:
        for table, cols in mf.columns(release).items():
            if table not in TARGET:
                continue
            model = next(t.model for t in TABLES if t.source == table)
            got = s.find(model, order_by="id")
            want = sorted(source[table], key=lambda r: r["id"])
            assert len(got) == len(want), table
            for g, w in zip(got, want, strict=True):
                for col in cols:
                    if col not in model.model_fields or col == "selected_expressions":
                        continue  # no home here / rewritten (test_values_arrive_…)
                    assert getattr(g, col) == mf.expected_value(model, col, w[col], SHANGHAI), (
                        table, w["id"], col)
                    compared += 1
    assert compared > 800  # the test compared something: 884 values in the 0.7 file


def test_values_arrive_field_by_field(db: TestDB, world: World, tmp_path: Path) -> None:
    a1 = world.agent_id("A1")
    _import(db, mf.build(tmp_path / "MaiBot.db", "0.12"), a1)
    src = mf.canonical()
    with connect(db.dsn("app"), agent_id=a1) as s:
        msgs = {m.message_id: m for m in s.find(rt.Message)}
        exprs = {e.situation: e for e in s.find(rt.Expression)}
        people = {p.person_id: p for p in s.find(rt.PersonInfo)}
        usage = {u.model_name: u for u in s.find(rt.LLMUsage)}
        online = s.find(rt.OnlineTime)[0]
        jargon = {j.content: j for j in s.find(rt.Jargon)}
        streams = {c.stream_id for c in s.find(rt.ChatStream)}
    assert len(msgs) == len(src["messages"])
    for want in src["messages"]:
        got = msgs[want["message_id"]]
        for col in mf.columns("0.12")["messages"]:
            value = want[col]
            if col.startswith("is_") and col != "is_no_read_command" and value is not None:
                value = bool(value)
            if col == "selected_expressions" and value is not None:
                continue  # remapped: checked below
            assert getattr(got, col) == value, (want["message_id"], col)
    assert {m.chat_id for m in msgs.values()} <= streams  # chat_id still names a stream
    # selected_expressions: MaiBot's integer ids now name the imported expression rows
    by_source = {1: exprs["当别人打招呼时"].id, 3: exprs["当别人道谢时"].id}
    picked = [m for m in msgs.values() if m.selected_expressions]
    assert picked and all(json.loads(m.selected_expressions or "") == [
        str(by_source[1]), str(by_source[3])] for m in picked)
    assert exprs["当别人开玩笑时"].rejected is True and exprs["当别人道谢时"].count == 2
    ming = people["p" * 32]
    assert (ming.is_known, ming.person_name, ming.know_times, ming.group_nick_name) == (
        True, "小明同学", 3.0, src["person_info"][0]["group_nick_name"])
    assert people["q" * 32].know_since is None and people["q" * 32].is_known is False
    # naive peewee datetimes, read in the zone the bot wrote them in
    assert usage["deepseek-chat"].timestamp == datetime(2025, 6, 15, 20, 30, 45, 123456,
                                                        tzinfo=SHANGHAI)
    assert usage["qwen-vl"].timestamp == datetime(2025, 6, 15, 21, 0, tzinfo=SHANGHAI)
    assert usage["qwen-vl"].time_cost is None and usage["deepseek-chat"].cost == 0.0021
    assert online.timestamp == "1750000000.5"  # MaiBot's mixed text column stays text
    assert online.end_timestamp == datetime(2025, 6, 15, 20, 30, 0, 250000, tzinfo=SHANGHAI)
    assert jargon["yyds"].chat_id == f'[["{mf.GROUP}", 3]]' and jargon["绝绝子"].is_jargon is None


def test_older_releases_fill_what_they_lack(db: TestDB, world: World, tmp_path: Path) -> None:
    a1, a2 = world.agent_id("A1"), world.agent_id("A2")
    _import(db, mf.build(tmp_path / "v07.db", "0.7"), a1)
    _import(db, mf.build(tmp_path / "v0116.db", "0.11.6"), a2)
    with connect(db.dsn("app"), agent_id=a1) as s:
        images = s.find(rt.Image, order_by="path")
        msg = s.find(rt.Message, {"message_id": "900011"})[0]
    assert [i.image_id for i in images] == ["", ""]  # 0.7 had no image_id: the default
    assert [i.count for i in images] == [1, 1] and images[0].vlm_processed is False
    assert msg.is_command is False and msg.intercept_message_level == 0  # columns 0.7 lacked
    with connect(db.dsn("app"), agent_id=a2) as s:
        levels = {m.message_id: m.intercept_message_level for m in s.find(rt.Message)}
    # 0.11.6's is_no_read_command is 0.12's intercept level 1
    assert levels["900011"] == 1 and levels["900010"] == 0


def test_drifted_file_reports_skips_and_fallbacks(db: TestDB, world: World,
                                                  tmp_path: Path) -> None:
    a1 = world.agent_id("A1")
    report = _import(db, mf.build_drifted(tmp_path / "MaiBot.db"), a1)
    messages = report.table("messages")
    assert messages.read == 20 and messages.written == 18
    assert dict(messages.skipped) == {"time: not a number": 1, "chat_info_platform is NULL": 1}
    assert dict(messages.fallback) == {
        "user_platform: bytes decoded as UTF-8 with replacement": 1,
        "selected_expressions: not a list of ids, kept as it was": 1}
    assert messages.ignored_columns == ["memorized_times"]
    assert report.table("expression").fallback == {"count: rounded to an integer": 1}
    assert report.ignored_tables == ["messages_backup_1717000000"]
    with connect(db.dsn("app"), agent_id=a1) as s:
        second = s.find(rt.Message, {"message_id": "900002"})[0]
        third = s.find(rt.Message, {"message_id": "900003"})[0]
        fourth = s.find(rt.Message, {"message_id": "900004"})[0]
        epoch = s.find(rt.LLMUsage, {"model_name": "qwen-vl"})[0]
    assert second.is_emoji is True  # peewee's text "True"
    assert third.user_platform == "q\ufffdq"
    assert fourth.selected_expressions == "[1, 'x']"
    assert epoch.timestamp == datetime.fromtimestamp(1750000000, UTC)


def test_rows_in_the_wal_are_imported(db: TestDB, world: World, tmp_path: Path) -> None:
    path = tmp_path / "MaiBot.db"
    for live in mf.open_wal(path):
        live.execute("insert into messages (message_id, time, chat_id, chat_info_stream_id, "
                     "chat_info_platform, chat_info_user_platform, chat_info_user_id, "
                     "chat_info_user_nickname, chat_info_create_time, "
                     "chat_info_last_active_time, is_emoji, is_picid, is_command, "
                     "intercept_message_level, is_notify, processed_plain_text) values "
                     "('wal-1', 1, 'c', 'c', 'qq', 'qq', '1', 'n', 1, 1, 0, 0, 0, 0, 0, "
                     "'只在 WAL 里 📝')")
        assert Path(f"{path}-wal").stat().st_size > 0
        # everything, the tables included, is still only in the WAL: the main file alone
        # (immutable=1 makes SQLite ignore the WAL) has nothing
        main_only = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            main_only.execute("select count(*) from messages")
        main_only.close()
        report = _import(db, path, world.agent_id("A1"))
    assert report.table("messages").written == len(mf.canonical()["messages"]) + 1
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as s:
        assert s.find(rt.Message, {"message_id": "wal-1"})[0].processed_plain_text == \
            "只在 WAL 里 📝"


def test_a_second_run_writes_nothing(db: TestDB, world: World, tmp_path: Path) -> None:
    a1 = world.agent_id("A1")
    path = mf.build(tmp_path / "MaiBot.db", "0.12")
    first = _import(db, path, a1, batch_size=7)
    before = _counts(db, a1)
    again = _import(db, path, a1, batch_size=7)
    assert _counts(db, a1) == before
    assert all(t.read == 0 and t.written == 0 for t in again.tables)
    assert {t.target: t.earlier for t in again.tables} == {
        t.target: t.written for t in first.tables}
    # the bot kept running: only its new rows come in next time
    with sqlite3.connect(path) as live:
        mf.fill(live, {"messages": mf.V0_12["messages"]},
                {"messages": [{**mf.canonical(41)["messages"][-1]}]})
    live.close()
    third = _import(db, path, a1)
    assert third.table("messages").written == 1
    assert _counts(db, a1)["messages"] == before["messages"] + 1


def test_a_live_bot_rewriting_its_streams_is_still_the_same_file(db: TestDB, world: World,
                                                                  tmp_path: Path) -> None:
    """MaiBot saves every active stream with ``ChatStreams.replace()``: in SQLite the row is
    deleted and inserted again under a new id. The file must still be recognised, or the
    rerun would import every message a second time."""
    a1 = world.agent_id("A1")
    path = mf.build(tmp_path / "MaiBot.db", "0.12")
    key_before = source_key(open_source(path))
    _import(db, path, a1)
    before = _counts(db, a1)
    with sqlite3.connect(path) as live:
        cols = [r[1] for r in live.execute("pragma table_info(chat_streams)") if r[1] != "id"]
        oldest = live.execute(f"select {', '.join(cols)} from chat_streams order by id "
                              "limit 1").fetchone()
        # what REPLACE does on peewee's unique stream_id index: delete, insert anew
        live.execute("delete from chat_streams where stream_id = ?", [oldest[0]])
        live.execute(f"insert into chat_streams ({', '.join(cols)}) values "
                     f"({', '.join('?' * len(cols))})", oldest)
        assert live.execute("select min(id) from chat_streams").fetchone() != (1,)
    live.close()
    assert source_key(open_source(path)) == key_before
    again = _import(db, path, a1)
    assert _counts(db, a1) == before
    assert again.table("messages").written == 0


def test_killed_import_resumes_with_one_copy_of_each_row(db: TestDB, world: World,
                                                         tmp_path: Path) -> None:
    a1 = world.agent_id("A1")
    n, _, proc = _import_held_by_its_progress(db, a1, tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    partial = _counts(db, a1)["messages"]
    assert 40 <= partial < n, partial
    path = tmp_path / "MaiBot.db"
    report = import_sqlite(path, a1, dsn=db.dsn("app"), timezone="UTC")
    assert report.table("messages").earlier == partial
    assert report.table("messages").written == n - partial
    with connect(db.dsn("app"), agent_id=a1) as s:
        total, distinct = s.rows("select count(*), count(distinct message_id) from messages")[0]
    assert total == distinct == n


def _import_held_by_its_progress(db: TestDB, agent: str, tmp_path: Path
                                 ) -> tuple[int, list[str], subprocess.Popen[str]]:
    """An import in a child process that cannot finish before the test signals it: once its
    messages have begun, the test stops reading the child's progress lines, and there are
    more of them (a line per batch of 4) than the pipe holds, so the child blocks in a write
    with rows still to import, however fast the server."""
    n = 20_000  # 5,000 progress lines of ~24 bytes: well over a 64 KiB pipe
    path = mf.build(tmp_path / "MaiBot.db", "0.12", messages=n)
    args = ["import-sqlite", str(path), "--agent", agent, "--batch-size", "4", "--timezone",
            "UTC"]
    # Ctrl-C as at a terminal: a CI job started in the background may run with SIGINT
    # ignored, which children inherit (Python then installs no KeyboardInterrupt handler)
    proc = subprocess.Popen([sys.executable, "-m", "maim_db.cli", *args],
                            env=dict(os.environ, MAIMDB_DSN=db.dsn("app")),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr is not None
    while not proc.stderr.readline().startswith("messages: "):
        pass
    for _ in range(10):  # some message batches are in: 40 rows at least
        proc.stderr.readline()
    return n, args, proc


def test_ctrl_c_says_what_is_committed_and_a_rerun_resumes(db: TestDB, world: World,
                                                           tmp_path: Path) -> None:
    """Issue 14: Ctrl-C in import-sqlite says how many rows are in and that a rerun
    resumes; the rerun then brings in the rest, one copy of each row."""
    a1 = world.agent_id("A1")
    n, args, proc = _import_held_by_its_progress(db, a1, tmp_path)
    path = tmp_path / "MaiBot.db"
    proc.send_signal(signal.SIGINT)
    assert proc.stderr is not None and proc.stdout is not None
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130
    assert proc.stdout.read() == ""  # no report: the import did not finish
    said = [line for line in rest.splitlines() if not re.match(r"\w+: (\d+/\d+|done)", line)]
    assert len(said) == 1 and "Traceback" not in rest, rest
    partial = _counts(db, a1)["messages"]
    assert 40 <= partial < n, partial
    assert said[0].startswith("error: interrupted: ") and f"messages {partial}" in said[0]
    assert "run the same command again to resume" in said[0]
    assert committed(path, a1, dsn=db.dsn("app"))["messages"] == partial

    rerun = [("5000" if a == "4" else a) for a in args]  # the same import, in big batches
    again = maimdb(*rerun, dsn=db.dsn("app"))
    assert again.returncode == 0, again.stderr
    with connect(db.dsn("app"), agent_id=a1) as s:
        total, distinct = s.rows("select count(*), count(distinct message_id) from messages")[0]
    assert total == distinct == n
    assert committed(path, a1, dsn=db.dsn("app"))["messages"] == n


def test_import_writes_only_into_the_named_agent(db: TestDB, world: World,
                                                 tmp_path: Path) -> None:
    a1, a2, b1 = (world.agent_id(a) for a in ("A1", "A2", "B1"))
    path = mf.build(tmp_path / "MaiBot.db", "0.12")
    _import(db, path, a1)
    assert all(n == 0 for n in _counts(db, a2).values())
    assert all(n == 0 for n in _counts(db, b1).values())
    # the same file into another agent is that agent's own, complete copy
    report = _import(db, path, b1)
    assert {t.target: t.written for t in report.tables} == _expected("0.12")
    with connect(db.dsn("app"), agent_id=a1) as s:
        mine = s.rows("select count(*) from messages")[0][0]
    assert mine == len(mf.canonical()["messages"])


def test_an_agent_with_its_own_rows_keeps_them(db: TestDB, world: World, tmp_path: Path) -> None:
    a1 = world.agent_id("A1")
    with connect(db.dsn("app"), agent_id=a1) as s:
        s.insert(rt.ChatStream(stream_id=mf.GROUP, create_time=1, last_active_time=2,
                               platform="qq", user_platform="qq", user_id="1",
                               user_nickname="原来的"))
    report = _import(db, mf.build(tmp_path / "MaiBot.db", "0.12"), a1)
    assert report.table("chat_streams").written == 1
    assert dict(report.table("chat_streams").skipped) == {
        "this agent already has a row with the same stream_id": 1}
    with connect(db.dsn("app"), agent_id=a1) as s:
        assert s.find(rt.ChatStream, {"stream_id": mf.GROUP})[0].user_nickname == "原来的"


def test_two_imports_of_one_file_into_one_agent_do_not_overlap(db: TestDB, world: World,
                                                                tmp_path: Path) -> None:
    a1 = world.agent_id("A1")
    path = mf.build(tmp_path / "MaiBot.db", "0.12")
    source = open_source(path)
    key = source_key(source)
    source.conn.close()
    with psycopg.connect(db.dsn("app"), autocommit=True) as running, \
            import_claim(running, named_agent(a1), key):  # an import under way
        with pytest.raises(ConflictError, match=r"another import of this database .* is "
                                                r"running \(backend \d+, since "):
            _import(db, path, a1)
        _nothing_written(db, a1)
    assert _import(db, path, a1).table("messages").written == len(mf.canonical()["messages"])


def _nothing_written(db: TestDB, agent: str) -> None:
    assert all(n == 0 for n in _counts(db, agent).values())


def test_a_1x_file_stopped_inside_its_upgrade_is_refused_naming_the_version(
        db: TestDB, world: World, tmp_path: Path) -> None:
    """A 1.x file its own upgrade left at version 3 (0.x tables still renamed to
    __legacy_v1_*): no 1.x release leaves that behind. 1.x files it does leave behind are
    imported (tests/test_import_maibot1.py)."""
    a1 = world.agent_id("A1")
    with pytest.raises(InputError, match=r"MaiBot 1\.x database of schema version 3, which no "
                                         r"1\.x release leaves behind .*nothing was written"):
        _import(db, mf.build_1x(tmp_path / "MaiBot.db"), a1)
    _nothing_written(db, a1)


def test_a_file_of_several_agents_is_refused(db: TestDB, world: World,
                                             tmp_path: Path) -> None:
    """The multi-agent fork's files carry agent_id on their rows: one agent's file imports
    (its agent_id replaced by the scope's), several agents' are not merged into one."""
    a1, a2 = world.agent_id("A1"), world.agent_id("A2")
    path = mf.build(tmp_path / "MaiBot.db", "0.12")
    with sqlite3.connect(path) as fork:
        fork.execute("alter table messages add column agent_id text")
        fork.execute("update messages set agent_id = 'agent_fork1'")
    fork.close()
    assert _import(db, path, a1).table("messages").written == 40
    with sqlite3.connect(path) as fork:
        fork.execute("update messages set agent_id = 'agent_fork2' where id % 2 = 0")
    fork.close()
    with pytest.raises(InputError, match=r"rows of 2 agents \(agent_fork1, agent_fork2\)"):
        _import(db, path, a2)
    _nothing_written(db, a2)


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("not a database at all\n" * 100), "not an SQLite database"),
    (lambda p: sqlite3.connect(p).execute("create table notes (id integer primary key)"),
     "not a MaiBot database"),
    (lambda p: None, "no such file"),
])
def test_other_files_are_refused(db: TestDB, world: World, tmp_path: Path, make: Any,
                                 message: str) -> None:
    path = tmp_path / "other.db"
    make(path)
    with pytest.raises(InputError, match=message):
        _import(db, path, world.agent_id("A1"))
    _nothing_written(db, world.agent_id("A1"))


def test_bad_arguments_are_refused_before_reading(db: TestDB, world: World,
                                                  tmp_path: Path) -> None:
    path = mf.build(tmp_path / "MaiBot.db", "0.12")
    with pytest.raises(ScopeError):
        import_sqlite(path, "not an agent id", dsn=db.dsn("app"))
    with pytest.raises(InputError, match="unknown time zone"):
        import_sqlite(path, world.agent_id("A1"), dsn=db.dsn("app"), timezone="Mars/Base")
    for bad in (0, "5", 2.5, True):
        with pytest.raises(InputError, match="batch size"):
            import_sqlite(path, world.agent_id("A1"), dsn=db.dsn("app"),
                          batch_size=bad)  # type: ignore[arg-type]
    _nothing_written(db, world.agent_id("A1"))


def test_odd_names_and_missing_columns_in_the_file(db: TestDB, world: World,
                                                   tmp_path: Path) -> None:
    """Any table name SQLite allows is read safely; a file whose shape the importer cannot
    read is an InputError, not sqlite3's own exception."""
    a1 = world.agent_id("A1")
    odd = mf.build(tmp_path / "odd.db", "0.12")
    with sqlite3.connect(odd) as conn:
        conn.execute('create table "x""y" (id integer primary key, "a""b" text)')
    report = _import(db, str(odd), a1)  # type: ignore[arg-type]  # a str path is fine too
    assert 'x"y' in report.ignored_tables
    assert {t.target: t.written for t in report.tables} == _expected("0.12")
    broken = mf.build(tmp_path / "broken.db", "0.12")
    with sqlite3.connect(broken) as conn:
        conn.execute("alter table chat_streams drop column create_time")
    with pytest.raises(InputError, match="SQLite could not read it"):
        _import(db, broken, world.agent_id("A2"))
    _nothing_written(db, world.agent_id("A2"))


def test_the_import_refuses_pgbouncer(db: TestDB, world: World, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAIMDB_PGBOUNCER", "1")
    with pytest.raises(ConfigurationError, match="direct connection"):
        _import(db, mf.build(tmp_path / "MaiBot.db", "0.12"), world.agent_id("A1"))
    _nothing_written(db, world.agent_id("A1"))


def test_a_suspended_agent_cannot_be_imported_into(db: TestDB, world: World,
                                                   tmp_path: Path) -> None:
    a1 = world.agent_id("A1")
    with connect(db.dsn("admin"), admin=True) as adm:
        tenancy.set_agent_status(adm, a1, "suspended")
    with pytest.raises(IsolationError, match="is suspended"):
        _import(db, mf.build(tmp_path / "MaiBot.db", "0.12"), a1)
    with connect(db.dsn("admin"), admin=True) as adm:
        tenancy.set_agent_status(adm, a1, "active")
    _nothing_written(db, a1)


def test_the_cli_prints_plain_progress_and_a_json_report(db: TestDB, world: World,
                                                         tmp_path: Path) -> None:
    path = mf.build(tmp_path / "MaiBot.db", "0.10")
    env = dict(os.environ, MAIMDB_DSN=db.dsn("app"))
    result = subprocess.run([sys.executable, "-m", "maim_db.cli", "import-sqlite", str(path),
                             "--agent", world.agent_id("A1"), "--json"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {t["target"]: t["written"] for t in report["tables"]} == _expected("0.10")
    assert "messages: 40/40" in result.stderr.splitlines()
    bad = subprocess.run([sys.executable, "-m", "maim_db.cli", "import-sqlite",
                          str(mf.build_1x(tmp_path / "new.db")), "--agent",
                          world.agent_id("A1")], env=env, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 1 and "1.x" in bad.stderr and "Traceback" not in bad.stderr
