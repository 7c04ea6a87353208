"""What an agent's configuration document holds: its sections and the row model of each."""

from __future__ import annotations

from typing import Final

from ...row import Row
from ...tables import agent_config as ac
from .. import sealed

MASK: Final = "********"
SYSTEM: Final = frozenset({"agent_id", "id", "created_at", "updated_at"})

TOP: Final[dict[str, type[Row]]] = {"persona": ac.PersonalityConfig,
                                    "bot_overrides": ac.BotConfigOverrides}
SECTIONS: Final[dict[str, type[Row]]] = {
    "chat": ac.ChatConfigOverrides, "expression": ac.ExpressionConfigOverrides,
    "memory": ac.MemoryConfigOverrides, "mood": ac.MoodConfigOverrides,
    "emoji": ac.EmojiConfigOverrides, "tool": ac.ToolConfigOverrides,
    "voice": ac.VoiceConfigOverrides, "plugin": ac.PluginConfigOverrides,
    "keyword_reaction": ac.KeywordReactionConfigOverrides,
    "relationship": ac.RelationshipConfigOverrides,
    "message_receive": ac.MessageReceiveConfigOverrides,
    "lpmm_knowledge": ac.LpmmKnowledgeConfig, "dream": ac.DreamConfig,
    "jargon": ac.JargonConfig, "response_post_process": ac.ResponsePostProcessConfig,
    "chinese_typo": ac.ChineseTypoConfig, "response_splitter": ac.ResponseSplitterConfig,
    "debug": ac.DebugConfig, "experimental": ac.ExperimentalConfig,
    "maim_message": ac.MaimMessageConfig, "telemetry": ac.TelemetryConfig,
}
PROVIDER_SECRETS: Final = sealed.PROVIDER_SECRETS
# The document names a model's provider `api_provider`, as MaiBot's model_config.toml does.
MODEL_RENAMES: Final = {"api_provider": "provider_name"}


def fields(model: type[Row]) -> list[str]:
    """The fields a document may hold for ``model``: all but the keys and timestamps SQL keeps."""
    return [f for f in model.model_fields if f not in SYSTEM]
