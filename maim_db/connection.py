"""``connect()`` and the handle it yields: one scoped transaction, typed rows.

The transaction opens lazily: nothing is sent until the first statement, and then ``BEGIN``,
the scope (:data:`maim_db.scope.SET_SCOPE`) and that statement go out together in one
pipeline — setting the scope costs no extra round trip.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, LiteralString, TypeVar

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from .errors import ConnectError, MaimDBError, NotFoundError, ScopeError, translate
from .row import Row
from .scope import SET_SCOPE, Scope, resolve
from .settings import settings

R = TypeVar("R", bound=Row)
Params = Sequence[Any] | Mapping[str, Any] | None
# As in psycopg: a literal, or a composition of psycopg.sql — never a string built at run time.
Query = LiteralString | bytes | sql.SQL | sql.Composed


class Database:
    """A scoped transaction. Get one from :func:`connect` or :func:`scoped`."""

    def __init__(self, conn: psycopg.Connection[Any], scope: Scope) -> None:
        self._conn = conn
        self._scope = scope
        self._opened = False

    @property
    def scope(self) -> Scope:
        return self._scope

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The underlying psycopg connection, for what this handle does not cover."""
        return self._conn

    # -- running SQL -------------------------------------------------------------------------

    def _run(self, cur: psycopg.Cursor[Any], query: Query, params: Params) -> None:
        try:
            if self._opened:
                cur.execute(query, params)
                return
            with self._conn.pipeline():
                self._opened = True
                self._conn.execute("begin")
                self._conn.execute(SET_SCOPE, self._scope.params)
                cur.execute(query, params)
        except psycopg.Error as err:
            raise translate(err) from err

    def execute(self, query: Query, params: Params = None) -> int:
        """Run a statement; return the number of rows it affected."""
        with self._conn.cursor() as cur:
            self._run(cur, query, params)
            return cur.rowcount

    def fetch(self, model: type[R], query: Query, params: Params = None) -> list[R]:
        """Run a query and return every row as ``model``."""
        with self._conn.cursor(row_factory=class_row(model)) as cur:
            self._run(cur, query, params)
            return cur.fetchall()

    def fetch_one(self, model: type[R], query: Query, params: Params = None) -> R:
        """The first row as ``model``; :class:`NotFoundError` if there is none."""
        with self._conn.cursor(row_factory=class_row(model)) as cur:
            self._run(cur, query, params)
            row = cur.fetchone()
        if row is None:
            raise NotFoundError(f"no {model.__name__} row matched in scope {self._scope}")
        return row

    def scalar(self, query: Query, params: Params = None) -> Any:
        """The first column of the first row; :class:`NotFoundError` if there is no row."""
        with self._conn.cursor() as cur:
            self._run(cur, query, params)
            row = cur.fetchone()
        if row is None:
            raise NotFoundError(f"query returned no row in scope {self._scope}")
        return row[0]

    # -- typed operations --------------------------------------------------------------------

    def insert(self, row: R) -> R:
        """Insert ``row`` (only the fields it was given; SQL fills the rest) and return it
        as stored."""
        given = row.given()
        table = sql.Identifier(row.table)
        if given:
            query = sql.SQL("insert into {} ({}) values ({}) returning *").format(
                table,
                sql.SQL(", ").join(map(sql.Identifier, given)),
                sql.SQL(", ").join(sql.Placeholder() * len(given)),
            )
        else:
            query = sql.SQL("insert into {} default values returning *").format(table)
        return self.fetch_one(type(row), query, [_adapt(v) for v in given.values()])

    def get(self, model: type[R], *key: Any) -> R:
        """The row of ``model`` with primary key ``key``; :class:`NotFoundError` if this
        scope has no such row."""
        if len(key) != len(model.key):
            raise ScopeError(f"{model.__name__} is keyed by {model.key}, got {len(key)} value(s)")
        query = sql.SQL("select * from {} where {}").format(
            sql.Identifier(model.table),
            sql.SQL(" and ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in model.key),
        )
        try:
            return self.fetch_one(model, query, key)
        except NotFoundError:
            raise NotFoundError(
                f"{model.__name__} {dict(zip(model.key, key, strict=True))} not found "
                f"in scope {self._scope}"
            ) from None

    # -- transaction -------------------------------------------------------------------------

    def _finish(self, ok: bool) -> None:
        if self._conn.closed or self._conn.info.transaction_status == TransactionStatus.IDLE:
            return
        try:
            self._conn.execute("commit" if ok else "rollback")
        except psycopg.Error as err:
            raise translate(err) from err


def _adapt(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict) else value


@contextmanager
def scoped(conn: psycopg.Connection[Any], *, agent_id: str | None = None,
           tenant_id: str | None = None, admin: bool = False) -> Iterator[Database]:
    """Run one scoped transaction on an existing idle autocommit connection."""
    scope = resolve(agent_id=agent_id, tenant_id=tenant_id, admin=admin)
    if not conn.autocommit or conn.info.transaction_status != TransactionStatus.IDLE:
        raise ScopeError("scoped() needs an idle connection in autocommit mode: a scope "
                         "cannot join a transaction that is already open")
    db = Database(conn, scope)
    try:
        yield db
    except BaseException:
        with suppress(MaimDBError):  # the original error matters more than a failed rollback
            db._finish(ok=False)
        raise
    db._finish(ok=True)


def resolve_dsn(dsn: str | None) -> str:
    """An explicit DSN, else ``MAIMDB_DSN``, else the embedded server (started if needed)."""
    if dsn:
        return dsn
    configured = settings()
    if configured.dsn:
        return configured.dsn
    from . import embedded

    return embedded.start(configured.data_dir, configured.database)


def open_connection(dsn: str | None = None) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(resolve_dsn(dsn), autocommit=True)
    except psycopg.OperationalError as err:
        raise ConnectError(f"cannot connect to PostgreSQL: {str(err).strip()}") from err


@contextmanager
def connect(dsn: str | None = None, *, agent_id: str | None = None,
            tenant_id: str | None = None, admin: bool = False) -> Iterator[Database]:
    """Open a connection, run the block as one transaction in exactly one scope, close.

    Commits when the block ends normally, rolls back when it raises.
    """
    resolve(agent_id=agent_id, tenant_id=tenant_id, admin=admin)  # fail before connecting
    with open_connection(dsn) as conn, scoped(
        conn, agent_id=agent_id, tenant_id=tenant_id, admin=admin
    ) as db:
        yield db
