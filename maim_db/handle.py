"""What the sync and async handles share: the state of one scoped transaction and the checks
that need no I/O. The I/O half is written once, in :mod:`maim_db.connection_async`, and
generated for sync code (:mod:`maim_db.connection`)."""

from __future__ import annotations

import importlib
import logging
import warnings
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Generic, LiteralString, TypeVar

import psycopg
from psycopg.pq import ExecStatus, TransactionStatus
from psycopg.pq.abc import PGresult

from .errors import InputError, ScopeError, translate
from .pipeline import rowcount, session
from .scope import Scope

__all__ = ["ABORTED", "Handle", "Result", "check_idle", "dirty_message", "entered_twice", "log",
           "translated"]

# Names this module used to re-export, and where they are defined: still importable from here,
# with a warning, so code written against the old place keeps working.
_MOVED = {"Params": "maim_db.pipeline", "Query": "maim_db.pipeline", "R": "maim_db.pipeline",
          "not_found": "maim_db.errors"}


def __getattr__(name: str) -> Any:
    """An old re-export (:data:`_MOVED`), from the module that defines it."""
    home = _MOVED.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"import {name} from {home}, not maim_db.handle", DeprecationWarning,
                  stacklevel=2)
    return getattr(importlib.import_module(home), name)

log = logging.getLogger("maim_db")

C = TypeVar("C", psycopg.Connection[Any], psycopg.AsyncConnection[Any])


COMMAND_OK = ExecStatus.COMMAND_OK  # a statement that returns no rows

ABORTED = ("the block ended normally but a statement inside it had failed (its error was "
           "caught), so PostgreSQL aborted the transaction: nothing was committed")


def dirty_message(scope: Scope) -> str:
    return (f"the connection still carries a role or scope from before (opening {scope}); "
            "a DSN must not set `role`, and nothing may SET maim.* at session level")


@dataclass(frozen=True, slots=True)
class Result:
    """One statement's whole result in DB-API terms, for adapters that need that shape (the
    Peewee bridge): column names (empty for a statement without rows), rows as tuples, and
    the rows affected (-1 when the command does not say)."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    rowcount: int


def entered_twice() -> ScopeError:
    """A block's context manager is one block: entered again (nested, or by another task
    while the first is open), its exit would end the other's block and give back the other's
    connection, while that block still runs statements."""
    return ScopeError("this block's context manager was entered already: call "
                      "pool.connection() (or run_scoped()) again for each block")


def check_idle(autocommit: bool, status: int) -> None:
    if not autocommit or status != TransactionStatus.IDLE:
        raise ScopeError("a scope needs an idle connection in autocommit mode: it cannot "
                         "join a transaction that is already open")


class _Translated:
    """The context manager :func:`translated` returns: stateless, so one serves every block
    (a generator-based one cost a generator and its bookkeeping per statement)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        if isinstance(err, psycopg.Error):
            raise translate(err) from err
        if isinstance(err, (TypeError, UnicodeEncodeError)):  # a query or parameter
            raise InputError(f"cannot run this statement: {err}") from err  # psycopg refuses


_TRANSLATED: Final = _Translated()


def translated() -> AbstractContextManager[None]:
    """psycopg's errors as maim_db's; what psycopg refuses to send as an InputError."""
    return _TRANSLATED


class Handle(Generic[C]):
    """What the sync and async handles share: the connection, the scope, whether the
    transaction has been opened yet."""

    def __init__(self, conn: C, scope: Scope, *, single: bool = False,
                 snapshot: bool = False) -> None:
        self._conn: C = conn
        self._session = session(conn)
        self._scope = scope
        self._opened = False
        # Set when the block ends: the connection may already be serving another scope.
        self._ended = False
        # A one-statement block: COMMIT rides in the same pipeline, one round trip in all.
        self._single = single
        # A read-only snapshot (export): every statement sees the same committed state.
        # A key block pins what a plugin's session defaults could change, and names NOT
        # DEFERRABLE (no effect below SERIALIZABLE): Citus then begins the block's worker
        # transactions so, the mark a worker's proof check asks for (sql/20_scope.sql).
        self._begin: LiteralString = ("begin isolation level repeatable read, read only"
                                      if snapshot else
                                      "begin isolation level read committed, read write,"
                                      " not deferrable"
                                      if scope.kind == "key" else "begin")

    def _check_usable(self) -> None:
        if self._ended:
            raise ScopeError("this block has ended, so its handle cannot run statements any "
                             "more (its connection may already serve another scope); open a "
                             "new block")

    def _ended_by_statement(self) -> ScopeError:
        return ScopeError("a COMMIT or ROLLBACK statement ended this block's transaction "
                          "inside the block; let the block end instead (raise to roll back)")

    def _idle_at_finish(self, ok: bool, status: int) -> bool:
        """True when there is nothing left to commit or roll back."""
        if self._conn.closed:
            return True
        if status != TransactionStatus.IDLE:
            return False
        if ok and self._opened and not self._single:
            raise self._ended_by_statement()
        return True

    def _result(self, res: PGresult) -> Result:
        if res.status == COMMAND_OK:
            return Result((), [], rowcount(res))
        names = tuple((res.fname(i) or b"").decode(self._session.encoding)
                      for i in range(res.nfields))
        return Result(names, self._session.rows(res, tuple), rowcount(res))

    @staticmethod
    def _check_rows(res: PGresult) -> None:
        """Fetching from a statement without rows is a mistake, not an empty list."""
        if res.status == COMMAND_OK:
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


