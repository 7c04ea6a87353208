"""Where each MaiBot table goes, and how one source table's columns become the target's:
which are written, converted how, which have no home here."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from functools import partial
from typing import Any, Final

import psycopg

from ...row import SERVER_DEFAULT, Row
from ...tables import maibot1 as m1
from ...tables import runtime as rt
from .convert import (
    Fast,
    Skip,
    base_type,
    compile_row,
    converter,
    fast_path,
    id_base,
    row_id,
    selected_expressions,
)
from .known1 import FILLED
from .report import TableReport


@dataclass(frozen=True)
class TableMap:
    """Where one MaiBot table goes. ``natural_key``: the target's unique key besides the id;
    a source row whose key the agent already holds is skipped, not overwritten."""

    source: str
    model: type[Row]
    natural_key: tuple[str, ...] = ()


#: Every MaiBot table with a home here, in import order. ``chat_history`` is MaiBot's topic
#: summary table; maim_db calls it ``chat_history_summary`` (its own ``chat_history`` is the
#: web back end's). The last three exist only in files written by the multi-user fork.
TABLES: Final[tuple[TableMap, ...]] = (
    TableMap("chat_streams", rt.ChatStream, ("stream_id",)),
    TableMap("expression", rt.Expression),
    TableMap("messages", rt.Message),
    TableMap("action_records", rt.ActionRecord),
    TableMap("llm_usage", rt.LLMUsage),
    TableMap("emoji", rt.Emoji, ("full_path",)),
    TableMap("images", rt.Image, ("path",)),
    TableMap("image_descriptions", rt.ImageDescription),
    TableMap("emoji_description_cache", rt.EmojiDescriptionCache, ("emoji_hash",)),
    TableMap("online_time", rt.OnlineTime),
    TableMap("person_info", rt.PersonInfo, ("person_id",)),
    TableMap("group_info", rt.GroupInfo, ("group_id",)),
    TableMap("jargon", rt.Jargon),
    TableMap("chat_history", rt.ChatHistorySummary),
    TableMap("thinking_back", rt.ThinkingBack),
    TableMap("runtime_state", rt.RuntimeState, ("state_key",)),
    TableMap("hippo_topic_cache", rt.HippoTopicCache, ("chat_id",)),
    TableMap("hippo_batch_state", rt.HippoBatchState, ("chat_id",)),
)

#: Every MaiBot 1.x table, into the ``maibot1`` table of the same name (1.2.1's shape). Ids
#: and keys are kept as the file has them; a clash with a row the agent already has is
#: reported (the target's primary and unique keys decide, not a list kept here).
TABLES1: Final[tuple[TableMap, ...]] = tuple(TableMap(m.table, m) for m in m1.ROWS)

#: Tables MaiBot retired but never dropped (maibot-sqlite.md §2.2): known, and left alone.
RETIRED: Final = frozenset({"knowledges", "thinking_logs", "recalled_messages", "memory",
                            "graph_nodes", "graph_edges", "memory_chest", "memory_conflicts"})


@dataclass
class Plan:
    """How one source table's rows become target rows."""

    table: TableMap
    columns: list[str]  # target columns written, in order
    types: list[int]  # their PostgreSQL type oids, for binary COPY
    make: Callable[[tuple[Any, ...]], list[Any]]  # (id, *source columns) → values
    source_columns: list[str]
    report: TableReport
    missing_required: str | None = None


def plan(tm: TableMap, source_cols: list[str], catalog: dict[str, tuple[int, Any]],
         namespace: uuid.UUID, tz: tzinfo, *, generation: int = 0, version: int = 0) -> Plan:
    """``catalog``: target column → (type oid, constant default or None). In a 1.x file
    (``generation`` 1, schema ``version``) every column is read by name, ``id`` included
    (the ids are kept), and a column the file's version lacks gets what 1.x's own upgrade
    step gives it (:data:`.known1.FILLED`), else the model's default."""
    if generation == 1:
        return _plan1(tm, source_cols, catalog, tz, version)
    report = TableReport(tm.source, tm.model.table)
    fields = tm.model.model_fields
    present = [c for c in source_cols if c != "id"]
    report.ignored_columns = [c for c in present
                              if c not in fields and c != "is_no_read_command"]
    read = [c for c in present if c in fields or c == "is_no_read_command"]
    index = {c: i + 1 for i, c in enumerate(read)}  # 0 is the source id
    columns: list[str] = []
    parts: list[tuple[Fast, bool, int, Callable[[Any], Any]]] = []  # how, nullable, where
    missing_required = None
    for name, info in fields.items():
        if name == "agent_id":
            continue
        if name == "id":
            columns.append("id")
            parts.append(("value", False, 0, partial(row_id, id_base(namespace, tm.source))))
            continue
        if name in index:
            convert = converter(info.annotation, name, tz, report.fallback, catalog[name][1])
            fast: Fast = fast_path(info.annotation)
            if tm.source == "messages" and name == "selected_expressions":
                convert, fast = selected_expressions(namespace, report.fallback), "value"
            parts.append((fast, base_type(info.annotation)[1], index[name], convert))
            columns.append(name)
        elif tm.source == "messages" and name == "intercept_message_level" \
                and "is_no_read_command" in index:
            # 0.11.6 marked commands not to read; 0.12 made that level 1 of a scale.
            parts.append(("value", False, index["is_no_read_command"],
                          lambda v: 1 if v else 0))
            columns.append(name)
        elif not info.is_required():
            continue  # the database fills it: NULL or the column default
        else:
            missing_required = f"the source has no {name} column, which {tm.model.table} needs"
    return Plan(tm, columns, [catalog[c][0] for c in columns], compile_row(parts), read, report,
                missing_required)


def _plan1(tm: TableMap, source_cols: list[str], catalog: dict[str, tuple[int, Any]],
           tz: tzinfo, version: int) -> Plan:
    report = TableReport(tm.source, tm.model.qualified_table())
    fields = tm.model.model_fields
    report.ignored_columns = [c for c in source_cols if c not in fields]
    read = [c for c in source_cols if c in fields]
    index = {c: i + 1 for i, c in enumerate(read)}  # 0 is the rowid
    columns: list[str] = []
    parts: list[tuple[Fast, bool, int, Callable[[Any], Any]]] = []
    missing_required = None
    for name, info in fields.items():
        if name == "agent_id":
            continue
        if name in index:
            convert = converter(info.annotation, name, tz, report.fallback, catalog[name][1])
            fast = fast_path(info.annotation)
            if name in tm.model.key and base_type(info.annotation)[0] is int:
                convert, fast = _safe_id(convert, name), "value"
            parts.append((fast, base_type(info.annotation)[1], index[name], convert))
            columns.append(name)
            continue
        filled = FILLED.get((tm.source, name))
        if filled is not None and version < filled[0]:
            value: Any = filled[1]
        elif info.default is SERVER_DEFAULT or (not info.is_required() and info.default is None):
            continue  # the database fills it: NULL or the column default
        elif not info.is_required():
            value = info.default
        else:
            missing_required = f"the source has no {name} column, which {tm.model.table} needs"
            continue
        parts.append(("value", False, 0, _always(value)))
        columns.append(name)
    return Plan(tm, columns, [catalog[c][0] for c in columns], compile_row(parts), read, report,
                missing_required)


#: The largest id a ``maibot1`` table holds (its CHECK): 1.x's web UI reads ids as
#: JavaScript numbers, exact only up to 2^53 - 1.
SAFE_ID: Final = 2**53 - 1


def _safe_id(convert: Callable[[Any], Any], name: str) -> Callable[[Any], Any]:
    """A key column's converter that skips, with the reason, an id the table cannot hold
    (SQLite's go to 2^63 - 1, though no bot counts that far), instead of the CHECK failing
    the whole batch."""
    def checked(v: Any) -> Any:
        value = convert(v)
        if isinstance(value, int) and not -SAFE_ID <= value <= SAFE_ID:
            raise Skip(f"{name} beyond 2^53 - 1, the largest the maibot1 tables hold "
                       "(JavaScript-safe ids)")
        return value
    return checked


def _always(value: Any) -> Callable[[Any], Any]:
    def constant(_: Any) -> Any:
        return value
    return constant


def catalog(conn: psycopg.Connection[Any], table: str) -> dict[str, tuple[int, Any]]:
    rows = conn.execute(
        """select a.attname, a.atttypid::int, pg_get_expr(d.adbin, d.adrelid)
           from pg_attribute a
           left join pg_attrdef d on (d.adrelid, d.adnum) = (a.attrelid, a.attnum)
           where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped""",
        [table]).fetchall()
    return {name: (oid, _constant(expr)) for name, oid, expr in rows}


def _constant(expr: str | None) -> Any:
    """A column default that is a plain constant, as a Python value; else None."""
    if expr is None:
        return None
    literal = expr.split("::")[0]
    if literal in ("true", "false"):
        return literal == "true"
    if literal == "''":
        return ""
    try:
        return int(literal)
    except ValueError:
        return None
