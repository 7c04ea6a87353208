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
from maim_db import connection, connection_async

_ASYNC_TYPES = (psycopg.AsyncConnection, psycopg.AsyncCursor, maim_db.AsyncBlock,
                maim_db.AsyncPool)


def _unwrap(value: Any) -> Any:
    return value._target if isinstance(value, Blocking) else value


class Blocking:
    """An async object used from sync code: each coroutine it returns runs to completion,
    an async context manager becomes a plain one, and async objects it hands out (a cursor,
    the raw connection) are wrapped the same way."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def _wrap(self, value: Any) -> Any:
        if inspect.isawaitable(value):
            result = self._loop.run_until_complete(value)
            # awaited once, as a caller would: a coroutine that hands back another
            # (a missing await inside the library) must not pass for a result
            assert not inspect.isawaitable(result), f"{value!r} returned an awaitable"
            return self._wrap(result)
        if isinstance(value, _ASYNC_TYPES) or hasattr(value, "__aenter__"):
            return Blocking(value, self._loop)
        if callable(value) and not isinstance(value, type):
            return lambda *args, **kwargs: self._wrap(value(*map(_unwrap, args), **{
                k: _unwrap(v) for k, v in kwargs.items()}))
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
    """The API of one flavour, with the sync API's names and signatures."""

    name: str
    connect: Callable[..., Any]
    Pool: Callable[..., Any]
    scoped: Callable[..., Any]
    run_scoped: Callable[..., Any]
    open_connection: Callable[..., Any]


@pytest.fixture(params=["sync", "async"])
def twin(request: pytest.FixtureRequest) -> Iterator[Twin]:
    if request.param == "sync":
        yield Twin("sync", maim_db.connect, maim_db.Pool, maim_db.scoped,
                   connection.run_scoped, connection.open_connection)
        return
    loop = asyncio.new_event_loop()
    blocking = Blocking(connection_async, loop)
    try:
        yield Twin("async", blocking.aconnect,
                   lambda *a, **k: Blocking(maim_db.AsyncPool(*a, **k), loop), blocking.ascoped,
                   blocking.arun_scoped, blocking.aopen_connection)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
