"""``maimdb login``: the logins the services use, each in the one maim role it needs.

The maim roles cannot log in (docs/concepts.md); a deployment makes a login per service and
grants it one of them. Made here rather than by hand so the rules hold every time: a new
login bypasses nothing (no SUPERUSER, BYPASSRLS, CREATEROLE, CREATEDB, REPLICATION), holds one
maim role, and its password reaches the server only as a SCRAM verifier computed here (libpq's
``PQencryptPasswordConn``, what psql's ``\\password`` does), so the plain text is in no
statement, server log or ``pg_stat_statements`` row. Run as the migrator: a role with
CREATEROLE (and, on PostgreSQL 16+, ADMIN OPTION on the maim roles) — docs/operations.md.
"""

from __future__ import annotations

import re
from typing import Any, Final

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from pydantic import BaseModel

from ..connection import open_connection
from ..errors import ConfigurationError, ConflictError, InputError, translate

# `--as` → the role a login of that kind holds. maim_owner is not one: only migrations run
# as it (the migrator is the one login that may become it).
KINDS: Final = {"admin": "maim_admin", "app": "maim_app", "tenant": "maim_tenant",
                "plugin": "maim_plugin"}
# `--as watcher`: the login `maimdb watch` runs as (maim_db.watch). No maim role: it reads
# every session's state and terminates others' backends, which only these grant. Granting
# them takes a superuser (or a role holding them WITH ADMIN OPTION).
WATCHER_ROLES: Final = ("pg_signal_backend", "pg_read_all_stats")
# Connections a plugin login may hold at once unless `--connection-limit` says otherwise: a
# plugin that opens connections in a loop then runs out of its own, not the server's
# max_connections, which the runtime and the control plane need (issue 32.3).
PLUGIN_CONNECTION_LIMIT: Final = 10
GROUPS: Final = ("maim_owner", "maim_admin", "maim_app", "maim_tenant", "maim_plugin")
# maim_app is a member of maim_plugin (a key scope runs as maim_plugin, whatever the login):
# holding maim_app implies it, and is still one role.
_IMPLIED: Final = {"maim_app": "maim_plugin"}
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_DOCS = "see docs/operations.md, \"A production install\""


class Login(BaseModel):
    """A login that can become a maim role, and what is wrong with it, if anything."""

    login: str
    roles: list[str]
    problems: list[str]


def check_login_name(name: str) -> None:
    """Refuse a name PostgreSQL would cut, reserve or misread, before any SQL runs."""
    if not name.strip():
        raise InputError("a login name must not be empty or only spaces")
    if _CONTROL.search(name):
        raise InputError("a login name must not contain control characters")
    if len(name.encode()) > 63:
        raise InputError(f"a login name is at most 63 bytes (PostgreSQL would cut it), got "
                         f"{len(name.encode())}")
    if name in GROUPS:
        raise InputError(f"{name} is a maim_db group role, not a login: make a login and "
                         "grant it the role")
    if name.startswith("pg_"):
        raise InputError("names starting with pg_ are reserved for PostgreSQL's roles")
    if name.lower() in ("public", "none"):
        raise InputError(f"{name!r} is reserved by PostgreSQL")


def role_of(kind: str) -> str:
    """The role a login of ``kind`` is granted (for ``watcher``, the two it is granted)."""
    if kind == "watcher":
        return " and ".join(WATCHER_ROLES)
    if kind not in KINDS:
        raise InputError(f"--as must be one of {', '.join([*KINDS, 'watcher'])}, got {kind!r}")
    return KINDS[kind]


def _holds(conn: psycopg.Connection[Any], name: str) -> list[str]:
    """The maim roles ``name`` can become (SET ROLE), without those another implies."""
    option = "SET" if conn.info.server_version >= 160000 else "MEMBER"  # 15: no SET option
    held = [g for (g,) in conn.execute(
        "select g from unnest(%s::text[]) with ordinality as t(g, i) "
        "where pg_has_role(%s, g, %s) order by i", [list(GROUPS), name, option])]
    return [g for g in held if not any(_IMPLIED.get(h) == g for h in held)]


def _attributes(conn: psycopg.Connection[Any], name: str) -> tuple[bool, ...] | None:
    row = conn.execute("select rolcanlogin, rolsuper, rolbypassrls, rolcreaterole "
                       "from pg_roles where rolname = %s", [name]).fetchone()
    return None if row is None else tuple(row)


def _privilege_error(conn: psycopg.Connection[Any], err: pgerrors.InsufficientPrivilege,
                     role: str) -> ConfigurationError:
    me = conn.execute("select current_user").fetchone()
    user = me[0] if me else "this login"
    if "create role" in (err.diag.message_primary or ""):
        return ConfigurationError(f'login "{user}" may not create roles: run `maimdb login` as '
                                  f"the migrator (a role with CREATEROLE); {_DOCS}")
    if role == role_of("watcher"):
        return ConfigurationError(
            f'login "{user}" may not grant {role}: only a superuser (or a role holding them '
            "WITH ADMIN OPTION) may; run `maimdb login create NAME --as watcher` as one; see "
            'docs/operations.md, "The watcher"')
    return ConfigurationError(
        f'login "{user}" may not grant {role}: on PostgreSQL 16+ only a role holding it WITH '
        "ADMIN OPTION may (the role that created the maim roles does); have a superuser run "
        f'GRANT {role} TO "{user}" WITH ADMIN OPTION, INHERIT FALSE, SET FALSE; {_DOCS}')


def _coordinator_only(conn: psycopg.Connection[Any]) -> None:
    """On Citus, the login and its grant stay on the coordinator: a worker admits no
    application login, and a propagated grant would mark the group role distributed again,
    so that Citus propagated a block's ALTER ROLE on it (issue 32.2). A placeholder elsewhere."""
    conn.execute("set local citus.enable_create_role_propagation = off")


def create(dsn: str | None, name: str, kind: str, *, password: str | None,
           connection_limit: int | None = None) -> Login:
    """A new login in the role for ``kind``, in one transaction: all of it, or nothing.
    ``connection_limit``: connections it may hold at once (a plugin's default
    :data:`PLUGIN_CONNECTION_LIMIT`, others none)."""
    check_login_name(name)
    role = role_of(kind)
    if connection_limit is None and kind == "plugin":
        connection_limit = PLUGIN_CONNECTION_LIMIT
    if connection_limit is not None and not 1 <= connection_limit <= 10000:
        raise InputError(f"a connection limit is 1 to 10000, got {connection_limit}")
    if password is not None and not password:
        raise InputError("the password is empty: give one on stdin, or leave out "
                         "--password-stdin for a login that authenticates otherwise")
    with open_connection(dsn) as conn:
        try:
            with conn.transaction():
                if _attributes(conn, name) is not None:
                    raise ConflictError(f'a role "{name}" already exists: `maimdb login grant` '
                                        "adds a maim role to an existing login")
                _coordinator_only(conn)
                statement = sql.SQL("create role {} login nosuperuser nobypassrls nocreaterole "
                                    "nocreatedb noreplication").format(sql.Identifier(name))
                if password is not None:
                    verifier = conn.pgconn.encrypt_password(password.encode(), name.encode())
                    statement = sql.SQL("{} password {}").format(
                        statement, sql.Literal(verifier.decode()))
                if connection_limit is not None:
                    statement = sql.SQL("{} connection limit {}").format(
                        statement, sql.Literal(connection_limit))
                conn.execute(statement)
                granted = WATCHER_ROLES if kind == "watcher" else (role,)
                conn.execute(sql.SQL("grant {} to {}").format(
                    sql.SQL(", ").join(map(sql.Identifier, granted)), sql.Identifier(name)))
                held = list(WATCHER_ROLES) if kind == "watcher" else _holds(conn, name)
                return Login(login=name, roles=held, problems=[])
        except pgerrors.InsufficientPrivilege as err:
            raise _privilege_error(conn, err, role) from None
        except psycopg.Error as err:
            raise translate(err) from err


def grant(dsn: str | None, name: str, kind: str) -> Login:
    """Give an existing login the role for ``kind`` — only when that keeps one login, one
    role, and the role means something (RLS applies to the login)."""
    if kind == "watcher":
        raise InputError("`login grant` puts a login in a maim role; make the watcher's login "
                         "with `maimdb login create NAME --as watcher`")
    role = role_of(kind)
    with open_connection(dsn) as conn:
        try:
            with conn.transaction():
                attributes = _attributes(conn, name)
                if attributes is None:
                    raise InputError(f'no such login "{name}" (make one with `maimdb login '
                                     f"create {name} --as {kind}`)")
                if name in GROUPS:
                    raise InputError(f"{name} is a maim_db group role, not a login")
                can_login, superuser, bypassrls, createrole = attributes
                if superuser or bypassrls:
                    raise InputError(f'"{name}" bypasses row-level security (SUPERUSER or '
                                     "BYPASSRLS): a maim role would limit nothing; use a "
                                     "login without them")
                if not can_login:
                    raise InputError(f'"{name}" cannot log in; grant the maim role to each '
                                     "login instead")
                held = _holds(conn, name)
                if held == [role]:
                    return Login(login=name, roles=held, problems=[])
                if "maim_owner" in held:
                    raise InputError(f'"{name}" can become maim_owner (it runs migrations): '
                                     f"a service must not; make another login; {_DOCS}")
                if held:
                    raise InputError(
                        f'"{name}" is already in {" and ".join(held)}: a login holds one maim '
                        "role (a plugin's login that could become maim_app would name any "
                        f"agent); make another login; {_DOCS}")
                if createrole:
                    raise InputError(f'"{name}" has CREATEROLE and could grant itself other '
                                     "roles: a service login must not")
                # on 16+ the role that created a login holds ADMIN on it, which passes no
                # privileges on: only members that inherit or can become it would gain the role
                members = conn.execute(
                    "select count(*) from pg_auth_members m join pg_roles r on r.oid = m.roleid "
                    "where r.rolname = %s and (%s or m.inherit_option or m.set_option)"
                    if conn.info.server_version >= 160000 else
                    "select count(*) from pg_auth_members m join pg_roles r on r.oid = m.roleid "
                    "where r.rolname = %s and %s",
                    [name, conn.info.server_version < 160000]).fetchone()
                if members and members[0]:
                    raise InputError(f'"{name}" has members, which would gain {role} too; '
                                     "grant it to each login instead")
                _coordinator_only(conn)
                conn.execute(sql.SQL("grant {} to {}").format(sql.Identifier(role),
                                                             sql.Identifier(name)))
                return Login(login=name, roles=_holds(conn, name), problems=[])
        except pgerrors.InsufficientPrivilege as err:
            raise _privilege_error(conn, err, role) from None
        except psycopg.Error as err:
            raise translate(err) from err


def problems(conn: psycopg.Connection[Any], name: str) -> list[str]:
    """What makes a login holding maim roles unsafe, in words."""
    attributes = _attributes(conn, name)
    held = _holds(conn, name)
    found = []
    if attributes and attributes[2]:
        found.append("BYPASSRLS: row-level security does not apply to it")
    if len(held) > 1:
        found.append(f"holds {' and '.join(held)}: a login holds one maim role")
    if attributes and attributes[3] and held != ["maim_owner"]:
        found.append("CREATEROLE: it could grant itself other roles")
    return found


def list_logins(dsn: str | None) -> list[Login]:
    """Every login (not a superuser: RLS does not apply to one) that can become a maim role,
    by name."""
    with open_connection(dsn) as conn:
        try:
            names = [r[0] for r in conn.execute(
                "select rolname from pg_roles where rolcanlogin and not rolsuper "
                "and rolname <> all(%s) order by rolname", [list(GROUPS)])]
            return [Login(login=n, roles=held, problems=problems(conn, n))
                    for n in names if (held := _holds(conn, n))]
        except psycopg.Error as err:
            raise translate(err) from err
