"""``aconnect()`` and :class:`AsyncDatabase`: the asyncio twin of :mod:`maim_db.connection`.

Same contract, same SQL (:mod:`maim_db.statements`), same one-round-trip scope.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from . import statements
from .connection import (
    ABORTED,
    Handle,
    Params,
    Query,
    R,
    check_idle,
    connect_error,
    connection_options,
    dirty_message,
    not_found,
    resolve_dsn,
    translated,
)
from .errors import (
    DatabaseError,
    MaimDBError,
    NotFoundError,
    ScopeError,
    translate,
)
from .row import row_factory
from .scope import DIRTY, RESET_SESSION, Scope, resolve

log = logging.getLogger("maim_db")


class AsyncDatabase(Handle[psycopg.AsyncConnection[Any]]):
    """A scoped transaction on an async connection. See :class:`maim_db.Database`."""

    def _cursor(self, model: type[R] | None = None) -> psycopg.AsyncCursor[Any]:
        self._check_usable()
        if model is None:
            return self._conn.cursor()
        return self._conn.cursor(row_factory=row_factory(model))

    async def _run(self, cur: psycopg.AsyncCursor[Any], query: Query, params: Params, *,
                   rows: bool = False) -> None:
        with translated():
            await self._execute(cur, query, params)
        if rows:
            self._check_rows(cur)

    async def _execute(self, cur: psycopg.AsyncCursor[Any], query: Query,
                       params: Params) -> None:
        if self._opened:
            if self._single:
                raise self._second_statement()
            await cur.execute(query, params)
            return
        self._opened = True
        for attempt in (1, 2):
            try:
                async with self._conn.pipeline():
                    # A single statement needs no BEGIN/COMMIT: everything before the
                    # pipeline's one Sync is one implicit transaction, and the scope,
                    # set transaction-locally, ends with it.
                    if not self._single:
                        await self._conn.execute(self._begin)
                    scope_cur = await self._conn.execute(self._scope.statement, self._scope.params)
                    await cur.execute(query, params)
            except psycopg.Error as err:
                if err.sqlstate != DIRTY:
                    raise
                # An earlier user left session state behind. The check raised, so nothing
                # after it ran: undo the attempt, reset the session, retry once.
                if self._conn.info.transaction_status != TransactionStatus.IDLE:
                    await self._conn.execute("rollback")
                if attempt == 2:
                    break
                log.warning("maim_db: resetting a connection that carried session state")
                await self._conn.execute(RESET_SESSION)
                continue
            self._scope = self._scope.opened(await scope_cur.fetchone())
            return
        raise ScopeError(dirty_message(self._scope))

    async def require(self, permission: str) -> None:
        """Raise :class:`AuthenticationError` unless the API key this block was opened with
        grants ``permission``; a block opened otherwise is not limited. Resolves the key
        first if no statement has run yet."""
        if self._scope.kind == "key":
            await self.scalar("select maim.agent_id()")
        self._scope.require(permission)

    async def execute(self, query: Query, params: Params = None) -> int:
        async with self._cursor() as cur:
            await self._run(cur, query, params)
            return cur.rowcount

    async def fetch(self, model: type[R], query: Query, params: Params = None) -> list[R]:
        async with self._cursor(model) as cur:
            await self._run(cur, query, params, rows=True)
            return await cur.fetchall()

    async def fetch_one(self, model: type[R], query: Query, params: Params = None) -> R:
        rows = await self.fetch(model, query, params)
        if not rows:
            raise not_found(model, "row", self._scope)
        return rows[0]

    async def rows(self, query: Query, params: Params = None) -> list[tuple[Any, ...]]:
        async with self._cursor() as cur:
            await self._run(cur, query, params, rows=True)
            return await cur.fetchall()

    async def scalar(self, query: Query, params: Params = None) -> Any:
        async with self._cursor() as cur:
            await self._run(cur, query, params, rows=True)
            row = await cur.fetchone()
        if row is None:
            raise NotFoundError(f"query returned no row in scope {self._scope}")
        return row[0]

    async def insert(self, row: R) -> R:
        return await self.fetch_one(type(row), *statements.insert(row))

    async def insert_many(self, rows: Iterable[R]) -> int:
        return sum([await self.execute(q, p) for q, p in statements.insert_many(rows)])

    async def get(self, model: type[R], *key: Any) -> R:
        where = statements.key(model, key, self._scope.agent_id)
        rows = await self.fetch(model, *statements.find(model, where, (), 1))
        if not rows:
            raise not_found(model, where, self._scope)
        return rows[0]

    async def find(self, model: type[R], where: Mapping[str, Any] | None = None, *,
                   order_by: str | Sequence[str] = (), limit: int | None = None) -> list[R]:
        return await self.fetch(model, *statements.find(model, where, order_by, limit))

    async def update(self, model: type[R], *, where: Mapping[str, Any],
                     set: Mapping[str, Any]) -> int:
        return await self.execute(*statements.update(model, where, set))

    async def delete(self, model: type[R], *, where: Mapping[str, Any]) -> int:
        return await self.execute(*statements.delete(model, where))

    async def upsert(self, row: R, *, on: str | Sequence[str]) -> R:
        return await self.fetch_one(type(row), *statements.upsert(row, on))

    async def _finish(self, ok: bool) -> None:
        if self._idle_at_finish(ok, self._conn.info.transaction_status):
            return
        status = self._conn.info.transaction_status
        try:
            if ok and status == TransactionStatus.INERROR:
                # A statement failed and the error was caught inside the block: COMMIT would
                # quietly roll back. Say so instead of pretending the block succeeded.
                await self._conn.execute("rollback")
                raise DatabaseError(ABORTED)
            await self._conn.execute("commit" if ok else "rollback")
        except psycopg.Error as err:
            raise translate(err) from err


@asynccontextmanager
async def run_scoped_async(conn: psycopg.AsyncConnection[Any], scope: Scope, *,
                           single: bool = False) -> AsyncIterator[AsyncDatabase]:
    check_idle(conn.autocommit, conn.info.transaction_status)
    db = AsyncDatabase(conn, scope, single=single)
    try:
        yield db
    except BaseException:
        with suppress(MaimDBError):
            await db._finish(ok=False)
        raise
    finally:
        db._ended = True
    await db._finish(ok=True)


@asynccontextmanager
async def ascoped(conn: psycopg.AsyncConnection[Any], *, agent_id: str | None = None,
                  tenant_id: str | None = None,
                  admin: bool = False, api_key: str | None = None) -> AsyncIterator[AsyncDatabase]:
    """Run one scoped transaction on an existing idle autocommit async connection."""
    scope = resolve(agent_id=agent_id, tenant_id=tenant_id, admin=admin, api_key=api_key)
    async with run_scoped_async(conn, scope) as db:
        yield db


@asynccontextmanager
async def aconnect(dsn: str | None = None, *, agent_id: str | None = None,
                   tenant_id: str | None = None,
                   admin: bool = False, api_key: str | None = None) -> AsyncIterator[AsyncDatabase]:
    """Async :func:`maim_db.connect`: one connection, one transaction, one scope."""
    scope = resolve(agent_id=agent_id, tenant_id=tenant_id, admin=admin, api_key=api_key)
    try:
        conn = await psycopg.AsyncConnection.connect(resolve_dsn(dsn), **connection_options())
    except psycopg.OperationalError as err:
        raise connect_error(err) from err
    async with conn, run_scoped_async(conn, scope) as db:
        yield db
