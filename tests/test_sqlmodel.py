"""maim_db.sqlmodel (issue 35, item 3): MaiBot 1.2.1's SQLModel classes and sessions on the
``maibot1`` tables, as the real logins — and the bodies of real 1.2.1 functions (usage
recording, chat-session save and lookup, message store, the hourly statistics) run on it for
two agents at once, each seeing only its own rows (tests/maibot1_source.py reads them from a
MaiBot 1.2.1 source; without one they skip, unless MAIMDB_REQUIRE_MAIBOT=1)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, Generic, TypeVar

import pytest
from sqlalchemy import exc, text
from sqlmodel import Session, func, select

from maim_db import ScopeError, agent_scope, connect
from maim_db import sqlalchemy as maim_sqlalchemy
from maim_db.sqlmodel import database, models
from maim_db.sqlmodel.models import (
    ChatSession,
    Images,
    ImageType,
    Messages,
    ModelUsage,
    StatisticsMessageHourly,
    StatisticsModelHourly,
    StatisticsToolHourly,
    ToolRecord,
)
from tests import maibot1_source
from tests.databases import TestDB, World

ROOT = Path(__file__).resolve().parent.parent
#: Half an hour off UTC, so an hour bucketed in the wrong zone is another hour.
ZONE = "Asia/Kolkata"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_sqlmodel", ROOT / "tools/gen_sqlmodel.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def sm(db: TestDB, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """maim_db.sqlmodel.database on this test's database (the app login), in ``ZONE``."""
    monkeypatch.setenv("MAIMDB_TIMEZONE", ZONE)
    engine = database.make_engine(db.dsn("app"), pool_size=2, max_overflow=2)
    # into the module's dict: getattr() on the module would make the default engine
    monkeypatch.setitem(vars(database), "engine", engine)
    monkeypatch.setitem(vars(database), "SessionLocal", database.make_sessionmaker(engine))
    yield database
    engine.dispose()


# -- the generated module ---------------------------------------------------------------------

@pytest.mark.server_independent
def test_the_generated_models_are_current() -> None:
    assert not _generator().stale(), "run: python tools/gen_sqlmodel.py"


@pytest.mark.server_independent
def test_a_hand_edit_of_the_generated_models_is_caught(tmp_path: Path) -> None:
    gen = _generator()
    target = tmp_path / gen.TARGET
    target.parent.mkdir(parents=True)
    target.write_text((ROOT / gen.TARGET).read_text().replace("cost: float", "cost: int", 1))
    assert gen.stale(tmp_path)


_DESCRIBE = """
import json, sys, types
from enum import Enum
from sqlmodel import SQLModel
module = types.ModuleType("database_model")
sys.modules["database_model"] = module
exec(sys.stdin.read(), module.__dict__)
out = {}
for name, cls in vars(module).items():
    if isinstance(cls, type) and issubclass(cls, Enum) and cls is not Enum:
        out[name] = {"enum": [[m.name, m.value] for m in cls]}
    elif isinstance(cls, type) and issubclass(cls, SQLModel) and hasattr(cls, "__table__"):
        keys = {c.key for c in cls.__table__.primary_key}
        fields = {}
        for field_name, field in cls.model_fields.items():
            column = cls.__table__.c.get(field_name)
            default = field.default
            fields[field_name] = {
                "key": column is not None and column.key in keys
                       or field_name in keys or getattr(field, "primary_key", False) is True,
                "now": field.default_factory is not None,
                "default": getattr(default, "value", default)
                           if isinstance(default, (str, int, float, bool, Enum)) else None,
            }
        out[name] = {"table": cls.__tablename__, "fields": fields}
print(json.dumps(out))
"""


def test_the_classes_are_1_2_1s_own() -> None:
    """Each class of 1.2.1's database_model.py, run from its source: here under the same
    name, with the same fields in the same order, the same key, the same ``datetime.now``
    factories and constant defaults, the same enums."""
    code = maibot1_source.source("src/common/database/database_model.py")
    ran = subprocess.run([sys.executable, "-c", _DESCRIBE], input=code, capture_output=True,
                         text=True, check=True)
    theirs = json.loads(ran.stdout)
    ours = json.loads(subprocess.run(
        [sys.executable, "-c", _DESCRIBE], capture_output=True, text=True, check=True,
        input=(ROOT / "maim_db/sqlmodel/models.py").read_text().replace(
            "from .types import", "from maim_db.sqlmodel.types import")).stdout)
    assert sorted(theirs) == sorted(ours)
    assert len([spec for spec in theirs.values() if "fields" in spec]) == 24
    for name, spec in theirs.items():
        if "enum" in spec:
            assert ours[name] == spec, name
            continue
        assert ours[name]["table"] == spec["table"]
        assert list(ours[name]["fields"]) == list(spec["fields"]), name
        for field, mine in ours[name]["fields"].items():
            want = spec["fields"][field]
            assert (mine["key"], mine["now"]) == (want["key"], want["now"]), (name, field)
            if want["default"] is not None:
                assert mine["default"] == want["default"], (name, field)


# -- the sessions -----------------------------------------------------------------------------

def _usage(tokens: int = 10, **values: Any) -> ModelUsage:
    return ModelUsage(model_name="m", model_api_provider_name="p", request_type="chat.reply",
                      time_cost=0.5, prompt_tokens=tokens, completion_tokens=1,
                      total_tokens=tokens + 1, cost=0.1, **values)


def test_an_insert_reads_back_the_databases_id_and_an_explicit_one_is_kept(
        sm: Any, world: World) -> None:
    with agent_scope(world.agent_id("A1")):
        with sm.get_db_session() as session:
            made, kept = _usage(), _usage(id=12345)
            session.add_all([made, kept])
        assert made.id is not None and 0 < made.id < 2**53  # readable after the block
        assert kept.id == 12345
        with sm.get_db_session() as session:
            assert session.get(ModelUsage, made.id) is not None
            assert made.prompt_cache_enabled is False  # 1.2.1's default, written


_SAMPLE = {str: "x", int: 7, float: 0.5, bool: True, bytes: b"\x00\xff",
           datetime: datetime(2026, 8, 20, 21, 15)}


def test_every_class_writes_and_reads_its_table(sm: Any, world: World) -> None:
    """A row of each of the 24 classes, its required fields given, written and read back by
    its key: the classes' columns, types and keys are the tables'."""
    rows = []
    for name in models.__all__:
        cls = getattr(models, name)
        if not hasattr(cls, "__table__"):
            continue
        values = {field: _SAMPLE[info.annotation]
                  for field, info in cls.model_fields.items() if info.is_required()}
        rows.append((cls, values))
    assert len(rows) == 24
    with agent_scope(world.agent_id("A1")):
        with sm.get_db_session() as session:
            made = [cls(**values) for cls, values in rows]
            session.add_all(made)
        keys = [row.__mapper__.primary_key_from_instance(row) for row in made]
        with sm.get_db_session() as session:
            for (cls, values), key in zip(rows, keys, strict=True):
                found = session.get(cls, key)
                assert found is not None, cls.__name__
                assert {f: getattr(found, f) for f in values} == values, cls.__name__


def test_commit_on_success_rollback_on_error_and_auto_commit_false(
        sm: Any, world: World) -> None:
    with agent_scope(world.agent_id("A1")):
        with pytest.raises(RuntimeError), sm.get_db_session() as session:
            session.add(_usage(1))
            session.flush()
            raise RuntimeError("the block failed")
        with sm.get_db_session(auto_commit=False) as session:
            session.add(_usage(2))
            session.flush()  # never committed: closed, so rolled back
        with sm.get_db_session_manual() as session:
            session.add(_usage(3))
            session.commit()
        with sm.get_db_session() as session:
            session.add(_usage(4))
        with sm.get_db_session() as session:
            tokens = sorted(session.exec(select(ModelUsage.prompt_tokens)).all())
    assert tokens == [3, 4]


def test_get_db_yields_a_session_it_never_commits(sm: Any, world: World) -> None:
    with agent_scope(world.agent_id("A1")):
        dependency = sm.get_db()
        session = next(dependency)
        session.add(_usage(5))
        session.flush()
        dependency.close()
        with sm.get_db_session() as session:
            assert session.exec(select(func.count()).select_from(ModelUsage)).one() == 0


def test_no_scope_is_a_scope_error_before_any_sql(sm: Any) -> None:
    with pytest.raises(ScopeError), sm.get_db_session() as session:
        session.exec(select(ChatSession)).all()


def test_naive_times_are_local_both_ways_in_the_orm_and_in_raw_sql(
        sm: Any, db: TestDB, world: World) -> None:
    local = datetime(2026, 1, 2, 3, 4, 5, 678000)  # 02 Jan 03:04:05 in Kolkata
    with agent_scope(world.agent_id("A1")):
        with sm.get_db_session() as session:
            row = ToolRecord(tool_id="t", timestamp=local, session_id="s", tool_name="x")
            session.add(row)
        with sm.get_db_session() as session:
            read = session.exec(select(ToolRecord)).one()
            raw = session.exec(text("select timestamp from tool_records")).one()[0]
            since = session.exec(text("select count(*) from tool_records where timestamp >= "
                                      ":t"), params={"t": local}).one()[0]
            hour = session.exec(text("select date_trunc('hour', timestamp) "
                                     "from tool_records")).one()[0]
            after = session.exec(select(ToolRecord).where(
                ToolRecord.timestamp >= local - timedelta(seconds=1))).all()
            before = session.exec(select(ToolRecord).where(
                ToolRecord.timestamp > local)).all()
    assert read.timestamp == local and raw == local and since == 1
    assert len(after) == 1 and before == []  # the ORM compares in local time too
    assert hour == datetime(2026, 1, 2, 3)  # bucketed in local time
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as plain:  # what is stored
        stored = plain.scalar("select timestamp from maibot1.tool_records")
    assert stored == datetime(2026, 1, 1, 21, 34, 5, 678000, tzinfo=UTC)


def test_the_transaction_set_up_costs_no_round_trip(
        sm: Any, db: TestDB, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """search_path and TimeZone ride in the round trip that opens the scope: a session of
    this engine makes as many round trips as one of a plain maim_db engine."""
    trips: list[int] = []
    original = maim_sqlalchemy._Block._round_trip

    def counted(self: Any, calls: list[Any]) -> Any:
        trips.append(len(calls))
        return original(self, calls)

    monkeypatch.setattr(maim_sqlalchemy._Block, "_round_trip", counted)
    plain = maim_sqlalchemy.create_engine(db.dsn("app"), pool_size=1, max_overflow=0)
    counts = []
    with agent_scope(world.agent_id("A1")):
        for factory in (sm.SessionLocal, database.make_sessionmaker(plain)):
            trips.clear()
            with factory() as session:
                session.add(_usage())
                session.commit()
                session.get(ModelUsage, 1)
            counts.append(list(trips))
    plain.dispose()
    assert len(counts[0]) == len(counts[1]) and counts[0][0] == counts[1][0] + 2


def test_raw_sql_means_the_1x_tables_not_the_0x_ones(sm: Any, world: World) -> None:
    """``llm_usage`` exists in both generations: in a session, unqualified SQL reads 1.x's."""
    with agent_scope(world.agent_id("A1")):
        with sm.get_db_session() as session:
            session.add(_usage(77))
        with sm.get_db_session() as session:
            found = session.exec(text("select prompt_tokens from llm_usage")).all()
    assert [r[0] for r in found] == [77]
    with agent_scope(world.agent_id("A1")), sm.engine.connect() as connection:  # 1.x does too
        assert connection.exec_driver_sql("select prompt_tokens from llm_usage").all() == [(77,)]


def test_enums_are_stored_as_1x_stores_them(sm: Any, db: TestDB, world: World) -> None:
    with agent_scope(world.agent_id("A1")):
        with sm.get_db_session() as session:
            session.add(Images(image_hash="h", description="d", full_path="p",
                               image_type=ImageType.IMAGE))
            session.add(Images(image_hash="e", description="d", full_path="q"))
        with sm.get_db_session() as session:
            types = {i.image_hash: i.image_type for i in session.exec(select(Images)).all()}
    assert types == {"h": ImageType.IMAGE, "e": ImageType.EMOJI}
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as plain:
        stored = plain.rows("select image_type from maibot1.images order by image_hash")
    assert [r[0] for r in stored] == ["EMOJI", "IMAGE"]  # SQLAlchemy's Enum: the names


def test_a_pragma_is_a_programming_error_which_1x_does_not_catch(sm: Any,
                                                                 world: World) -> None:
    """1.2.1's reply-effect clear runs ``PRAGMA wal_checkpoint`` under ``except
    OperationalError``: on PostgreSQL it is a syntax error, which that does not catch."""
    with (agent_scope(world.agent_id("A1")), sm.engine.connect() as connection,
          pytest.raises(exc.ProgrammingError) as raised):
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    assert not isinstance(raised.value, exc.OperationalError)


def test_the_module_makes_no_schema_and_needs_no_initialising() -> None:
    assert database.initialize_database() is None
    assert database.ensure_runtime_performance_indexes() is None
    assert not hasattr(database, "create_all")


# -- real 1.2.1 functions, two agents at once -------------------------------------------------

class _Log:
    """1.x's logger, keeping what it was told (1.x catches its database errors and logs)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, message: str, *args: Any, **kw: Any) -> None:
        self.errors.append(message)

    def debug(self, *args: Any, **kw: Any) -> None: ...
    info = warning = debug


T = TypeVar("T")


class _BaseDatabaseDataModel(Generic[T]):
    """1.x's abstract data-model base (src/common/data_models/__init__.py), as a stand-in."""


def _two_agents(world: World, work: Callable[[str, str], T]) -> dict[str, T]:
    """``work(agent_id, name)`` for A1 and B1 at once, each in its scope, in threads by
    ``asyncio.to_thread`` (as 1.x moves its sessions off the loop)."""
    async def one(name: str) -> T:
        with agent_scope(world.agent_id(name)):
            return await asyncio.to_thread(work, world.agent_id(name), name)

    async def both() -> list[T]:
        return list(await asyncio.gather(one("A1"), one("B1")))

    return dict(zip(("A1", "B1"), asyncio.run(both()), strict=True))


def test_1_2_1s_usage_recording_runs_for_two_agents(sm: Any, world: World) -> None:
    log = _Log()
    code = maibot1_source.load("src/llm_models/utils.py", "LLMUsageRecorder",
                               given={"logger": log, "ModelInfo": object, "UsageRecord": object})
    recorder = code["LLMUsageRecorder"]()

    def work(agent_id: str, name: str) -> list[tuple[int, str]]:
        n = {"A1": 3, "B1": 2}[name]
        for i in range(n):
            recorder.record_usage_to_database(
                model_info=SimpleNamespace(model_identifier=f"model-{name}", name=f"m-{name}",
                                           api_provider="p", cache=False, price_in=1.0,
                                           price_out=2.0, cache_price_in=0.0),
                model_usage=SimpleNamespace(prompt_tokens=1000 * (i + 1), completion_tokens=10,
                                            total_tokens=1010, prompt_cache_hit_tokens=0,
                                            prompt_cache_miss_tokens=0, model_name="x"),
                user_id="u", request_type="chat.reply", session_id=f" s-{name} ",
                time_cost=0.25)
        with sm.get_db_session() as session:
            return [(u.prompt_tokens, u.session_id) for u in
                    session.exec(select(ModelUsage).order_by(ModelUsage.prompt_tokens)).all()]

    seen = _two_agents(world, work)
    assert log.errors == []
    assert seen["A1"] == [(1000, "s-A1"), (2000, "s-A1"), (3000, "s-A1")]
    assert seen["B1"] == [(1000, "s-B1"), (2000, "s-B1")]


def _chat_code(log: _Log) -> dict[str, Any]:
    model = maibot1_source.load("src/common/data_models/chat_session_data_model.py",
                                "MaiChatSession",
                                given={"BaseDatabaseDataModel": _BaseDatabaseDataModel})
    return maibot1_source.load(
        "src/chat/message_receive/chat_manager.py", "ChatManager._save_session",
        "ChatManager.get_existing_session_by_session_id",
        given={"logger": log, "BotChatSession": model["MaiChatSession"],
               "MaiChatSession": model["MaiChatSession"]})


def test_1_2_1s_chat_session_save_and_lookup_run_for_two_agents(sm: Any, world: World) -> None:
    """Both agents save the same group's session (one ``session_id``): with 1.2.1's global
    unique key the second would fail and learn the first exists; here each has its own."""
    log = _Log()
    code = _chat_code(log)
    session_cls = code["BotChatSession"]

    def work(agent_id: str, name: str) -> tuple[Any, Any, int]:
        manager = SimpleNamespace(sessions={}, last_messages={},
                                  get_session_by_session_id=lambda session_id: None)
        first = session_cls(session_id="qq:g:10001", platform="qq", group_id="10001",
                            group_name=f"group of {name}")
        code["_save_session"](manager, first)
        first.group_name = f"group of {name}, renamed"
        code["_save_session"](manager, first)  # found: updated in place
        found = code["get_existing_session_by_session_id"](manager, "qq:g:10001")
        missing = code["get_existing_session_by_session_id"](manager, "qq:g:20002")
        with sm.get_db_session() as session:
            rows = len(session.exec(select(ChatSession)).all())
        return found.group_name, missing, rows

    seen = _two_agents(world, work)
    assert log.errors == []
    assert seen == {"A1": ("group of A1, renamed", None, 1),
                    "B1": ("group of B1, renamed", None, 1)}


def _store_code() -> tuple[Callable[..., None], Callable[..., Any]]:
    utils = SimpleNamespace(fill_reply_frequency_if_available=lambda message: None,
                            _persist_image_components=lambda components, session: None,
                            from_MaiSeq_to_db_record_msg=lambda seq: b"\x91\xa3msg")
    store = maibot1_source.load("src/common/utils/utils_message.py",
                                "MessageUtils.store_message_to_db",
                                given={"MessageUtils": utils,
                                       "_DB_WRITE_THREAD_LOCK": threading.Lock()})
    to_db = maibot1_source.load("src/common/data_models/mai_message_data_model.py",
                                "MaiMessage.to_db_instance",
                                given={"MessageUtils": utils,
                                       "BaseDatabaseDataModel": _BaseDatabaseDataModel})
    return store["store_message_to_db"], to_db["to_db_instance"]


def _message(to_db: Callable[..., Any], agent: str, n: int, when: datetime) -> Any:
    message = SimpleNamespace(
        message_id=f"{agent}-{n}", timestamp=when, platform="qq",
        message_info=SimpleNamespace(
            user_info=SimpleNamespace(user_id="42", user_nickname="小明", user_cardname=None),
            group_info=SimpleNamespace(group_id="10001", group_name=f"group of {agent}"),
            additional_config={"n": n}),
        is_mentioned=False, is_at=n == 0, session_id="qq:g:10001", reply_to=None,
        is_emoji=False, is_picture=False, is_command=False, is_notify=False,
        raw_message=SimpleNamespace(components=[]), processed_plain_text=f"hello {n}",
        reply_frequency=None, raw_content=None)
    message.to_db_instance = partial(to_db, message)
    return message


def test_1_2_1s_message_store_runs_for_two_agents(sm: Any, world: World) -> None:
    store, to_db = _store_code()
    when = datetime(2026, 8, 20, 21, 15)

    def work(agent_id: str, name: str) -> list[tuple[str, datetime, str | None, bytes]]:
        for n in range({"A1": 4, "B1": 2}[name]):
            store(_message(to_db, name, n, when))
        with sm.get_db_session() as session:
            rows = session.exec(select(Messages).order_by(Messages.message_id)).all()
        return [(m.message_id, m.timestamp, m.additional_config, m.raw_content) for m in rows]

    with maibot1_source.port():  # store imports get_db_session where it runs
        seen = _two_agents(world, work)
    assert [m[0] for m in seen["A1"]] == ["A1-0", "A1-1", "A1-2", "A1-3"]
    assert [m[0] for m in seen["B1"]] == ["B1-0", "B1-1"]
    assert seen["A1"][0][1:] == (when, '{"n": 0}', b"\x91\xa3msg")


_STATISTICS = "src/services/statistics_aggregation_service.py"
_STATISTICS_NAMES = ("refresh_statistics_aggregates", "_aggregate_messages",
                     "_aggregate_tool_records", "_aggregate_model_usage", "_get_cursor",
                     "_set_cursor_to_table_max")


def _ported_statistics() -> str:
    guide = (ROOT / "docs/porting-maibot.md").read_text(encoding="utf-8")
    (block,) = [textwrap.dedent(code) for code in re.findall(r"```python\n(.*?)```", guide, re.S)
                if "# ported: statistics_aggregation_service" in code]
    return block


def test_1_2_1s_hourly_statistics_fail_on_sqlites_sql(sm: Any, world: World) -> None:
    code = maibot1_source.load(_STATISTICS, *_STATISTICS_NAMES, given={"logger": _Log()})
    with agent_scope(world.agent_id("A1")):
        with sm.get_db_session() as session:
            session.add(_usage())
        with pytest.raises(exc.ProgrammingError, match="function strftime"):
            code["refresh_statistics_aggregates"]()


def test_1_2_1s_hourly_statistics_ported_run_for_two_agents(sm: Any, world: World) -> None:
    """1.2.1's own ``refresh_statistics_aggregates`` and ``_get_cursor`` around the ported
    aggregations (docs/porting-maibot.md), after 1.2.1's usage recording and message store
    wrote each agent's rows; run twice, the second run adds only what is new."""
    code = maibot1_source.load(_STATISTICS, *_STATISTICS_NAMES, given={"logger": _Log()})
    exec(_ported_statistics(), code)  # the ported functions replace SQLite's
    store, to_db = _store_code()
    when = datetime(2026, 8, 20, 21, 15)

    def work(agent_id: str, name: str) -> tuple[Any, ...]:
        n = {"A1": 3, "B1": 1}[name]
        for i in range(n):
            store(_message(to_db, name, i, when))
        with sm.get_db_session() as session:
            for i in range(n):
                session.add(_usage(100, timestamp=when))
                session.add(ToolRecord(tool_id=f"t{i}", timestamp=when, session_id="s",
                                       tool_name="search"))
        code["refresh_statistics_aggregates"]()
        with sm.get_db_session() as session:
            session.add(ToolRecord(tool_id="late", timestamp=when, session_id="s",
                                   tool_name="search"))
        code["refresh_statistics_aggregates"]()
        with sm.get_db_session() as session:
            message = session.exec(select(StatisticsMessageHourly)).all()
            tool = session.exec(select(StatisticsToolHourly)).all()
            model = session.exec(select(StatisticsModelHourly)).all()
        return ([(m.bucket_time, m.chat_id, m.chat_name, m.message_count) for m in message],
                [(t.bucket_time, t.tool_name, t.call_count) for t in tool],
                [(m.bucket_time, m.module_name, m.request_count, m.prompt_tokens)
                 for m in model])

    with maibot1_source.port():  # once, around both threads
        seen = _two_agents(world, work)
    hour = datetime(2026, 8, 20, 21)
    assert seen["A1"] == ([(hour, "g10001", "group of A1", 3)], [(hour, "search", 4)],
                          [(hour, "chat", 3, 300)])
    assert seen["B1"] == ([(hour, "g10001", "group of B1", 1)], [(hour, "search", 2)],
                          [(hour, "chat", 1, 100)])


def test_a_session_class_is_sqlmodels(sm: Any) -> None:
    with sm.get_db_session_manual() as session:
        assert isinstance(session, Session) and session.expire_on_commit is False
