"""``connect()`` and the handle it yields: one scoped transaction, typed rows.

The transaction opens lazily: nothing is sent until the first statement, and then ``BEGIN``,
the scope statement (:data:`maim_db.scope.SET_SCOPE`, which also checks that the connection arrived
clean) and that statement go out together in one pipeline — one round trip.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Generic, LiteralString, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import ExecStatus, TransactionStatus

from . import statements
from .errors import (
    ConfigurationError,
    ConnectError,
    DatabaseError,
    InputError,
    MaimDBError,
    NotFoundError,
    ScopeError,
    translate,
)
from .row import Row, row_factory
from .scope import DIRTY, RESET_SESSION, Scope, resolve
from .settings import settings

log = logging.getLogger("maim_db")

R = TypeVar("R", bound=Row)
C = TypeVar("C", psycopg.Connection[Any], psycopg.AsyncConnection[Any])
Params = Sequence[Any] | Mapping[str, Any] | None
# As in psycopg: a literal, or a composition of psycopg.sql — never a string built at run time.
Query = LiteralString | bytes | sql.SQL | sql.Composed


COMMAND_OK = ExecStatus.COMMAND_OK  # a statement that returns no rows

ABORTED = ("the block ended normally but a statement inside it had failed (its error was "
           "caught), so PostgreSQL aborted the transaction: nothing was committed")


def dirty_message(scope: Scope) -> str:
    return (f"the connection still carries a role or scope from before (opening {scope}); "
            "a DSN must not set `role`, and nothing may SET maim.* at session level")


def not_found(model: type[Row], where: object, scope: Scope) -> NotFoundError:
    return NotFoundError(f"{model.__name__} {where} not found in scope {scope}")


def check_idle(autocommit: bool, status: TransactionStatus) -> None:
    if not autocommit or status != TransactionStatus.IDLE:
        raise ScopeError("a scope needs an idle connection in autocommit mode: it cannot "
                         "join a transaction that is already open")


@contextmanager
def translated() -> Iterator[None]:
    """psycopg's errors as maim_db's; what psycopg refuses to send as an InputError."""
    try:
        yield
    except psycopg.Error as err:
        raise translate(err) from err
    except (TypeError, UnicodeEncodeError) as err:  # a query or parameter psycopg cannot send
        raise InputError(f"cannot run this statement: {err}") from err


class Handle(Generic[C]):
    """What the sync and async handles share: the connection, the scope, whether the
    transaction has been opened yet."""

    def __init__(self, conn: C, scope: Scope, *, single: bool = False,
                 snapshot: bool = False) -> None:
        self._conn: C = conn
        self._scope = scope
        self._opened = False
        # Set when the block ends: the connection may already be serving another scope.
        self._ended = False
        # A one-statement block: COMMIT rides in the same pipeline, one round trip in all.
        self._single = single
        # A read-only snapshot (export): every statement sees the same committed state.
        self._begin: LiteralString = ("begin isolation level repeatable read, read only"
                                      if snapshot else "begin")

    def _check_usable(self) -> None:
        if self._ended:
            raise ScopeError("this block has ended, so its handle cannot run statements any "
                             "more (its connection may already serve another scope); open a "
                             "new block")

    def _ended_by_statement(self) -> ScopeError:
        return ScopeError("a COMMIT or ROLLBACK statement ended this block's transaction "
                          "inside the block; let the block end instead (raise to roll back)")

    def _idle_at_finish(self, ok: bool, status: TransactionStatus) -> bool:
        """True when there is nothing left to commit or roll back."""
        if self._conn.closed:
            return True
        if status != TransactionStatus.IDLE:
            return False
        if ok and self._opened and not self._single:
            raise self._ended_by_statement()
        return True

    @staticmethod
    def _check_rows(cur: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any]) -> None:
        """Fetching from a statement without rows is a mistake, not an empty list.
        (Not ``cur.description``: it builds a Column per column, a tenth of a point lookup.)"""
        if cur.pgresult is not None and cur.pgresult.status == COMMAND_OK:
            raise InputError("the statement returns no rows, so there is nothing to fetch; "
                             "use execute() for statements without a result")

    def _second_statement(self) -> ScopeError:
        return ScopeError("this block was opened for a single statement (pool.fetch/execute); "
                          "use pool.connection(...) for a transaction of several")

    @property
    def scope(self) -> Scope:
        """The scope of this block (after the first statement, the agent an API key
        opened)."""
        return self._scope

    @property
    def connection(self) -> C:
        """The underlying psycopg connection, for what this handle does not cover."""
        return self._conn


class Database(Handle[psycopg.Connection[Any]]):
    """A scoped transaction. Get one from :func:`connect`, :func:`scoped` or a pool."""

    # -- running SQL -------------------------------------------------------------------------

    def _cursor(self, model: type[R] | None = None) -> psycopg.Cursor[Any]:
        self._check_usable()
        if model is None:
            return self._conn.cursor()
        return self._conn.cursor(row_factory=row_factory(model))

    def _run(self, cur: psycopg.Cursor[Any], query: Query, params: Params, *,
             rows: bool = False) -> None:
        with translated():
            self._execute(cur, query, params)
        if rows:
            self._check_rows(cur)

    def _execute(self, cur: psycopg.Cursor[Any], query: Query, params: Params) -> None:
        if self._opened:
            if self._single:
                raise self._second_statement()
            cur.execute(query, params)
            return
        self._opened = True
        for attempt in (1, 2):
            try:
                with self._conn.pipeline():
                    # A single statement needs no BEGIN/COMMIT: everything before the
                    # pipeline's one Sync is one implicit transaction, and the scope,
                    # set transaction-locally, ends with it.
                    if not self._single:
                        self._conn.execute(self._begin)
                    scope_cur = self._conn.execute(self._scope.statement, self._scope.params)
                    cur.execute(query, params)
            except psycopg.Error as err:
                if err.sqlstate != DIRTY:
                    raise
                # An earlier user left session state behind. The check raised, so nothing
                # after it ran: undo the attempt, reset the session, retry once.
                if self._conn.info.transaction_status != TransactionStatus.IDLE:
                    self._conn.execute("rollback")
                if attempt == 2:
                    break
                log.warning("maim_db: resetting a connection that carried session state")
                self._conn.execute(RESET_SESSION)
                continue
            self._scope = self._scope.opened(scope_cur.fetchone())
            return
        raise ScopeError(dirty_message(self._scope))

    def require(self, permission: str) -> None:
        """Raise :class:`AuthenticationError` unless the API key this block was opened with
        grants ``permission``; a block opened otherwise is not limited. Resolves the key
        first if no statement has run yet."""
        if self._scope.kind == "key":
            self.scalar("select maim.agent_id()")
        self._scope.require(permission)

    def execute(self, query: Query, params: Params = None) -> int:
        """Run a statement; return the number of rows it affected."""
        with self._cursor() as cur:
            self._run(cur, query, params)
            return cur.rowcount

    def fetch(self, model: type[R], query: Query, params: Params = None) -> list[R]:
        """Run a query and return every row as ``model``."""
        with self._cursor(model) as cur:
            self._run(cur, query, params, rows=True)
            return cur.fetchall()

    def fetch_one(self, model: type[R], query: Query, params: Params = None) -> R:
        """The first row as ``model``; :class:`NotFoundError` if there is none."""
        rows = self.fetch(model, query, params)
        if not rows:
            raise not_found(model, "row", self._scope)
        return rows[0]

    def rows(self, query: Query, params: Params = None) -> list[tuple[Any, ...]]:
        """Run a query and return plain tuples (for aggregates and ad-hoc shapes)."""
        with self._cursor() as cur:
            self._run(cur, query, params, rows=True)
            return cur.fetchall()

    def scalar(self, query: Query, params: Params = None) -> Any:
        """The first column of the first row; :class:`NotFoundError` if there is no row."""
        with self._cursor() as cur:
            self._run(cur, query, params, rows=True)
            row = cur.fetchone()
        if row is None:
            raise NotFoundError(f"query returned no row in scope {self._scope}")
        return row[0]

    # -- typed operations (SQL built in maim_db.statements) -----------------------------------

    def insert(self, row: R) -> R:
        """Insert ``row`` (only the fields it was given; SQL fills the rest); return it as
        stored."""
        return self.fetch_one(type(row), *statements.insert(row))

    def insert_many(self, rows: Iterable[R]) -> int:
        """Insert rows of one model in multi-row statements; return how many were inserted."""
        return sum(self.execute(q, p) for q, p in statements.insert_many(rows))

    def get(self, model: type[R], *key: Any) -> R:
        """The row with primary key ``key`` (in agent scope ``agent_id`` may be left out);
        :class:`NotFoundError` if this scope has no such row."""
        where = statements.key(model, key, self._scope.agent_id)
        rows = self.fetch(model, *statements.find(model, where, (), 1))
        if not rows:
            raise not_found(model, where, self._scope)
        return rows[0]

    def find(self, model: type[R], where: Mapping[str, Any] | None = None, *,
             order_by: str | Sequence[str] = (), limit: int | None = None) -> list[R]:
        """Rows matching ``where`` (``column: value``; a list means "any of", ``None`` means
        IS NULL), ordered by columns (``"-time"`` for descending)."""
        return self.fetch(model, *statements.find(model, where, order_by, limit))

    def update(self, model: type[R], *, where: Mapping[str, Any],
               set: Mapping[str, Any]) -> int:
        """Update rows; return how many changed. ``where={}`` means every row in scope."""
        return self.execute(*statements.update(model, where, set))

    def delete(self, model: type[R], *, where: Mapping[str, Any]) -> int:
        """Delete rows; return how many. ``where={}`` means every row in scope."""
        return self.execute(*statements.delete(model, where))

    def upsert(self, row: R, *, on: str | Sequence[str]) -> R:
        """Insert ``row`` or update the one with the same unique key ``on`` (agent tables add
        ``agent_id``); return it as stored."""
        return self.fetch_one(type(row), *statements.upsert(row, on))

    # -- transaction -------------------------------------------------------------------------

    def _finish(self, ok: bool) -> None:
        if self._idle_at_finish(ok, self._conn.info.transaction_status):
            return
        status = self._conn.info.transaction_status
        try:
            if ok and status == TransactionStatus.INERROR:
                # A statement failed and the error was caught inside the block: COMMIT would
                # quietly roll back. Say so instead of pretending the block succeeded.
                self._conn.execute("rollback")
                raise DatabaseError(ABORTED)
            self._conn.execute("commit" if ok else "rollback")
        except psycopg.Error as err:
            raise translate(err) from err


@contextmanager
def run_scoped(conn: psycopg.Connection[Any], scope: Scope, *, single: bool = False,
               snapshot: bool = False) -> Iterator[Database]:
    check_idle(conn.autocommit, conn.info.transaction_status)
    db = Database(conn, scope, single=single, snapshot=snapshot)
    try:
        yield db
    except BaseException:
        with suppress(MaimDBError):  # the original error matters more than a failed rollback
            db._finish(ok=False)
        raise
    finally:
        db._ended = True
    db._finish(ok=True)


@contextmanager
def scoped(conn: psycopg.Connection[Any], *, agent_id: str | None = None,
           tenant_id: str | None = None, admin: bool = False,
           api_key: str | None = None) -> Iterator[Database]:
    """Run one scoped transaction on an existing idle autocommit connection."""
    scope = resolve(agent_id=agent_id, tenant_id=tenant_id, admin=admin, api_key=api_key)
    with run_scoped(conn, scope) as db:
        yield db


def resolve_dsn(dsn: str | None) -> str:
    """An explicit DSN, else ``MAIMDB_DSN``, else the embedded server (started if needed).
    A DSN that does not parse is a :class:`ConfigurationError` here, not a pool timeout
    later."""
    if dsn:
        return _parsed(dsn)
    configured = settings()
    if configured.dsn:
        return _parsed(configured.dsn)
    from . import embedded

    return embedded.start(configured.data_dir, configured.database)


def _parsed(dsn: str) -> str:
    try:
        conninfo_to_dict(dsn)
    except (psycopg.ProgrammingError, TypeError) as err:
        raise ConfigurationError(f"invalid DSN: {err} (expected 'postgresql://user@host/db' "
                                 "or 'host=... dbname=...')") from None
    return dsn


def connect_error(err: psycopg.OperationalError) -> ConnectError:
    return ConnectError(f"cannot connect to PostgreSQL: {str(err).strip()}")


def connection_options(pgbouncer: bool | None = None) -> dict[str, Any]:
    """psycopg connection options. psycopg prepares a statement after 5 runs by default;
    behind PgBouncer in transaction mode (``MAIMDB_PGBOUNCER=1``) the next transaction may
    land on a server that never saw it, so preparing is off there."""
    bouncer = settings().pgbouncer if pgbouncer is None else pgbouncer
    return {"autocommit": True, "prepare_threshold": None if bouncer else 5}


def open_connection(dsn: str | None = None) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(resolve_dsn(dsn), **connection_options())
    except psycopg.OperationalError as err:
        raise connect_error(err) from err


@contextmanager
def connect(dsn: str | None = None, *, agent_id: str | None = None,
            tenant_id: str | None = None, admin: bool = False,
            api_key: str | None = None) -> Iterator[Database]:
    """Open a connection, run the block as one transaction in exactly one scope, close.

    ``api_key=`` opens the agent scope the key belongs to (see ``maim_db.keys``).

    Commits when the block ends normally, rolls back when it raises.
    """
    # Resolved before connecting: a bad scope never reaches the server.
    scope = resolve(agent_id=agent_id, tenant_id=tenant_id, admin=admin, api_key=api_key)
    with open_connection(dsn) as conn, run_scoped(conn, scope) as db:
        yield db
