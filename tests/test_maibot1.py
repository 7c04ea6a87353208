"""MaiBot 1.x's tables (migrations/0020, schema maibot1): 1.x's global unique keys are per
agent and leak nothing, ids are 53-bit integers from maim.maibot1_id() that rise and never
repeat within an agent, explicit ids are kept, times round-trip, and 1.2.1's enums are held
to their values. (Model = catalog and the isolation of every table: test_schema_contract.py
and test_isolation_matrix.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from maim_db import connect
from maim_db.errors import ConflictError, InputError
from maim_db.tables.maibot1 import (
    BotPlatformAccount,
    ChatSession,
    Expression,
    HighFrequencyTerm,
    Images,
    Jargon,
    MaiBot1Row,
    MaisakaMonitorEventRecord,
    Messages,
    PersonInfo,
    StatisticsModelHourly,
    ToolRecord,
)
from tests.databases import TestDB, World

MAX_SAFE = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER: 1.x's web UI reads ids as numbers
HOUR = datetime(2026, 8, 20, 10, tzinfo=UTC)


def _message(message_id: str, session_id: str = "s1") -> Messages:
    return Messages(message_id=message_id, timestamp=HOUR, platform="qq", user_id="10001",
                    user_nickname="n", session_id=session_id, raw_content=b"\x81\xa1k\xa1v")


def _shared_keys() -> list[MaiBot1Row]:
    """One row of every 1.x table whose key 1.x made unique across the table."""
    return [
        ChatSession(session_id="a544edeb1a9b73e3", platform="qq", user_id="10001"),
        PersonInfo(person_id="p-10001", platform="qq", user_id="10001", user_nickname="n"),
        HighFrequencyTerm(chat_id="a544edeb1a9b73e3", term="麦麦", created_at=HOUR,
                          updated_at=HOUR),
        BotPlatformAccount(platform="qq", account_id="3237", first_seen_at=HOUR,
                           last_seen_at=HOUR),
        StatisticsModelHourly(bucket_time=HOUR, request_type="chat", module_name="chat",
                              provider_name="p", model_name="m"),
    ]


def test_two_agents_hold_the_same_session_and_person_ids(db: TestDB, world: World) -> None:
    """1.x's unique session_id / person_id / (platform, account_id) / statistics buckets
    are unique per agent: B's first save where A already has the key succeeds, and B sees
    only its own row."""
    a, b = world.agent_id("A1"), world.agent_id("B1")
    for agent in (a, b):
        with connect(db.dsn("app"), agent_id=agent) as app:
            for row in _shared_keys():
                assert app.insert(row).model_dump()["agent_id"] == agent
    for agent in (a, b):
        with connect(db.dsn("app"), agent_id=agent) as app:
            seen = app.rows("select agent_id from maibot1.chat_sessions "
                            "where session_id = 'a544edeb1a9b73e3'")
            assert seen == [(agent,)]


def test_a_key_is_still_unique_within_one_agent(db: TestDB, world: World) -> None:
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        app.insert(ChatSession(session_id="dup", platform="qq"))
    with pytest.raises(ConflictError), \
            connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        app.insert(ChatSession(session_id="dup", platform="qq"))


def test_b_upsert_on_a_key_a_holds_neither_fails_nor_reveals_it(
        db: TestDB, world: World) -> None:
    """1.x's `insert … on conflict do nothing` (with agent_id in the target, as a port writes
    it): B's row is written, where a global key would have answered "already there" and so
    told B that A has the session."""
    a, b = world.agent_id("A1"), world.agent_id("B1")
    upsert = ("insert into maibot1.chat_sessions (session_id, platform) values ('g-1', 'qq') "
              "on conflict (agent_id, session_id) do nothing returning agent_id")
    with connect(db.dsn("app"), agent_id=a) as app:
        assert app.rows(upsert) == [(a,)]
    with connect(db.dsn("app"), agent_id=b) as app:
        assert app.rows(upsert) == [(b,)]
        assert app.rows(upsert) == []  # B's own row now answers


def test_generated_ids_are_53_bit_rising_and_unique(db: TestDB, world: World) -> None:
    a = world.agent_id("A1")
    insert = ("insert into maibot1.tool_records (tool_id, session_id, tool_name) "
              "select 't' || i, 's', 'n' from generate_series(1, 5000) i returning id")
    with connect(db.dsn("app"), agent_id=a) as app:
        first = [i for (i,) in app.rows(insert)]
    with connect(db.dsn("app"), agent_id=a) as app:
        second = [i for (i,) in app.rows(insert)]
    ids = first + second
    assert len(set(ids)) == len(ids) == 10_000
    assert ids == sorted(ids)  # rising in insertion order, across blocks: `id > :last_id`
    assert all(2**40 < i <= MAX_SAFE for i in ids)


def test_the_id_is_time_first(db: TestDB, world: World) -> None:
    """The top 41 bits are the milliseconds since 2025-01-01 UTC at insert."""
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        before = datetime.now(UTC)
        row = app.insert(_message("m-time"))
        after = datetime.now(UTC)
    made = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(milliseconds=row.id >> 12)
    assert before - timedelta(seconds=5) <= made <= after + timedelta(seconds=5)


def test_sessions_on_backends_of_different_slots_never_draw_one_id(
        db: TestDB, world: World) -> None:
    """Bits 6-11 are the backend's pid modulo 64, so two sessions on backends whose slots
    differ cannot clash however fast both insert (the bound of a shared agent's bursts)."""
    a = world.agent_id("A1")
    drawn, slots = [], []
    for _ in range(2):
        with connect(db.dsn("app"), agent_id=a) as app:
            slot = app.scalar("select pg_catalog.pg_backend_pid() % 64")
            ids = [i for (i,) in app.rows("select maim.maibot1_id() "
                                          "from generate_series(1, 500)")]
        assert {(i >> 6) & 63 for i in ids} == {slot}
        drawn.append(set(ids))
        slots.append(slot)
    if slots[0] != slots[1]:
        assert not drawn[0] & drawn[1]


def test_an_explicit_id_is_kept_and_is_per_agent(db: TestDB, world: World) -> None:
    """The 1.x importer keeps 1.x's ids: two agents may hold the same id."""
    for agent in ("A1", "B1"):
        with connect(db.dsn("app"), agent_id=world.agent_id(agent)) as app:
            assert app.insert(_message("m-7").model_copy(update={"id": 7})).id == 7
            event = app.insert(MaisakaMonitorEventRecord(event_id=7, event_type="e",
                                                         timestamp=1.5, payload_json="{}"))
            assert event.event_id == 7
    with pytest.raises(ConflictError), \
            connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        app.insert(_message("m-7 again").model_copy(update={"id": 7}))


def test_an_id_past_javascripts_safe_integers_is_refused(db: TestDB, world: World) -> None:
    with pytest.raises(InputError), \
            connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        app.insert(_message("m-big").model_copy(update={"id": MAX_SAFE + 1}))


def test_a_session_never_repeats_an_id_and_stops_at_2_53(db: TestDB, world: World) -> None:
    """Within a session and agent each id is above the last (the session's remembered one),
    and the generator raises rather than pass 2^53 - 1."""
    a = world.agent_id("A1")
    with pytest.raises(InputError, match="2\\^53"), \
            connect(db.dsn("app"), agent_id=a) as app:
        app.execute("select pg_catalog.set_config('maibot1.last_id', %s, false)",
                    [f"{a} {MAX_SAFE - 2}"])
        assert [r.id for r in (app.insert(_message("m-1")), app.insert(_message("m-2")))] == [
            MAX_SAFE - 1, MAX_SAFE]
        app.insert(_message("m-3"))


def test_another_agents_last_id_does_not_carry_over(db: TestDB, world: World) -> None:
    """A pooled session that served B starts A afresh: A's ids follow the clock, not B's
    count (which would tell A how many rows B wrote)."""
    a, b = world.agent_id("A1"), world.agent_id("B1")
    with connect(db.dsn("app"), agent_id=a) as app:
        app.execute("select pg_catalog.set_config('maibot1.last_id', %s, false)",
                    [f"{b} {MAX_SAFE - 2}"])
        assert app.insert(_message("m-fresh")).id < MAX_SAFE // 2


def test_times_round_trip(db: TestDB, world: World) -> None:
    """timestamptz: the instant 1.x wrote, whatever zone it was given in."""
    east8 = timezone(timedelta(hours=8))
    written = datetime(2026, 8, 20, 18, 30, 15, 123456, tzinfo=east8)
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        row = app.insert(_message("m-tz").model_copy(update={"timestamp": written}))
        again = app.get(Messages, row.id)
    assert again.timestamp == written
    assert again.raw_content == b"\x81\xa1k\xa1v"  # msgpack bytes as bytea


@pytest.mark.parametrize(("row", "column"), [
    (Images(image_hash="h", description="d", full_path="p", image_type="EMOJI"), "image_type"),
    (Expression(situation="s", style="t", content_list="[]", modified_by="AI"), "modified_by"),
    (Jargon(content="c", meaning="m", created_by="AI"), "created_by"),
], ids=lambda v: v if isinstance(v, str) else type(v).__name__)
def test_enums_hold_1x_values(db: TestDB, world: World, row: Images, column: str) -> None:
    """images.image_type holds what SQLAlchemy's Enum stores (the names EMOJI/IMAGE);
    expressions.modified_by and jargons.created_by their values."""
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        app.insert(row)
    table = f"maibot1.{type(row).table}"
    with pytest.raises(InputError), \
            connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        app.execute(f"update {table} set {column} = 'emoji'")  # a value, not a name


def test_1x_python_defaults_are_written(db: TestDB, world: World) -> None:
    """A row left at 1.2.1's Python defaults inserts them (1.x's DDL repeats none of them as
    a column default); 1.2.1's server defaults come from the table."""
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        jargon = app.insert(Jargon(content="c", meaning="m"))
        message = app.insert(_message("m-defaults"))
    assert (jargon.is_jargon, jargon.count, jargon.session_id_dict, jargon.created_by) == (
        False, 0, "{}", "AI")
    assert (message.is_emoji, message.is_picture, message.is_command) == (False, False, False)
    assert ToolRecord.model_fields["session_id"].is_required()


def test_deleting_an_agent_reports_its_1x_rows(db: TestDB, world: World) -> None:
    """The cascade from agents takes the maibot1 rows with it, and the report says so."""
    from maim_db.control import tenancy

    with connect(db.dsn("admin"), admin=True) as adm:
        doomed = tenancy.create_agent(adm, "doomed", tenant_id=world.tenant_id("T1")).id
    with connect(db.dsn("app"), agent_id=doomed) as app:
        app.insert_many([_message("m-a"), _message("m-b")])
        app.insert(ChatSession(session_id="s-doomed", platform="qq"))
    with connect(db.dsn("admin"), admin=True) as adm:
        report = tenancy.delete_agent(adm, doomed)
    assert report == {"agents": 1, "maibot1.mai_messages": 2, "maibot1.chat_sessions": 1}
