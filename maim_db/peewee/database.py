"""A Peewee database whose every transaction runs in a maim_db scope.

Peewee builds the SQL; maim_db runs it. Nothing goes to the server outside a scope block:

- a statement outside ``atomic()`` is its own block: the scope statement and the statement
  leave in one pipeline, one round trip (``Pool.result``);
- ``atomic()`` (and ``transaction()``) is one block: ``begin()`` borrows a connection and
  opens the block, whose BEGIN and scope statement go out with its first statement;
  ``commit()``/``rollback()`` end it and give the connection back. Savepoints are statements
  inside it.

The scope is the one named when the database was made (``agent_id=``/``api_key=``), else the
ambient one (``agent_scope()``, ``key_scope()``), read as each block opens; with neither,
:class:`~maim_db.ScopeError` before any SQL. The ambient scope is a contextvar, so it follows
``asyncio.to_thread`` into executor threads. Peewee's own per-thread state (the open
transaction) stays per thread, as in Peewee.

Connections come from a :class:`maim_db.Pool` (``pool=``, else one made at first use on the
server ``connect()`` uses: ``MAIMDB_DSN``, else the embedded one). Between blocks a
connection holds nothing, so it goes back to the pool after every block.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

import peewee
import psycopg

from ..connection import Block
from ..errors import (
    ConfigurationError,
    ConflictError,
    InputError,
    MaimDBError,
    ScopeError,
)
from ..handle import Result
from ..pipeline import in_zone
from ..pool import Pool
from ..scope import Scope, resolve
from ..settings import configured_zone

log = logging.getLogger("peewee")


class IntegrityError(ConflictError, peewee.IntegrityError):
    """A unique or foreign-key violation, as both maim_db (:class:`~maim_db.ConflictError`)
    and Peewee (``peewee.IntegrityError``, which ``get_or_create`` and MaiBot catch) name it."""


class CheckViolation(InputError, peewee.IntegrityError):
    """A NOT NULL or CHECK violation, as both maim_db (:class:`~maim_db.InputError`) and
    Peewee (``peewee.IntegrityError``, what psycopg2 raised for it) name it."""


@dataclass(frozen=True, slots=True)
class _Open:
    """The block a Peewee transaction holds: its context manager, its handle, and the scope
    it was opened for."""

    manager: AbstractContextManager[Block]
    handle: Block
    scope: Scope


class _Rollback(Exception):
    """Thrown into a block to end it with ROLLBACK."""


#: A statement's DB-API description per column list: the same few shapes run again and again,
#: and a message row has 38 columns. Immutable, so one is shared by every cursor of a shape.
_DESCRIPTIONS: dict[tuple[str, ...], tuple[tuple[Any, ...], ...]] = {}
_DESCRIPTIONS_MAX = 4096


def _description(columns: tuple[str, ...]) -> tuple[tuple[Any, ...], ...]:
    made = _DESCRIPTIONS.get(columns)
    if made is None:
        made = tuple((name, None, None, None, None, None, None) for name in columns)
        if len(_DESCRIPTIONS) < _DESCRIPTIONS_MAX:
            _DESCRIPTIONS[columns] = made
    return made


class Cursor:
    """A finished statement as Peewee reads it (DB-API: ``description``, ``rowcount``,
    ``fetchone``/``fetchmany``/``fetchall``, iteration). The rows are already in memory."""

    arraysize = 100

    def __init__(self, result: Result) -> None:
        self.description = _description(result.columns) if result.columns else None
        self.rowcount = result.rowcount
        self._rows = result.rows
        self._at = 0

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        end = self._at + (size or self.arraysize)
        rows, self._at = self._rows[self._at:end], min(end, len(self._rows))
        return rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._at = self._rows[self._at:], len(self._rows)
        return rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while (row := self.fetchone()) is not None:
            yield row

    def close(self) -> None:
        self._rows = []


class ScopedDatabase(peewee.PostgresqlDatabase):
    """Peewee's PostgreSQL dialect over maim_db's scoped blocks (see the module docstring).

    ``timezone``: the zone naive datetimes are read in (MaiBot passes ``datetime.now()``);
    default ``MAIMDB_TIMEZONE``, else this machine's local zone. Values read back from
    ``timestamptz`` columns by the bridge's fields are naive in the same zone.
    """

    def __init__(self, dsn: str | None = None, *, pool: Pool | None = None,
                 agent_id: str | None = None, api_key: str | None = None,
                 timezone: str | None = None, max_connections: int = 10) -> None:
        super().__init__("maim_db", autoconnect=False)
        if agent_id is not None or api_key is not None:
            resolve(agent_id=agent_id, api_key=api_key)  # malformed: refused here, not later
        self._agent_id, self._api_key = agent_id, api_key
        self._blocks = threading.local()  # the block open in this thread, if any
        self._dsn = dsn
        self._pool = pool
        self._own_pool: Pool | None = None
        self._max = max_connections
        self._pool_lock = threading.Lock()
        self._zone_name = timezone
        self._zone: tzinfo | None = None

    # -- where the connections come from -----------------------------------------------------

    def bind_pool(self, pool: Pool) -> None:
        """Use ``pool`` (a service's own) from now on; a pool this database made is closed."""
        with self._pool_lock:
            own, self._pool = self._own_pool, pool
            self._own_pool = None
        if own is not None:
            own.close()

    def pool(self) -> Pool:
        if self._pool is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = self._own_pool = Pool(self._dsn, min_size=1,
                                                       max_size=self._max,
                                                       name="maim_db.peewee")
        return self._pool

    @property
    def zone(self) -> tzinfo:
        if self._zone is None:
            self._zone = configured_zone(self._zone_name, local=True)
            assert self._zone is not None  # local=True: never None
        return self._zone

    # -- statements and transactions ---------------------------------------------------------

    def _block(self) -> _Open | None:
        block: _Open | None = getattr(self._blocks, "open", None)
        return block

    def _scope(self) -> Scope:
        """The scope this statement asks for (the database's own, else the ambient one)."""
        return resolve(agent_id=self._agent_id, api_key=self._api_key)

    def _joining(self, block: _Open, scope: Scope) -> Block:
        # Peewee keeps its open transaction per thread, so a statement reaching a block
        # opened for another scope comes from another coroutine on this thread, or from a job
        # after one that never ended its transaction (manual_commit, session_start): refuse.
        if scope != block.scope:
            raise ScopeError(f"a Peewee transaction for {block.scope} is open in this thread, "
                             f"so a statement for {scope} cannot run in it (another coroutine "
                             "holding atomic() across an await, or a transaction never ended)")
        return block.handle

    def _params(self, params: Any) -> Any:  # naive datetimes: in the zone
        if not params:
            return None  # no parameters: a literal % in the SQL stays one
        return in_zone(params, self.zone)

    def extract_date(self, date_part: str, date_field: Any) -> Any:
        """``EXTRACT(year FROM …)`` with the part written in the SQL, as Peewee 4.0.3 and later
        render it. Before, Peewee sent the part as a parameter, which a server-side bound
        statement cannot take there (``extract($1 from …)`` is a syntax error): MaiBot's
        ``.year``/``.month`` failed on Peewee 3.x."""
        if not date_part.isalpha():
            raise InputError(f"not a date part: {date_part!r}")
        return peewee.fn.EXTRACT(peewee.NodeList((peewee.SQL(date_part), peewee.SQL("FROM"),
                                                  date_field)))

    def execute(self, query: Any, **context_options: Any) -> Any:
        # The scope's agent, for the models' queries to name (models.py: on Citus that routes
        # them to one shard): the agent a block's first statement opened (a key's), else the
        # scope asked for. A key scope's one-statement call has none known yet.
        block = self._block()
        agent = (block.handle.scope if block is not None else self._scope()).agent_id
        return super().execute(  # type: ignore[no-untyped-call]
            query, maim_agent_id=agent, **context_options)

    def execute_sql(self, sql: str, params: Any = None) -> Cursor:
        log.debug((sql, params))  # as Peewee logs its queries
        scope = self._scope()
        values = self._params(params)
        block = self._block()
        try:
            if block is not None:
                return Cursor(self._joining(block, scope).result(sql, values))
            return Cursor(self.pool().result(sql, values,
                                             agent_id=self._agent_id, api_key=self._api_key))
        except ConflictError as err:
            raise IntegrityError(str(err), constraint=err.constraint) from err
        except InputError as err:
            if not isinstance(err.__cause__, psycopg.IntegrityError):
                raise  # a value psycopg could not send, not a constraint
            raise CheckViolation(str(err), constraint=err.constraint) from err

    def begin(self, isolation_level: Any = None) -> None:
        if isolation_level is not None:
            raise InputError("a maim_db block runs at READ COMMITTED; isolation levels are not "
                             "supported through the Peewee bridge")
        scope = self._scope()  # no scope: refused before a connection is borrowed
        block = self._block()
        if block is not None:
            self._joining(block, scope)
            raise ScopeError("a Peewee transaction is already open in this thread")
        manager = self.pool().connection(agent_id=self._agent_id, api_key=self._api_key)
        self._blocks.open = _Open(manager, manager.__enter__(), scope)

    # With no block open (Peewee rolls back after a failed commit, whose block has ended),
    # there is nothing to end: as COMMIT/ROLLBACK outside a transaction in PostgreSQL.

    def commit(self) -> None:
        manager = self._end()
        if manager is not None:
            manager.__exit__(None, None, None)

    def rollback(self) -> None:
        manager = self._end()
        if manager is not None:
            manager.__exit__(_Rollback, _Rollback(), None)

    def _end(self) -> AbstractContextManager[Block] | None:
        block = self._block()
        self._blocks.open = None
        return None if block is None else block.manager

    # -- what a connection-per-thread database would do, with nothing to do here ------------

    def connect(self, reuse_if_open: bool = False) -> bool:
        """Nothing to open: each block borrows a connection (kept for MaiBot's start-up)."""
        return True

    def close(self) -> bool:
        if self.in_transaction():
            raise MaimDBError("a transaction is open in this thread; end it before close()")
        return True

    def is_closed(self) -> bool:
        return False

    def is_connection_usable(self) -> bool:
        return True

    def connection(self) -> Any:
        raise MaimDBError("the Peewee bridge has no connection of its own to hand out: each "
                          "block borrows one; use maim_db.connect() for raw psycopg work")

    def cursor(self, named_cursor: Any = None) -> Any:
        raise MaimDBError("the Peewee bridge runs statements itself (execute_sql); there is "
                          "no driver cursor to hand out")

    def create_tables(self, models: Iterable[type[peewee.Model]], **options: Any) -> None:
        """The schema is maim_db's migrations': ``safe=True`` (create if missing, MaiBot's
        start-up) has nothing to do; anything else is refused."""
        if not options.get("safe", True):
            raise ConfigurationError("tables are created by maim_db's migrations, not by "
                                     "Peewee: run `maimdb migrate`")

    def drop_tables(self, models: Iterable[type[peewee.Model]], **options: Any) -> None:
        raise ConfigurationError("tables belong to maim_db's migrations; Peewee does not drop "
                                 "them (`maimdb erase --agent …` removes an agent's rows)")
