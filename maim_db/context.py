"""Ambient scope: the scope a block uses when it names none.

It lives in a :class:`contextvars.ContextVar`, so it follows the coroutine and the tasks it
spawns (and ``contextvars.copy_context().run`` / ``asyncio.to_thread`` into executor
threads), never the OS thread — the original's thread-local leaked between concurrent
requests served by one thread and vanished in executor threads.

Following the context is also its trap: a worker task created lazily inside
``agent_scope(A)`` keeps A for every later job it serves, and a generator runs under the
scope of whoever iterates it, not of whoever made it. :func:`job_scope` makes each job state
its agent and refuses to run inside another agent's ambient scope; :func:`no_scope` starts
workers with none (docs/pooling.md).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from contextvars import Token
from typing import Generic, TypeVar

from . import ids
from .errors import ScopeError
from .scope import AMBIENT as _ambient
from .scope import Scope, check_key_secret


def current() -> Scope | None:
    """The ambient scope of this context, if any."""
    return _ambient.get()


S = TypeVar("S", bound=Scope | None)


class _Ambient(AbstractContextManager[S], Generic[S]):
    """Sets the ambient scope (or none) for a ``with`` block; reusable and re-entrant, like a
    lock."""

    def __init__(self, scope: S) -> None:
        self._scope = scope
        self._tokens: list[Token[Scope | None]] = []

    def __enter__(self) -> S:
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


def key_scope(api_key: str) -> AbstractContextManager[Scope]:
    """Blocks in this context that name no scope act for the agent whose API key this is
    (resolved by the database at each block, as ``api_key=`` is; for plugin runtimes)."""
    return _Ambient(Scope("key", check_key_secret(api_key)))


class _JobScope(_Ambient[Scope]):
    """:func:`agent_scope` that first checks what it would replace."""

    def __enter__(self) -> Scope:
        ambient = _ambient.get()
        if ambient is not None and ambient != self._scope:
            raise ScopeError(
                f"a job for {self._scope} is about to run inside the ambient scope {ambient}: "
                "a worker started inside agent_scope()/tenant_scope() keeps that scope for "
                "every job it serves; start workers under no_scope(), or name the scope on "
                "each block")
        return super().__enter__()


def job_scope(agent_id: str) -> AbstractContextManager[Scope]:
    """The ambient scope of one job for ``agent_id``; :class:`ScopeError` if this context
    already carries another agent's or a tenant's scope (a worker that inherited the scope
    of whatever first started it). Wrap each job a worker serves in it."""
    return _JobScope(Scope("agent", ids.check("agent", agent_id)))


def no_scope() -> AbstractContextManager[None]:
    """No ambient scope inside the block: start worker tasks and threads here, so that they
    inherit none and every job has to state its own (``asyncio.create_task`` copies the
    context it is called in)."""
    return _Ambient(None)
