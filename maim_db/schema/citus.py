"""A Citus coordinator: what ``maimdb migrate`` does there before the migrations, and what
``maimdb status`` shows of the cluster.

Citus propagates a top-level ``CREATE ROLE``/``GRANT`` to every node, but not one run inside a
``DO`` block (sql/00_bootstrap.sql creates the roles that way, race-safe on one server), and it
opens its connections to the workers *as the current role*: after ``SET ROLE maim_owner`` (a
migration) or a block's switch to ``maim_app``, the worker must let that role log in. So on a
coordinator the five roles are created here, top-level and with ``LOGIN``, before the
bootstrap; who may log in as them over the network is the nodes' ``pg_hba.conf``
(docs/scaling.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

#: The roles sql/00_bootstrap.sql creates, in its order.
ROLES = ("maim_owner", "maim_app", "maim_tenant", "maim_admin", "maim_plugin")


@dataclass(frozen=True, slots=True)
class Node:
    """One row of ``pg_dist_node``."""

    name: str
    port: int
    role: str  # "coordinator" or "worker"
    active: bool


def installed(conn: psycopg.Connection[Any]) -> bool:
    """Whether this database has the ``citus`` extension (so: a Citus node)."""
    return conn.execute("select exists (select from pg_catalog.pg_extension "
                        "where extname = 'citus')").fetchone() == (True,)


def nodes(conn: psycopg.Connection[Any]) -> list[Node]:
    """The cluster's nodes, coordinator first; empty off Citus."""
    if not installed(conn):
        return []
    rows = conn.execute(
        "select nodename, nodeport, groupid = 0, isactive from pg_catalog.pg_dist_node "
        "order by groupid, nodeid").fetchall()
    return [Node(name, port, "coordinator" if coord else "worker", active)
            for name, port, coord, active in rows]


def prepare_roles(conn: psycopg.Connection[Any]) -> None:
    """Create (or give ``LOGIN`` to) the maim roles top-level, so Citus propagates them, and
    make maim_app a member of maim_plugin the same way. Run outside a
    transaction block, on the coordinator, by a role that may create roles."""
    existing = dict(conn.execute(
        "select rolname, rolcanlogin from pg_catalog.pg_roles where rolname = any(%s)",
        [list(ROLES)]).fetchall())
    for name in ROLES:
        role = sql.Identifier(name)
        if name not in existing:
            conn.execute(sql.SQL("create role {} login nobypassrls").format(role))
        elif not existing[name]:
            conn.execute(sql.SQL("alter role {} login").format(role))
    member = conn.execute(
        "select exists (select from pg_catalog.pg_auth_members "
        "where roleid = 'maim_plugin'::regrole and member = 'maim_app'::regrole)").fetchone()
    if member != (True,):
        conn.execute("grant maim_plugin to maim_app")


#: Citus's functions that run a caller's SQL text on other nodes over Citus's own node
#: connections (which hold the group roles' credentials). The extension grants them to PUBLIC;
#: through them code with a maim_plugin block could open a session on a worker as
#: maim_plugin and address shards directly. Operators (superusers) keep them.
REMOTE_SQL = ("master_run_on_worker", "run_command_on_workers", "run_command_on_all_nodes",
              "run_command_on_coordinator", "run_command_on_shards",
              "run_command_on_placements", "run_command_on_colocated_placements",
              "citus_run_local_command")

_REMOTE_SQL_FUNCTIONS = """
select p.oid::regprocedure::text
from pg_catalog.pg_proc p
join pg_catalog.pg_depend d on d.classid = 'pg_catalog.pg_proc'::regclass
     and d.objid = p.oid and d.deptype = 'e'
join pg_catalog.pg_extension e on e.oid = d.refobjid and e.extname = 'citus'
where p.proname = any(%s)
"""


def revoke_remote_sql(conn: psycopg.Connection[Any]) -> None:
    """Take :data:`REMOTE_SQL` from PUBLIC (run by the migrating superuser)."""
    for (function,) in conn.execute(_REMOTE_SQL_FUNCTIONS, [list(REMOTE_SQL)]).fetchall():
        conn.execute(sql.SQL("revoke execute on function {} from public").format(
            sql.SQL(function)))  # a regprocedure's text: qualified and quoted by PostgreSQL


def remote_sql_executors(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """(function, role) for every maim role that may run one of :data:`REMOTE_SQL`."""
    rows = conn.execute(
        f"select f.function, r.role from ({_REMOTE_SQL_FUNCTIONS}) f(function) "
        "cross join unnest(%s::text[]) r(role) "
        "where pg_catalog.has_function_privilege(r.role, f.function::regprocedure, 'EXECUTE') "
        "order by 1, 2", [list(REMOTE_SQL), list(ROLES)]).fetchall()
    return [(function, role) for function, role in rows]
