"""maim_db: the isolated data plane of multi-user MaiBot.

PostgreSQL row-level security keeps agents apart; this package opens the right scope for one
transaction and returns typed rows::

    from maim_db import connect
    from maim_db.tables import Agent

    with connect(agent_id="agent_3f9a1c2b7d4e") as db:
        me = db.get(Agent, "agent_3f9a1c2b7d4e")

The core is this package's top level; the schema's lifecycle is in :mod:`maim_db.schema`, the
control plane in :mod:`maim_db.control`, data in and out in :mod:`maim_db.transfer`, the
``maimdb`` command in :mod:`maim_db.cli` (docs/conventions.md: where everything is).
"""

from .connection import Block, Database, connect, scoped
from .connection_async import AsyncBlock, AsyncDatabase, aconnect, ascoped
from .context import agent_scope, job_scope, key_scope, no_scope, tenant_scope
from .errors import (
    AuthenticationError,
    BlockedError,
    ConfigurationError,
    ConflictError,
    ConnectError,
    DatabaseError,
    InputError,
    IsolationError,
    MaimDBError,
    MigrationError,
    MissingRoleError,
    NotFoundError,
    OutdatedReleaseError,
    ScopeError,
    UnknownAgentError,
    UnknownTenantError,
)
from .ids import new_agent_id, new_key_id, new_tenant_id, new_user_id
from .pool import Pool
from .pool_async import AsyncPool
from .row import Row, server_default
from .scope import Scope

__all__ = [
    "AsyncBlock",
    "AsyncDatabase",
    "AsyncPool",
    "AuthenticationError",
    "Block",
    "BlockedError",
    "ConfigurationError",
    "ConflictError",
    "ConnectError",
    "Database",
    "DatabaseError",
    "InputError",
    "IsolationError",
    "MaimDBError",
    "MigrationError",
    "MissingRoleError",
    "NotFoundError",
    "OutdatedReleaseError",
    "Pool",
    "Row",
    "Scope",
    "ScopeError",
    "UnknownAgentError",
    "UnknownTenantError",
    "aconnect",
    "agent_scope",
    "ascoped",
    "connect",
    "job_scope",
    "key_scope",
    "new_agent_id",
    "new_key_id",
    "new_tenant_id",
    "new_user_id",
    "no_scope",
    "scoped",
    "server_default",
    "tenant_scope",
]
