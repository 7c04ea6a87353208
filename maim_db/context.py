"""Ambient scope: the scope a block uses when it names none.

It lives in a :class:`contextvars.ContextVar`, so it follows the coroutine and the tasks it
spawns (and ``contextvars.copy_context().run`` / ``asyncio.to_thread`` into executor
threads), never the OS thread — the original's thread-local leaked between concurrent
requests served by one thread and vanished in executor threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar

from . import ids
from .scope import Scope

_ambient: ContextVar[Scope | None] = ContextVar("maim_db_scope", default=None)


def current() -> Scope | None:
    """The ambient scope of this context, if any."""
    return _ambient.get()


@contextmanager
def _set(scope: Scope) -> Iterator[Scope]:
    token = _ambient.set(scope)
    try:
        yield scope
    finally:
        _ambient.reset(token)


def agent_scope(agent_id: str) -> AbstractContextManager[Scope]:
    """Blocks in this context that name no scope act for ``agent_id``."""
    return _set(Scope("agent", ids.check("agent", agent_id)))


def tenant_scope(tenant_id: str) -> AbstractContextManager[Scope]:
    """Blocks in this context that name no scope act for ``tenant_id``."""
    return _set(Scope("tenant", ids.check("tenant", tenant_id)))
