"""Where scopes are set: the one statement that opens a scope inside a transaction.

A scope is a role plus the settings the RLS policies read. It is applied with
``set_config(..., true)`` (transaction-local), so it ends with the transaction and can never
reach the next user of a pooled connection. Both settings are always written, the unused one
as ``''``, so nothing set earlier on the session survives into this transaction.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, Literal, LiteralString, get_args

from . import ids
from .errors import AuthenticationError, InputError, ScopeError

Kind = Literal["agent", "key", "tenant", "admin"]
#: What an API key may be granted (``api_keys.permissions``).
Permission = Literal["chat", "config_read", "config_write", "analytics"]

# A block opened from an API key runs as maim_plugin whatever the login: the key proves its
# agent to the policies (migrations/0012), and nothing in the block can name another.
ROLES: Final[dict[Kind, str]] = {
    "agent": "maim_app",
    "key": "maim_plugin",
    "tenant": "maim_tenant",
    "admin": "maim_admin",
}

# Every scope statement starts with the reset check (docs/concepts.md, "The reset check":
# what it asks, and why the advisory locks and search_path are reset rather than probed). On a
# clean connection it is one expression the server evaluates without a function call (the
# seven settings read in one concat: '' only when each is unset or ''; held cursors and
# listens in one probe); only a dirty one reaches maim.assert_clean_session, which raises
# MA001 and so aborts the pipeline before the block's first statement runs. Temporary
# objects are looked for only where the session has a temporary schema, by
# maim.no_temp_objects() (sql/10_helpers.sql): written inline, its two catalog scans were
# planned into every execution of the statement whether they ran or not (issue 36). Every
# operator and function is named with its schema: the statement is parsed under the
# session's search_path, and parsed again whenever that differs from the one it was planned
# under, so a path a session (or a plugin login's default) sets must choose nothing here.
_CLEAN_HEAD: Final = (
    "select case when current_user operator(pg_catalog.=) session_user"
    " and pg_catalog.concat(pg_catalog.current_setting('maim.agent_id', true),"
    " pg_catalog.current_setting('maim.tenant_id', true),"
    " pg_catalog.current_setting('maim.agent_proof', true),"
    " pg_catalog.current_setting('maim.agent_tenant', true),"
    " pg_catalog.current_setting('maim.tenant_agents', true),"
    " pg_catalog.current_setting('maim.tenant_owner', true),"
    " pg_catalog.current_setting('maim.key_permissions', true)) operator(pg_catalog.=) ''"
    " and not exists (select from pg_catalog.pg_cursor() c where c.is_holdable"
    " union all select from pg_catalog.pg_listening_channels())"
    " and (pg_catalog.pg_my_temp_schema() operator(pg_catalog.=) 0 or "
)
_CLEAN_TAIL: Final = (
    ") then true else maim.assert_clean_session(false) end, "
    "pg_catalog.pg_advisory_unlock_all(), "
    "pg_catalog.set_config('search_path', 'public, pg_temp', true), "
)
_CLEAN: Final = _CLEAN_HEAD + "maim.no_temp_objects()" + _CLEAN_TAIL
# The same probe written inline, for a database not yet migrated by 0.10.0 (which has no
# maim.no_temp_objects): a service upgraded before its database still checks everything.
_CLEAN_BEFORE_0_10: Final = (
    _CLEAN_HEAD + "not exists (select from pg_catalog.pg_class"
    " where relnamespace operator(pg_catalog.=) pg_catalog.pg_my_temp_schema())"
    " and not exists (select from pg_catalog.pg_type"
    " where typnamespace operator(pg_catalog.=) pg_catalog.pg_my_temp_schema())" + _CLEAN_TAIL
)
# A key's block may run on a login whose defaults a plugin set on itself (ALTER ROLE … SET
# reaches every later session of that login, whichever plugin shares it): the settings that
# change what a value means, or whether RLS applies, are pinned for its transaction.
# (client_encoding is UTF8 from the connection's start; this transaction's read-only and
# isolation from its BEGIN, their defaults here for what the block runs.) The id generator's
# memory (maibot1.last_id, maim.maibot1_id()) starts empty: a value another client of the
# login left on the server session (behind PgBouncer the reset may miss it) would otherwise
# push the key's agent's ids to 2^53 and its inserts into errors.
_PINNED: Final = (
    " pg_catalog.set_config('maibot1.last_id', '', true),"
    " pg_catalog.set_config('row_security', 'on', true),"
    " pg_catalog.set_config('DateStyle', 'ISO, MDY', true),"
    " pg_catalog.set_config('IntervalStyle', 'postgres', true),"
    " pg_catalog.set_config('extra_float_digits', '1', true),"
    " pg_catalog.set_config('bytea_output', 'hex', true),"
    " pg_catalog.set_config('standard_conforming_strings', 'on', true),"
    " pg_catalog.set_config('default_transaction_read_only', 'off', true),"
    " pg_catalog.set_config('default_transaction_isolation', 'read committed', true),"
)
#: The SQLSTATE of a failed reset check.
DIRTY: Final = "MA001"

# Agent scope goes through maim.open_agent_scope (migrations/0012_unforgeable_scope.sql),
# which refuses an unknown or suspended agent or tenant; a key through maim.open_key_scope,
# which resolves it and proves its agent for this transaction; a tenant through
# maim.open_tenant_scope (0016), which refuses an unknown tenant and writes down its agents
# (on Citus the tenant policies read them). Admin scope is the role alone.
_OPEN: Final[dict[Kind, LiteralString]] = {
    "agent": "pg_catalog.set_config('role', 'maim_app', true),"
             " pg_catalog.set_config('maim.tenant_id', '', true), maim.open_agent_scope(%s)",
    "key": "maim.assert_plugin_login(),"
           " pg_catalog.set_config('role', 'maim_plugin', true)," + _PINNED +
           " pg_catalog.set_config('maim.tenant_id', '', true), maim.open_key_scope(%s),"
           " pg_catalog.current_setting('maim.key_permissions')",
    "tenant": "pg_catalog.set_config('role', 'maim_tenant', true),"
              " pg_catalog.set_config('maim.agent_id', '', true),"
              " maim.open_tenant_scope(%s)",
    "admin": "pg_catalog.set_config('role', 'maim_admin', true),"
             " pg_catalog.set_config('maim.agent_id', '', true),"
             " pg_catalog.set_config('maim.tenant_id', '', true)",
}
SET_SCOPE: Final[dict[Kind, LiteralString]] = {
    kind: _CLEAN + body for kind, body in _OPEN.items()}
#: The scope statements for a database a release before 0.10.0 migrated (chosen per
#: connection by its first block's probe, maim_db.pipeline.PROBE).
SET_SCOPE_BEFORE_0_10: Final[dict[Kind, LiteralString]] = {
    kind: _CLEAN_BEFORE_0_10 + body for kind, body in _OPEN.items()}

# What makes a connection clean again when the check above says it is not: settings, role,
# temporary objects, cursors, prepared statements, listens — everything a session can carry.
RESET_SESSION: Final = "discard all"


PERMISSIONS: Final[tuple[str, ...]] = get_args(Permission)
# A key that may change the configuration may read it too: an update returns the document.
_IMPLIED_BY: Final = {"config_read": "config_write"}


def check_permission(granted: tuple[str, ...], permission: str, holder: str) -> None:
    """Raise :class:`AuthenticationError` unless ``granted`` includes ``permission``."""
    if permission not in PERMISSIONS:
        raise InputError(f"unknown permission {permission!r}; known: {', '.join(PERMISSIONS)}")
    if permission not in granted and _IMPLIED_BY.get(permission) not in granted:
        raise AuthenticationError(f"{holder} lacks the {permission!r} permission")


@dataclass(frozen=True, slots=True)
class Scope:
    kind: Kind
    id: str | None = None
    #: What the API key that opened this scope grants; ``None`` for scopes not opened from a
    #: key (a trusted service, the control plane), which are not limited by permissions.
    permissions: tuple[str, ...] | None = None

    @property
    def role(self) -> str:
        return ROLES[self.kind]

    @property
    def agent_id(self) -> str | None:
        return self.id if self.kind == "agent" else None

    @property
    def statement(self) -> LiteralString:
        return SET_SCOPE[self.kind]

    def statement_for(self, temp_probe: bool) -> LiteralString:
        """The scope statement for a database with (``temp_probe``) or without
        maim.no_temp_objects()."""
        return (SET_SCOPE if temp_probe else SET_SCOPE_BEFORE_0_10)[self.kind]

    @property
    def params(self) -> tuple[str, ...]:
        return () if self.id is None else (self.id,)

    def opened(self, row: tuple[Any, ...] | None) -> Scope:
        """This scope once the scope statement answered ``row``: a key becomes the agent it
        opened, with the key's permissions."""
        if self.kind != "key" or row is None:
            return self
        return Scope("agent", row[-2], tuple(p for p in row[-1].split(",") if p))

    def require(self, permission: str) -> None:
        """Raise :class:`AuthenticationError` unless this scope may use ``permission``."""
        if self.kind == "key":
            raise ScopeError("the API key is resolved with the block's first statement; "
                             "check permissions after it (db.require() does)")
        # a trusted scope holds every permission, but a misspelt one is still an error
        granted = PERMISSIONS if self.permissions is None else self.permissions
        check_permission(granted, permission, "this API key")

    def __repr__(self) -> str:  # never print a secret
        return f"Scope({self.kind!r}, {'<secret>' if self.kind == 'key' else self.id!r})"

    def __str__(self) -> str:
        if self.kind == "key":
            return "agent (from an API key)"
        return "admin" if self.kind == "admin" else f"{self.kind} {self.id}"


#: The ambient scope: what a block that names none uses. :mod:`maim_db.context` sets it; it
#: follows the coroutine, never the thread.
AMBIENT: ContextVar[Scope | None] = ContextVar("maim_db_scope", default=None)


#: Agent scopes already resolved, by id (a Scope is immutable, so one serves every block): the
#: id's pattern is matched once, not per block. Bounded; emptied when full.
_AGENTS: dict[str, Scope] = {}
_AGENTS_KEPT: Final = 4096


def resolve(*, agent_id: str | None = None, tenant_id: str | None = None,
            admin: bool = False, api_key: str | None = None) -> Scope:
    """Exactly one scope, well formed — checked before any connection is made. With none
    named, the ambient scope (:mod:`maim_db.context`) applies; an explicit one always wins."""
    if (type(agent_id) is str and tenant_id is None and admin is False
            and api_key is None):  # the common call: one agent's scope, checked once
        found = _AGENTS.get(agent_id)
        if found is None:
            found = Scope("agent", ids.check("agent", agent_id))
            if len(_AGENTS) >= _AGENTS_KEPT:
                _AGENTS.clear()
            _AGENTS[agent_id] = found
        return found
    if not isinstance(admin, bool):  # admin="false" is truthy: refuse rather than guess
        raise ScopeError(f"admin= takes True or False, got {admin!r}")
    chosen = [name for name, given in
              (("agent_id", agent_id is not None), ("tenant_id", tenant_id is not None),
               ("admin", admin), ("api_key", api_key is not None)) if given]
    if not chosen:
        ambient = AMBIENT.get()
        if ambient is not None:
            return ambient
        raise ScopeError(
            "no scope given: pass exactly one of agent_id=..., tenant_id=..., api_key=... or "
            "admin=True "
            "(or open one around the block with agent_scope()/tenant_scope())"
        )
    if len(chosen) > 1:
        raise ScopeError(f"exactly one scope per block, got {' and '.join(chosen)}")
    if agent_id is not None:
        return Scope("agent", ids.check("agent", agent_id))
    if tenant_id is not None:
        return Scope("tenant", ids.check("tenant", tenant_id))
    if api_key is not None:
        return Scope("key", check_key_secret(api_key))
    return Scope("admin")


def check_key_secret(secret: object) -> str:
    """An API key as the client gave it: a non-empty ASCII string, else no key at all."""
    if not isinstance(secret, str) or not secret or not secret.isascii():
        raise AuthenticationError("invalid API key: expected a non-empty ASCII string")
    return secret


def named_agent(agent_id: object) -> Scope:
    """The scope of a whole-agent operation (import, export, restore, erase): the agent must
    be named — the ambient scope is no way to choose what to erase."""
    return Scope("agent", ids.check("agent", agent_id))
