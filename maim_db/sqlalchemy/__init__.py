"""SQLAlchemy engines whose every transaction runs in a maim_db scope (the ``sqlalchemy`` extra).

SQLAlchemy builds the SQL and keeps its Session, ORM and pool; maim_db opens the scope. The
engine's DBAPI connection is a psycopg connection (autocommit, as maim_db's own) whose cursor
sends the first statement of each transaction behind ``BEGIN`` and the scope statement
(:data:`maim_db.scope.SET_SCOPE`: the reset check, the suspension check, the unforgeable key
rules) through maim_db's pipeline — one round trip, the same machinery a ``connect()`` block
uses (:class:`maim_db.Database`), so a pooled connection is reset after a key's block and
guarded before the next, and every transaction gets the block's lock timeout.

Which scope: the one the engine was made with (``create_engine(admin=True)``,
``tenant_id=``, ``agent_id=``, ``api_key=``), else the ambient one (``agent_scope()``,
``key_scope()``, ``tenant_scope()``) as the transaction's first statement runs; with neither,
:class:`~maim_db.ScopeError` before any SQL. A statement of that transaction run after the
ambient scope changed is refused (:class:`~maim_db.ScopeError`): a transaction is in one scope
from its first statement to its end. One Session used for several transactions follows the
ambient scope of each.

Errors: a scope that cannot open (an unknown or suspended agent, a key on a trusted login, a
dirty connection) raises maim_db's error; a statement's own error is psycopg's, which
SQLAlchemy wraps as it does for any driver (``sqlalchemy.exc.IntegrityError``, ...).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.adapt import Transformer
from psycopg.pq import TransactionStatus
from psycopg.pq.abc import PGresult
from sqlalchemy import URL, make_url
from sqlalchemy import create_engine as _create_engine
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg, PGDialectAsync_psycopg
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

from ..connection import Database
from ..connection_async import AsyncDatabase
from ..errors import ConfigurationError, MaimDBError, ScopeError
from ..pipeline import FATAL_ERROR, Call, Params, Query, first_error
from ..scope import AMBIENT, Scope, resolve
from ..settings import as_url, connection_options, resolve_dsn

__all__ = ["create_async_engine", "create_engine"]

IDLE = TransactionStatus.IDLE
#: The name the dialect is registered under (``postgresql+maim_db://`` in a URL).
DRIVER = "maim_db"
_DRIVERS = ("", "psycopg", "psycopg_async", DRIVER)

NO_SCOPE = ("no scope for this transaction: open one around the Session with agent_scope(), "
            "key_scope() or tenant_scope(), or make the engine with one "
            "(create_engine(admin=True), tenant_id=..., agent_id=...)")


# -- per connection ---------------------------------------------------------------------------

class _State:
    """What the engine keeps per DBAPI connection: the engine's own scope (if any), the block
    of the transaction open on it, and whether SQLAlchemy's own set-up queries (the dialect's
    first-connect checks, pings) are running, which need no scope."""

    __slots__ = ("block", "fixed", "raw", "setup")

    def __init__(self, fixed: Scope | None, setup: Setup | None = None) -> None:
        self.fixed = fixed
        self.setup = setup
        self.raw = 0
        self.block: _Block | _AsyncBlock | None = None

    @contextmanager
    def unscoped(self) -> Iterator[None]:
        self.raw += 1
        try:
            yield
        finally:
            self.raw -= 1

    def scope(self) -> Scope:
        scope = self.fixed if self.fixed is not None else AMBIENT.get()
        if scope is None:
            raise ScopeError(NO_SCOPE)
        return scope

    def check(self, began: Scope) -> None:
        """A statement inside an open transaction: the scope asked for now must be the one
        the transaction began with — never a mixture."""
        now = self.fixed if self.fixed is not None else AMBIENT.get()
        if now != began:
            raise ScopeError(f"this transaction began in scope {began} and the ambient scope "
                             f"is now {now or 'none'}: a transaction runs in one scope; commit "
                             "or roll back the Session before changing it")


#: A per-transaction set-up (the engine's ``maim_setup``): called as each transaction opens,
#: it gives the statements (with their parameters) that run right after the scope statement,
#: in the same round trip (maim_db.sqlmodel sets 1.x's search_path and TimeZone this way).
Setup = Callable[[], Sequence[tuple[Query, Params]]]

_states: weakref.WeakKeyDictionary[Any, _State] = weakref.WeakKeyDictionary()


def _state(conn: Any) -> _State:
    found = _states.get(conn)
    if found is None:  # a connection made outside the dialect's on_connect: no fixed scope
        found = _states[conn] = _State(None)
    return found


def _statement_failed(results: list[PGresult] | None) -> bool:
    """Whether the transaction's first pipeline failed at its last call, the caller's
    statement (the scope before it opened: a failure there aborts what follows)."""
    return bool(results) and results[-1].status == FATAL_ERROR  # type: ignore[index]


class _Block(Database):
    """A maim_db block driven statement by statement by a cursor: statement errors are
    psycopg's (SQLAlchemy wraps them), scope errors maim_db's."""

    began: Scope
    setup: Setup | None = None
    last: list[PGresult] | None = None

    def _setup_calls(self) -> list[Call]:
        return [] if self.setup is None else [self._session.call(*c) for c in self.setup()]

    def _round_trip(self, calls: list[Any]) -> list[PGresult]:
        self.last = None
        self.last = super()._round_trip(calls)
        return self.last

    def _send(self, calls: list[Any]) -> list[PGresult]:
        results = self._round_trip(calls)
        failed = first_error(results)
        if failed is not None:
            raise self._session.error(failed)
        return results

    def run(self, query: Any, params: Any) -> PGresult:
        try:
            return self._statement(query, params)[1]
        except MaimDBError as err:
            if isinstance(err.__cause__, psycopg.Error) and _statement_failed(self.last):
                raise err.__cause__ from None
            raise

    def run_many(self, query: Any, rows: list[Any]) -> list[PGresult]:
        if not rows:
            return []
        first = self.run(query, rows[0])
        calls = [self._session.call(query, params) for params in rows[1:]]
        return [first, *(self._send(calls) if calls else [])]


class _AsyncBlock(AsyncDatabase):
    """:class:`_Block` for async engines."""

    began: Scope
    setup: Setup | None = None
    last: list[PGresult] | None = None

    def _setup_calls(self) -> list[Call]:
        return [] if self.setup is None else [self._session.call(*c) for c in self.setup()]

    async def _round_trip(self, calls: list[Any]) -> list[PGresult]:
        self.last = None
        self.last = await super()._round_trip(calls)
        return self.last

    async def _send(self, calls: list[Any]) -> list[PGresult]:
        results = await self._round_trip(calls)
        failed = first_error(results)
        if failed is not None:
            raise self._session.error(failed)
        return results

    async def run(self, query: Any, params: Any) -> PGresult:
        try:
            return (await self._statement(query, params))[1]
        except MaimDBError as err:
            if isinstance(err.__cause__, psycopg.Error) and _statement_failed(self.last):
                raise err.__cause__ from None
            raise

    async def run_many(self, query: Any, rows: list[Any]) -> list[PGresult]:
        if not rows:
            return []
        first = await self.run(query, rows[0])
        calls = [self._session.call(query, params) for params in rows[1:]]
        return [first, *(await self._send(calls) if calls else [])]


_B = TypeVar("_B", "_Block", "_AsyncBlock")


def _block(state: _State, conn: Any, kind: type[_B]) -> _B:
    """The block of the transaction open on ``conn``, opened (lazily) if there is none."""
    block = state.block
    if block is None or conn.pgconn.transaction_status == IDLE:
        scope = state.scope()
        block = kind(conn, scope)
        block.began = scope
        block.setup = state.setup
        state.block = block
    else:
        state.check(block.began)
    assert isinstance(block, kind)
    return block


# -- cursors: where SQLAlchemy's statements enter maim_db's pipeline --------------------------
# The results are handed to psycopg's own cursor (``_set_results``, maim_db/_psycopg.py), so
# rows, description and rowcount are psycopg's, loaded with the connection's adapters.

def _load(cursor: Any, results: list[PGresult], *, many: bool = False,
          returning: bool = False) -> None:
    """Hand ``results`` to psycopg's cursor, as its own execute() would have."""
    cursor._reset()
    cursor._tx = Transformer(cursor)
    if many:
        cursor._execmany_returning = returning
        cursor._rowcount = 0
    cursor._set_results(results)


class Cursor(psycopg.Cursor[Any]):
    """psycopg's cursor whose statements run in the connection's scoped block."""

    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None,
                binary: bool | None = None) -> Cursor:
        state = _state(self._conn)
        if state.raw:
            super().execute(query, params, prepare=prepare, binary=binary)
            return self
        block = _block(state, self._conn, _Block)
        with state.unscoped():  # the block's own probes and resets use plain cursors
            res = block.run(query, params)
        _load(self, [res])
        return self

    def executemany(self, query: Any, params_seq: Iterable[Any], *,
                    returning: bool = False) -> None:
        state = _state(self._conn)
        if state.raw:
            super().executemany(query, params_seq, returning=returning)
            return
        block = _block(state, self._conn, _Block)
        with state.unscoped():
            results = block.run_many(query, list(params_seq))
        _load(self, results, many=True, returning=returning)


class AsyncCursor(psycopg.AsyncCursor[Any]):
    """:class:`Cursor` for async engines."""

    async def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None,
                      binary: bool | None = None) -> AsyncCursor:
        state = _state(self._conn)
        if state.raw:
            await super().execute(query, params, prepare=prepare, binary=binary)
            return self
        block = _block(state, self._conn, _AsyncBlock)
        with state.unscoped():
            res = await block.run(query, params)
        _load(self, [res])
        return self

    async def executemany(self, query: Any, params_seq: Iterable[Any], *,
                          returning: bool = False) -> None:
        state = _state(self._conn)
        if state.raw:
            await super().executemany(query, params_seq, returning=returning)
            return
        block = _block(state, self._conn, _AsyncBlock)
        with state.unscoped():
            results = await block.run_many(query, list(params_seq))
        _load(self, results, many=True, returning=returning)


class ServerCursor(psycopg.ServerCursor[Any]):
    """A named cursor (``stream_results``, ``yield_per``) is declared inside the scoped
    transaction: when none is open yet, the scope opens first (one round trip more)."""

    def execute(self, query: Any, params: Any = None, *, binary: bool | None = None,
                **kwargs: Any) -> ServerCursor:
        state = _state(self._conn)
        if not state.raw and self._conn.pgconn.transaction_status == IDLE:
            block = _block(state, self._conn, _Block)
            with state.unscoped():
                block.run("select", None)
        elif not state.raw:
            state.check(_block(state, self._conn, _Block).began)
        super().execute(query, params, binary=binary, **kwargs)
        return self


class AsyncServerCursor(psycopg.AsyncServerCursor[Any]):
    """:class:`ServerCursor` for async engines."""

    async def execute(self, query: Any, params: Any = None, *, binary: bool | None = None,
                      **kwargs: Any) -> AsyncServerCursor:
        state = _state(self._conn)
        if not state.raw and self._conn.pgconn.transaction_status == IDLE:
            block = _block(state, self._conn, _AsyncBlock)
            with state.unscoped():
                await block.run("select", None)
        elif not state.raw:
            state.check(_block(state, self._conn, _AsyncBlock).began)
        await super().execute(query, params, binary=binary, **kwargs)
        return self


# -- the dialect ------------------------------------------------------------------------------

class Dialect(PGDialect_psycopg):
    """SQLAlchemy's psycopg dialect on maim_db's scoped cursors. Its own set-up queries (the
    server version, the default schema, pings) run without a scope: they read no table."""

    supports_statement_cache = True
    _cursor: type[Any] = Cursor
    _server_cursor: type[Any] = ServerCursor

    def __init__(self, maim_scope: Scope | None = None, maim_setup: Setup | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.maim_scope = maim_scope
        self.maim_setup = maim_setup

    @classmethod
    def get_async_dialect_cls(cls, url: URL) -> type[AsyncDialect]:
        return AsyncDialect

    def create_connect_args(self, url: URL) -> Any:
        cargs, cparams = super().create_connect_args(url)  # type: ignore[no-untyped-call]
        cparams.update(connection_options(), cursor_factory=self._cursor)
        return cargs, cparams

    def on_connect(self) -> Any:
        inner = super().on_connect()  # type: ignore[no-untyped-call]

        def on_connect(conn: Any) -> None:
            driver = self.get_driver_connection(conn)
            driver.server_cursor_factory = self._server_cursor
            state = _states[driver] = _State(self.maim_scope, self.maim_setup)
            with state.unscoped():
                inner(conn)
        return on_connect

    def initialize(self, connection: Any) -> None:
        with _state(connection.connection.driver_connection).unscoped():
            super().initialize(connection)  # type: ignore[no-untyped-call]

    def do_ping(self, dbapi_connection: Any) -> bool:
        with _state(self.get_driver_connection(dbapi_connection)).unscoped():
            return bool(super().do_ping(dbapi_connection))  # type: ignore[no-untyped-call]

    def set_isolation_level(self, dbapi_connection: Any, level: Any) -> None:
        raise ConfigurationError(
            f"isolation level {level!r}: a maim_db engine's transactions are read committed "
            "and each opens its own scope (AUTOCOMMIT would run statements outside one)")


class AsyncDialect(Dialect, PGDialectAsync_psycopg):
    """:class:`Dialect` for ``create_async_engine``."""

    supports_statement_cache = True
    _cursor = AsyncCursor
    _server_cursor = AsyncServerCursor


registry.register(f"postgresql.{DRIVER}", __name__, "Dialect")


# -- engines ----------------------------------------------------------------------------------

def engine_url(url: str | URL | None = None) -> URL:
    """``url`` (a ``postgresql://`` URL, a libpq DSN, or None: ``MAIMDB_DSN``, else the
    embedded server) as the URL of maim_db's dialect; :class:`ConfigurationError` for another
    database or driver."""
    if isinstance(url, URL) or (isinstance(url, str) and "://" in url):
        try:
            parsed = make_url(url)
        except ArgumentError as err:
            raise ConfigurationError(f"invalid database URL: {err}") from None
    else:
        parsed = make_url(as_url(resolve_dsn(url)))
    backend, _, driver = parsed.drivername.partition("+")
    if backend not in ("postgresql", "postgres"):
        raise ConfigurationError(f"maim_db.sqlalchemy runs on PostgreSQL, not {backend!r}: "
                                 "use a postgresql:// URL")
    if driver not in _DRIVERS:
        raise ConfigurationError(f"maim_db.sqlalchemy runs on psycopg 3, not the driver "
                                 f"{driver!r}: use postgresql:// or postgresql+psycopg://")
    resolve_dsn(parsed.set(drivername="postgresql").render_as_string(hide_password=False))
    return parsed.set(drivername=f"postgresql+{DRIVER}")


def _scope(agent_id: str | None, tenant_id: str | None, admin: bool,
           api_key: str | None) -> Scope | None:
    if agent_id is None and tenant_id is None and not admin and api_key is None:
        return None  # the ambient scope, per transaction
    return resolve(agent_id=agent_id, tenant_id=tenant_id, admin=admin, api_key=api_key)


def create_engine(url: str | URL | None = None, *, agent_id: str | None = None,
                  tenant_id: str | None = None, admin: bool = False,
                  api_key: str | None = None, **kwargs: Any) -> Engine:
    """A SQLAlchemy engine on ``url`` (default ``MAIMDB_DSN``, else the embedded server) whose
    every transaction runs in the named scope, else the ambient one (module docstring).
    ``kwargs`` are SQLAlchemy's (``pool_size``, ``echo``, ...), and ``maim_setup``: a
    :data:`Setup` whose statements each transaction runs right after its scope opens, in the
    same round trip (trusted code only: they run with the scope's rights)."""
    scope = _scope(agent_id, tenant_id, admin, api_key)
    return _create_engine(engine_url(url), maim_scope=scope, **kwargs)


def create_async_engine(url: str | URL | None = None, *, agent_id: str | None = None,
                        tenant_id: str | None = None, admin: bool = False,
                        api_key: str | None = None, **kwargs: Any) -> AsyncEngine:
    """:func:`create_engine` for ``AsyncSession``/``async_sessionmaker``."""
    scope = _scope(agent_id, tenant_id, admin, api_key)
    return _create_async_engine(engine_url(url), maim_scope=scope, **kwargs)
