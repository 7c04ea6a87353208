"""Typed rows, one model per table, grouped by area. The tables themselves are defined in
``migrations/``; ``tests/test_schema_contract.py`` holds the two equal."""

from ..row import Row
from .control_plane import Agent, AgentActiveState, ApiKey, PluginSetting, Tenant, User

CONTROL_PLANE: tuple[type[Row], ...] = (User, Tenant, Agent, ApiKey, AgentActiveState,
                                        PluginSetting)

#: Every table's row model.
ALL_ROWS: tuple[type[Row], ...] = CONTROL_PLANE

__all__ = ["ALL_ROWS", "CONTROL_PLANE", "Agent", "AgentActiveState", "ApiKey",
           "PluginSetting", "Tenant", "User"]
