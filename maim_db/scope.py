"""Where scopes are set: the one statement that opens a scope inside a transaction.

A scope is a role plus the settings the RLS policies read. It is applied with
``set_config(..., true)`` (transaction-local), so it ends with the transaction and can never
reach the next user of a pooled connection. Both settings are always written, the unused one
as ``''``, so nothing set earlier on the session survives into this transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from . import ids
from .errors import ScopeError

Kind = Literal["agent", "tenant", "admin"]

ROLES: Final[dict[Kind, str]] = {
    "agent": "maim_app",
    "tenant": "maim_tenant",
    "admin": "maim_admin",
}

# The first column is the reset check, evaluated before the settings change: was the
# connection clean (no role, no scope left at session level by an earlier user)? It rides
# in the same statement, so checking costs nothing when the answer is yes.
SET_SCOPE: Final = (
    "select current_user = session_user"
    " and coalesce(current_setting('maim.agent_id', true), '') = ''"
    " and coalesce(current_setting('maim.tenant_id', true), '') = '',"
    " set_config('role', %s, true),"
    " set_config('maim.agent_id', %s, true),"
    " set_config('maim.tenant_id', %s, true)"
)

# What makes a connection clean again when the check above says it is not.
RESET_SESSION: Final = "reset all; reset role"  # RESET ALL leaves the role alone


@dataclass(frozen=True, slots=True)
class Scope:
    kind: Kind
    id: str | None = None

    @property
    def role(self) -> str:
        return ROLES[self.kind]

    @property
    def agent_id(self) -> str | None:
        return self.id if self.kind == "agent" else None

    @property
    def params(self) -> tuple[str, str, str]:
        agent = self.id if self.kind == "agent" else ""
        tenant = self.id if self.kind == "tenant" else ""
        return (self.role, agent or "", tenant or "")

    def __str__(self) -> str:
        return "admin" if self.kind == "admin" else f"{self.kind} {self.id}"


def resolve(*, agent_id: str | None = None, tenant_id: str | None = None,
            admin: bool = False) -> Scope:
    """Exactly one scope, well formed — checked before any connection is made. With none
    named, the ambient scope (:mod:`maim_db.context`) applies; an explicit one always wins."""
    chosen = [name for name, given in
              (("agent_id", agent_id is not None), ("tenant_id", tenant_id is not None),
               ("admin", admin)) if given]
    if not chosen:
        from .context import current

        ambient = current()
        if ambient is not None:
            return ambient
        raise ScopeError(
            "no scope given: pass exactly one of agent_id=..., tenant_id=... or admin=True "
            "(or open one around the block with agent_scope()/tenant_scope())"
        )
    if len(chosen) > 1:
        raise ScopeError(f"exactly one scope per block, got {' and '.join(chosen)}")
    if agent_id is not None:
        return Scope("agent", ids.check("agent", agent_id))
    if tenant_id is not None:
        return Scope("tenant", ids.check("tenant", tenant_id))
    return Scope("admin")
