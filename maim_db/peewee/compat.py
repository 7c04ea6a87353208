"""Small shims for the names the ``saas`` fork imported from the old maim_db, where an
import change alone cannot do (docs/porting-maibot.md says which replaces what)."""

from __future__ import annotations

from ..connection_async import aconnect
from ..control import activity
from ..errors import IsolationError
from ..tables import AgentActiveState


class AsyncAgentActiveState:
    """The fork's ``AsyncAgentActiveState``, over :mod:`maim_db.control.activity`: the
    database keeps the TTL and derives the tenant from the agent."""

    @staticmethod
    async def upsert(tenant_id: str | None, agent_id: str,
                     ttl_seconds: int = activity.DEFAULT_TTL, *,
                     dsn: str | None = None) -> AgentActiveState:
        """Mark ``agent_id`` alive for ``ttl_seconds``, in its own scope. A ``tenant_id``
        that is not the agent's is refused and nothing is written."""
        async with aconnect(dsn, agent_id=agent_id) as db:
            state = await activity.atouch(db, ttl_seconds)
            if tenant_id is not None and state.tenant_id != tenant_id:
                raise IsolationError(f"agent {agent_id} belongs to tenant {state.tenant_id}, "
                                     f"not {tenant_id}; nothing was written")
        return state

    @staticmethod
    async def list_active(*, dsn: str | None = None) -> list[AgentActiveState]:
        """Every agent whose TTL has not run out. This reads across agents, so it is the
        admin scope's: ``dsn`` (else ``MAIMDB_DSN``) must be a login that may take it
        (``maim_admin``), the scheduler's own, not the runtime's."""
        async with aconnect(dsn, admin=True) as db:
            return await activity.alist_active(db)
