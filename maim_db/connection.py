"""``connect()`` and the handle it yields: one scoped transaction, typed rows.

The transaction opens lazily: nothing is sent until the first statement, and then ``BEGIN``,
the scope (:data:`maim_db.scope.SET_SCOPE`) and that statement go out together in one
pipeline — setting the scope costs no extra round trip.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, LiteralString, TypeVar

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from .errors import ConnectError, InputError, MaimDBError, NotFoundError, ScopeError, translate
from .row import SERVER_DEFAULT, Row
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
    # Identifiers come only from the model's own fields; values are always bound parameters.

    def insert(self, row: R) -> R:
        """Insert ``row`` (only the fields it was given; SQL fills the rest) and return it
        as stored."""
        model = type(row)
        given = row.given()
        table = sql.Identifier(model.table)
        if given:
            query = sql.SQL("insert into {} ({}) values ({}) returning *").format(
                table, _names(given), sql.SQL(", ").join(sql.Placeholder() * len(given)))
        else:
            query = sql.SQL("insert into {} default values returning *").format(table)
        return self.fetch_one(model, query, _values(model, given))

    def insert_many(self, rows: Sequence[R]) -> int:
        """Insert rows of one model in multi-row statements; return how many were inserted.

        (``COPY FROM`` is refused on tables with row-level security, so this is the bulk path.)
        A field one row gives and another leaves out is sent as ``DEFAULT`` for the latter.
        """
        if not rows:
            return 0
        model = type(rows[0])
        if any(type(r) is not model for r in rows):
            raise InputError("insert_many() takes rows of one model at a time")
        given = [r.given() for r in rows]
        columns = [f for f in model.model_fields if any(f in g for g in given)]
        if not columns:
            raise InputError(f"insert_many() needs at least one field set on the {model.__name__} "
                             "rows (use insert() for an all-defaults row)")
        jsonb = model.jsonb_fields()
        per_statement = max(1, min(1000, 32767 // len(columns)))
        inserted = 0
        for start in range(0, len(given), per_statement):
            chunk = given[start:start + per_statement]
            params: list[Any] = []
            tuples = []
            for g in chunk:
                cells: list[sql.Composable] = []
                for c in columns:
                    if c in g:
                        cells.append(sql.Placeholder())
                        params.append(_adapt(g[c], c in jsonb))
                    else:
                        cells.append(sql.SQL("default"))
                tuples.append(sql.SQL("({})").format(sql.SQL(", ").join(cells)))
            query = sql.SQL("insert into {} ({}) values {}").format(
                sql.Identifier(model.table), _names(columns), sql.SQL(", ").join(tuples))
            inserted += self.execute(query, params)
        return inserted

    def get(self, model: type[R], *key: Any) -> R:
        """The row of ``model`` with primary key ``key``; :class:`NotFoundError` if this
        scope has no such row. In agent scope a leading ``agent_id`` may be left out."""
        if (len(key) == len(model.key) - 1 and model.key[0] == "agent_id"
                and self._scope.kind == "agent"):
            key = (self._scope.id, *key)
        if len(key) != len(model.key):
            raise InputError(f"{model.__name__} is keyed by {model.key}, got {len(key)} value(s)")
        where = dict(zip(model.key, key, strict=True))
        rows = self.find(model, where, limit=1)
        if not rows:
            raise NotFoundError(f"{model.__name__} {where} not found in scope {self._scope}")
        return rows[0]

    def find(self, model: type[R], where: Mapping[str, Any] | None = None, *,
             order_by: str | Sequence[str] = (), limit: int | None = None) -> list[R]:
        """Rows of ``model`` matching ``where`` (``column: value``; a list or tuple value
        means "any of", ``None`` means IS NULL). ``order_by`` names columns, ``-`` for
        descending: ``order_by="-time"``."""
        query = sql.SQL("select * from {}").format(sql.Identifier(model.table))
        clause, params = _where(model, where or {})
        query = sql.SQL("{}{}").format(query, clause)
        orders = [order_by] if isinstance(order_by, str) else list(order_by)
        if orders:
            query = sql.SQL("{} order by {}").format(query, sql.SQL(", ").join(
                sql.SQL("{} desc" if o.startswith("-") else "{}").format(
                    sql.Identifier(_field(model, o.removeprefix("-")))) for o in orders))
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise InputError(f"limit must be a non-negative integer, got {limit!r}")
            query = sql.SQL("{} limit {}").format(query, sql.Literal(limit))
        return self.fetch(model, query, params)

    def update(self, model: type[R], *, where: Mapping[str, Any],
               set: Mapping[str, Any]) -> int:
        """``update … set … where …``; return the number of rows changed. ``where`` is
        required: pass ``{}`` to mean every row this scope can see."""
        if not set:
            raise InputError("update() needs at least one column in set=")
        jsonb = model.jsonb_fields()
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = %s").format(sql.Identifier(_field(model, c))) for c in set)
        params = [_adapt(v, c in jsonb) for c, v in set.items()]
        clause, where_params = _where(model, where)
        query = sql.SQL("update {} set {}{}").format(sql.Identifier(model.table), assignments,
                                                     clause)
        return self.execute(query, params + where_params)

    def delete(self, model: type[R], *, where: Mapping[str, Any]) -> int:
        """``delete … where …``; return the number of rows removed. ``where`` is required:
        pass ``{}`` to mean every row this scope can see."""
        clause, params = _where(model, where)
        return self.execute(sql.SQL("delete from {}{}").format(sql.Identifier(model.table),
                                                               clause), params)

    def upsert(self, row: R, *, on: Sequence[str]) -> R:
        """Insert ``row``, or update the row that has the same values in the unique key
        ``on`` (in agent tables ``agent_id``, filled by the scope, is added to it). Return
        the row as stored."""
        model = type(row)
        given = row.given()
        target = [_field(model, c) for c in on]
        scoped_agent = (model.model_fields.get("agent_id") is not None
                        and model.model_fields["agent_id"].default is SERVER_DEFAULT)
        if scoped_agent and "agent_id" not in target:
            target.insert(0, "agent_id")
        missing = [c for c in target if c not in given and not (scoped_agent and c == "agent_id")]
        if missing:
            raise InputError(f"upsert on {tuple(target)} needs values for {missing}")
        changes = [c for c in given if c not in target]
        action = (sql.SQL("do update set {}").format(sql.SQL(", ").join(
            sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in changes))
            if changes else sql.SQL("do update set {0} = excluded.{0}").format(
                sql.Identifier(target[-1])))
        query = sql.SQL("insert into {} ({}) values ({}) on conflict ({}) {} returning *").format(
            sql.Identifier(model.table), _names(given),
            sql.SQL(", ").join(sql.Placeholder() * len(given)), _names(target), action)
        return self.fetch_one(model, query, _values(model, given))

    # -- transaction -------------------------------------------------------------------------

    def _finish(self, ok: bool) -> None:
        if self._conn.closed or self._conn.info.transaction_status == TransactionStatus.IDLE:
            return
        try:
            self._conn.execute("commit" if ok else "rollback")
        except psycopg.Error as err:
            raise translate(err) from err


def _adapt(value: Any, jsonb: bool) -> Any:
    return Jsonb(value) if jsonb and value is not None else value


def _values(model: type[Row], given: Mapping[str, Any]) -> list[Any]:
    jsonb = model.jsonb_fields()
    return [_adapt(v, c in jsonb) for c, v in given.items()]


def _names(columns: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, columns))


def _field(model: type[Row], name: str) -> str:
    if name not in model.model_fields:
        raise InputError(f"{model.__name__} has no column {name!r}; columns: "
                         f"{', '.join(model.model_fields)}")
    return name


def _where(model: type[Row], where: Mapping[str, Any]) -> tuple[sql.Composable, list[Any]]:
    if not where:
        return sql.SQL(""), []
    jsonb = model.jsonb_fields()
    parts, params = [], []
    for column, value in where.items():
        name = sql.Identifier(_field(model, column))
        if value is None:
            parts.append(sql.SQL("{} is null").format(name))
        elif isinstance(value, list | tuple | set | frozenset) and column not in jsonb:
            parts.append(sql.SQL("{} = any(%s)").format(name))
            params.append(list(value))
        else:
            parts.append(sql.SQL("{} = %s").format(name))
            params.append(_adapt(value, column in jsonb))
    return sql.SQL(" where {}").format(sql.SQL(" and ").join(parts)), params


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
