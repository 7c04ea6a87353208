"""What a pending migration needs before it can run, declared in one place.

An applied migration never changes (its checksum is checked), so what 0014 needs cannot be
written into 0014: it is declared here, beside the other migrations' needs, keyed by the
migration's id, each need a check that reads the database and this process's settings and
changes nothing. ``maimdb migrate --dry-run`` reports every unmet need and exits 1;
``maimdb migrate`` checks the same under its lock and refuses before applying anything, so
a known precondition never leaves a deployment half migrated. A new migration that needs
something the schema or the environment may lack adds its check to :data:`NEEDS`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from .. import crypto
from ..errors import MaimDBError

Check = Callable[[psycopg.Connection[Any]], str | None]


@dataclass(frozen=True, slots=True)
class Unmet:
    """A need that is not met: ``migration`` is a migration's id, or ``sql/`` for what every
    migrate needs (the roles, sql/00_bootstrap.sql)."""

    migration: str
    needs: str

    def __str__(self) -> str:
        return f"{self.migration}: {self.needs}"


def _postgresql_15(conn: psycopg.Connection[Any]) -> str | None:
    """``unique nulls not distinct`` (0001) and ``security_invoker`` views (0012)."""
    version = conn.info.server_version
    if version < 150000:
        return (f"PostgreSQL 15 or newer (this server is {version // 10000}.{version % 10000}); "
                "upgrade the server first")
    return None


def _tokens(conn: psycopg.Connection[Any]) -> list[tuple[str, Any]] | None:
    """Every agent's stored ``auth_token`` list, as 0014 reads them (row-level security
    lifted for the owner, in a transaction that is rolled back); None before 0003."""
    if conn.execute("select to_regclass('public.maim_message_configs')").fetchone() == (None,):
        return None
    with conn.transaction(force_rollback=True):
        row = conn.execute("select rolsuper or rolbypassrls from pg_roles "
                           "where rolname = current_user").fetchone()
        if not (row and row[0]):
            try:
                conn.execute("set local role maim_owner")
            except psycopg.Error:
                return None  # the roles need of every migrate says why
            conn.execute("set local lock_timeout = '10s'")
            conn.execute("alter table public.maim_message_configs no force row level security")
        return list(conn.execute("select agent_id, auth_token from public.maim_message_configs "
                                 "where auth_token <> '[]'").fetchall())


def _tokens_can_be_sealed(conn: psycopg.Connection[Any]) -> str | None:
    """0014 seals the maim_message tokens stored in plaintext: that needs the key, and every
    token to be a string."""
    rows = _tokens(conn) or []
    odd = [agent for agent, tokens in rows if not all(isinstance(t, str) for t in tokens)]
    if odd:
        return (f"maim_message_configs.auth_token of {', '.join(odd[:5])} to hold strings only "
                "(written around maim_db): correct them as maim_owner in psql")
    plain = [tokens for _, tokens in rows if any(not crypto.is_encrypted(t) for t in tokens)]
    if not plain:
        return None
    try:
        crypto.current()
    except MaimDBError as err:
        count = sum(len(tokens) for tokens in plain)
        held = f"{len(plain)} agents hold {count} maim_message auth tokens in plaintext"
        if not os.environ.get(crypto.ENV):
            return (f"{crypto.ENV}: {held}, and sealing them needs it: set it (`maimdb "
                    "secrets new-key` makes one; every service needs the same key)")
        return f"a valid {crypto.ENV}: {held}, and sealing them needs it ({err})"
    return None


def _can_become_owner(conn: psycopg.Connection[Any]) -> str | None:
    """sql/00_bootstrap.sql creates the maim roles and makes the connecting role able to
    become maim_owner: it needs a superuser, or CREATEROLE and CREATE on the database, and
    maim_owner granted when another role created it."""
    member = "SET" if conn.info.server_version >= 160000 else "MEMBER"
    row = conn.execute(
        "select r.rolsuper, r.rolcreaterole,"
        " pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE'),"
        " o.oid is null,"
        " o.oid is not null and (pg_catalog.pg_has_role(current_user, o.oid, %s)"
        "   or pg_catalog.pg_has_role(current_user, o.oid, 'MEMBER WITH ADMIN OPTION'))"
        " from pg_catalog.pg_roles r"
        " left join pg_catalog.pg_roles o on o.rolname = 'maim_owner'"
        " where r.rolname = current_user", [member]).fetchone()
    if row is None or row[0]:
        return None
    _, createrole, create, no_owner, can_become = row
    user = conn.info.user
    if not (createrole and create):
        return (f"a role that may create roles and schemas: {user} needs CREATEROLE and CREATE "
                "on the database (or migrate as a superuser)")
    if not (no_owner or can_become):
        return (f"{user} to be able to become maim_owner, which another role created: have it "
                f"(or a superuser) run GRANT maim_owner TO {user}")
    return None


#: Every migrate (sql/ is re-applied each time).
EVERY_RUN: Final[tuple[Check, ...]] = (_can_become_owner,)

#: What each migration needs, by id; a migration not listed needs nothing beyond EVERY_RUN.
NEEDS: Final[dict[str, tuple[Check, ...]]] = {
    "0001_control_plane": (_postgresql_15,),
    "0012_unforgeable_scope": (_postgresql_15,),
    "0014_seal_auth_tokens": (_tokens_can_be_sealed,),
}


def unmet(conn: psycopg.Connection[Any], pending: list[str], *,
          every_run: bool = True) -> list[Unmet]:
    """The needs of ``pending`` (ids, in order) that are not met now; changes nothing."""
    found = []
    if every_run:
        found += [Unmet("sql/", need) for check in EVERY_RUN if (need := check(conn))]
    for migration in pending:
        found += [Unmet(migration, need) for check in NEEDS.get(migration, ())
                  if (need := check(conn))]
    return found
