"""Ambient scope: the scope a block uses when it names none.

It lives in a :class:`contextvars.ContextVar`, so it follows the coroutine and the tasks it
spawns (and ``contextvars.copy_context().run`` / ``asyncio.to_thread`` into executor
threads), never the OS thread — the original's thread-local leaked between concurrent
requests served by one thread and vanished in executor threads.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from contextvars import ContextVar, Token

from . import ids
from .scope import Scope

_ambient: ContextVar[Scope | None] = ContextVar("maim_db_scope", default=None)


def current() -> Scope | None:
    """The ambient scope of this context, if any."""
    return _ambient.get()


class _Ambient(AbstractContextManager[Scope]):
    """Sets the ambient scope for a ``with`` block; reusable and re-entrant, like a lock."""

    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self._tokens: list[Token[Scope | None]] = []

    def __enter__(self) -> Scope:
        self._tokens.append(_ambient.set(self._scope))
        return self._scope

    def __exit__(self, *exc: object) -> None:
        _ambient.reset(self._tokens.pop())


def agent_scope(agent_id: str) -> AbstractContextManager[Scope]:
    """Blocks in this context that name no scope act for ``agent_id``."""
    return _Ambient(Scope("agent", ids.check("agent", agent_id)))


def tenant_scope(tenant_id: str) -> AbstractContextManager[Scope]:
    """Blocks in this context that name no scope act for ``tenant_id``."""
    return _Ambient(Scope("tenant", ids.check("tenant", tenant_id)))
