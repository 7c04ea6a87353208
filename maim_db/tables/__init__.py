"""Typed rows, one model per table, grouped by area. The tables themselves are defined in
``migrations/``; ``tests/test_schema_contract.py`` holds the two equal."""

from .control_plane import Agent, AgentActiveState, ApiKey, PluginSetting, Tenant, User

__all__ = ["Agent", "AgentActiveState", "ApiKey", "PluginSetting", "Tenant", "User"]
