"""MaiBot's runtime models under MaiBot's own class and field names, over maim_db's tables.

Each model is made from the table's maim_db row model (:mod:`maim_db.tables.runtime`), so the
two cannot disagree on a column; ``tests/test_peewee_bridge.py`` also holds both to the live
catalog. What differs from MaiBot's SQLite models, on purpose:

- ``id`` is the table's uuid (filled by the server), not an integer counter;
- ``agent_id`` is there, filled by the server from the scope; naming another agent's is
  refused by row-level security (:class:`~maim_db.IsolationError`);
- ``replace()`` is an upsert on the table's per-agent unique key (SQLite's ``REPLACE``
  deleted the row and inserted a new one);
- ``timestamptz`` columns take naive datetimes in the bridge's zone and give them back the
  same way (:class:`ZonedDateTimeField`).
"""

from __future__ import annotations

import json
import operator
import types
import typing
from datetime import datetime, tzinfo
from typing import Any, ClassVar
from uuid import UUID

import peewee
from psycopg.types.json import Jsonb

from ..errors import ConfigurationError, InputError
from ..row import Row
from ..tables import agent_config as ac
from ..tables import runtime as rt
from .database import ScopedDatabase

#: The database the models use until bound to another (``database.bind_pool(pool)``, or
#: ``Model.bind(db)``): the server ``connect()`` uses, the ambient scope.
database = ScopedDatabase()


class ZonedDateTimeField(peewee.DateTimeField):
    """A ``timestamptz`` column as MaiBot's naive local datetimes: written in the
    database's zone (the bridge reads naive parameters that way, text in MaiBot's formats
    too), read back converted to it and made naive. Peewee's ``.year``/``.truncate()`` and
    friends work as on ``DateTimeField``."""

    field_type = "TIMESTAMPTZ"

    def python_value(self, value: Any) -> Any:
        value = super().python_value(value)  # type: ignore[no-untyped-call]
        if isinstance(value, datetime) and value.tzinfo is not None:
            db = self.model._meta.database
            zone: tzinfo | None = getattr(db, "zone", None)
            return value.astimezone(zone).replace(tzinfo=None)
        return value


class JsonbField(peewee.Field):
    """A ``jsonb`` column as Python lists and dicts (written as JSON, read back parsed)."""

    field_type = "JSONB"

    def db_value(self, value: Any) -> Any:
        return None if value is None else Jsonb(value)


def parse_json_field(value: Any, default: Any = None) -> Any:
    """The fork's helper for configuration fields that held JSON text: here they are
    ``jsonb`` and arrive parsed; text (an older row, a raw query) is still parsed."""
    if value is None or value == "":
        return default
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            return default
    return value


_FIELDS: dict[Any, type[peewee.Field]] = {
    str: peewee.TextField, int: peewee.IntegerField, float: peewee.DoubleField,
    bool: peewee.BooleanField, datetime: ZonedDateTimeField, UUID: peewee.UUIDField,
    list: JsonbField, dict: JsonbField}

#: MaiBot's Python defaults where the column's default is a constant (the server applies
#: the others: now(), the scope's agent): a created row holds them without reading it back.
DEFAULTS: dict[str, dict[str, Any]] = {
    "messages": {"is_emoji": False, "is_picid": False, "is_command": False,
                 "intercept_message_level": 0, "is_notify": False},
    "action_records": {"action_done": False, "action_build_into_prompt": False},
    "emoji": {"query_count": 0, "is_registered": False, "is_banned": False, "usage_count": 0},
    "images": {"image_id": "", "count": 1, "vlm_processed": False},
    "person_info": {"is_known": False},
    "group_info": {"member_count": 0},
    "expression": {"count": 1, "checked": False, "rejected": False},
    "jargon": {"is_global": False, "count": 0, "is_complete": False},
    "chat_history_summary": {"count": 0, "forget_times": 0},
    "thinking_back": {"found_answer": False},
    "hippo_topic_cache": {"last_topic_check_time": 0.0},
}


class _Routed:
    """A query of a bridge model that names the scope's agent when rendered for one.

    The policy restricts the rows to the scope's agent anyway, but Citus plans a query before
    policies apply: only an ``agent_id`` in the query routes it to the agent's shard rather
    than to every shard. :meth:`ScopedDatabase.execute` passes the agent into Peewee's SQL
    context; each select, update or delete of a bridge model renders itself with
    ``AND agent_id = <the agent>``, also as a subquery (``count()``, ``exists()``, ``in_()``).
    It happens at rendering, so a query built before its scope opened names the right agent.
    """

    model: type[peewee.Model]

    def __sql__(self, ctx: Any) -> Any:
        agent = ctx.state.maim_agent_id
        # a select's FROM list is its model until joined (a Join) or replaced (from_())
        if agent is not None and getattr(self, "_from_list", [self.model]) == [self.model]:
            named = self.model._meta.fields["agent_id"] == agent
            routed = self.where(named)  # type: ignore[attr-defined]
            return super(_Routed, routed).__sql__(ctx)  # type: ignore[misc]  # not again
        return super().__sql__(ctx)  # type: ignore[misc]


#: The default column list as Peewee rendered it, per (model, the table's alias in the
#: statement, the quote characters): all a column's text depends on. Read-only once written;
#: a race writes the same text twice.
_SELECTIONS: dict[tuple[Any, str, Any], tuple[tuple[peewee.Field, ...], str]] = {}
_SELECTIONS_MAX = 4096  # aliases are t1, t2, ...: a handful per model in practice


class _Select(_Routed, peewee.ModelSelect):
    def __sql_selection__(self, ctx: Any, is_subquery: bool = False) -> Any:
        """The column list of ``Model.select()``, rendered by Peewee once per model and alias
        and reused: rendering 38 columns is most of the time a message query takes to build.
        Only the default list of every field of the model (checked by identity) is cached;
        a column list holds no values. Anything else is Peewee's own rendering."""
        fields = self._returning  # type: ignore[attr-defined]
        meta = self.model._meta
        table = meta.table
        if (is_subquery or not self._is_default  # type: ignore[attr-defined]
                or table._alias  # type: ignore[attr-defined]
                or ctx.scope != peewee.SCOPE_SOURCE):
            return super().__sql_selection__(ctx, is_subquery)
        # The lookup the first column would make (it names the table by its alias here,
        # assigning one if the statement has none yet): the same alias state either way.
        alias = ctx.alias_manager[table]
        key = (self.model, alias, ctx.state.quote)
        hit = _SELECTIONS.get(key)
        if hit is not None and _same(hit[0], fields):
            return ctx.literal(hit[1])
        default = tuple(meta.sorted_fields)
        if not _same(default, fields):
            return super().__sql_selection__(ctx, is_subquery)
        own = ctx.as_new()  # the same settings, a fresh statement: only the columns
        own.alias_manager[table] = alias
        with own.scope_source(in_projection=True):
            own.sql(peewee.CommaNodeList(fields))
        text, params = own.query()
        if params:  # not a plain column list after all: never cached
            return super().__sql_selection__(ctx, is_subquery)
        if len(_SELECTIONS) < _SELECTIONS_MAX:
            _SELECTIONS[key] = (default, text)
        return ctx.literal(text)

    def _get_model_cursor_wrapper(self, cursor: Any) -> Any:
        wrapper = super()._get_model_cursor_wrapper(cursor)  # type: ignore[misc]
        # Only the plain one-model wrapper making this model's instances, of a default select
        # (whether it is every field is checked when there are rows to set up for).
        if (type(wrapper) is peewee.ModelObjectCursorWrapper
                and wrapper.constructor is self.model and self._is_default):  # type: ignore[attr-defined]
            wrapper.__class__ = _Rows
        return wrapper


#: How a default select's result columns map to the model's fields, as Peewee's cursor
#: wrapper worked it out (attribute name: value), per (model, result column names).
_RESOLVED: dict[tuple[Any, tuple[str, ...]], tuple[tuple[peewee.Field, ...], dict[str, Any]]] = {}
_RESOLVED_MAX = 4096


class _Rows(peewee.ModelObjectCursorWrapper):
    """Peewee's wrapper that makes model instances from a default select's rows, with its
    per-statement set-up (which field each result column is, its converter: 40 to 100 µs for a
    wide model) done once per model and column names. That set-up reads nothing else: the
    column names (the bridge's cursors describe nothing more), the model and the selected
    fields, checked by identity. The rows themselves are Peewee's own processing."""

    def initialize(self) -> None:
        key = (self.model, tuple(column[0] for column in self.cursor.description))
        hit = _RESOLVED.get(key)
        if hit is not None and _same(hit[0], self.select):
            self.__dict__.update(hit[1])  # read-only lists, shared by every wrapper
            return
        before = dict(vars(self))
        super().initialize()
        default = tuple(self.model._meta.sorted_fields)
        if not _same(default, self.select):  # columns() keeps is_default: not this list
            return
        made = {k: v for k, v in vars(self).items() if k not in before or before[k] is not v}
        if len(_RESOLVED) < _RESOLVED_MAX and not any(
                v is self.cursor or v is self for v in made.values()):
            _RESOLVED[key] = (default, made)


def _same(cached: tuple[peewee.Field, ...], fields: Any) -> bool:
    """The same field objects in the same order (``==`` on fields builds an expression)."""
    return len(cached) == len(fields) and all(map(operator.is_, cached, fields))


class _Update(_Routed, peewee.ModelUpdate):
    pass


class _Delete(_Routed, peewee.ModelDelete):
    pass


#: Peewee 4 refuses ``instance.delete()`` (a DELETE of the whole table); so does this.
_class_only: Any = getattr(peewee, "classmethod_only", classmethod)


class BaseModel(peewee.Model):
    """What every bridge model shares. Its queries name the scope's agent (:class:`_Routed`);
    every bridge model is over an agent table."""

    #: The row model the fields were made from.
    row: ClassVar[type[Row]]
    #: The per-agent unique key ``replace()`` upserts on (besides ``agent_id``).
    unique_key: ClassVar[tuple[str, ...]] = ()

    class Meta:
        database = database

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # A row read from a query (Peewee passes __no_default__): its values go into the
        # instance as they are, without a descriptor call per column — the same state
        # Peewee's own path leaves, at a fraction of the cost for MaiBot's wide rows.
        # ``kwargs`` is this call's own dict, so it becomes the instance's without a copy.
        flag = kwargs.pop("__no_default__", None)
        if flag and not args and kwargs.keys() <= self._meta.fields.keys():
            self.__data__ = kwargs
            self._dirty: set[str] = set()
            self.__rel__: dict[str, Any] = {}
            return
        if flag is not None:
            kwargs["__no_default__"] = flag
        super().__init__(*args, **kwargs)

    def save(self, force_insert: bool = False, only: Any = None) -> Any:
        """Peewee's ``save()``, without writing back an ``agent_id`` that was read and not
        changed: Citus refuses any UPDATE that sets the distribution column, even to the
        value it has. An ``agent_id`` that was changed is written, and refused."""
        updating = self.get_id() is not None  # type: ignore[no-untyped-call]
        if only is None and not force_insert and updating and "agent_id" not in self._dirty:
            only = [f for f in self._meta.sorted_fields if f.name != "agent_id"]
        return super().save(force_insert=force_insert, only=only)

    @classmethod
    def select(cls, *fields: Any) -> peewee.ModelSelect[Any]:
        # Every field is the model itself to Peewee, which expands it to the same list
        # without testing each of the (38 for a message) fields for being a model.
        return _Select(cls, fields or (cls,), is_default=not fields)

    @classmethod
    def update(cls, __data: dict[Any, Any] | None = None, **update: Any) -> peewee.ModelUpdate:
        return _Update(cls, cls._normalize_data(__data, update))  # type: ignore[attr-defined]

    @_class_only  # type: ignore[untyped-decorator]
    def delete(cls) -> peewee.ModelDelete:
        return _Delete(cls)

    @classmethod
    def create_table(cls, safe: bool = True, **options: Any) -> None:
        """The schema is maim_db's migrations': ``safe=True`` has nothing to do."""
        if not safe:
            raise ConfigurationError("tables are created by maim_db's migrations, not by "
                                     "Peewee: run `maimdb migrate`")

    @classmethod
    def drop_table(cls, safe: bool = True, drop_sequences: bool = True,
                   **options: Any) -> None:
        raise ConfigurationError("tables belong to maim_db's migrations; Peewee does not drop "
                                 "them (`maimdb erase --agent …` removes an agent's rows)")

    @classmethod
    def replace(cls, __data: dict[Any, Any] | None = None, **insert: Any) -> peewee.Insert:
        """MaiBot's ``replace()``: insert, or update the row with the same per-agent key."""
        if not cls.unique_key:
            raise InputError(f"{cls.__name__} has no per-agent unique key, so there is no row "
                             "to replace; use create() or save()")
        given = {(k if isinstance(k, str) else k.name) for k in {**(__data or {}), **insert}}
        key = {"agent_id", *cls.unique_key}
        fields = cls._meta.fields
        target = [fields["agent_id"], *(fields[k] for k in cls.unique_key)]
        keep = [fields[n] for n in fields if n in given and n not in key | {"id"}]
        query = cls.insert(__data, **insert)
        if keep:
            return query.on_conflict(conflict_target=target, preserve=keep)
        return query.on_conflict(conflict_target=target, action="IGNORE")


def _field(name: str, annotation: Any, row: type[Row]) -> peewee.Field:
    table = row.table
    args = typing.get_args(annotation)
    nullable = isinstance(annotation, types.UnionType) and type(None) in args
    base = next(a for a in args if a is not type(None)) if nullable else annotation
    kind = _FIELDS[typing.get_origin(base) or base]
    if row.key in ((name,), ("agent_id", name)):  # the key Peewee knows the row by
        return kind(primary_key=True)
    options: dict[str, Any] = {"null": nullable}
    if name in DEFAULTS.get(table, {}):
        options["default"] = DEFAULTS[table][name]
    return kind(**options)


def _model(name: str, row: type[Row], unique_key: tuple[str, ...] = (),
           doc: str = "") -> type[BaseModel]:
    attrs: dict[str, Any] = {name_: _field(name_, f.annotation, row)
                             for name_, f in row.model_fields.items()}
    attrs.update(row=row, unique_key=unique_key, __doc__=doc or row.__doc__,
                 __module__=__name__,
                 Meta=type("Meta", (), {"table_name": row.table}))
    return type(name, (BaseModel,), attrs)


ChatStreams = _model("ChatStreams", rt.ChatStream, ("stream_id",))
Messages = _model("Messages", rt.Message)
ActionRecords = _model("ActionRecords", rt.ActionRecord)
LLMUsage = _model("LLMUsage", rt.LLMUsage)
Emoji = _model("Emoji", rt.Emoji, ("full_path",))
Images = _model("Images", rt.Image, ("path",))
ImageDescriptions = _model("ImageDescriptions", rt.ImageDescription)
EmojiDescriptionCache = _model("EmojiDescriptionCache", rt.EmojiDescriptionCache,
                               ("emoji_hash",))
OnlineTime = _model("OnlineTime", rt.OnlineTime)
PersonInfo = _model("PersonInfo", rt.PersonInfo, ("person_id",))
GroupInfo = _model("GroupInfo", rt.GroupInfo, ("group_id",))
Expression = _model("Expression", rt.Expression)
Jargon = _model("Jargon", rt.Jargon)
# MaiBot's class is ChatHistory; its table here is chat_history_summary (the web back end's
# chat_history is another table).
ChatHistory = _model("ChatHistory", rt.ChatHistorySummary)
ThinkingBack = _model("ThinkingBack", rt.ThinkingBack)
RuntimeState = _model("RuntimeState", rt.RuntimeState, ("state_key",))
HippoTopicCache = _model("HippoTopicCache", rt.HippoTopicCache, ("chat_id",))
HippoBatchState = _model("HippoBatchState", rt.HippoBatchState, ("chat_id",))

#: Every runtime model, in MaiBot's order.
MODELS: tuple[type[BaseModel], ...] = (
    ChatStreams, Messages, ActionRecords, LLMUsage, Emoji, Images, ImageDescriptions,
    EmojiDescriptionCache, OnlineTime, PersonInfo, GroupInfo, Expression, Jargon, ChatHistory,
    ThinkingBack, RuntimeState, HippoTopicCache, HippoBatchState)

# The agent configuration sections the fork's loader (db_agent_config_loader.py) reads, one
# row per agent, under the names it imports. Provider secrets are not here: they are sealed
# (maim_db.control.config.read(..., reveal=True) opens them).
PersonalityConfig = _model("PersonalityConfig", ac.PersonalityConfig)
BotConfigOverrides = _model("BotConfigOverrides", ac.BotConfigOverrides)
ChatConfigOverrides = _model("ChatConfigOverrides", ac.ChatConfigOverrides)
ExpressionConfigOverrides = _model("ExpressionConfigOverrides", ac.ExpressionConfigOverrides)
MemoryConfigOverrides = _model("MemoryConfigOverrides", ac.MemoryConfigOverrides)
MoodConfigOverrides = _model("MoodConfigOverrides", ac.MoodConfigOverrides)
EmojiConfigOverrides = _model("EmojiConfigOverrides", ac.EmojiConfigOverrides)
ToolConfigOverrides = _model("ToolConfigOverrides", ac.ToolConfigOverrides)
VoiceConfigOverrides = _model("VoiceConfigOverrides", ac.VoiceConfigOverrides)
PluginConfigOverrides = _model("PluginConfigOverrides", ac.PluginConfigOverrides)
KeywordReactionConfigOverrides = _model("KeywordReactionConfigOverrides",
                                        ac.KeywordReactionConfigOverrides)
RelationshipConfigOverrides = _model("RelationshipConfigOverrides",
                                     ac.RelationshipConfigOverrides)

CONFIG_MODELS: tuple[type[BaseModel], ...] = (
    PersonalityConfig, BotConfigOverrides, ChatConfigOverrides, ExpressionConfigOverrides,
    MemoryConfigOverrides, MoodConfigOverrides, EmojiConfigOverrides, ToolConfigOverrides,
    VoiceConfigOverrides, PluginConfigOverrides, KeywordReactionConfigOverrides,
    RelationshipConfigOverrides)
