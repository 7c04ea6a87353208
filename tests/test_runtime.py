"""The MaiBot runtime tables (migrations/0005_runtime.sql): MaiBot's natural keys are unique
per agent, not globally; MaiBot's defaults; CHECKs. (Model = catalog and isolation are held
for every table by test_schema_contract.py and test_isolation_matrix.py.)"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from maim_db import connect
from maim_db.errors import ConflictError, InputError
from maim_db.tables.runtime import (
    ChatStream,
    Emoji,
    EmojiDescriptionCache,
    GroupInfo,
    Image,
    LLMUsage,
    Message,
    OnlineTime,
    PersonInfo,
    RuntimeState,
)
from tests.databases import TestDB, World


def _stream(stream_id: str) -> ChatStream:
    return ChatStream(stream_id=stream_id, create_time=1.0, last_active_time=2.0, platform="qq",
                      user_platform="qq", user_id="10001", user_nickname="n",
                      group_platform="qq", group_id="941657197", group_name="g")


def test_two_agents_in_one_group_do_not_collide(db: TestDB, world: World) -> None:
    stream_id = "a544edeb1a9b73e3e1d77dff36e41264"
    rows = {}
    for a in ("A1", "B1"):
        with connect(db.dsn("app"), agent_id=world.agent_id(a)) as app:
            rows[a] = app.insert(_stream(stream_id))
            app.insert(PersonInfo(person_id="p1", platform="qq", user_id="10001"))
            app.insert(GroupInfo(group_id="941657197", platform="qq"))
            app.insert(Emoji(full_path="/e/1.gif", format="gif", emoji_hash="h",
                             description="d", record_time=1.0))
            app.insert(Image(emoji_hash="h", path="/i/1.png", timestamp=1.0, type="image"))
            app.insert(EmojiDescriptionCache(emoji_hash="h", description="d", timestamp=1.0))
            app.insert(RuntimeState(state_key="k", state_value="v"))
    assert rows["A1"].agent_id == world.agent_id("A1")
    assert rows["B1"].agent_id == world.agent_id("B1")
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        assert [s.agent_id for s in app.fetch(ChatStream, "select * from chat_streams")] == [
            world.agent_id("A1")]
    with pytest.raises(ConflictError), \
            connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        app.insert(_stream(stream_id))


def test_defaults_are_maibots(db: TestDB, world: World) -> None:
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        msg = app.insert(Message(
            message_id="m1", time=1700000000.5, chat_id="c", chat_info_stream_id="c",
            chat_info_platform="qq", chat_info_user_platform="qq", chat_info_user_id="1",
            chat_info_user_nickname="n", chat_info_create_time=1.0,
            chat_info_last_active_time=2.0, user_id="1"))
        online = app.insert(OnlineTime(duration=1, end_timestamp=datetime.now(UTC)))
        image = app.insert(Image(emoji_hash="h", path="/p", timestamp=1.0, type="emoji"))
        group = app.insert(GroupInfo(group_id="g", platform="qq"))
        state = app.insert(RuntimeState(state_key="k"))
        app.execute("update runtime_state set state_value = 'v' where id = %s", [state.id])
        later = app.get(RuntimeState, state.agent_id, state.id)
    assert (msg.is_emoji, msg.is_picid, msg.is_command, msg.is_notify) == (False,) * 4
    assert msg.intercept_message_level == 0 and msg.user_id == "1"
    assert len(online.timestamp) == 26 and online.start_timestamp <= online.end_timestamp
    assert (image.image_id, image.count, image.vlm_processed) == ("", 1, False)
    assert group.member_count == 0
    assert later.updated_at >= state.updated_at


def test_counts_may_not_go_negative(db: TestDB, world: World) -> None:
    with pytest.raises(InputError), \
            connect(db.dsn("app"), agent_id=world.agent_id("A1")) as app:
        app.insert(LLMUsage(model_name="m", user_id="u", request_type="r", endpoint="e",
                            prompt_tokens=-1, completion_tokens=0, total_tokens=0, cost=0.0,
                            status="ok", timestamp=datetime.now(UTC)))
