"""MaiBot's Peewee code on maim_db: its models under its own names, each transaction in a
maim_db scope (``pip install 'maim-db[peewee]'``; docs/porting-maibot.md)::

    from maim_db import agent_scope
    from maim_db.peewee import Messages

    with agent_scope("agent_3f9a1c2b7d4e"):
        recent = Messages.select().where(Messages.chat_id == chat).order_by(
            Messages.time.desc()).limit(20)

:mod:`.database` runs Peewee's SQL in scoped blocks; :mod:`.models` holds the models.
"""

try:
    import peewee as _peewee  # noqa: F401
except ImportError as err:  # the extra is not installed
    raise ImportError("maim_db.peewee needs Peewee: pip install 'maim-db[peewee]'") from err

from .database import Cursor, IntegrityError, ScopedDatabase
from .models import (
    MODELS,
    ActionRecords,
    BaseModel,
    ChatHistory,
    ChatStreams,
    Emoji,
    EmojiDescriptionCache,
    Expression,
    GroupInfo,
    HippoBatchState,
    HippoTopicCache,
    ImageDescriptions,
    Images,
    Jargon,
    LLMUsage,
    Messages,
    OnlineTime,
    PersonInfo,
    RuntimeState,
    ThinkingBack,
    ZonedDateTimeField,
    database,
)

__all__ = [
    "MODELS", "ActionRecords", "BaseModel", "ChatHistory", "ChatStreams", "Cursor", "Emoji",
    "EmojiDescriptionCache", "Expression", "GroupInfo", "HippoBatchState", "HippoTopicCache",
    "ImageDescriptions", "Images", "IntegrityError", "Jargon", "LLMUsage", "Messages",
    "OnlineTime", "PersonInfo", "RuntimeState", "ScopedDatabase", "ThinkingBack",
    "ZonedDateTimeField", "database",
]
