"""MaiBot's Peewee code on maim_db: its models under its own names, each transaction in a
maim_db scope (``pip install 'maim-db[peewee]'``; docs/porting-maibot.md)::

    from maim_db import agent_scope
    from maim_db.peewee import Messages

    with agent_scope("agent_3f9a1c2b7d4e"):  # a query runs where it is iterated: list() it here
        recent = list(Messages.select().where(Messages.chat_id == chat)
                      .order_by(Messages.time.desc()).limit(20))

:mod:`.database` runs Peewee's SQL in scoped blocks; :mod:`.models` holds the models.
"""

try:
    import peewee as _peewee  # noqa: F401
except ImportError as err:  # the extra is not installed
    raise ImportError("maim_db.peewee needs Peewee: pip install 'maim-db[peewee]'") from err

from .compat import AsyncAgentActiveState
from .database import CheckViolation, Cursor, IntegrityError, ScopedDatabase
from .models import (
    CONFIG_MODELS,
    MODELS,
    ActionRecords,
    BaseModel,
    BotConfigOverrides,
    ChatConfigOverrides,
    ChatHistory,
    ChatStreams,
    Emoji,
    EmojiConfigOverrides,
    EmojiDescriptionCache,
    Expression,
    ExpressionConfigOverrides,
    GroupInfo,
    HippoBatchState,
    HippoTopicCache,
    ImageDescriptions,
    Images,
    Jargon,
    JsonbField,
    KeywordReactionConfigOverrides,
    LLMUsage,
    MemoryConfigOverrides,
    Messages,
    MoodConfigOverrides,
    OnlineTime,
    PersonalityConfig,
    PersonInfo,
    PluginConfigOverrides,
    RelationshipConfigOverrides,
    RuntimeState,
    ThinkingBack,
    ToolConfigOverrides,
    VoiceConfigOverrides,
    ZonedDateTimeField,
    database,
    parse_json_field,
)

__all__ = [
    "CONFIG_MODELS",
    "MODELS",
    "ActionRecords",
    "AsyncAgentActiveState",
    "BaseModel",
    "BotConfigOverrides",
    "ChatConfigOverrides",
    "ChatHistory",
    "ChatStreams",
    "CheckViolation",
    "Cursor",
    "Emoji",
    "EmojiConfigOverrides",
    "EmojiDescriptionCache",
    "Expression",
    "ExpressionConfigOverrides",
    "GroupInfo",
    "HippoBatchState",
    "HippoTopicCache",
    "ImageDescriptions",
    "Images",
    "IntegrityError",
    "Jargon",
    "JsonbField",
    "KeywordReactionConfigOverrides",
    "LLMUsage",
    "MemoryConfigOverrides",
    "Messages",
    "MoodConfigOverrides",
    "OnlineTime",
    "PersonInfo",
    "PersonalityConfig",
    "PluginConfigOverrides",
    "RelationshipConfigOverrides",
    "RuntimeState",
    "ScopedDatabase",
    "ThinkingBack",
    "ToolConfigOverrides",
    "VoiceConfigOverrides",
    "ZonedDateTimeField",
    "database",
    "parse_json_field",
]
