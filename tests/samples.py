"""Sample rows for tests that need realistic MaiBot data."""

from __future__ import annotations

import time

from maim_db.tables.runtime import Message

CHAT = "a544edeb1a9b73e3e1d77dff36e41264"


def message(n: int, chat: str = CHAT, text: str | None = None) -> Message:
    now = time.time()
    return Message(message_id=f"m{n}", time=now + n, chat_id=chat, chat_info_stream_id=chat,
                   chat_info_platform="qq", chat_info_user_platform="qq",
                   chat_info_user_id="10001", chat_info_user_nickname="小明",
                   chat_info_create_time=now, chat_info_last_active_time=now,
                   processed_plain_text=text if text is not None else f"你好 {n} 🙂")
