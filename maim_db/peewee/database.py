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
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, tzinfo
from typing import Any

import peewee

from ..connection import Database as Block
from ..errors import ConfigurationError, ConflictError, InputError, MaimDBError
from ..handle import Result
from ..pipeline import in_zone
from ..pool import Pool
from ..scope import resolve
from ..settings import settings, zone

log = logging.getLogger("peewee")


class IntegrityError(ConflictError, peewee.IntegrityError):
    """A unique or foreign-key violation, as both maim_db (:class:`~maim_db.ConflictError`)
    and Peewee (``peewee.IntegrityError``, which ``get_or_create`` and MaiBot catch) name it."""


class _Rollback(Exception):
    """Thrown into a block to end it with ROLLBACK."""


class Cursor:
    """A finished statement as Peewee reads it (DB-API: ``description``, ``rowcount``,
    ``fetchone``/``fetchmany``/``fetchall``, iteration). The rows are already in memory."""

    arraysize = 100

    def __init__(self, result: Result) -> None:
        self.description = ([(name, None, None, None, None, None, None)
                             for name in result.columns] if result.columns else None)
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
        self._max = max_connections
        self._pool_lock = threading.Lock()
        self._zone_name = timezone
        self._zone: tzinfo | None = None

    # -- where the connections come from -----------------------------------------------------

    def bind_pool(self, pool: Pool) -> None:
        """Use ``pool`` (a service's own) from now on."""
        self._pool = pool

    def pool(self) -> Pool:
        if self._pool is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = Pool(self._dsn, min_size=1, max_size=self._max,
                                      name="maim_db.peewee")
        return self._pool

    @property
    def zone(self) -> tzinfo:
        if self._zone is None:
            name = self._zone_name or settings().timezone
            try:
                self._zone = zone(name)[0]
            except InputError as err:
                raise ConfigurationError(f"MAIMDB_TIMEZONE: {err}") from None
        return self._zone

    # -- statements and transactions ---------------------------------------------------------

    def _block(self) -> tuple[AbstractContextManager[Block], Block] | None:
        block: tuple[AbstractContextManager[Block], Block] | None = getattr(
            self._blocks, "open", None)
        return block

    def _params(self, params: Sequence[Any] | None) -> list[Any]:  # naive: in the zone
        values = list(params or ())
        if any(isinstance(v, datetime) and v.tzinfo is None for v in values):
            values = in_zone(values, self.zone)
        return values

    def execute_sql(self, sql: str, params: Sequence[Any] | None = None) -> Cursor:
        log.debug((sql, params))  # as Peewee logs its queries
        values = self._params(params) or None  # none: a literal % in the SQL stays one
        block = self._block()
        try:
            if block is not None:
                return Cursor(block[1].result(sql, values))
            resolve(agent_id=self._agent_id, api_key=self._api_key)
            return Cursor(self.pool().result(sql, values,
                                             agent_id=self._agent_id, api_key=self._api_key))
        except ConflictError as err:
            raise IntegrityError(str(err), constraint=err.constraint) from err

    def begin(self, isolation_level: Any = None) -> None:
        if isolation_level is not None:
            raise InputError("a maim_db block runs at READ COMMITTED; isolation levels are not "
                             "supported through the Peewee bridge")
        if self._block() is not None:
            raise MaimDBError("a block is already open in this thread")
        resolve(agent_id=self._agent_id, api_key=self._api_key)  # no scope: before connecting
        manager = self.pool().connection(agent_id=self._agent_id, api_key=self._api_key)
        self._blocks.open = (manager, manager.__enter__())

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
        return None if block is None else block[0]

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

    def table_exists(self, table_name: Any, schema: str | None = None) -> bool:
        name = table_name if isinstance(table_name, str) else table_name._meta.table_name
        found = self.execute_sql("select pg_catalog.to_regclass(%s) is not null",
                                 [f"public.{name}"]).fetchone()
        return bool(found and found[0])
