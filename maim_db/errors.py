"""Every error maim_db raises derives from :class:`MaimDBError`.

Server errors are translated by one function, :func:`translate`, which every module that runs
SQL calls on psycopg's error, so callers catch meaning (``IsolationError``), not SQLSTATEs; the
server's SQLSTATE and hint stay on the error (``.sqlstate``, ``.hint``) for code that needs them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import psycopg
from psycopg import errors as pgerrors
from psycopg_pool import PoolClosed, PoolTimeout


class MaimDBError(Exception):
    """Root of all maim_db errors. ``sqlstate`` and ``hint`` are the server's, when the error
    was translated from one (:func:`translate`); None when maim_db raised it itself."""

    sqlstate: str | None = None
    hint: str | None = None


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


class MissingRoleError(ConfigurationError, IsolationError):
    """The login may not become the role its scope runs as (``permission denied to set role
    "maim_admin"``): a grant the deployment has not made, or a login used for a service it is
    not for. A configuration mistake, not an attack on isolation, so it is worded as the
    missing grant; it stays an :class:`IsolationError` because the scope was refused."""

    def __init__(self, message: str, *, login: str | None, role: str) -> None:
        IsolationError.__init__(self, message)
        self.login = login
        self.role = role


class NotFoundError(MaimDBError, LookupError):
    """The row asked for does not exist in this scope."""


class UnknownAgentError(NotFoundError, IsolationError):
    """A scope was opened for an agent that does not exist: a mistyped id. The database
    refuses it as it refuses a suspended agent, so it is an :class:`IsolationError` too."""


class UnknownTenantError(NotFoundError, IsolationError):
    """A tenant scope was opened for a tenant that does not exist (maim.open_tenant_scope)."""


class InputError(MaimDBError, ValueError):
    """A value was rejected (bad type, failed CHECK, missing required column). Nothing changed.
    ``constraint`` names the CHECK that refused it, for code (the message says it in words)."""

    def __init__(self, message: str, *, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


class ConflictError(MaimDBError):
    """A unique or foreign-key constraint refused the change. Nothing changed."""

    def __init__(self, message: str, *, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


class MigrationError(MaimDBError):
    """A migration could not be applied, rolled back, or verified. A migrate that stopped
    says, for code as in its message, which migrations this run ``applied`` and which
    remain pending (``remaining``), and the ``unmet`` needs that stopped it before it began
    (:class:`maim_db.schema.preconditions.Unmet`)."""

    def __init__(self, message: str, *, applied: list[str] | None = None,
                 remaining: list[str] | None = None, unmet: Sequence[object] = ()) -> None:
        super().__init__(message)
        self.applied: list[str] = applied or []
        self.remaining: list[str] = remaining or []
        self.unmet: list[object] = list(unmet)


class OutdatedReleaseError(MaimDBError):
    """The database was migrated by a newer release and records (``maim.release_floor()``,
    migration 0018) that releases as old as this one would misread it: this service must be
    upgraded. Raised before the first statement on a connection runs."""


class DatabaseError(MaimDBError):
    """Any other error reported by PostgreSQL; ``__cause__`` holds psycopg's error."""


class BlockedError(DatabaseError):
    """A statement waited longer than its block allows: for a lock another session held
    (``MAIMDB_LOCK_TIMEOUT``; SQLSTATE 55P03, also ``NOWAIT``) or in all
    (``MAIMDB_STATEMENT_TIMEOUT``; 57014). The block is rolled back: nothing changed. Usually
    another session (a plugin's, a migration's) held a lock; retry once it is gone.
    ``timeout`` says which limit: ``"lock_timeout"`` or ``"statement_timeout"``."""

    def __init__(self, message: str, *, timeout: str) -> None:
        super().__init__(message)
        self.timeout = timeout


_TABLE_IN_MESSAGE = re.compile(r'(?:table|relation) "?([A-Za-z0-9_.]+)"?')


# On Citus an error raised on a shard names the shard: "messages_102040", and its
# constraints "messages_pkey_102040". A person (and code matching a constraint) means the
# table; shard ids are six or more digits after the last underscore.
_SHARD = re.compile(r"^(\w+?)_\d{6,}$")
_QUOTED_SHARD = re.compile(r'"(\w+?)_\d{6,}"')


def _logical(name: str | None) -> str | None:
    """A table or constraint name without a Citus shard's suffix."""
    return None if name is None else _SHARD.sub(r"\1", name)


# Citus relays a worker's error with its message, detail and hint, and without the fields
# naming the table and the constraint: those are read from PostgreSQL's message instead.
_VIOLATION = re.compile(
    r'^(?:new row for relation "(?P<checked>[^"]+)" violates check'
    r'|(?:insert or update|update or delete) on table "(?P<referring>[^"]+)" violates foreign key'
    r'|duplicate key value violates unique|conflicting key value violates exclusion)'
    r' constraint "(?P<constraint>[^"]+)"')


def _table_of(err: psycopg.Error) -> str | None:
    if err.diag.table_name:
        return _logical(err.diag.table_name)
    message = err.diag.message_primary or str(err)
    violation = _VIOLATION.match(message)
    if violation and (violation["checked"] or violation["referring"]):
        return _logical(violation["checked"] or violation["referring"])
    if violation:  # a unique key names no table: PostgreSQL's name for it starts with it
        return _unique_key_table(_logical(violation["constraint"]) or "",
                                 err.diag.message_detail or "")
    match = _TABLE_IN_MESSAGE.search(message)
    return _logical(match.group(1)) if match else None


def _constraint_of(err: psycopg.Error) -> str | None:
    if err.diag.constraint_name:
        return _logical(err.diag.constraint_name)
    violation = _VIOLATION.match(err.diag.message_primary or "")
    return _logical(violation["constraint"]) if violation else None


def _unique_key_table(constraint: str, detail: str) -> str | None:
    """The table of ``<table>_pkey`` or ``<table>_<columns>_key``, the columns read from the
    detail line ("Key (tenant_id, name)=(…) already exists."); None for another name."""
    columns = re.match(r"Key \((.+?)\)=", detail)
    for suffix in ("_pkey", "_" + "_".join(columns[1].split(", ")) + "_key" if columns else ""):
        if suffix and constraint.endswith(suffix) and len(constraint) > len(suffix):
            return constraint.removesuffix(suffix)
    return None


def _describe(err: psycopg.Error) -> str:
    text = _QUOTED_SHARD.sub(r'"\1"', err.diag.message_primary or str(err).strip())
    if err.diag.message_detail:
        text += " (" + _QUOTED_SHARD.sub(r'"\1"', err.diag.message_detail) + ")"
    if err.diag.message_hint:
        text += f". Hint: {err.diag.message_hint}"
    return text


def _noun(thing: str | type) -> str:
    """``ApiKey`` → ``API key``, ``AgentActiveState`` → ``agent active state``."""
    if isinstance(thing, str):
        return thing
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", thing.__name__).lower()
    return re.sub(r"\bapi\b", "API", words)


def not_found(thing: str | type, what: object = None, scope: object = None) -> NotFoundError:
    """The one wording for a row that is not there (or not visible in this scope):
    ``no such agent agent_… in scope admin``. ``what`` is an id, or a mapping of columns."""
    if isinstance(what, dict):
        what = (next(iter(what.values())) if len(what) == 1
                else ", ".join(f"{k}={v!r}" for k, v in what.items()))
    text = f"no such {_noun(thing)}" + (f" {what}" if what is not None else "")
    return NotFoundError(text + (f" in scope {scope}" if scope is not None else ""))


def server_of(err: psycopg.Error) -> str:
    """The database and server an error came from, for a person (no password)."""
    pg = err.pgconn
    if pg is None:
        return "the database"
    return (f'database "{pg.db.decode(errors="replace")}" on '
            f'{pg.host.decode(errors="replace")} port {pg.port.decode(errors="replace")}')


# "Key (tenant_id, name)=(tenant_x, bot) already exists." and its foreign-key siblings
# (PostgreSQL leaves the values out when the role may not read them, as under RLS.)
_KEY = re.compile(r'Key (?:\((?P<cols>.+?)\)=\((?P<vals>.*)\) )?(?P<what>already exists|is not '
                  r'present in table "(?P<parent>[^"]+)"|is still referenced from table '
                  r'"(?P<child>[^"]+)")')
# maim.open_agent_scope, maim.open_tenant_scope
_UNKNOWN_SCOPE = re.compile(r"^(agent|tenant) (\S+) does not exist$")
# maim.assert_plugin_login: a key scope on a login that can become a trusted role
TRUSTED_LOGIN = "MA002"
# Citus, updating a distribution column (agent_id) of a distributed table
_CITUS_MOVE = "modifying the partition value of rows is not allowed"
_CHECK = re.compile(r"^(?P<column>\w+)_check\d*$")  # after "<table>_"
# Citus, opening a node connection as the block's current role, refused by that node's
# authentication: a worker admits the maim group roles alone (by certificate), so a block that
# left its role (RESET ROLE, SET ROLE to its login) reaches no shard (issue 32.1)
_CITUS_REFUSED = re.compile(r"^connection to the remote node (?P<role>[^@\s]+)@(?P<node>\S+) "
                            r"failed with the following error: .*(?:pg_hba\.conf|certificate|"
                            r"authentication failed)", re.DOTALL)


def _singular(table: str) -> str:
    words = table.removesuffix("s").replace("_", " ")
    return re.sub(r"\bapi\b", "API", words)


def _key_message(err: psycopg.Error) -> str | None:
    """A unique or foreign-key violation in words, from PostgreSQL's detail line."""
    m = _KEY.match(err.diag.message_detail or "Key already exists")
    if m is None:
        return None
    pairs = "the same values"
    if m["cols"] is not None:
        cols, vals = m["cols"].split(", "), m["vals"].split(", ")
        pairs = (", ".join(f"{c}={v}" for c, v in zip(cols, vals, strict=True))
                 if len(cols) == len(vals) else f"({m['cols']})=({m['vals']})")
    table = _table_of(err) or "row"
    if m["parent"]:
        if m["cols"] is None:
            return f"no such {_singular(m['parent'])}: a {table} row refers to one"
        return f"no such {_singular(m['parent'])}: {pairs} (in {table})"
    if m["child"]:
        return f"this {_singular(table)} is still referenced from {m['child']}"
    noun = _singular(table)
    return f"{'an' if noun[:1] in 'aeiouAEIOU' else 'a'} {noun} with {pairs} already exists"


def _check_message(err: psycopg.Error) -> str | None:
    table, name = _table_of(err) or "", _constraint_of(err) or ""
    m = _CHECK.match(name.removeprefix(f"{table}_")) if name.startswith(f"{table}_") else None
    if m is None:
        return None
    column = m["column"]
    if column in ("name", "username", "tenant_name"):  # 0001's length, 0015's text
        noun = "username" if column == "username" else f"{_singular(table)} name"
        return (f"{noun} must be 1 to 100 characters, not only white space, with no control "
                "characters")
    if column == "id":
        kind = _singular(table).replace(" ", "_")
        return f"a {_singular(table)} id must be {kind}_ followed by letters, digits, _ or -"
    return f"{table}.{column}: the value is not allowed (the column's check)"


# The role switch that opens a scope, refused: the login is not a member of the role. A scope
# function is checked before the switch runs, so "no execute on it" means the same thing.
_SET_ROLE = re.compile(r'^permission denied to set role "(maim_\w+)"$')
_SCOPE_FUNCTION = re.compile(r"^permission denied for function (open_agent_scope|open_key_scope)$")
_ROLE_OF_FUNCTION = {"open_agent_scope": "maim_app", "open_key_scope": "maim_plugin"}
# what each role is for, and the `maimdb login create --as` kind that makes a login in it
_ROLE_USE = {"maim_admin": ("admin scope (the control plane)", "admin"),
             "maim_app": ("agent scope (the runtime)", "app"),
             "maim_tenant": ("tenant scope (the web back end)", "tenant"),
             "maim_plugin": ("a key's scope (plugins)", "plugin")}


def _missing_role(err: psycopg.Error) -> MissingRoleError | None:
    """A refused role switch into a maim role, worded as the grant it lacks."""
    primary = err.diag.message_primary or ""
    if m := _SET_ROLE.match(primary):
        role = m[1]
    elif m := _SCOPE_FUNCTION.match(primary):
        role = _ROLE_OF_FUNCTION[m[1]]
    else:
        return None
    login = err.pgconn.user.decode(errors="replace") if err.pgconn is not None else None
    who = f'login "{login}"' if login else "this login"
    if role not in _ROLE_USE:  # maim_owner: only migrations become it
        return MissingRoleError(f"{who} is not in {role}, so it cannot run migrations; see "
                                "docs/operations.md", login=login, role=role)
    use, kind = _ROLE_USE[role]
    return MissingRoleError(
        f"{who} is not in {role}, so it cannot open {use}: connect as a login in {role} "
        f"(the migrator makes one with `maimdb login create NAME --as {kind}`); see "
        "docs/operations.md, \"A production install\"", login=login, role=role)


def translate(err: psycopg.Error) -> MaimDBError:
    """Map a psycopg error to the maim_db error a caller can act on; constraint violations
    in words, never a constraint's name (it stays on ``ConflictError.constraint``), the
    server's SQLSTATE and hint on ``.sqlstate`` and ``.hint``."""
    translated = _translate(err)
    translated.sqlstate = err.sqlstate
    translated.hint = err.diag.message_hint
    return translated


def _translate(err: psycopg.Error) -> MaimDBError:
    message = _describe(err)
    if isinstance(err, pgerrors.CheckViolation):
        message = _check_message(err) or message
    elif isinstance(err, pgerrors.UniqueViolation | pgerrors.ForeignKeyViolation):
        message = _key_message(err) or message
    if (isinstance(err, pgerrors.InvalidSchemaName)
            and (err.diag.message_primary or "") == 'schema "maim" does not exist'):
        return MigrationError(f"{server_of(err)} has no maim_db schema: run `maimdb migrate` "
                              "against it first")
    if (isinstance(err, pgerrors.FeatureNotSupported)
            and (err.diag.message_primary or "") == _CITUS_MOVE):
        # Citus refuses what the policies refuse on one server: a row changing its agent
        return IsolationError(f"isolation violation: a row cannot move to another agent "
                              f"({message})")
    if refused := _citus_refused(err):
        return refused
    if isinstance(err, pgerrors.LockNotAvailable):
        return BlockedError(
            f"{message}: another session held a lock this statement needs longer than the "
            "block may wait (MAIMDB_LOCK_TIMEOUT); the block was rolled back, retry it (the "
            "watcher, `maimdb watch`, ends a plugin's session that blocks others)",
            timeout="lock_timeout")
    if isinstance(err, pgerrors.QueryCanceled) and "statement timeout" in message:
        return BlockedError(
            f"{message}: the statement ran longer than the block allows "
            "(MAIMDB_STATEMENT_TIMEOUT); the block was rolled back", timeout="statement_timeout")
    if err.sqlstate == TRUSTED_LOGIN:
        return ConfigurationError(
            f"{err.diag.message_primary}: open API key scopes on a plugin login (the migrator "
            "makes one with `maimdb login create NAME --as plugin`); see docs/concepts.md")
    if isinstance(err, pgerrors.InsufficientPrivilege):
        if "is not set" in (err.diag.message_primary or ""):
            return ScopeError(message)
        if missing := _missing_role(err):
            return missing
        unknown = _UNKNOWN_SCOPE.match(err.diag.message_primary or "")
        if unknown and unknown[1] == "agent":
            return UnknownAgentError(f"no such agent {unknown[2]} (create it with `maimdb "
                                     "agent create NAME --tenant TENANT_ID`)")
        if unknown:
            return UnknownTenantError(f"no such tenant {unknown[2]} (create it with `maimdb "
                                      "tenant create NAME`)")
        table = _table_of(err)
        where = f" on table {table}" if table else ""
        return IsolationError(f"isolation violation{where}: {message}", table=table)
    if isinstance(err, pgerrors.InvalidAuthorizationSpecification):
        return AuthenticationError(message)
    if isinstance(err, pgerrors.UniqueViolation | pgerrors.ForeignKeyViolation
                  | pgerrors.ExclusionViolation):
        return ConflictError(message, constraint=_constraint_of(err))
    if isinstance(err, pgerrors.IntegrityError | pgerrors.DataError):
        return InputError(message, constraint=_constraint_of(err))
    if isinstance(err, psycopg.ProgrammingError | psycopg.DataError) and err.sqlstate is None:
        # refused by psycopg before it reached the server: a value it cannot send, the
        # wrong number of parameters for the placeholders
        return InputError(message)
    if isinstance(err, psycopg.OperationalError) and err.sqlstate is None:
        return ConnectError(message)
    return DatabaseError(message)


def _citus_refused(err: psycopg.Error) -> IsolationError | None:
    """A Citus node that would not let the block's role in. For a login of the application
    (the block left the group role its scope runs as) that is isolation at work, raised as one
    line; for a group role it is the cluster's set-up (Citus's certificate), left as it is."""
    if not isinstance(err, pgerrors.ConnectionFailure):
        return None
    found = _CITUS_REFUSED.match(err.diag.message_primary or "")
    if found is None or found["role"] in _GROUP_ROLES:
        return None
    return IsolationError(f"isolation violation: Citus node {found['node']} refused the block's "
                          f"role {found['role']} (a worker admits only the maim group roles; a "
                          "block that leaves its scope's role reaches no shard)")


_GROUP_ROLES = frozenset({"maim_owner", "maim_app", "maim_tenant", "maim_admin", "maim_plugin"})


def connect_error(err: psycopg.OperationalError) -> ConnectError:
    return ConnectError(f"cannot connect to PostgreSQL: {str(err).strip()}")


def pool_error(err: PoolTimeout | PoolClosed, *, opening: bool = False) -> ConnectError:
    if isinstance(err, PoolClosed):
        return ConnectError(f"{err} (a pool serves once opened: `with`/`async with`, or "
                            "open(); a closed pool cannot be reopened)")
    if opening:
        return ConnectError(f"the pool could not open its first connections: {err}")
    return ConnectError(f"no pooled connection became free: {err}")
