# WARNING: generated from maim_db/control/activity_async.py by tools/async_to_sync.py;
# do not edit: change the async source and run `python tools/async_to_sync.py`.

"""Agent liveness: the runtime touches it on every inbound message, so a touch is one
statement (an upsert; ``expires_at`` is computed by a trigger).
"""

from __future__ import annotations

from typing import Final

from ..connection import Database
from ..errors import InputError
from ..tables import AgentActiveState

DEFAULT_TTL: Final = 300

# agent_id and tenant_id come from the scope; the trigger recomputes expires_at. now() is in
# VALUES, not in SET: Citus takes only immutable functions in an upsert's DO UPDATE.
_TOUCH: Final = """
insert into agent_active_states (last_seen_at, ttl_seconds) values (now(), %s)
on conflict (agent_id) do update
    set last_seen_at = excluded.last_seen_at, ttl_seconds = excluded.ttl_seconds
returning *
"""

_ACTIVE: Final = (
    "select * from agent_active_states where expires_at > now() order by expires_at desc"
)


def _ttl(ttl_seconds: int) -> list[int]:
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds <= 0:
        raise InputError(f"ttl_seconds must be a positive integer, got {ttl_seconds!r}")
    return [ttl_seconds]


def touch(db: Database, ttl_seconds: int = DEFAULT_TTL) -> AgentActiveState:
    """Mark the agent in scope alive for ``ttl_seconds`` from now (agent scope)."""
    return db.fetch_one(AgentActiveState, _TOUCH, _ttl(ttl_seconds))


def list_active(db: Database) -> list[AgentActiveState]:
    """Agents whose TTL has not run out, as far as the scope can see (admin: all; tenant:
    its agents; agent: itself)."""
    return db.fetch(AgentActiveState, _ACTIVE)


# The generated module hands these out as well: one import for both flavours.
from .activity_async import alist_active as alist_active
from .activity_async import atouch as atouch
