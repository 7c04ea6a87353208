"""``maimdb export``, ``import-export`` and ``erase``: an agent's data out, into another agent,
and gone, each in the agent's own scope, never touching another agent's rows."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maim_db import (
    ConfigurationError,
    ConflictError,
    InputError,
    IsolationError,
    ScopeError,
    agent_scope,
    connect,
)
from maim_db.control import config as cd
from maim_db.control import tenancy
from maim_db.tables import Agent, business
from maim_db.tables import runtime as rt
from maim_db.transfer.archive import (
    DATA_ROWS,
    ERASED_ROWS,
    MANIFEST,
    agent_counts,
    erase_agent,
    export_agent,
    import_export,
    sign,
)
from maim_db.transfer.maibot import import_sqlite
from tests import maibot_files as mf
from tests.cli import maimdb
from tests.databases import TestDB, World

pytestmark = pytest.mark.usefixtures("secret_key")  # an export is signed with it


def _fill(db: TestDB, agent: str, tmp_path: Path) -> None:
    """Runtime rows from a MaiBot file, a configuration document, a business row."""
    import_sqlite(mf.build(tmp_path / f"{agent}.db", "0.12"), agent, dsn=db.dsn("app"),
                  timezone="Asia/Shanghai")
    with connect(db.dsn("app"), agent_id=agent) as s:
        cd.update(s, {"persona": {"personality": "活泼开朗 🌟"},
                               "config_overrides": {"chat": {"talk_value": 0.7}}})
        s.insert(business.ChatHistory(session_id="s1", user_message="你好",
                                      assistant_message="你好呀", user_id="u1",
                                      metadata={"来源": "web", "n": [1, 2.5, None]}))


def _files(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(directory.iterdir())}


def _all_counts(db: TestDB, agent: str) -> dict[str, int]:
    with connect(db.dsn("app"), agent_id=agent) as s:
        return agent_counts(s, ERASED_ROWS)


def test_export_restore_export_round_trip(db: TestDB, world: World, tmp_path: Path) -> None:
    a1 = world.agent_id("A1")
    _fill(db, a1, tmp_path)
    with connect(db.dsn("admin"), admin=True) as adm:
        fresh = tenancy.create_agent(adm, "restored", tenant_id=world.tenant_id("T2")).id
    first = export_agent(a1, tmp_path / "first", dsn=db.dsn("app"))
    assert first["messages"] == len(mf.canonical()["messages"])
    assert first["chat_history"] == 1 and first["personality_configs"] == 1
    restored = import_export(tmp_path / "first", fresh, dsn=db.dsn("app"))
    assert restored == first
    export_agent(fresh, tmp_path / "second", dsn=db.dsn("app"))
    before, after = _files(tmp_path / "first"), _files(tmp_path / "second")
    assert set(before) == {MANIFEST} | {f"{m.table_name()}.jsonl" for m in DATA_ROWS}
    manifests = [json.loads(files.pop(MANIFEST)) for files in (before, after)]
    assert {name: text.replace(a1, fresh) for name, text in before.items()} == after
    assert a1 not in "".join(after.values())
    assert manifests[0]["tables"] == manifests[1]["tables"]
    assert (manifests[0]["agent_id"], manifests[1]["agent_id"]) == (a1, fresh)
    # the restored agent reads its data like any other
    with connect(db.dsn("app"), agent_id=fresh) as s:
        assert cd.read(s)["persona"]["personality"] == "活泼开朗 🌟"
        assert s.find(business.ChatHistory)[0].metadata == {"来源": "web", "n": [1, 2.5, None]}


def test_an_export_holds_only_its_agent(db: TestDB, world: World, tmp_path: Path) -> None:
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    _fill(db, a1, tmp_path)
    counts = export_agent(b1, tmp_path / "b1", dsn=db.dsn("app"))
    assert all(n == 0 for n in counts.values())
    assert all(not text for name, text in _files(tmp_path / "b1").items() if name != MANIFEST)


def test_restore_refuses_an_agent_that_holds_data(db: TestDB, world: World,
                                                  tmp_path: Path) -> None:
    a1, a2 = world.agent_id("A1"), world.agent_id("A2")
    _fill(db, a1, tmp_path)
    export_agent(a1, tmp_path / "out", dsn=db.dsn("app"))
    with connect(db.dsn("app"), agent_id=a2) as s:
        s.insert(rt.RuntimeState(state_key="mood", state_value="好"))
    with pytest.raises(ConflictError, match=r"already holds data \(runtime_state: 1\)"):
        import_export(tmp_path / "out", a2, dsn=db.dsn("app"))
    assert _all_counts(db, a2) == {**{t: 0 for t in _all_counts(db, a2)}, "runtime_state": 1}


def _resign(out: Path) -> None:
    """Sign ``out`` again as it now is, as an export holding the key would have."""
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    manifest["sha256"] = {t: hashlib.sha256((out / f"{t}.jsonl").read_bytes()).hexdigest()
                          for t in manifest["tables"]}
    (out / MANIFEST).write_text(json.dumps(sign(manifest)), encoding="utf-8")


def test_a_broken_export_changes_nothing(db: TestDB, world: World, tmp_path: Path) -> None:
    a1, a2 = world.agent_id("A1"), world.agent_id("A2")
    _fill(db, a1, tmp_path)
    out = tmp_path / "out"
    export_agent(a1, out, dsn=db.dsn("app"))
    lines = (out / "messages.jsonl").read_text(encoding="utf-8").splitlines()
    (out / "messages.jsonl").write_text("\n".join([*lines[:5], "{broken", *lines[5:]]) + "\n",
                                        encoding="utf-8")
    _resign(out)  # the checks behind the signature hold for a signed file too
    with pytest.raises(InputError, match=r"messages.jsonl line 6"):
        import_export(out, a2, dsn=db.dsn("app"))
    assert all(n == 0 for n in _all_counts(db, a2).values())  # all or nothing
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    for change, message in ((dict(schema_version="0001_control_plane"), "written at schema"),
                            (dict(format="something else"), "not a maimdb export"),
                            (dict(tables={"agents": 1}), "known tables")):
        (out / MANIFEST).write_text(json.dumps(sign({**manifest, **change})),
                                    encoding="utf-8")
        with pytest.raises(InputError, match=message):
            import_export(out, a2, dsn=db.dsn("app"))
    (out / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    good = (out / "messages.jsonl").read_text(encoding="utf-8").replace("{broken\n", "")
    # a file shorter than the manifest says: refused inside the transaction
    (out / "messages.jsonl").write_text("".join(good.splitlines(True)[2:]), encoding="utf-8")
    _resign(out)
    with pytest.raises(InputError, match="messages: manifest"):
        import_export(out, a2, dsn=db.dsn("app"))
    assert all(n == 0 for n in _all_counts(db, a2).values())
    # a key the table does not have (a rename, a typo) would otherwise become a NULL
    first, *rest = good.splitlines(True)
    record = json.loads(first)
    record["processed_plain_txt"] = record.pop("processed_plain_text")
    (out / "messages.jsonl").write_text(json.dumps(record) + "\n" + "".join(rest),
                                        encoding="utf-8")
    _resign(out)
    with pytest.raises(InputError, match="line 1: no column 'processed_plain_txt'"):
        import_export(out, a2, dsn=db.dsn("app"))
    (out / "messages.jsonl").write_text("[1, 2]\n" + "".join(rest), encoding="utf-8")
    _resign(out)
    with pytest.raises(InputError, match="line 1: not a JSON object"):
        import_export(out, a2, dsn=db.dsn("app"))
    assert all(n == 0 for n in _all_counts(db, a2).values())
    # paths that are not what they should be, and bytes that are not UTF-8
    with pytest.raises(InputError, match="is not a directory"):
        import_export(out / MANIFEST, a2, dsn=db.dsn("app"))
    with pytest.raises(InputError, match="cannot create"):
        export_agent(a1, out / MANIFEST / "sub", dsn=db.dsn("app"))
    (out / MANIFEST).write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(InputError, match="not valid UTF-8 JSON"):
        import_export(out, a2, dsn=db.dsn("app"))
    (out / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    (out / "messages.jsonl").write_bytes(b'{"x": "\xff"}\n')
    _resign(out)
    with pytest.raises(InputError, match=r"messages\.jsonl is not valid UTF-8"):
        import_export(out, a2, dsn=db.dsn("app"))
    assert all(n == 0 for n in _all_counts(db, a2).values())
    # an unknown agent leaves no directory behind
    with pytest.raises(IsolationError):
        export_agent("agent_nobody", tmp_path / "nobody", dsn=db.dsn("app"))
    assert not (tmp_path / "nobody").exists()
    with pytest.raises(InputError, match=r"holds no manifest\.json"):
        import_export(tmp_path, a2, dsn=db.dsn("app"))
    with pytest.raises(InputError, match="not an empty directory"):
        export_agent(a1, out, dsn=db.dsn("app"))
    with pytest.raises(InputError, match="not an empty directory"):
        export_agent(a1, out / MANIFEST, dsn=db.dsn("app"))


def test_provider_secrets_survive_a_restore_into_another_agent(
        db: TestDB, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider secret is sealed with its agent's id; the restore re-seals it for the new
    agent of the same tenant, so the runtime can still read it — and refuses, changing
    nothing, without the key (which also checks the export's signature)."""
    a1, a2 = world.agent_id("A1"), world.agent_id("A2")
    with connect(db.dsn("app"), agent_id=a1) as s:
        cd.update(s, {"config_overrides": {"model": {"api_providers": [
            {"name": "sf", "api_key": "sk-秘密", "base_url": "https://api.example.cn"}]}}})
    export_agent(a1, tmp_path / "out", dsn=db.dsn("app"))
    key = os.environ["MAIMDB_SECRET_KEY"]
    monkeypatch.delenv("MAIMDB_SECRET_KEY")
    with pytest.raises(ConfigurationError, match=r"is signed with key .*MAIMDB_SECRET_KEY is "
                                                 r"not set"):
        import_export(tmp_path / "out", a2, dsn=db.dsn("app"))
    assert all(n == 0 for n in _all_counts(db, a2).values())
    monkeypatch.setenv("MAIMDB_SECRET_KEY", key)
    import_export(tmp_path / "out", a2, dsn=db.dsn("app"))
    for agent in (a1, a2):
        with connect(db.dsn("app"), agent_id=agent) as s:
            provider = cd.read(s, reveal=True)["config_overrides"]["model"]["api_providers"][0]
        assert (provider["api_key"], provider["base_url"]) == ("sk-秘密", "https://api.example.cn")


def test_a_restore_cannot_write_into_another_agent(db: TestDB, world: World,
                                                   tmp_path: Path) -> None:
    """The export names A1 in every row; restored into A2, the rows are A2's (agent_id comes
    from the scope), and A1 is untouched."""
    a1, a2 = world.agent_id("A1"), world.agent_id("A2")
    _fill(db, a1, tmp_path)
    export_agent(a1, tmp_path / "out", dsn=db.dsn("app"))
    before = _all_counts(db, a1)
    import_export(tmp_path / "out", a2, dsn=db.dsn("app"))
    assert _all_counts(db, a1) == before
    with connect(db.dsn("app"), agent_id=a2) as s:
        assert {m.agent_id for m in s.find(rt.Message)} == {a2}


def test_erase_removes_every_row_of_the_agent_and_nothing_else(db: TestDB, world: World,
                                                              tmp_path: Path) -> None:
    a1, a2 = world.agent_id("A1"), world.agent_id("A2")
    _fill(db, a1, tmp_path)
    _fill(db, a2, tmp_path)
    held = {t: n for t, n in _all_counts(db, a1).items() if n}
    others = _all_counts(db, a2)
    assert held["messages"] and held["import_progress"]
    erased = erase_agent(a1, dsn=db.dsn("app"))
    assert erased == held
    assert all(n == 0 for n in _all_counts(db, a1).values())
    assert _all_counts(db, a2) == others
    with connect(db.dsn("admin"), admin=True) as adm:
        assert adm.get(Agent, a1).id == a1  # the agent stays; `agent delete` removes it
    assert erase_agent(a1, dsn=db.dsn("app")) == {}


def test_whole_agent_operations_need_the_agent_named(db: TestDB, world: World,
                                                     tmp_path: Path) -> None:
    """The ambient scope is no way to choose what to erase, export or restore."""
    b1 = world.agent_id("B1")
    _fill(db, b1, tmp_path)
    before = _all_counts(db, b1)
    with agent_scope(b1):
        for call in (lambda: erase_agent(None, dsn=db.dsn("app")),  # type: ignore[arg-type]
                     lambda: export_agent(None, tmp_path / "x", dsn=db.dsn("app")),  # type: ignore[arg-type]
                     lambda: import_export(tmp_path, None, dsn=db.dsn("app"))):  # type: ignore[arg-type]
            with pytest.raises(ScopeError, match="invalid agent id None"):
                call()
    assert _all_counts(db, b1) == before and not (tmp_path / "x").exists()


def test_erase_of_a_suspended_agent_is_refused(db: TestDB, world: World) -> None:
    a1 = world.agent_id("A1")
    with connect(db.dsn("admin"), admin=True) as adm:
        tenancy.set_agent_status(adm, a1, "suspended")
    with pytest.raises(IsolationError, match="is suspended"):
        erase_agent(a1, dsn=db.dsn("app"))


def _cli(db: TestDB, *args: str) -> subprocess.CompletedProcess[str]:
    return maimdb(*args, dsn=db.dsn("app"))


def test_the_cli_round_trip_and_erase(db: TestDB, world: World, tmp_path: Path) -> None:
    a1, a2 = world.agent_id("A1"), world.agent_id("A2")
    _fill(db, a1, tmp_path)
    exported = _cli(db, "export", "--agent", a1, "--out", str(tmp_path / "x"), "--json")
    assert exported.returncode == 0, exported.stderr
    total = json.loads(exported.stdout)["total"]
    restored = _cli(db, "import-export", str(tmp_path / "x"), "--agent", a2, "--json")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["total"] == total
    refused = _cli(db, "erase", "--agent", a2)  # no terminal, no --yes: nothing happens
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert sum(_all_counts(db, a2).values()) == total
    erased = _cli(db, "erase", "--agent", a2, "--yes", "--json")
    assert erased.returncode == 0, erased.stderr
    assert json.loads(erased.stdout)["total"] == total
    assert sum(_all_counts(db, a2).values()) == 0


def test_export_shows_progress_on_a_terminal_and_lines_in_a_pipe(db: TestDB, world: World,
                                                                 tmp_path: Path) -> None:
    import pty

    a1 = world.agent_id("A1")
    _fill(db, a1, tmp_path)
    counts = _all_counts(db, a1)
    piped = _cli(db, "export", "--agent", a1, "--out", str(tmp_path / "piped"))
    assert piped.returncode == 0, piped.stderr
    assert f"messages: {counts['messages']}/{counts['messages']}" in piped.stderr
    assert f"messages: done, {counts['messages']} written" in piped.stderr
    assert "user_sessions" not in piped.stderr  # empty tables are not news

    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "maim_db.cli", "export", "--agent", a1,
                             "--out", str(tmp_path / "tty")],
                            env=dict(os.environ, MAIMDB_DSN=db.dsn("app"), COLUMNS="120"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the follower side closed: the command is done
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    assert proc.wait(timeout=120) == 0
    assert proc.stdout is not None and "exported" in proc.stdout.read().decode()
    bar = drawn.decode(errors="replace")
    assert "messages" in bar and f"{counts['messages']}/{counts['messages']}" in bar
    assert "━" in bar and "messages: " not in bar  # a bar, not the plain lines


def test_maibot1_rows_export_erase_and_restore(db: TestDB, world: World,
                                              tmp_path: Path) -> None:
    """MaiBot 1.x's tables are the agent's data like public's: an export holds them (beside
    0.x's tables of the same name, images), an erase empties them, and the restore brings
    back every row as it was — ids (which 1.x code keeps), times and msgpack bytes
    included."""
    from datetime import UTC, datetime

    from maim_db.tables import MAIBOT1_ROWS
    from maim_db.tables import maibot1 as m1

    a1 = world.agent_id("A1")
    when = datetime(2026, 8, 20, 10, 30, 15, 250000, tzinfo=UTC)
    with connect(db.dsn("app"), agent_id=a1) as s:
        s.insert(rt.Image(emoji_hash="h0", path="/0.x.png", timestamp=1.0, type="image"))
        s.insert_many([m1.Messages(message_id=f"m{i}", timestamp=when, platform="qq",
                                   user_id="10001", user_nickname="麦麦", session_id="s1",
                                   raw_content=bytes([0x81, i])) for i in range(3)])
        s.insert(m1.ChatSession(session_id="s1", platform="qq", created_timestamp=when))
        s.insert(m1.Images(image_hash="h1", description="猫", full_path="/1.x.png",
                           image_type="EMOJI", record_time=when))
        s.insert(m1.PersonInfo(person_id="p1", platform="qq", user_id="10001",
                               user_nickname="n", is_known=True))
        s.insert(m1.Jargon(content="yyds", meaning="永远的神"))
        s.insert(m1.MaisakaMonitorEventRecord(event_id=41, event_type="e", timestamp=1.5,
                                              payload_json='{"k": 1}', created_at=when))
        s.insert(m1.MaisakaReplyEffect(effect_id="5f0c-uuid", session_id="s1", status="done",
                                       created_at=when, record_blob=b"\x00\xff"))

    def dump() -> dict[str, list[m1.MaiBot1Row]]:
        with connect(db.dsn("app"), agent_id=a1) as s:
            return {m.table_name(): s.find(m, order_by=list(m.key)) for m in MAIBOT1_ROWS}

    before = dump()
    counts = export_agent(a1, tmp_path / "out", dsn=db.dsn("app"))
    assert counts["maibot1.mai_messages"] == 3 and counts["images"] == 1
    assert counts["maibot1.images"] == 1 and counts["maibot1.maisaka_reply_effects"] == 1
    assert (tmp_path / "out" / "maibot1.images.jsonl").is_file()
    erased = erase_agent(a1, dsn=db.dsn("app"))
    assert erased["maibot1.mai_messages"] == 3 and erased["images"] == 1
    assert not any(dump().values())
    assert import_export(tmp_path / "out", a1, dsn=db.dsn("app")) == counts
    assert dump() == before
