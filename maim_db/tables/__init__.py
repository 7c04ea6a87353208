"""Typed rows, one model per table, grouped by area; every model is importable from here
(``from maim_db.tables import Message``). The tables themselves are defined in
``migrations/``; ``tests/test_schema_contract.py`` holds the two equal.

- :mod:`.control_plane` — users, tenants, agents, keys, activity, plugin settings (0001),
  key usage (0012)
- :mod:`.agent_config` — the 26 configuration sections of an agent (0003)
- :mod:`.business` — chat history and logs, uploads, sessions, metrics (0004)
- :mod:`.runtime` — MaiBot's own tables: streams, messages, people, memories… (0005)
- :mod:`.imports` — how far each MaiBot database's import has got (0008)
- :mod:`.maibot1` — MaiBot 1.x's 24 tables in the schema ``maibot1`` (0020), under 1.2.1's
  class names; four of them share a name with a 0.x model here, so they are imported from
  there (``from maim_db.tables.maibot1 import Messages``), and listed in ``MAIBOT1_ROWS``
"""

from ..row import Row
from . import agent_config, business, imports, maibot1, runtime
from .agent_config import (
    ApiProviderConfig,
    BotConfigOverrides,
    ChatConfigOverrides,
    ChineseTypoConfig,
    DebugConfig,
    DreamConfig,
    EmojiConfigOverrides,
    ExperimentalConfig,
    ExpressionConfigOverrides,
    JargonConfig,
    KeywordReactionConfigOverrides,
    LpmmKnowledgeConfig,
    MaimMessageConfig,
    MemoryConfigOverrides,
    MessageReceiveConfigOverrides,
    ModelConfigOverrides,
    ModelInfoConfig,
    MoodConfigOverrides,
    PersonalityConfig,
    PluginConfigOverrides,
    RelationshipConfigOverrides,
    ResponsePostProcessConfig,
    ResponseSplitterConfig,
    TelemetryConfig,
    ToolConfigOverrides,
    VoiceConfigOverrides,
)
from .business import ChatHistory, ChatLog, FileUpload, SystemMetric, UserSession
from .control_plane import (
    Agent,
    AgentActiveState,
    ApiKey,
    ApiKeyInfo,
    ApiKeyUsage,
    ApiKeyUsageRecent,
    PluginSetting,
    Tenant,
    User,
    UserProfile,
)
from .imports import ImportClaim, ImportProgress
from .runtime import (
    ActionRecord,
    ChatHistorySummary,
    ChatStream,
    Emoji,
    EmojiDescriptionCache,
    Expression,
    GroupInfo,
    HippoBatchState,
    HippoTopicCache,
    Image,
    ImageDescription,
    Jargon,
    LLMUsage,
    Message,
    OnlineTime,
    PersonInfo,
    RuntimeState,
    ThinkingBack,
)

CONTROL_PLANE: tuple[type[Row], ...] = (
    User,
    Tenant,
    Agent,
    ApiKey,
    AgentActiveState,
    PluginSetting,
)

#: Every table's row model of the schema ``public``, in migration order.
ALL_ROWS: tuple[type[Row], ...] = (
    CONTROL_PLANE + agent_config.ROWS + business.ROWS + runtime.ROWS + imports.ROWS
    + (ApiKeyUsage, ApiKeyUsageRecent)
)

#: Every table's row model of the schema ``maibot1`` (MaiBot 1.x), each an agent table.
MAIBOT1_ROWS: tuple[type[Row], ...] = maibot1.ROWS

#: Models of what a role without every column privilege reads: a view, or a table without
#: the columns kept from that role (tests/test_schema_contract.py holds them to the catalog).
PARTIAL_ROWS: tuple[type[Row], ...] = (UserProfile, ApiKeyInfo)

__all__ = [
    "ALL_ROWS",
    "CONTROL_PLANE",
    "MAIBOT1_ROWS",
    "PARTIAL_ROWS",
    "ActionRecord",
    "Agent",
    "AgentActiveState",
    "ApiKey",
    "ApiKeyInfo",
    "ApiKeyUsage",
    "ApiKeyUsageRecent",
    "ApiProviderConfig",
    "BotConfigOverrides",
    "ChatConfigOverrides",
    "ChatHistory",
    "ChatHistorySummary",
    "ChatLog",
    "ChatStream",
    "ChineseTypoConfig",
    "DebugConfig",
    "DreamConfig",
    "Emoji",
    "EmojiConfigOverrides",
    "EmojiDescriptionCache",
    "ExperimentalConfig",
    "Expression",
    "ExpressionConfigOverrides",
    "FileUpload",
    "GroupInfo",
    "HippoBatchState",
    "HippoTopicCache",
    "Image",
    "ImageDescription",
    "ImportClaim",
    "ImportProgress",
    "Jargon",
    "JargonConfig",
    "KeywordReactionConfigOverrides",
    "LLMUsage",
    "LpmmKnowledgeConfig",
    "MaimMessageConfig",
    "MemoryConfigOverrides",
    "Message",
    "MessageReceiveConfigOverrides",
    "ModelConfigOverrides",
    "ModelInfoConfig",
    "MoodConfigOverrides",
    "OnlineTime",
    "PersonInfo",
    "PersonalityConfig",
    "PluginConfigOverrides",
    "PluginSetting",
    "RelationshipConfigOverrides",
    "ResponsePostProcessConfig",
    "ResponseSplitterConfig",
    "RuntimeState",
    "SystemMetric",
    "TelemetryConfig",
    "Tenant",
    "ThinkingBack",
    "ToolConfigOverrides",
    "User",
    "UserProfile",
    "UserSession",
    "VoiceConfigOverrides",
    "agent_config",
    "business",
    "imports",
    "maibot1",
    "runtime",
]
