# WARNING: generated from maim_db/pool_async.py by tools/async_to_sync.py;
# do not edit: change the async source and run `python tools/async_to_sync.py`.

"""``Pool``: psycopg-pool underneath, the same scopes as ``connect()``.

A checked-out connection is never trusted: the scope statement that opens every block also
checks that no role or scope survived from the previous borrower (and resets the session if
one did), so the check costs no round trip. ``pgbouncer=True`` (default: ``MAIMDB_PGBOUNCER``)
turns off server-side prepared statements, which a transaction-mode pooler cannot keep per
client.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from .connection import Block, run_scoped
from .errors import pool_error
from .handle import Result, entered_twice
from .pipeline import Params, Query, R
from .scope import Scope, resolve
from .settings import connection_options, resolve_dsn


class _Borrowed:
    """One block on a borrowed connection: checked out, the block, given back whatever
    happened. A class rather than a generator-based context manager, whose machinery cost
    more than the rest (docs/performance.md). getconn/putconn rather than psycopg_pool's
    connection(): its `with conn:` would add a COMMIT check of its own (a wait) to every
    block, which ends its transaction itself."""

    __slots__ = ("_conn", "_entered", "_pool", "_scope", "_scoped", "_single")

    def __init__(
        self, pool: ConnectionPool[psycopg.Connection[Any]], scope: Scope, single: bool
    ) -> None:
        self._pool = pool
        self._scope = scope
        self._single = single
        self._entered = False

    def __enter__(self) -> Block:
        if self._entered:
            raise entered_twice()
        self._entered = True
        try:
            conn = self._pool.getconn()
        except (PoolTimeout, PoolClosed) as err:
            raise pool_error(err) from err
        self._conn = conn
        try:
            self._scoped = run_scoped(conn, self._scope, single=self._single)
            return self._scoped.__enter__()
        except BaseException:
            self._pool.putconn(conn)
            raise

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._scoped.__exit__(kind, err, tb)
        finally:
            self._pool.putconn(self._conn)


class Pool:
    """A pool of connections; ``with pool.connection(agent_id=...) as db:`` is one
    transaction. ``with Pool(...) as pool:`` opens it and waits for ``min_size``
    connections, and closes it at the end."""

    def __init__(
        self,
        dsn: str | None = None,
        *,
        min_size: int = 1,
        max_size: int = 10,
        pgbouncer: bool | None = None,
        timeout: float = 30.0,
        name: str = "maim_db",
    ) -> None:
        self._timeout = timeout
        self._waited = False
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            resolve_dsn(dsn),
            kwargs=connection_options(pgbouncer),
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            name=name,
            open=True,
        )

    def open(self) -> None:
        """Open the pool and, the first time, wait until ``min_size`` connections are up;
        again, a no-op. (Waiting again could wait for connections other blocks hold.)"""
        first, self._waited = not self._waited, True
        try:
            self._pool.open(wait=first, timeout=self._timeout)
        except (PoolTimeout, PoolClosed) as err:
            raise pool_error(err, opening=True) from err

    def _borrow(self, scope: Scope, single: bool = False) -> AbstractContextManager[Block]:
        return _Borrowed(self._pool, scope, single)

    def connection(
        self,
        *,
        agent_id: str | None = None,
        tenant_id: str | None = None,
        admin: bool = False,
        api_key: str | None = None,
    ) -> AbstractContextManager[Block]:
        """Borrow a connection for one scoped transaction (the ambient scope if none is
        named)."""
        return self._borrow(
            resolve(agent_id=agent_id, tenant_id=tenant_id, admin=admin, api_key=api_key)
        )

    # One statement as its own transaction: BEGIN, the scope, the statement and COMMIT leave
    # in one pipeline — one round trip, where a block needs a second one for its COMMIT.

    def fetch(
        self,
        model: type[R],
        query: Query,
        params: Params = None,
        *,
        agent_id: str | None = None,
        tenant_id: str | None = None,
        admin: bool = False,
        api_key: str | None = None,
    ) -> list[R]:
        """Run one query as its own transaction (one round trip); every row as ``model``."""
        scope = resolve(agent_id=agent_id, tenant_id=tenant_id, admin=admin, api_key=api_key)
        with self._borrow(scope, single=True) as db:
            return db.fetch(model, query, params)

    def execute(
        self,
        query: Query,
        params: Params = None,
        *,
        agent_id: str | None = None,
        tenant_id: str | None = None,
        admin: bool = False,
        api_key: str | None = None,
    ) -> int:
        """Run one statement as its own transaction (one round trip); rows affected."""
        scope = resolve(agent_id=agent_id, tenant_id=tenant_id, admin=admin, api_key=api_key)
        with self._borrow(scope, single=True) as db:
            return db.execute(query, params)

    def insert(
        self,
        row: R,
        *,
        agent_id: str | None = None,
        tenant_id: str | None = None,
        admin: bool = False,
        api_key: str | None = None,
    ) -> R:
        """Insert one row as its own transaction (one round trip); return it as stored."""
        scope = resolve(agent_id=agent_id, tenant_id=tenant_id, admin=admin, api_key=api_key)
        with self._borrow(scope, single=True) as db:
            return db.insert(row)

    def result(
        self,
        query: Query,
        params: Params = None,
        *,
        agent_id: str | None = None,
        tenant_id: str | None = None,
        admin: bool = False,
        api_key: str | None = None,
    ) -> Result:
        """Run one statement as its own transaction (one round trip); its columns, rows and
        rows affected (see :meth:`Block.result`)."""
        scope = resolve(agent_id=agent_id, tenant_id=tenant_id, admin=admin, api_key=api_key)
        with self._borrow(scope, single=True) as db:
            return db.result(query, params)

    def stats(self) -> dict[str, int]:
        return self._pool.get_stats()

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> Pool:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
