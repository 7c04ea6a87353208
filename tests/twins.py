"""One test, both APIs: the ``twin`` fixture hands a test either the sync API or the async
one driven to completion on an event loop, so the scope pipeline written once in
``connection_async.py`` is tested through its generated sync module and itself, by the same
assertions. Real connections both ways; nothing is faked, only awaited."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

import maim_db

_ASYNC_TYPES = (psycopg.AsyncConnection, psycopg.AsyncCursor, maim_db.AsyncDatabase,
                maim_db.AsyncPool)


class Blocking:
    """An async object used from sync code: each coroutine it returns runs to completion,
    an async context manager becomes a plain one, and async objects it hands out (a cursor,
    the raw connection) are wrapped the same way."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def _wrap(self, value: Any) -> Any:
        if inspect.isawaitable(value):
            return self._wrap(self._loop.run_until_complete(value))
        if isinstance(value, _ASYNC_TYPES) or hasattr(value, "__aenter__"):
            return Blocking(value, self._loop)
        if callable(value) and not isinstance(value, type):
            return lambda *args, **kwargs: self._wrap(value(*args, **kwargs))
        return value

    def __getattr__(self, name: str) -> Any:
        return self._wrap(getattr(self._target, name))

    def __iter__(self) -> Iterator[Any]:
        return iter(self._target)

    def __enter__(self) -> Any:
        return self._wrap(self._loop.run_until_complete(self._target.__aenter__()))

    def __exit__(self, *exc: Any) -> Any:
        return self._loop.run_until_complete(self._target.__aexit__(*exc))


@dataclass
class Twin:
    """``connect`` and ``Pool`` of one flavour, with the same signatures as the sync API."""

    name: str
    connect: Callable[..., Any]
    Pool: Callable[..., Any]


@pytest.fixture(params=["sync", "async"])
def twin(request: pytest.FixtureRequest) -> Iterator[Twin]:
    if request.param == "sync":
        yield Twin("sync", maim_db.connect, maim_db.Pool)
        return
    loop = asyncio.new_event_loop()
    try:
        yield Twin("async", lambda *a, **k: Blocking(maim_db.aconnect(*a, **k), loop),
                   lambda *a, **k: Blocking(maim_db.AsyncPool(*a, **k), loop))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
