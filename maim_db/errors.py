"""Every error maim_db raises derives from :class:`MaimDBError`.

Server errors are translated at the one place SQL is run (:func:`translate`), so callers catch
meaning (``IsolationError``), not SQLSTATEs.
"""

from __future__ import annotations

import re

import psycopg
from psycopg import errors as pgerrors
from psycopg_pool import PoolClosed, PoolTimeout


class MaimDBError(Exception):
    """Root of all maim_db errors."""


class ConfigurationError(MaimDBError):
    """Settings are missing or contradict each other."""


class ConnectError(MaimDBError):
    """The server could not be reached or refused the login."""


class ScopeError(MaimDBError):
    """A block was opened with no scope, two scopes, or a malformed id; or the server found
    no scope set (``maim.agent_id is not set``)."""


class AuthenticationError(MaimDBError):
    """An API key did not resolve: unknown, malformed, revoked, expired, or its agent or
    tenant is suspended. The reason is deliberately not told apart."""


class IsolationError(MaimDBError):
    """The database refused an operation outside the scope (SQLSTATE 42501): a write into
    another agent, a table this role may not touch, a role it may not become."""

    def __init__(self, message: str, *, table: str | None = None) -> None:
        super().__init__(message)
        self.table = table


class NotFoundError(MaimDBError, LookupError):
    """The row asked for does not exist in this scope."""


class InputError(MaimDBError, ValueError):
    """A value was rejected (bad type, failed CHECK, missing required column). Nothing changed."""


class ConflictError(MaimDBError):
    """A unique or foreign-key constraint refused the change. Nothing changed."""

    def __init__(self, message: str, *, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


class MigrationError(MaimDBError):
    """A migration could not be applied, rolled back, or verified."""


class DatabaseError(MaimDBError):
    """Any other error reported by PostgreSQL; ``__cause__`` holds psycopg's error."""


_TABLE_IN_MESSAGE = re.compile(r'(?:table|relation) "?([A-Za-z0-9_.]+)"?')


def _table_of(err: psycopg.Error) -> str | None:
    if err.diag.table_name:
        return err.diag.table_name
    match = _TABLE_IN_MESSAGE.search(err.diag.message_primary or str(err))
    return match.group(1) if match else None


def _describe(err: psycopg.Error) -> str:
    text = err.diag.message_primary or str(err).strip()
    if err.diag.message_detail:
        text += f" ({err.diag.message_detail})"
    if err.diag.message_hint:
        text += f". Hint: {err.diag.message_hint}"
    return text


def server_of(err: psycopg.Error) -> str:
    """The database and server an error came from, for a person (no password)."""
    pg = err.pgconn
    if pg is None:
        return "the database"
    return (f'database "{pg.db.decode(errors="replace")}" on '
            f'{pg.host.decode(errors="replace")} port {pg.port.decode(errors="replace")}')


def translate(err: psycopg.Error) -> MaimDBError:
    """Map a psycopg error to the maim_db error a caller can act on."""
    message = _describe(err)
    if (isinstance(err, pgerrors.InvalidSchemaName)
            and (err.diag.message_primary or "") == 'schema "maim" does not exist'):
        return MigrationError(f"{server_of(err)} has no maim_db schema: run `maimdb migrate` "
                              "against it first")
    if isinstance(err, pgerrors.InsufficientPrivilege):
        if "is not set" in (err.diag.message_primary or ""):
            return ScopeError(message)
        table = _table_of(err)
        where = f" on table {table}" if table else ""
        return IsolationError(f"isolation violation{where}: {message}", table=table)
    if isinstance(err, pgerrors.InvalidAuthorizationSpecification):
        return AuthenticationError(message)
    if isinstance(err, pgerrors.UniqueViolation | pgerrors.ForeignKeyViolation
                  | pgerrors.ExclusionViolation):
        return ConflictError(message, constraint=err.diag.constraint_name)
    if isinstance(err, pgerrors.IntegrityError | pgerrors.DataError):
        return InputError(message)
    if isinstance(err, psycopg.ProgrammingError | psycopg.DataError) and err.sqlstate is None:
        # refused by psycopg before it reached the server: a value it cannot send, the
        # wrong number of parameters for the placeholders
        return InputError(message)
    if isinstance(err, psycopg.OperationalError) and err.sqlstate is None:
        return ConnectError(message)
    return DatabaseError(message)


def connect_error(err: psycopg.OperationalError) -> ConnectError:
    return ConnectError(f"cannot connect to PostgreSQL: {str(err).strip()}")


def pool_error(err: PoolTimeout | PoolClosed, *, opening: bool = False) -> ConnectError:
    if isinstance(err, PoolClosed):
        return ConnectError(f"{err} (a pool serves once opened: `with`/`async with`, or "
                            "open(); a closed pool cannot be reopened)")
    if opening:
        return ConnectError(f"the pool could not open its first connections: {err}")
    return ConnectError(f"no pooled connection became free: {err}")
