"""Typed rows, one model per table, grouped by area. The tables themselves are defined in
``migrations/``; ``tests/test_schema_contract.py`` holds the two equal.

- :mod:`.control_plane` — users, tenants, agents, keys, activity, plugin settings (0001)
- :mod:`.agent_config` — the 26 configuration sections of an agent (0003)
- :mod:`.business` — chat history and logs, uploads, sessions, metrics (0004)
- :mod:`.runtime` — MaiBot's own tables: streams, messages, people, memories… (0005)
- :mod:`.imports` — how far each MaiBot database's import has got (0008)
"""

from ..row import Row
from . import agent_config, business, imports, runtime
from .control_plane import Agent, AgentActiveState, ApiKey, PluginSetting, Tenant, User

CONTROL_PLANE: tuple[type[Row], ...] = (User, Tenant, Agent, ApiKey, AgentActiveState,
                                        PluginSetting)

#: Every table's row model, in migration order.
ALL_ROWS: tuple[type[Row], ...] = (CONTROL_PLANE + agent_config.ROWS + business.ROWS
                                   + runtime.ROWS + imports.ROWS)

__all__ = ["ALL_ROWS", "CONTROL_PLANE", "Agent", "AgentActiveState", "ApiKey",
           "PluginSetting", "Tenant", "User", "agent_config", "business", "imports", "runtime"]
