"""The Peewee bridge (issue 15): MaiBot's models and idioms, every statement in a maim_db
scope, two agents each seeing only their own rows — through Peewee and through raw SQL."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import peewee
import pytest
from peewee import fn

from maim_db import (
    ConflictError,
    IsolationError,
    Pool,
    ScopeError,
    agent_scope,
    connect,
    key_scope,
)
from maim_db.control import keys
from maim_db.peewee import (
    MODELS,
    ChatStreams,
    Expression,
    IntegrityError,
    LLMUsage,
    Messages,
    PersonInfo,
    ScopedDatabase,
)
from tests.databases import TestDB, World

NOW = time.time()


@pytest.fixture
def bridge(db: TestDB, world: World) -> Iterator[ScopedDatabase]:
    """The models bound to a bridge on the test database, as the app login."""
    pool = Pool(db.dsn("app"), min_size=1, max_size=4)
    bridged = ScopedDatabase(pool=pool, timezone="Asia/Shanghai")
    with bridged.bind_ctx(MODELS):
        yield bridged
    pool.close()


def _message(n: int, chat: str = "chat-1", **extra: Any) -> dict[str, Any]:
    return {"message_id": f"m{n}", "time": NOW + n, "chat_id": chat,
            "chat_info_stream_id": chat, "chat_info_platform": "qq",
            "chat_info_user_platform": "qq", "chat_info_user_id": "10001",
            "chat_info_user_nickname": "小明", "chat_info_create_time": NOW,
            "chat_info_last_active_time": NOW, "processed_plain_text": f"你好 {n}", **extra}


def _stream(stream: str, **extra: Any) -> dict[str, Any]:
    return {"stream_id": stream, "create_time": NOW, "last_active_time": NOW,
            "platform": "qq", "user_platform": "qq", "user_id": "10001",
            "user_nickname": "小明", **extra}


# -- no scope, no SQL ------------------------------------------------------------------------

def test_no_scope_is_refused_before_any_sql(bridge: ScopedDatabase) -> None:
    before = bridge.pool().stats().get("requests_num", 0)
    with pytest.raises(ScopeError, match="no scope given"):
        Messages.select().count()
    with pytest.raises(ScopeError, match="no scope given"), bridge.atomic():
        Messages.create(**_message(1))
    assert bridge.pool().stats().get("requests_num", 0) == before  # no connection borrowed


# -- MaiBot's idioms, two agents -------------------------------------------------------------

def test_each_agent_sees_only_its_own_rows(bridge: ScopedDatabase, world: World) -> None:
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    with agent_scope(a1):
        Messages.insert_many([_message(n) for n in range(5)]).execute()
        made = Messages.create(**_message(99, is_command=True))
    with agent_scope(b1):
        Messages.create(**_message(1, chat="chat-b"))
        assert Messages.select().count() == 1
        assert not Messages.select().where(Messages.message_id == "m99").exists()
        assert Messages.get_or_none(Messages.id == made.id) is None
    with agent_scope(a1):
        assert Messages.select().count() == 6
        assert made.is_emoji is False and made.agent_id is None  # MaiBot's default, server's
        got = Messages.get(Messages.message_id == "m99")
        assert got.id == made.id and got.agent_id == a1 and got.is_command is True
        window = list(Messages.select().where((Messages.chat_id == "chat-1")
                                              & ~Messages.is_command)
                      .order_by(Messages.time.desc()).limit(3))
        assert [m.message_id for m in window] == ["m4", "m3", "m2"]
        assert Messages.select().where(Messages.processed_plain_text.contains("好 3")).count() == 1
        assert Messages.select().where(fn.LOWER(Messages.chat_info_user_nickname)
                                       == "小明").count() == 6
        raw = list(Messages.raw("select message_id from messages order by time limit 2"))
        assert [m.message_id for m in raw] == ["m0", "m1"]


def test_save_update_delete_touch_only_the_scope(bridge: ScopedDatabase, world: World) -> None:
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    for agent in (a1, b1):
        with agent_scope(agent):
            PersonInfo.create(person_id="p1", platform="qq", user_id="1", nickname="old")
    with agent_scope(a1):
        person = PersonInfo.get(PersonInfo.person_id == "p1")
        person.nickname = "new"
        person.save()
        assert PersonInfo.update(know_times=3).execute() == 1  # no where: the scope's rows only
        assert PersonInfo.get(PersonInfo.person_id == "p1").nickname == "new"
    with agent_scope(b1):
        other = PersonInfo.get(PersonInfo.person_id == "p1")
        assert other.nickname == "old" and other.know_times is None
    with agent_scope(a1):
        assert PersonInfo.delete().execute() == 1  # no where: the scope's rows only
        assert PersonInfo.select().count() == 0
    with agent_scope(b1):
        assert PersonInfo.select().count() == 1
        PersonInfo.get(PersonInfo.person_id == "p1").delete_instance()
        assert not PersonInfo.select().exists()


def test_get_or_create_and_replace(bridge: ScopedDatabase, world: World) -> None:
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    with agent_scope(a1):
        first, made = Expression.get_or_create(situation="打招呼", style="你好呀",
                                               chat_id="chat-1",
                                               defaults={"last_active_time": NOW})
        again, made_again = Expression.get_or_create(situation="打招呼", style="你好呀",
                                                     chat_id="chat-1",
                                                     defaults={"last_active_time": NOW})
        assert made and not made_again and first.id == again.id and first.count == 1
        ChatStreams.replace(**_stream("s1", user_nickname="one")).execute()
        ChatStreams.replace(**_stream("s1", user_nickname="two")).execute()
        assert [s.user_nickname for s in ChatStreams.select()] == ["two"]
    with agent_scope(b1):
        ChatStreams.replace(**_stream("s1", user_nickname="b")).execute()  # its own s1
        assert ChatStreams.select().count() == 1
        assert Expression.select().count() == 0
    with agent_scope(a1):
        assert ChatStreams.get(ChatStreams.stream_id == "s1").user_nickname == "two"
        with pytest.raises(IntegrityError) as dup:
            ChatStreams.create(**_stream("s1"))
        assert isinstance(dup.value, ConflictError) and isinstance(dup.value,
                                                                  peewee.IntegrityError)


def test_writing_another_agents_id_is_refused(bridge: ScopedDatabase, world: World) -> None:
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    with agent_scope(a1):
        with pytest.raises(IsolationError):
            Messages.create(agent_id=b1, **_message(1))
        mine = Messages.create(**_message(2))
        mine.agent_id = b1
        with pytest.raises(IsolationError):
            mine.save()
        with pytest.raises(IsolationError):
            Messages.update(agent_id=b1).execute()
    with agent_scope(b1):
        assert Messages.select().count() == 0


def test_raw_sql_through_a_plugins_bridge_cannot_leave_its_key(db: TestDB, bridge: ScopedDatabase,
                                                               world: World) -> None:
    """A plugin login holding A1's key runs SQL of its own through the bridge: setting the
    scope to B1 by hand is refused at its next statement (maim_plugin's policies need the
    scope proven by a key in this transaction), reading and writing alike."""
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    with agent_scope(b1):
        Messages.create(**_message(1, chat="secret"))
    with connect(db.dsn("admin"), admin=True) as adm:
        secret = keys.issue(adm, agent_id=a1, name="plugin", permissions=["chat"]).secret
    plugin = ScopedDatabase(db.dsn("plugin"), api_key=secret)
    try:
        assert plugin.execute_sql("select count(*) from messages").fetchone() == (0,)
        with pytest.raises(IsolationError, match="not proven by an API key"), plugin.atomic():
            plugin.execute_sql("select set_config('maim.agent_id', %s, true)", [b1])
            plugin.execute_sql("select count(*) from messages")
        with pytest.raises(IsolationError, match="not proven by an API key"), plugin.atomic():
            plugin.execute_sql("select set_config('maim.agent_id', %s, true)", [b1])
            plugin.execute_sql("insert into person_info (agent_id, person_id, platform, "
                               "user_id) values (%s, 'x', 'qq', '1')", [b1])
        assert plugin.execute_sql("select count(*) from messages").fetchone() == (0,)
    finally:
        plugin.pool().close()
    with agent_scope(b1):
        assert PersonInfo.select().count() == 0 and Messages.select().count() == 1


# -- transactions ----------------------------------------------------------------------------

def test_atomic_is_one_block_and_rolls_back(bridge: ScopedDatabase, world: World) -> None:
    a1 = world.agent_id("A1")
    with agent_scope(a1):
        with pytest.raises(RuntimeError), bridge.atomic():
            Messages.create(**_message(1))
            raise RuntimeError("boom")
        assert Messages.select().count() == 0
        with bridge.atomic():
            Messages.create(**_message(1))
            with pytest.raises(IntegrityError), bridge.atomic():  # a savepoint
                ChatStreams.create(**_stream("s"))
                ChatStreams.create(**_stream("s"))
            Messages.create(**_message(2))
        assert Messages.select().count() == 2 and ChatStreams.select().count() == 0
        with bridge.atomic() as txn:
            Messages.create(**_message(3))
            txn.rollback()  # and a new transaction begins, in the same scope
            Messages.create(**_message(4))
        assert sorted(m.message_id for m in Messages.select()) == ["m1", "m2", "m4"]
    assert not bridge.in_transaction()


def test_the_scope_follows_to_thread(bridge: ScopedDatabase, world: World) -> None:
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")

    def store_and_look(n: int) -> set[str]:  # MaiBot's `await asyncio.to_thread(...)`
        Messages.create(**_message(n))
        return {m.agent_id for m in Messages.select()}

    async def serve(agent: str, n: int) -> set[str]:
        with agent_scope(agent):
            return await asyncio.to_thread(store_and_look, n)

    async def main() -> list[set[str]]:
        return list(await asyncio.gather(*(serve(a, n) for n, a in
                                           enumerate([a1, b1, a1, b1, a1, b1]))))

    seen = asyncio.run(main())
    assert seen == [{a1}, {b1}] * 3
    for agent in (a1, b1):
        with agent_scope(agent):
            assert Messages.select().count() == 3


def test_an_explicit_scope_and_an_api_key_scope(db: TestDB, world: World) -> None:
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    with connect(db.dsn("admin"), admin=True) as adm:
        secret = keys.issue(adm, agent_id=b1, name="bridge", permissions=["chat"]).secret
    own = ScopedDatabase(db.dsn("app"), agent_id=a1)
    with own.bind_ctx(MODELS):
        Messages.create(**_message(1))
        with agent_scope(b1):  # the database's own scope wins over the ambient one
            assert Messages.select().count() == 1
    plugin = ScopedDatabase(db.dsn("plugin"))
    with plugin.bind_ctx(MODELS):
        with key_scope(secret):
            Messages.create(**_message(7))
            assert [m.message_id for m in Messages.select()] == ["m7"]
        with agent_scope(a1), pytest.raises(IsolationError):  # a plugin login needs its key
            Messages.select().count()
    own.pool().close()
    plugin.pool().close()


def _agent_named(caplog: pytest.LogCaptureFixture, agent_id: str) -> list[int]:
    """For each statement the bridge sent (Peewee's log), how many of its conditions name
    ``agent_id``, checked to be all its parameters that do (``save()`` does not SET it)."""
    counts = []
    for record in caplog.records:
        sql, params = record.msg  # type: ignore[misc]  # Peewee logs (sql, params)
        named = sql.count('."agent_id" = %s)')  # qualified, as Peewee writes a condition
        assert list(params or []).count(agent_id) == named, (sql, params)
        counts.append(named)
    caplog.clear()
    return counts


def test_an_agent_scopes_queries_name_its_agent(db: TestDB, bridge: ScopedDatabase,
                                                world: World,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """Citus plans a query before policies apply, so only an agent_id in the query routes it
    to one shard rather than all (test_citus counts them): the bridge adds the scope's to
    every select, update and delete of an agent table, subqueries too. The rows are the
    policy's either way."""
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    caplog.set_level(logging.DEBUG, logger="peewee")
    with agent_scope(b1):
        Messages.create(**_message(1))
    with agent_scope(a1):
        Messages.create(**_message(1))
        caplog.clear()
        assert Messages.select().where(Messages.chat_id == "chat-1").count() == 1
        assert Messages.select().where(Messages.message_id == "m1").exists()
        made = Messages.get(Messages.message_id == "m1")
        made.is_emoji = True
        made.save()
        assert Messages.select().where(Messages.id.in_(Messages.select(Messages.id))).count() == 1
        assert Messages.update(is_emoji=False).execute() == 1
        assert Messages.delete().execute() == 1
        assert _agent_named(caplog, a1) == [1, 1, 1, 1, 2, 1, 1]
        list(Messages.raw("select * from messages"))  # raw SQL says what it says
        assert _agent_named(caplog, a1) == [0]
    with agent_scope(b1):
        assert Messages.select().count() == 1  # b1's row: a1's delete named a1
    with connect(db.dsn("admin"), admin=True) as adm:
        secret = keys.issue(adm, agent_id=a1, name="routed", permissions=["chat"]).secret
    plugin = ScopedDatabase(db.dsn("plugin"))
    with plugin.bind_ctx(MODELS), key_scope(secret), plugin.atomic():
        caplog.clear()
        Messages.select().count()  # opens the key: its agent is not known yet
        Messages.select().count()
        assert _agent_named(caplog, a1) == [0, 1]
    plugin.pool().close()


# -- naive datetimes -------------------------------------------------------------------------

def test_naive_datetimes_are_read_in_the_bridges_zone(bridge: ScopedDatabase,
                                                      world: World) -> None:
    """MaiBot writes `datetime.now()` (local time) and asks for `timestamp >= now - 1h`: in a
    UTC session those shift by the zone's offset (issue 15 measured 0 rows instead of 352)."""
    shanghai = ZoneInfo("Asia/Shanghai")
    local_now = datetime.now(shanghai).replace(tzinfo=None)  # what MaiBot's clock says
    with agent_scope(world.agent_id("A1")):
        for minutes in (5, 30, 90):
            LLMUsage.create(model_name="deepseek", user_id="system", request_type="chat",
                            endpoint="/chat", prompt_tokens=1, completion_tokens=1,
                            total_tokens=2, cost=0.1, status="success",
                            timestamp=local_now - timedelta(minutes=minutes))
        recent = LLMUsage.select().where(LLMUsage.timestamp >= local_now - timedelta(hours=1))
        assert recent.count() == 2
        stored = bridge.execute_sql("select min(timestamp) from llm_usage").fetchone()
        assert stored is not None
        assert stored[0] == (local_now - timedelta(minutes=90)).replace(tzinfo=shanghai)
        first = LLMUsage.select().order_by(LLMUsage.timestamp).first()
        assert first.timestamp == local_now - timedelta(minutes=90)  # naive, as written
        assert first.timestamp.tzinfo is None
        assert LLMUsage.select().where(LLMUsage.timestamp
                                       >= datetime.now(UTC) - timedelta(hours=1)).count() == 2


# -- the three descriptions of a table agree -------------------------------------------------

_TYPES = {"TextField": "text", "IntegerField": "integer", "DoubleField": "double precision",
          "BooleanField": "boolean", "ZonedDateTimeField": "timestamp with time zone",
          "UUIDField": "uuid", "JsonbField": "jsonb"}


def _constant(default: str | None) -> Any:
    """A column default that is a constant, as Python; None for none or an expression."""
    import re

    if default is None:
        return None
    if default in ("true", "false"):
        return default == "true"
    if re.fullmatch(r"-?\d+", default):
        return int(default)
    if re.fullmatch(r"-?\d+\.\d*|\(-?\d+\.\d*\)", default):
        return float(default.strip("()"))
    if (m := re.fullmatch(r"'(.*)'::text", default)) is not None:
        return m[1]
    return None


def test_every_bridge_model_matches_its_row_model_and_the_catalog(db: TestDB) -> None:
    import psycopg

    from maim_db.peewee import CONFIG_MODELS
    from maim_db.peewee.models import DEFAULTS

    with psycopg.connect(db.superuser) as conn:
        columns: dict[str, list[tuple[str, str, bool, str | None]]] = {}
        for table, name, kind, nullable, default in conn.execute(
                "select table_name, column_name, data_type, is_nullable = 'YES', "
                "column_default from information_schema.columns where table_schema = "
                "'public' order by table_name, ordinal_position"):
            columns.setdefault(table, []).append((name, kind, nullable, default))
        unique = {(t, tuple(cols)) for t, cols in conn.execute(
            "select c.conrelid::regclass::text, array_agg(a.attname order by k.n) "
            "from pg_constraint c cross join unnest(c.conkey) with ordinality as k(attnum, n) "
            "join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.attnum "
            "where c.contype = 'u' group by c.oid, c.conrelid")}
    assert len(MODELS) == 18 and len(CONFIG_MODELS) == 12
    for model in (*MODELS, *CONFIG_MODELS):
        table = model._meta.table_name
        assert table == model.row.table
        fields = {f.name: f for f in model._meta.sorted_fields}
        live = columns[table]
        assert set(fields) == set(model.row.model_fields), model  # Peewee puts the key first
        assert [c[0] for c in live] == list(model.row.model_fields), model
        for name, kind, nullable, default in live:
            field = fields[name]
            assert _TYPES[type(field).__name__] == kind, (table, name, kind)
            assert field.null is nullable, (table, name)
            if model in MODELS and name not in ("agent_id", "id"):
                assert field.default == _constant(default), (table, name, default)
        if model in MODELS:
            keys = {cols[1:] for t, cols in unique if t == table and cols[0] == "agent_id"}
            assert ({model.unique_key} if model.unique_key else set()) == keys, table
            assert set(DEFAULTS.get(table, {})) <= set(fields)


def test_more_of_maibots_idioms(bridge: ScopedDatabase, world: World) -> None:
    """The shapes of MaiBot's hot and periodic queries (docs: reference maibot-sqlite §3)."""
    from maim_db.peewee import ChatHistory, Images, Jargon, ThinkingBack

    with agent_scope(world.agent_id("A1")):
        for n in range(3):
            ChatHistory.create(chat_id=f"c{n % 2}", start_time=NOW + n, end_time=NOW + n,
                               original_text="…", participants="[]", theme="t",
                               keywords="[]", summary="s")
        ids = [h.id for h in ChatHistory.select().order_by(ChatHistory.start_time)]
        assert ChatHistory.get_by_id(ids[0]).start_time == NOW
        ChatHistory.update(count=ChatHistory.count + 1).where(ChatHistory.id == ids[1]).execute()
        assert [h.count for h in ChatHistory.select().order_by(ChatHistory.start_time)] == [0, 1, 0]
        assert ChatHistory.select().where(ChatHistory.id.in_(ids[:2])).count() == 2
        chats = [h.chat_id for h in ChatHistory.select(ChatHistory.chat_id).distinct()
                 .order_by(ChatHistory.chat_id).limit(200)]
        assert chats == ["c0", "c1"]
        grouped = dict(ChatHistory.select(ChatHistory.chat_id, fn.COUNT(ChatHistory.id))
                       .group_by(ChatHistory.chat_id).tuples())
        assert grouped == {"c0": 2, "c1": 1}
        assert [d["chat_id"] for d in ChatHistory.select().order_by(ChatHistory.start_time)
                .dicts()][:1] == ["c0"]
        assert sum(1 for _ in ChatHistory.select().iterator()) == 3
        ChatHistory.delete().where(ChatHistory.id.in_(ids[:1])).execute()
        Jargon.create(content="yyds", chat_id="c0", meaning="永远的神", is_global=True)
        assert [j.content for j in Jargon.select().where(Jargon.is_global)
                .order_by(Jargon.count.desc())] == ["yyds"]
        ThinkingBack.create(chat_id="c0", question="q", create_time=NOW, update_time=NOW - 99999)
        assert ThinkingBack.delete().where((ThinkingBack.found_answer == 0)
                                           & (ThinkingBack.update_time < NOW - 36000)
                                           ).execute() == 1
        Images.create(emoji_hash="h", path="/p", timestamp=NOW, type="emoji")
        assert Images.get_or_none(Images.emoji_hash == "h").count == 1
        assert Images.delete().where(Images.type == "emoji").execute() == 1
        assert list(bridge.execute_sql("select '100%'").fetchall()) == [("100%",)]
    with agent_scope(world.agent_id("B1")):
        assert ChatHistory.select().count() == 0 and Jargon.select().count() == 0


def test_a_suspended_agent_is_refused_through_the_bridge(bridge: ScopedDatabase, db: TestDB,
                                                         world: World) -> None:
    from maim_db.control import tenancy

    a1 = world.agent_id("A1")
    with agent_scope(a1):
        Messages.create(**_message(1))
    with connect(db.dsn("admin"), admin=True) as adm:
        tenancy.set_agent_status(adm, a1, "suspended")
    with agent_scope(a1):
        with pytest.raises(IsolationError, match="suspended"):
            Messages.select().count()
        with pytest.raises(IsolationError, match="suspended"), bridge.atomic():
            Messages.create(**_message(2))
    with connect(db.dsn("admin"), admin=True) as adm:
        tenancy.set_agent_status(adm, a1, "active")
    with agent_scope(a1):
        assert Messages.select().count() == 1


# -- what a review found ---------------------------------------------------------------------

def test_a_coroutine_cannot_run_in_another_agents_open_transaction(bridge: ScopedDatabase,
                                                                   world: World) -> None:
    """Peewee keeps its open transaction per thread: a coroutine holding atomic() across an
    await leaves it where another coroutine of the loop would find it. That one's statements
    are refused, not run in the first agent's scope."""
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    refused: list[BaseException] = []

    async def holder() -> None:
        with agent_scope(a1), bridge.atomic():
            Messages.create(**_message(1))
            await asyncio.sleep(0.05)
            Messages.create(**_message(2))

    async def other() -> None:
        await asyncio.sleep(0.01)
        with agent_scope(b1):
            for attempt in (lambda: Messages.select().count(),
                            lambda: Messages.create(**_message(3)),
                            lambda: bridge.atomic().__enter__()):
                with pytest.raises(ScopeError, match="open in this thread") as caught:
                    attempt()
                refused.append(caught.value)

    async def main() -> None:
        await asyncio.gather(holder(), other())

    asyncio.run(main())
    assert len(refused) == 3
    with agent_scope(a1):
        assert Messages.select().count() == 2
    with agent_scope(b1):
        assert Messages.select().count() == 0


def test_a_transaction_left_open_is_not_inherited_by_another_agent(bridge: ScopedDatabase,
                                                                   world: World) -> None:
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    with agent_scope(a1), bridge.manual_commit():
        bridge.begin()  # and never committed: the block stays with this thread
        Messages.create(**_message(1))
    with agent_scope(b1), pytest.raises(ScopeError, match="open in this thread"):
        Messages.select().count()
    with agent_scope(a1):
        bridge.rollback()
        assert Messages.select().count() == 0


def test_fields_params_and_errors_as_peewee_code_expects(bridge: ScopedDatabase,
                                                         world: World) -> None:
    from maim_db import ConfigurationError, InputError
    from maim_db.peewee import Images

    with agent_scope(world.agent_id("A1")):
        LLMUsage.create(model_name="m", user_id="u", request_type="r", endpoint="/",
                        prompt_tokens=1, completion_tokens=1, total_tokens=2, cost=0.0,
                        status="ok", timestamp="2026-07-01 12:00:00")  # MaiBot's text form
        row = LLMUsage.select(LLMUsage.timestamp.year.alias("y"),
                              LLMUsage.timestamp.month.alias("m")).dicts().get()
        assert (row["y"], row["m"]) == (2026, 7)
        assert LLMUsage.get().timestamp == datetime(2026, 7, 1, 12)
        named = bridge.execute_sql("select %(x)s::int + 1", {"x": 41}).fetchone()
        assert named == (42,)
        in_array = bridge.execute_sql("select count(*) from llm_usage where timestamp = "
                                      "any(%s)", [[datetime(2026, 7, 1, 12)]]).fetchone()
        assert in_array == (1,)  # a naive datetime inside a list is read in the zone too
        with pytest.raises(peewee.IntegrityError) as missing:  # NOT NULL, as psycopg2 said
            PersonInfo.create(person_id="p", platform="qq")
        assert isinstance(missing.value, InputError) and "user_id" in str(missing.value)
        with pytest.raises(peewee.IntegrityError) as checked:  # a CHECK
            Images.create(emoji_hash="h", path="/p", timestamp=NOW, type="x", count=-1)
        assert checked.value.constraint == "images_count_check"
    with pytest.raises(ConfigurationError):
        Messages.create_table(safe=False)
    with pytest.raises(ConfigurationError):
        Messages.drop_table()
    Messages.create_table()  # MaiBot's start-up: nothing to do


@pytest.mark.parametrize(("tz", "summer", "winter"), [
    ("Europe/Berlin", "2:00:00", "1:00:00"),
    ("CET-1CEST,M3.5.0,M10.5.0/3", "2:00:00", "1:00:00"),  # a POSIX rule, no zone name
])
def test_the_default_zone_keeps_daylight_saving(tz: str, summer: str, winter: str) -> None:
    """The machine's zone, not today's offset: a July time read in January gets July's."""
    import os
    import subprocess
    import sys

    code = ("from datetime import datetime\nfrom maim_db.settings import zone\nz = zone(None)[0]\n"
            "print(datetime(2026, 7, 1, 12, tzinfo=z).utcoffset(), "
            "datetime(2026, 1, 1, 12, tzinfo=z).utcoffset())")
    ran = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, TZ=tz),
                         capture_output=True, text=True, timeout=60)
    assert ran.stdout.split() == [summer, winter], ran.stderr
