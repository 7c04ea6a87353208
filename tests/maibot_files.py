"""Small MaiBot SQLite files, built from the DDL peewee wrote in each release (the
history docs/import-export.md maps): 0.7, 0.10, 0.11.6, 0.12, a drifted 0.12 file, a 1.x
file. Every file holds the same canonical rows, cut down to the columns its release
had, so a test can compare an imported value with the one it wrote."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

Spec = dict[str, list[tuple[str, str]]]  # table → [(column, declaration)]

T, TN, R, RN, INT, INTN, D = ("TEXT NOT NULL", "TEXT", "REAL NOT NULL", "REAL",
                              "INTEGER NOT NULL", "INTEGER", "DATETIME NOT NULL")

# 0.12.x, column for column (maibot-sqlite.md §1.3).
V0_12: Spec = {
    "chat_streams": [("stream_id", T), ("create_time", R), ("group_platform", TN),
                     ("group_id", TN), ("group_name", TN), ("last_active_time", R),
                     ("platform", T), ("user_platform", T), ("user_id", T),
                     ("user_nickname", T), ("user_cardname", TN)],
    "messages": [("message_id", T), ("time", R), ("chat_id", T), ("reply_to", TN),
                 ("interest_value", RN), ("key_words", TN), ("key_words_lite", TN),
                 ("is_mentioned", INTN), ("is_at", INTN), ("reply_probability_boost", RN),
                 ("chat_info_stream_id", T), ("chat_info_platform", T),
                 ("chat_info_user_platform", T), ("chat_info_user_id", T),
                 ("chat_info_user_nickname", T), ("chat_info_user_cardname", TN),
                 ("chat_info_group_platform", TN), ("chat_info_group_id", TN),
                 ("chat_info_group_name", TN), ("chat_info_create_time", R),
                 ("chat_info_last_active_time", R), ("user_platform", TN), ("user_id", TN),
                 ("user_nickname", TN), ("user_cardname", TN), ("processed_plain_text", TN),
                 ("display_message", TN), ("priority_mode", TN), ("priority_info", TN),
                 ("additional_config", TN), ("is_emoji", INT), ("is_picid", INT),
                 ("is_command", INT), ("intercept_message_level", INT), ("is_notify", INT),
                 ("selected_expressions", TN)],
    "action_records": [("action_id", T), ("time", R), ("action_reasoning", TN),
                       ("action_name", T), ("action_data", T), ("action_done", INT),
                       ("action_build_into_prompt", INT), ("action_prompt_display", T),
                       ("chat_id", T), ("chat_info_stream_id", T), ("chat_info_platform", T)],
    "person_info": [("is_known", INT), ("person_id", T), ("person_name", TN),
                    ("name_reason", TN), ("platform", T), ("user_id", T), ("nickname", TN),
                    ("group_nick_name", TN), ("memory_points", TN), ("know_times", RN),
                    ("know_since", RN), ("last_know", RN)],
    "expression": [("situation", T), ("style", T), ("content_list", TN), ("count", INT),
                   ("last_active_time", R), ("chat_id", T), ("create_date", RN),
                   ("checked", INT), ("rejected", INT), ("modified_by", TN)],
    "jargon": [("content", T), ("raw_content", TN), ("meaning", TN), ("chat_id", T),
               ("is_global", INT), ("count", INT), ("is_jargon", INTN),
               ("last_inference_count", INTN), ("is_complete", INT),
               ("inference_with_context", TN), ("inference_content_only", TN)],
    "chat_history": [("chat_id", T), ("start_time", R), ("end_time", R), ("original_text", T),
                     ("participants", T), ("theme", T), ("keywords", T), ("summary", T),
                     ("key_point", TN), ("count", INT), ("forget_times", INT)],
    "thinking_back": [("chat_id", T), ("question", T), ("context", TN), ("found_answer", INT),
                      ("answer", TN), ("thinking_steps", TN), ("create_time", R),
                      ("update_time", R)],
    "llm_usage": [("model_name", T), ("model_assign_name", TN), ("model_api_provider", TN),
                  ("user_id", T), ("request_type", T), ("endpoint", T), ("prompt_tokens", INT),
                  ("completion_tokens", INT), ("total_tokens", INT), ("cost", R),
                  ("time_cost", RN), ("status", T), ("timestamp", D)],
    "emoji": [("full_path", T), ("format", T), ("emoji_hash", T), ("description", T),
              ("query_count", INT), ("is_registered", INT), ("is_banned", INT), ("emotion", TN),
              ("record_time", R), ("register_time", RN), ("usage_count", INT),
              ("last_used_time", RN)],
    "images": [("image_id", T), ("emoji_hash", T), ("description", TN), ("path", T),
               ("count", INT), ("timestamp", R), ("type", T), ("vlm_processed", INT)],
    "image_descriptions": [("type", T), ("image_description_hash", T), ("description", T),
                           ("timestamp", R)],
    "emoji_description_cache": [("emoji_hash", T), ("description", T), ("emotion_tags", TN),
                                ("timestamp", R)],
    "online_time": [("timestamp", T), ("duration", INT), ("start_timestamp", D),
                    ("end_timestamp", D)],
}


def _without(spec: Spec, table: str, *cols: str) -> None:
    spec[table] = [c for c in spec[table] if c[0] not in cols]


def _release(name: str) -> Spec:
    spec = {t: list(cols) for t, cols in V0_12.items()}
    if name == "0.12":
        return spec
    if name == "0.11.6":  # is_no_read_command instead of intercept_message_level
        _without(spec, "messages", "intercept_message_level")
        spec["messages"].append(("is_no_read_command", INT))
        _without(spec, "expression", "modified_by")
        spec["expression"].append(("context", TN))
        return spec
    if name == "0.10":  # no jargon/history/thinking/emoji cache; expression.count REAL
        for t in ("jargon", "chat_history", "thinking_back", "emoji_description_cache"):
            del spec[t]
        _without(spec, "messages", "intercept_message_level")
        _without(spec, "action_records", "action_reasoning")
        _without(spec, "person_info", "group_nick_name")
        spec["expression"] = [("situation", T), ("style", T), ("count", R),
                              ("last_active_time", R), ("chat_id", T), ("type", T),
                              ("create_date", RN)]
        spec["graph_nodes"] = [("concept", T), ("memory_items", T), ("weight", RN)]
        return spec
    if name == "0.7":  # the first SQLite release
        for t in ("jargon", "chat_history", "thinking_back", "emoji_description_cache",
                  "action_records", "expression"):
            del spec[t]
        keep = ["message_id", "time", "chat_id"] + [c for c, _ in V0_12["messages"]
                                                   if c.startswith(("chat_info_", "user_"))]
        spec["messages"] = [c for c in V0_12["messages"]
                            if c[0] in keep or c[0] in ("processed_plain_text",
                                                        "display_message")]
        spec["messages"] += [("detailed_plain_text", TN), ("memorized_times", INTN)]
        spec["messages"] = [(c, "TEXT NOT NULL" if c in ("user_platform", "user_id",
                                                         "user_nickname") else d)
                            for c, d in spec["messages"]]
        spec["images"] = [("emoji_hash", T), ("description", TN), ("path", T),
                          ("timestamp", R), ("type", T)]
        spec["person_info"] = [("person_id", T), ("person_name", TN), ("name_reason", TN),
                               ("platform", T), ("user_id", T), ("nickname", T),
                               ("relationship_value", RN), ("know_time", RN),
                               ("msg_interval", INTN), ("msg_interval_list", TN)]
        _without(spec, "llm_usage", "model_assign_name", "model_api_provider", "time_cost")
        spec["knowledges"] = [("content", T), ("embedding", T)]
        spec["recalled_messages"] = [("message_id", T), ("time", R), ("stream_id", T)]
        return spec
    raise ValueError(name)


GROUP = "a544edeb1a9b73e3e1d77dff36e41264"
PRIVATE = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def canonical(messages: int = 40) -> dict[str, list[dict[str, Any]]]:
    """The rows every file holds (each release keeps the columns it has)."""
    t0 = 1_750_000_000.25
    streams = [
        {"id": 1, "stream_id": GROUP, "create_time": t0, "group_platform": "qq",
         "group_id": "123456", "group_name": "麦麦测试群 🎉", "last_active_time": t0 + 900,
         "platform": "qq", "user_platform": "qq", "user_id": "10001", "user_nickname": "小明",
         "user_cardname": None},
        {"id": 2, "stream_id": PRIVATE, "create_time": t0 + 1, "group_platform": "",
         "group_id": "", "group_name": "", "last_active_time": t0 + 500, "platform": "qq",
         "user_platform": "qq", "user_id": "10002", "user_nickname": "阿花",
         "user_cardname": "花花"},
    ]
    msgs = []
    for n in range(1, messages + 1):
        chat = GROUP if n % 3 else PRIVATE
        bot = n % 5 == 0
        msgs.append({
            "id": n, "message_id": f"{900000 + n}", "time": t0 + n * 7.5, "chat_id": chat,
            "reply_to": f"{900000 + n - 1}" if n % 4 == 0 else None,
            "interest_value": 0.25 * (n % 4) if n % 2 else None,
            "key_words": '["麦麦", "测试"]' if n % 6 == 0 else None, "key_words_lite": None,
            "is_mentioned": [0, 1, None][n % 3], "is_at": n % 2,
            "reply_probability_boost": None,
            "chat_info_stream_id": chat, "chat_info_platform": "qq",
            "chat_info_user_platform": "qq", "chat_info_user_id": "10001",
            "chat_info_user_nickname": "小明", "chat_info_user_cardname": None,
            "chat_info_group_platform": "qq" if chat == GROUP else None,
            "chat_info_group_id": "123456" if chat == GROUP else None,
            "chat_info_group_name": "麦麦测试群 🎉" if chat == GROUP else None,
            "chat_info_create_time": t0, "chat_info_last_active_time": t0 + n,
            "user_platform": "qq", "user_id": "3000" if bot else f"1000{n % 3 + 1}",
            "user_nickname": "麦麦" if bot else f"用户{n % 3}",
            "user_cardname": None if n % 2 else "群名片",
            "processed_plain_text": f"第{n}条消息：今天吃什么？😋 [picid:img-{n % 2}]",
            "display_message": None,
            "priority_mode": None, "priority_info": "{'sender': '小明', 'weight': 1.5}"
            if n % 7 == 0 else None,
            "additional_config": None, "is_emoji": int(n % 9 == 0), "is_picid": int(n % 2 == 0),
            "is_command": int(n % 11 == 0), "intercept_message_level": int(n % 11 == 0),
            "is_no_read_command": int(n % 11 == 0), "is_notify": 0,
            "selected_expressions": "[1, 3]" if n % 10 == 0 else None,
            "detailed_plain_text": f"详细 {n}", "memorized_times": 0,
        })
    return {
        "chat_streams": streams,
        "messages": msgs,
        "expression": [
            {"id": i, "situation": f"当别人{s}时", "style": f"回答“{s}”", "content_list":
             '["好的"]', "count": 2, "last_active_time": t0 + i, "chat_id": GROUP,
             "create_date": t0, "checked": 0, "rejected": int(i == 2), "modified_by": None,
             "type": "style", "context": None}
            for i, s in ((1, "打招呼"), (2, "开玩笑"), (3, "道谢"))],
        "action_records": [
            {"id": 1, "action_id": "1750000001000000", "time": t0 + 8, "action_reasoning":
             "想回复", "action_name": "reply", "action_data": '{"text": "你好"}',
             "action_done": 1, "action_build_into_prompt": 0, "action_prompt_display": "回复了",
             "chat_id": GROUP, "chat_info_stream_id": GROUP, "chat_info_platform": "qq"}],
        "person_info": [
            {"id": 1, "is_known": 1, "person_id": "p" * 32, "person_name": "小明同学",
             "name_reason": "他自己说的", "platform": "qq", "user_id": "10001",
             "nickname": "小明", "group_nick_name": '[{"group_id": "123456", '
             '"group_nick_name": "明"}]', "memory_points": '["喜好:火锅:0.8"]',
             "know_times": 3.0, "know_since": t0, "last_know": t0 + 100,
             "relationship_value": 0.5, "know_time": t0, "msg_interval": 2000,
             "msg_interval_list": "[]"},
            {"id": 2, "is_known": 0, "person_id": "q" * 32, "person_name": None,
             "name_reason": None, "platform": "qq", "user_id": "10002", "nickname": "阿花",
             "group_nick_name": None, "memory_points": None, "know_times": None,
             "know_since": None, "last_know": None, "relationship_value": None,
             "know_time": None, "msg_interval": None, "msg_interval_list": None}],
        "jargon": [
            {"id": 1, "content": "yyds", "raw_content": '["yyds"]', "meaning": "永远的神",
             "chat_id": f'[["{GROUP}", 3]]', "is_global": 1, "count": 3, "is_jargon": 1,
             "last_inference_count": 2, "is_complete": 0, "inference_with_context": None,
             "inference_content_only": None},
            {"id": 2, "content": "绝绝子", "raw_content": None, "meaning": None,
             "chat_id": GROUP, "is_global": 0, "count": 0, "is_jargon": None,
             "last_inference_count": None, "is_complete": 0, "inference_with_context": None,
             "inference_content_only": None}],
        "chat_history": [
            {"id": 1, "chat_id": GROUP, "start_time": t0, "end_time": t0 + 300,
             "original_text": "小明：吃什么\n麦麦：火锅", "participants": '["小明", "麦麦"]',
             "theme": "晚饭", "keywords": '["火锅"]', "summary": "讨论了晚饭吃火锅",
             "key_point": None, "count": 1, "forget_times": 0}],
        "thinking_back": [
            {"id": 1, "chat_id": GROUP, "question": "小明喜欢吃什么？", "context": None,
             "found_answer": 1, "answer": "火锅", "thinking_steps": "[]", "create_time": t0,
             "update_time": t0 + 1}],
        "llm_usage": [
            {"id": 1, "model_name": "deepseek-chat", "model_assign_name": "replyer",
             "model_api_provider": "DeepSeek", "user_id": "system", "request_type": "replyer",
             "endpoint": "/chat/completions", "prompt_tokens": 1200, "completion_tokens": 80,
             "total_tokens": 1280, "cost": 0.0021, "time_cost": 1.5, "status": "success",
             "timestamp": "2025-06-15 20:30:45.123456"},
            {"id": 2, "model_name": "qwen-vl", "model_assign_name": None,
             "model_api_provider": None, "user_id": "system", "request_type": "vlm",
             "endpoint": "/chat/completions", "prompt_tokens": 10, "completion_tokens": 5,
             "total_tokens": 15, "cost": 0.0, "time_cost": None, "status": "success",
             "timestamp": "2025-06-15 21:00:00"}],
        "emoji": [
            {"id": 1, "full_path": "data/emoji/abc.gif", "format": "gif", "emoji_hash": "abc",
             "description": "一只猫在笑", "query_count": 2, "is_registered": 1, "is_banned": 0,
             "emotion": "开心,可爱", "record_time": t0, "register_time": t0 + 1,
             "usage_count": 4, "last_used_time": None}],
        "images": [
            {"id": i + 1, "image_id": f"img-{i}", "emoji_hash": f"h{i}",
             "description": "风景照" if i else None, "path": f"data/image/{i}.png",
             "count": 1, "timestamp": t0 + i, "type": "image", "vlm_processed": i}
            for i in range(2)],
        "image_descriptions": [
            {"id": 1, "type": "image", "image_description_hash": "h1", "description": "风景照",
             "timestamp": t0}],
        "emoji_description_cache": [
            {"id": 1, "emoji_hash": "abc", "description": "一只猫在笑",
             "emotion_tags": "开心,可爱", "timestamp": t0}],
        "online_time": [
            {"id": 1, "timestamp": "1750000000.5", "duration": 30,
             "start_timestamp": "2025-06-15 20:00:00", "end_timestamp":
             "2025-06-15 20:30:00.250000"}],
        "graph_nodes": [{"id": 1, "concept": "火锅", "memory_items": "[]", "weight": 1.0}],
        "knowledges": [{"id": 1, "content": "x", "embedding": "[]"}],
        "recalled_messages": [],
    }


def create(conn: sqlite3.Connection, spec: Spec) -> None:
    for table, cols in spec.items():
        decl = ", ".join(f'"{c}" {d}' for c, d in cols)
        conn.execute(f'CREATE TABLE "{table}" ("id" INTEGER NOT NULL PRIMARY KEY, {decl})')


def fill(conn: sqlite3.Connection, spec: Spec, rows: dict[str, list[dict[str, Any]]]) -> None:
    for table, cols in spec.items():
        names = ["id"] + [c for c, _ in cols]
        marks = ", ".join("?" for _ in names)
        quoted = ", ".join(f'"{c}"' for c in names)
        conn.executemany(f'INSERT INTO "{table}" ({quoted}) VALUES ({marks})',
                         ([r.get(c) for c in names] for r in rows.get(table, [])))


def build(path: Path, release: str, *, messages: int = 40) -> Path:
    """A MaiBot file of ``release`` (0.7, 0.10, 0.11.6 or 0.12) holding the canonical rows."""
    spec = _release(release)
    with sqlite3.connect(path) as conn:
        create(conn, spec)
        fill(conn, spec, canonical(messages))
    conn.close()
    return path


def columns(release: str) -> dict[str, list[str]]:
    return {t: [c for c, _ in cols] for t, cols in _release(release).items()}


def build_drifted(path: Path) -> Path:
    """A 0.12 file the way years of auto-ALTERs leave one: declared types from ALTER ADD
    COLUMN (FLOAT, DOUBLE, DATETIME), a column the model dropped, a backup table from a
    constraint fix, a REAL count with fractions, and a few rows no release should hold."""
    spec = _release("0.12")
    spec["messages"] = [(c, {"REAL NOT NULL": "DOUBLE NOT NULL", "REAL": "FLOAT"}.get(d, d))
                        for c, d in spec["messages"]] + [("memorized_times", INTN)]
    spec["messages"] = [(c, TN if c == "chat_info_platform" else d)  # a NULL-able rebuild
                        for c, d in spec["messages"]]
    spec["expression"] = [(c, "FLOAT NOT NULL" if c == "count" else d)
                          for c, d in spec["expression"]]
    spec["messages_backup_1717000000"] = list(spec["messages"])
    rows = canonical(20)
    rows["expression"][0]["count"] = 2.5
    rows["messages"][0]["time"] = "not a time"  # skipped: not a number
    rows["messages"][1]["is_emoji"] = "True"  # peewee text boolean: converted
    rows["messages"][2]["user_platform"] = b"q\xffq"  # bytes in a TEXT column: fallback
    rows["messages"][3]["selected_expressions"] = "[1, 'x']"  # not ids: kept, fallback
    rows["messages"][4]["chat_info_platform"] = None  # NULL in a required column: skipped
    rows["messages_backup_1717000000"] = rows["messages"][:3]
    rows["llm_usage"][1]["timestamp"] = 1750000000  # an epoch number in a DATETIME column
    with sqlite3.connect(path) as conn:
        conn.execute("pragma ignore_check_constraints = 1")
        create(conn, spec)
        fill(conn, spec, rows)
    conn.close()
    return path


def build_1x(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE mai_messages (id INTEGER PRIMARY KEY, session_id TEXT, "
                     "timestamp DATETIME, raw_content BLOB)")
        conn.execute("CREATE TABLE chat_sessions (id INTEGER PRIMARY KEY, session_id TEXT)")
        conn.execute("CREATE TABLE __legacy_v1_messages (id INTEGER PRIMARY KEY, chat_id TEXT)")
        conn.execute("INSERT INTO mai_messages (session_id) VALUES ('s')")
        conn.execute("PRAGMA user_version = 3")
    conn.close()
    return path


def open_wal(path: Path, release: str = "0.12") -> Iterator[sqlite3.Connection]:
    """A live MaiBot: WAL mode (0.8+), no checkpoint, the writer still connected. Rows written
    through the yielded connection sit only in MaiBot.db-wal until it closes."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("pragma journal_mode = wal")
    conn.execute("pragma wal_autocheckpoint = 0")
    spec = _release(release)
    create(conn, spec)
    fill(conn, spec, canonical())
    try:
        yield conn
    finally:
        conn.close()


def overwrite(path: Path, other: Path) -> None:
    """Write the database ``other`` over the file at ``path`` in place (same inode), the way
    a reader must see it for a test to know what it saw: all at once. SQLite's backup writes
    the pages under its own locks, so a reader (the importer's, on its own thread) sees the
    old database or the new one. A plain copy (``shutil.copyfile``) truncates the file first
    and writes it in chunks: a reader running meanwhile sees an empty or half-written file."""
    with sqlite3.connect(other) as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def edit(path: Path, *statements: str) -> Path:
    """Run ``statements`` on the SQLite file at ``path`` (committed); the path again."""
    with sqlite3.connect(path) as conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()
    return path


def expected_value(model: Any, column: str, value: Any, zone: tzinfo) -> Any:
    """A file's ``value`` as ``model``'s ``column`` holds it once imported: SQLite's 0/1 a
    bool, its integers in a float column a float, a naive time read in ``zone``."""
    annotation = model.model_fields[column].annotation
    kinds = [a for a in getattr(annotation, "__args__", (annotation,)) if a is not type(None)]
    if value is None:
        return None
    if kinds[0] is bool:
        return bool(value)
    if kinds[0] is float:
        return float(value)
    if kinds[0] is datetime:
        return datetime.fromisoformat(value).replace(tzinfo=zone)
    return value
