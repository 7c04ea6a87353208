# WARNING: generated from maim_db/connection_async.py by tools/async_to_sync.py;
# do not edit: change the async source and run `python tools/async_to_sync.py`.

"""``connect()`` and the handle it yields: one scoped transaction, typed rows.

This is where a scope is opened. The transaction opens lazily: nothing is sent until the first
statement, and then ``BEGIN``, the scope statement (:data:`maim_db.scope.SET_SCOPE`, which also
checks that the connection arrived clean) and that statement go out together in one
pipeline — one round trip.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from types import TracebackType
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg.pq import TransactionStatus
from psycopg.pq.abc import PGresult

from . import release, statements
from .errors import DatabaseError, MaimDBError, ScopeError, connect_error, not_found, translate
from .handle import (
    ABORTED,
    Handle,
    Result,
    check_idle,
    dirty_message,
    entered_twice,
    log,
    translated,
)
from .pipeline import CITUS, PROBE, Call, Params, Query, R, first_error, rowcount
from .scope import DIRTY, RESET_SESSION, Scope, resolve
from .settings import connection_options, resolve_dsn


class Block(Handle[psycopg.Connection[Any]]):
    """A block: one transaction in one scope. Get one from :func:`connect`, :func:`scoped`
    or a pool."""

    # -- running SQL (the round trips: maim_db.pipeline) ---------------------------------------

    def _statement(
        self, query: Query, params: Params, *, rows: bool = False
    ) -> tuple[Call, PGresult]:
        """Run one statement; its call (what was sent) and its result."""
        self._check_usable()
        if not self._opened:
            call = self._open(query, params)
        elif self._single:
            raise self._second_statement()
        else:
            with translated():
                call = self._session.call(query, params)
            self._send([call])
        if rows:
            self._check_rows(call.result)
        return call, call.result

    def _round_trip(self, calls: list[Call]) -> list[PGresult]:
        try:
            with self._conn.lock:
                return self._conn.wait(self._session.pipeline(calls))
        except psycopg.Error as err:  # the connection failed, not a statement
            raise translate(err) from err

    def _send(self, calls: list[Call]) -> list[PGresult]:
        """Run ``calls`` in one round trip; raise the first statement error."""
        results = self._round_trip(calls)
        failed = first_error(results)
        if failed is not None:
            err = self._session.error(failed)
            raise translate(err) from err
        return results

    def _open(self, query: Query, params: Params) -> Call:
        """The block's first statement, behind BEGIN (unless it is the only one), the guard
        (after untrusted code) and the scope statement: one round trip."""
        self._opened = True
        session = self._session
        if not session.probed:
            self._probe()
        for attempt in (1, 2):
            with translated():
                call = session.call(query, params)
                opening = session.call(
                    self._scope.statement_for(session.temp_probe), self._scope.params
                )
                setup = self._setup_calls()
            # A single statement needs no BEGIN/COMMIT: everything before the pipeline's one
            # Sync is one implicit transaction, and the scope, set transaction-locally, ends
            # with it. Except on Citus, which sends a worker the scope's SET LOCAL only
            # inside a transaction block: there COMMIT rides in the pipeline too.
            # A key's block always runs in a transaction block that says how (its login's
            # defaults for read-only and isolation do not decide).
            key = self._scope.kind == "key"
            bracketed = not self._single or key or self._on_citus()
            resets = session.resets()
            if resets and not session.unsettled:
                log.warning(
                    "maim_db: a block changed a setting at session level; the next "
                    "block resets the session's settings"
                )
            calls = [*resets]
            if bracketed:
                calls.append(session.call(self._begin, None, prepare=False))
            guarded = session.opening(self._scope)
            if guarded:
                calls.append(session.guard())
            # the block's lock and statement timeouts, after the guard (a prepared statement
            # is run only once the guard found ours all there)
            limit = session.limit()
            if limit is not None:
                calls.append(limit)
            calls += [opening, *setup, call]
            if bracketed and self._single:
                calls.append(session.call("commit", None, prepare=False))
            results = self._round_trip(calls)
            failed = first_error(results)
            if not key:  # a key's own block unsettles the session again
                session.settled(resets)
            if failed is None:
                if key:  # the agent the key opened
                    scope_rows = session.rows(opening.result, tuple)
                    self._scope = self._scope.opened(scope_rows[0] if scope_rows else None)
                return call
            err = session.error(failed)
            if err.sqlstate != DIRTY:
                session.suspect |= guarded  # whether the guard itself ran is not known
                raise translate(err) from err
            # An earlier user left session state behind. The check raised, so nothing after
            # it ran: undo the attempt, reset the session, retry once.
            if self._conn.info.transaction_status != TransactionStatus.IDLE:
                self._conn.execute("rollback", prepare=False)
            if attempt == 2:
                break
            log.warning("maim_db: resetting a connection that carried session state")
            self._conn.execute(RESET_SESSION, prepare=False)
            session.forget()
        raise ScopeError(dirty_message(self._scope))

    def _setup_calls(self) -> list[Call]:
        """Statements that run right after the scope opens, in the same round trip, before
        the block's first statement: none here (the SQLAlchemy engines' per-transaction
        set-up, maim_db.sqlalchemy)."""
        return []

    def _probe(self) -> None:
        """Once per connection, before its first block: whether its database is a Citus
        node, and the oldest release that database serves (:mod:`maim_db.release`), which
        refuses this one if it is older. One statement, so a pooled connection pays one
        round trip in its life, never one per block. Qualified, so no search_path or object
        a session leaves changes the answers."""
        session = self._session
        floor = None
        with translated():
            try:
                cur = self._conn.execute(PROBE, prepare=False)
                session.citus, floor, session.temp_probe = cur.fetchone() or (False, None, False)
            except (pgerrors.UndefinedFunction, pgerrors.InvalidSchemaName):
                # no floor recorded (a schema from before 0018): served as before
                self._on_citus()
        release.check(floor)
        session.probed = True

    def _on_citus(self) -> bool:
        """Whether the connection's database is a Citus node (asked once per connection)."""
        if self._session.citus is None:
            with translated():
                cur = self._conn.execute(CITUS, prepare=False)
                self._session.citus = bool((cur.fetchone() or (False,))[0])
        return self._session.citus

    def require(self, permission: str) -> None:
        """Raise :class:`AuthenticationError` unless the API key this block was opened with
        grants ``permission``; a block opened otherwise is not limited. Resolves the key
        first if no statement has run yet."""
        if self._scope.kind == "key":
            self.scalar("select maim.agent_id()")
        self._scope.require(permission)

    def execute(self, query: Query, params: Params = None) -> int:
        """Run a statement; return the number of rows it affected."""
        _, res = self._statement(query, params)
        return rowcount(res)

    def result(self, query: Query, params: Params = None) -> Result:
        """Run any statement; its column names, rows as tuples and rows affected (for
        adapters such as :mod:`maim_db.peewee`; code of your own wants ``fetch``/``rows``)."""
        _, res = self._statement(query, params)
        return self._result(res)

    def fetch(self, model: type[R], query: Query, params: Params = None) -> list[R]:
        """Run a query and return every row as ``model``."""
        call, _ = self._statement(query, params, rows=True)
        return self._session.models(call, model)

    def fetch_one(self, model: type[R], query: Query, params: Params = None) -> R:
        """The first row as ``model``; :class:`NotFoundError` if there is none."""
        rows = self.fetch(model, query, params)
        if not rows:
            raise not_found(model, None, self._scope)
        return rows[0]

    def rows(self, query: Query, params: Params = None) -> list[tuple[Any, ...]]:
        """Run a query and return plain tuples (for aggregates and ad-hoc shapes)."""
        _, res = self._statement(query, params, rows=True)
        return self._session.rows(res, tuple)

    def scalar(self, query: Query, params: Params = None) -> Any:
        """The first column of the first row; :class:`NotFoundError` if there is no row."""
        found = self.rows(query, params)
        if not found:
            raise not_found("row", None, self._scope)
        return found[0][0]

    # -- typed operations (SQL built in maim_db.statements) -----------------------------------

    def insert(self, row: R) -> R:
        """Insert ``row`` (only the fields it was given; SQL fills the rest); return it as
        stored."""
        return self.fetch_one(type(row), *statements.insert(row))

    def insert_many(self, rows: Iterable[R]) -> int:
        """Insert rows of one model in multi-row statements; return how many were inserted."""
        inserted = 0
        for query, params in statements.insert_many(rows):
            inserted += self.execute(query, params)
        return inserted

    def get(self, model: type[R], *key: Any) -> R:
        """The row with primary key ``key`` (in agent scope ``agent_id`` may be left out);
        :class:`NotFoundError` if this scope has no such row."""
        where = statements.key(model, key, self._scope.agent_id)
        rows = self.fetch(model, *statements.find(model, where, (), 1))
        if not rows:
            raise not_found(model, where, self._scope)
        return rows[0]

    def find(
        self,
        model: type[R],
        where: Mapping[str, Any] | None = None,
        *,
        order_by: str | Sequence[str] = (),
        limit: int | None = None,
        offset: int = 0,
        after: R | Mapping[str, Any] | None = None,
    ) -> list[R]:
        """Rows matching ``where`` (``column: value``; a list means "any of", ``None`` means
        IS NULL), ordered by columns (``"-time"`` for descending). A page: ``limit`` with
        ``offset`` (rows skipped), or, for deep pages, with ``after=`` the previous page's
        last row (a keyset: the server seeks to it instead of reading and dropping every
        row before it; the order is made total with the model's key)."""
        return self.fetch(
            model,
            *statements.find(
                model, where, order_by, limit, self._scope.agent_id, offset=offset, after=after
            ),
        )

    def update(self, model: type[R], *, where: Mapping[str, Any], set: Mapping[str, Any]) -> int:
        """Update rows; return how many changed. ``where={}`` means every row in scope."""
        return self.execute(*statements.update(model, where, set, self._scope.agent_id))

    def delete(self, model: type[R], *, where: Mapping[str, Any]) -> int:
        """Delete rows; return how many. ``where={}`` means every row in scope."""
        return self.execute(*statements.delete(model, where, self._scope.agent_id))

    def upsert(self, row: R, *, on: str | Sequence[str]) -> R:
        """Insert ``row`` or update the one with the same unique key ``on`` (agent tables add
        ``agent_id``); return it as stored."""
        return self.fetch_one(type(row), *statements.upsert(row, on))

    # -- transaction -------------------------------------------------------------------------

    def _finish(self, ok: bool) -> None:
        status = self._conn.pgconn.transaction_status
        if self._idle_at_finish(ok, status):
            return
        try:
            if ok and status == TransactionStatus.INERROR:
                # A statement failed and the error was caught inside the block: COMMIT would
                # quietly roll back. Say so instead of pretending the block succeeded.
                self._send([self._session.call("rollback", None, prepare=False)])
                raise DatabaseError(ABORTED)
            self._send([self._session.call("commit" if ok else "rollback", None, prepare=False)])
        except psycopg.Error as err:
            raise translate(err) from err


#: The old name of a block, kept so existing code keeps working.
Database = Block


class _Scoped:
    """What :func:`run_scoped` returns: enters one block, ends it (commit, or rollback when
    the body raised). A class, not a generator-based context manager: every block passes
    here, and the generator's own machinery cost more than the rest of it."""

    __slots__ = ("_conn", "_db", "_entered", "_scope", "_single", "_snapshot")

    def __init__(
        self, conn: psycopg.Connection[Any], scope: Scope, single: bool, snapshot: bool
    ) -> None:
        self._conn = conn
        self._scope = scope
        self._single = single
        self._snapshot = snapshot
        self._entered = False

    def __enter__(self) -> Block:
        if self._entered:
            raise entered_twice()
        self._entered = True
        conn = self._conn
        check_idle(conn.autocommit, conn.pgconn.transaction_status)
        self._db = Block(conn, self._scope, single=self._single, snapshot=self._snapshot)
        return self._db

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        db = self._db
        db._ended = True
        if err is None:
            db._finish(ok=True)
            return
        with suppress(MaimDBError):  # the original error matters more than a failed rollback
            db._finish(ok=False)


def run_scoped(
    conn: psycopg.Connection[Any], scope: Scope, *, single: bool = False, snapshot: bool = False
) -> AbstractContextManager[Block]:
    """One block in ``scope`` on ``conn``, which must be idle and in autocommit mode.
    ``single``: the block runs one statement, as one round trip; ``snapshot``: every
    statement sees the same committed state (read only, repeatable read: an export)."""
    return _Scoped(conn, scope, single, snapshot)


@contextmanager
def scoped(
    conn: psycopg.Connection[Any],
    *,
    agent_id: str | None = None,
    tenant_id: str | None = None,
    admin: bool = False,
    api_key: str | None = None,
) -> Iterator[Block]:
    """Run one scoped transaction on an existing idle autocommit connection."""
    scope = resolve(agent_id=agent_id, tenant_id=tenant_id, admin=admin, api_key=api_key)
    with run_scoped(conn, scope) as db:
        yield db


def open_connection(dsn: str | None = None) -> psycopg.Connection[Any]:
    """A connection as maim_db opens them (autocommit; see :func:`connection_options`)."""
    try:
        return psycopg.Connection.connect(resolve_dsn(dsn), **connection_options())
    except psycopg.OperationalError as err:
        raise connect_error(err) from err


@contextmanager
def connect(
    dsn: str | None = None,
    *,
    agent_id: str | None = None,
    tenant_id: str | None = None,
    admin: bool = False,
    api_key: str | None = None,
) -> Iterator[Block]:
    """Open a connection, run the block as one transaction in exactly one scope, close.

    ``api_key=`` opens the agent scope the key belongs to (see ``maim_db.control.keys``).

    Commits when the block ends normally, rolls back when it raises.
    """
    # Resolved before connecting: a bad scope never reaches the server.
    scope = resolve(agent_id=agent_id, tenant_id=tenant_id, admin=admin, api_key=api_key)
    with open_connection(dsn) as conn, run_scoped(conn, scope) as db:
        yield db
