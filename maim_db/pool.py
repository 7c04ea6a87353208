"""``Pool`` and ``AsyncPool``: psycopg-pool underneath, the same scopes as ``connect()``.

A checked-out connection is never trusted: the scope statement that opens every block also
checks that no role or scope survived from the previous borrower (and resets the session if
one did), so the check costs no round trip. ``pgbouncer=True`` (default: ``MAIMDB_PGBOUNCER``)
turns off server-side prepared statements, which a transaction-mode pooler cannot keep per
client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
)
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolClosed, PoolTimeout

from .connection import (
    Database,
    Params,
    Query,
    R,
    connection_options,
    resolve_dsn,
    run_scoped,
)
from .connection_async import AsyncDatabase, run_scoped_async
from .errors import ConnectError
from .scope import Scope, resolve


def pool_error(err: PoolTimeout | PoolClosed) -> ConnectError:
    if isinstance(err, PoolClosed):
        return ConnectError(f"{err} (an AsyncPool opens with `async with` or `await "
                            "pool.open()`; a closed pool cannot be reopened)")
    return ConnectError(f"no pooled connection became free: {err}")


class Pool:
    """A thread-safe pool; ``with pool.connection(agent_id=...) as db:`` is one transaction."""

    def __init__(self, dsn: str | None = None, *, min_size: int = 1, max_size: int = 10,
                 pgbouncer: bool | None = None, timeout: float = 30.0,
                 name: str = "maim_db") -> None:
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            resolve_dsn(dsn), kwargs=connection_options(pgbouncer), min_size=min_size,
            max_size=max_size, timeout=timeout, name=name, open=True)

    @contextmanager
    def _borrow(self, scope: Scope, single: bool = False) -> Iterator[Database]:
        try:
            with self._pool.connection() as conn, run_scoped(conn, scope, single=single) as db:
                yield db
        except (PoolTimeout, PoolClosed) as err:
            raise pool_error(err) from err

    def connection(self, *, agent_id: str | None = None, tenant_id: str | None = None,
                   admin: bool = False,
                   api_key: str | None = None) -> AbstractContextManager[Database]:
        """Borrow a connection for one scoped transaction (the ambient scope if none is
        named)."""
        return self._borrow(resolve(agent_id=agent_id, tenant_id=tenant_id, admin=admin,
                                    api_key=api_key))

    # One statement as its own transaction: BEGIN, the scope, the statement and COMMIT leave
    # in one pipeline — one round trip, where a block needs a second one for its COMMIT.

    def fetch(self, model: type[R], query: Query, params: Params = None, *,
              agent_id: str | None = None, tenant_id: str | None = None, admin: bool = False,
              api_key: str | None = None) -> list[R]:
        scope = resolve(agent_id=agent_id, tenant_id=tenant_id, admin=admin, api_key=api_key)
        with self._borrow(scope, single=True) as db:
            return db.fetch(model, query, params)

    def execute(self, query: Query, params: Params = None, *, agent_id: str | None = None,
                tenant_id: str | None = None, admin: bool = False,
                api_key: str | None = None) -> int:
        scope = resolve(agent_id=agent_id, tenant_id=tenant_id, admin=admin, api_key=api_key)
        with self._borrow(scope, single=True) as db:
            return db.execute(query, params)

    def insert(self, row: R, *, agent_id: str | None = None, tenant_id: str | None = None,
               admin: bool = False, api_key: str | None = None) -> R:
        """Insert one row as its own transaction (one round trip); return it as stored."""
        scope = resolve(agent_id=agent_id, tenant_id=tenant_id, admin=admin, api_key=api_key)
        with self._borrow(scope, single=True) as db:
            return db.insert(row)

    def stats(self) -> dict[str, int]:
        return self._pool.get_stats()

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncPool:
    """An asyncio pool; ``async with pool.connection(agent_id=...) as db:``. Open it with
    ``await pool.open()`` or ``async with AsyncPool(...) as pool``."""

    def __init__(self, dsn: str | None = None, *, min_size: int = 1, max_size: int = 10,
                 pgbouncer: bool | None = None, timeout: float = 30.0,
                 name: str = "maim_db") -> None:
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            resolve_dsn(dsn), kwargs=connection_options(pgbouncer), min_size=min_size,
            max_size=max_size, timeout=timeout, name=name, open=False)

    async def open(self) -> None:
        await self._pool.open(wait=True)

    @asynccontextmanager
    async def _borrow(self, scope: Scope, single: bool = False) -> AsyncIterator[AsyncDatabase]:
        try:
            async with self._pool.connection() as conn, run_scoped_async(
                    conn, scope, single=single) as db:
                yield db
        except (PoolTimeout, PoolClosed) as err:
            raise pool_error(err) from err

    def connection(self, *, agent_id: str | None = None, tenant_id: str | None = None,
                   admin: bool = False,
                   api_key: str | None = None) -> AbstractAsyncContextManager[AsyncDatabase]:
        return self._borrow(resolve(agent_id=agent_id, tenant_id=tenant_id, admin=admin,
                                    api_key=api_key))

    async def fetch(self, model: type[R], query: Query, params: Params = None, *,
                    agent_id: str | None = None, tenant_id: str | None = None,
                    admin: bool = False, api_key: str | None = None) -> list[R]:
        """One statement, one round trip: see :meth:`Pool.fetch`."""
        scope = resolve(agent_id=agent_id, tenant_id=tenant_id, admin=admin, api_key=api_key)
        async with self._borrow(scope, single=True) as db:
            return await db.fetch(model, query, params)

    async def execute(self, query: Query, params: Params = None, *,
                      agent_id: str | None = None, tenant_id: str | None = None,
                      admin: bool = False, api_key: str | None = None) -> int:
        scope = resolve(agent_id=agent_id, tenant_id=tenant_id, admin=admin, api_key=api_key)
        async with self._borrow(scope, single=True) as db:
            return await db.execute(query, params)

    async def insert(self, row: R, *, agent_id: str | None = None,
                     tenant_id: str | None = None, admin: bool = False,
                     api_key: str | None = None) -> R:
        """Insert one row as its own transaction (one round trip); return it as stored."""
        scope = resolve(agent_id=agent_id, tenant_id=tenant_id, admin=admin, api_key=api_key)
        async with self._borrow(scope, single=True) as db:
            return await db.insert(row)

    def stats(self) -> dict[str, int]:
        return self._pool.get_stats()

    async def close(self) -> None:
        await self._pool.close()

    async def __aenter__(self) -> AsyncPool:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
