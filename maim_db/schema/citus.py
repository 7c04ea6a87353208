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

import ipaddress
import json
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg import sql

from ..errors import MigrationError

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
    """Create (or give ``LOGIN`` to) the maim roles top-level, so Citus propagates them,
    make maim_app a member of maim_plugin the same way, and have the database's sessions send
    their ``SET LOCAL`` commands to the workers. Run outside a
    transaction block, on the coordinator, by a role that may create roles."""
    mark_roles_distributed(conn)  # sealed by the last migrate: DDL on them needs them marked
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

    # Scopes reach the workers as the SET LOCAL commands migrations/0016 runs; Citus sends
    # those only with this setting (for every session of the database, psql's included).
    conn.execute(sql.SQL("alter database {} set citus.propagate_set_commands = 'local'")
                 .format(sql.Identifier(conn.info.dbname)))


# Group roles a block cannot change (issue 32.2) -------------------------------------------
# Inside a block current_user is the group role, and PostgreSQL lets a role change its own
# password and defaults (ALTER ROLE … PASSWORD / SET). Citus propagates both to every node
# for a role it has marked distributed (pg_dist_object), and logs into the workers as that
# role: `ALTER ROLE maim_plugin SET default_transaction_read_only = on` from one plugin's
# block stopped every plugin of every tenant. Citus decides on the coordinator, from that
# mark alone (commands/role.c; its enable_alter_role_*propagation settings are USERSET, so a
# block sets them back on). So migrate ends by clearing every group role's defaults on every
# node and then the mark: a block's ALTER ROLE then changes the coordinator's row only, where
# the roles are entered by SET ROLE (role defaults apply at login) and log in only with
# Citus's certificate (pg_hba `cert`, so no password is asked). migrate marks them again
# first, because Citus creates a role it does not know of on the workers when DDL names it.
_ROLE_OIDS = "select r.oid from pg_catalog.pg_roles r where r.rolname = any(%(roles)s)"


def mark_roles_distributed(conn: psycopg.Connection[Any]) -> None:
    """Let Citus propagate DDL on the group roles again (migrate, as a superuser)."""
    conn.execute("insert into pg_catalog.pg_dist_object (classid, objid, objsubid) "
                 "select 'pg_catalog.pg_authid'::regclass, o.oid, 0 "
                 f"from ({_ROLE_OIDS}) o where not exists ("
                 "select from pg_catalog.pg_dist_object d "
                 "where d.classid = 'pg_catalog.pg_authid'::regclass and d.objid = o.oid)",
                 {"roles": list(ROLES)})


def seal_roles(conn: psycopg.Connection[Any]) -> None:
    """No group role keeps a default on any node, and none is marked for Citus to propagate
    an ALTER ROLE on it (end of migrate, as a superuser, on the coordinator)."""
    database = sql.Identifier(conn.info.dbname)
    for name in ROLES:  # still marked: propagated to every node
        role = sql.Identifier(name)
        conn.execute(sql.SQL("alter role {} reset all").format(role))
        conn.execute(sql.SQL("alter role {} in database {} reset all").format(role, database))
    conn.execute("delete from pg_catalog.pg_dist_object "
                 "where classid = 'pg_catalog.pg_authid'::regclass "
                 f"and objid in ({_ROLE_OIDS})", {"roles": list(ROLES)})


_ROLE_DEFAULTS = """
select r.rolname::text as role, coalesce(d.datname::text, '(every database)') as db,
       s.setconfig::text as config
from pg_catalog.pg_db_role_setting s
join pg_catalog.pg_roles r on r.oid = s.setrole
left join pg_catalog.pg_database d on d.oid = s.setdatabase
where r.rolname = any(%(roles)s)
order by 1, 2
"""


def role_findings(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """(role, problem) for a group role that is marked for Citus to propagate ALTER ROLE on
    it, or that has a default on any node (the workers asked by a superuser only)."""
    found = [(role, "is marked distributed, so Citus propagates an ALTER ROLE a block runs "
                    "on it to every node (`maimdb migrate` clears the mark)")
             for (role,) in conn.execute(
                 "select r.rolname::text from pg_catalog.pg_dist_object d "
                 "join pg_catalog.pg_roles r on r.oid = d.objid "
                 "where d.classid = 'pg_catalog.pg_authid'::regclass "
                 "and r.rolname = any(%(roles)s) order by 1", {"roles": list(ROLES)})]
    rows = [("", *row) for row in conn.execute(_ROLE_DEFAULTS, {"roles": list(ROLES)})]
    if _may_ask_workers(conn):
        query = sql.SQL(_ROLE_DEFAULTS.replace("%(roles)s", "{}")).format(
            sql.Literal(list(ROLES))).as_string(conn)
        for node, port, ok, result in _on_workers(
                conn, "select coalesce(json_agg(json_build_array(e.role, e.db, e.config)), "
                      f"'[]') from ({query}) e"):
            if ok:
                rows += [(f" on {node}:{port}", *row) for row in json.loads(result)]
    found += [(role, f"has defaults{where} in {database}: {config} (a role's defaults apply "
                     "to Citus's connections as it; `maimdb migrate` clears them)")
              for where, role, database, config in rows]
    return found


#: Citus's functions that run a caller's SQL text on other nodes over Citus's own node
#: connections (which hold the group roles' credentials). The extension grants them to PUBLIC;
#: through them code with a maim_plugin block could open a session on a worker as
#: maim_plugin and address shards directly. Taken from PUBLIC on every node, not only the
#: coordinator: a function in a shard query's WHERE or select list runs on the worker (tests/
#: test_citus.py). Operators (superusers) keep them.
REMOTE_SQL = ("master_run_on_worker", "run_command_on_workers", "run_command_on_all_nodes",
              "run_command_on_coordinator", "run_command_on_shards",
              "run_command_on_placements", "run_command_on_colocated_placements",
              "citus_run_local_command")
#: And the one that lets a session give its transaction a distributed id of its choosing: a
#: key scope's proof is bound to that id (migrations/0017), so on the coordinator a scope
#: role must not pick it. Workers keep it: Citus's own connections call it there, as the
#: block's role, before the block's first command (so a shard query that calls it again is
#: refused: "the backend has already been assigned a transaction id").
ASSIGNED_ID = ("assign_distributed_transaction_id",)

_REMOTE_SQL_FUNCTIONS = """
select p.oid::regprocedure::text
from pg_catalog.pg_proc p
join pg_catalog.pg_depend d on d.classid = 'pg_catalog.pg_proc'::regclass
     and d.objid = p.oid and d.deptype = 'e'
join pg_catalog.pg_extension e on e.oid = d.refobjid and e.extname = 'citus'
where p.proname = any(%s)
"""

# (function, role) for every maim role that may run one of them, on the node it runs on.
_EXECUTORS = f"""
select f.function, r.role from ({_REMOTE_SQL_FUNCTIONS}) f(function)
cross join unnest(%s::text[]) r(role)
where pg_catalog.has_function_privilege(r.role, f.function::regprocedure, 'EXECUTE')
order by 1, 2
"""


def _revokes(conn: psycopg.Connection[Any], functions: tuple[str, ...]) -> list[str]:
    return [f"revoke execute on function {function} from public"  # a regprocedure's text:
            for (function,) in conn.execute(_REMOTE_SQL_FUNCTIONS,  # qualified and quoted
                                            [list(functions)]).fetchall()]


def _on_workers(conn: psycopg.Connection[Any], command: str) -> list[tuple[str, int, bool, str]]:
    """(node, port, success, result) of ``command`` run on every worker, over Citus's node
    connections; only a superuser may (see :data:`REMOTE_SQL`)."""
    return [(node, port, ok, result) for node, port, ok, result in conn.execute(
        "select nodename, nodeport, success, result "
        "from pg_catalog.run_command_on_workers(%s)", [command]).fetchall()]


def _may_ask_workers(conn: psycopg.Connection[Any]) -> bool:
    return conn.execute("select pg_catalog.has_function_privilege("
                        "'pg_catalog.run_command_on_workers(text, boolean)', 'EXECUTE')"
                        ).fetchone() == (True,)


def revoke_remote_sql(conn: psycopg.Connection[Any]) -> None:
    """Take :data:`REMOTE_SQL` from PUBLIC on every node and :data:`ASSIGNED_ID` on the
    coordinator (run by the migrating superuser, on the coordinator)."""
    for revoke in _revokes(conn, REMOTE_SQL + ASSIGNED_ID):
        conn.execute(revoke)
    for node, port, ok, result in _on_workers(conn, "; ".join(_revokes(conn, REMOTE_SQL))):
        if not ok:
            raise MigrationError(f"revoking Citus's run-SQL functions on {node}:{port} "
                                 f"failed: {result}")


def remote_sql_executors(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """(function, role) for every maim role that may run one of :data:`REMOTE_SQL` or
    :data:`ASSIGNED_ID` on the coordinator, or one of :data:`REMOTE_SQL` on a worker (the
    function then reads ``… on node:port``). The workers are asked only by a superuser
    (:func:`placement_findings` says when they were not)."""
    found = [(function, role) for function, role in conn.execute(
        _EXECUTORS, [list(REMOTE_SQL + ASSIGNED_ID), list(ROLES)]).fetchall()]
    if not _may_ask_workers(conn):
        return found
    executors = sql.SQL(_EXECUTORS.replace("%s", "{}")).format(
        sql.Literal(list(REMOTE_SQL)), sql.Literal(list(ROLES))).as_string(conn)
    for node, port, ok, result in _on_workers(
            conn, "select coalesce(json_agg(json_build_array(e.function, e.role)), '[]') "
                  f"from ({executors}) e"):
        if ok:  # a worker that cannot answer is placement_findings' finding
            found += [(f"{function} on {node}:{port}", role)
                      for function, role in json.loads(result)]
    return found


# Who a node admits (issue 32.1) -------------------------------------------------------------
# Citus sends a key block's proof and distributed transaction id to a worker as query text; a
# session there reads both in pg_stat_activity and could replay them. So a worker admits the
# maim group roles (Citus's connections, by its client certificate) and the operator, and no
# application login; and no node admits a group role by a password, which a block running as
# that role can change (ALTER ROLE … PASSWORD, issue 32.2). The audit reads each node's
# pg_hba.conf as the server would load it (pg_hba_file_rules: the file, not what is loaded;
# superuser-only, like the rest of the workers' audit).
_HBA = """
select pg_catalog.json_build_object(
    'rules', (select pg_catalog.json_agg(r order by r.line_number)
              from pg_catalog.pg_hba_file_rules r),
    'maps', (select coalesce(pg_catalog.json_agg(m), '[]')
             from pg_catalog.pg_ident_file_mappings m),
    'superusers', (select pg_catalog.json_agg(a.rolname)
                   from pg_catalog.pg_roles a where a.rolsuper),
    'database', pg_catalog.current_database())
"""

# the connection types a `host` line covers
_HOST_TYPES = ("host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")


def hba_findings(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """(where, problem) for every line of a node's pg_hba.conf that admits more than Citus on
    a worker, or admits a group role by anything but a certificate on any node. Asked only by
    a superuser (:func:`placement_findings` says when the workers were not)."""
    if not _may_ask_workers(conn):
        return []
    row = conn.execute(_HBA).fetchone()
    found = [(f"pg_hba.conf line {line} on the coordinator", problem)
             for line, problem in _hba_problems(row[0] if row else {}, worker=False)]
    for node, port, ok, result in _on_workers(conn, _HBA):
        if not ok:
            found.append((f"pg_hba.conf on {node}:{port}", f"not checked: {result}"))
            continue
        found += [(f"pg_hba.conf line {line} on {node}:{port}", problem)
                  for line, problem in _hba_problems(json.loads(result), worker=True)]
    return found


def _hba_problems(hba: dict[str, Any], *, worker: bool) -> list[tuple[int, str]]:
    """(line, problem) for pg_hba rules, in the order the server tries them: a line is what a
    connection gets only when no earlier ``reject`` line took it."""
    superusers = set(hba.get("superusers") or [])
    rejected: list[tuple[dict[str, Any], set[str]]] = []  # earlier reject lines, their users
    found: list[tuple[int, str]] = []
    for rule in hba.get("rules") or []:
        line = int(rule["line_number"])
        if rule["error"]:
            found.append((line, f"cannot be read: {rule['error']}"))
            continue
        if not _for_database(rule, hba["database"]):
            continue
        users = set(rule["user_name"] or [])
        if rule["auth_method"] == "reject":
            rejected.append((rule, users))
            continue

        def reaches(name: str, rule: dict[str, Any] = rule, users: set[str] = users) -> bool:
            return (name in users or "all" in users) and not any(
                ("all" in earlier or name in earlier) and _covers(before, rule)
                for before, earlier in rejected)

        # "all" stands for a login the line does not name: only a reject of all covers it
        open_to = {u for u in users if reaches(u)}
        method = rule["auth_method"]
        groups = [r for r in ROLES if reaches(r)]
        if groups and method != "cert":
            what = f"group role {groups[0]}" if len(groups) == 1 else \
                f"group roles {', '.join(groups)}"
            found.append((line, f"admits {what} by {method}, not by certificate (a block can "
                                "set its group role's password)"))
        if not worker:
            continue  # the coordinator admits the application's logins
        others = sorted(u for u in open_to if u not in ROLES and u not in superusers)
        if others and method == "cert":
            others = [u for u in others if _cert_admits(rule, hba["maps"], u)]
        if others:
            who = "every login" if "all" in others else ", ".join(others)
            found.append((line, f"admits {who} ({method}); a worker admits only the maim "
                                "group roles, by Citus's certificate"))
    return found


def _for_database(rule: dict[str, Any], database: str) -> bool:
    """Whether a line can apply to a connection to ``database`` (replication connections
    read no table)."""
    return any(d in ("all", "sameuser", "samerole", "samegroup", database)
               or d.startswith(("@", "/")) for d in rule["database"] or [])


def _covers(before: dict[str, Any], rule: dict[str, Any]) -> bool:
    """Whether every connection ``rule`` matches (type and address) ``before`` matched too."""
    kind, later = before["type"], rule["type"]
    if not (kind == later or (kind == "host" and later in _HOST_TYPES)):
        return False
    if kind == "local" or before["address"] in (None, "all"):
        return True
    try:
        outer = ipaddress.ip_network(f"{before['address']}/{before['netmask']}", strict=False)
        inner = ipaddress.ip_network(f"{rule['address']}/{rule['netmask']}", strict=False)
    except ValueError:  # a host name, samehost, samenet: only the same one
        return bool(before["address"] == rule["address"])
    return outer.version == inner.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def _cert_admits(rule: dict[str, Any], maps: list[dict[str, Any]], login: str) -> bool:
    """Whether a ``cert`` line lets ``login`` (``all``: any application login) in: by its
    name in the certificate, or through its ident map when the map can yield that login."""
    option = next((o for o in rule["options"] or [] if o.startswith("map=")), None)
    if option is None:
        return True  # a certificate whose CN is the login's name: anyone the CA signed
    return any(m["map_name"] == option.removeprefix("map=") and (
        m["pg_username"] in (login, "all") or "\\1" in m["pg_username"]
        or m["pg_username"].startswith(("+", "/"))
        or (login == "all" and m["pg_username"] not in ROLES)) for m in maps)


# What a worker shows of its sessions -----------------------------------------------------------
# Citus sends a key block's `set local maim.agent_proof = '…'` and its distributed id to the
# workers as query text. A function in a shard query runs on the worker as the block's role,
# and pg_stat_activity shows a session's text to every role with the privileges of the
# session's role: a plugin's shard query could read the proof of another plugin's connection
# there (issue 32.1). With track_activities off a session records no text (nor state) at
# all; superuser-only, so no block turns it back on. Set per database on the workers, not on
# the coordinator, where `maimdb watch` reads the sessions' states.

#: The worker database setting that keeps Citus's query text (key proofs) unseen there.
HIDDEN_ACTIVITY = "track_activities=off"

# Citus refuses ALTER DATABASE on a worker unless told the statement is that node's alone.
_HIDE_ACTIVITY = ("do $$ begin "
                  "perform pg_catalog.set_config('citus.enable_ddl_propagation', 'off', true); "
                  "execute pg_catalog.format('alter database %I set track_activities = off', "
                  "pg_catalog.current_database()); end $$")

_ACTIVITY_HIDDEN = f"""
select coalesce(bool_or(c = '{HIDDEN_ACTIVITY}'), false)
from pg_catalog.pg_db_role_setting s, unnest(s.setconfig) c
where s.setrole = 0
  and s.setdatabase = (select oid from pg_catalog.pg_database
                       where datname = pg_catalog.current_database())
"""


def hide_worker_activity(conn: psycopg.Connection[Any]) -> None:
    """``track_activities = off`` for this database on every worker (the migrating superuser,
    on the coordinator). It applies to connections made after it: Citus renews its cached
    ones within ``citus.max_cached_connection_lifetime``."""
    for node, port, ok, result in _on_workers(conn, _HIDE_ACTIVITY):
        if not ok:
            raise MigrationError(f"turning track_activities off on {node}:{port} failed: "
                                 f"{result}")


def activity_findings(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """(node, problem) for a worker whose sessions of this database record their query text
    (asked as a superuser only; placement_findings says when the workers were not asked)."""
    if not _may_ask_workers(conn):
        return []
    found = []
    for node, port, ok, result in _on_workers(conn, _ACTIVITY_HIDDEN):
        if ok and result != "t":
            found.append((f"{node}:{port}", "records its sessions' query text, where a shard "
                          "query's function can read a key's proof that Citus sent another "
                          "connection (`maimdb migrate` sets track_activities off for the "
                          "database there)"))
    return found


# Distribution ------------------------------------------------------------------------------
# A shard's policies may not hold a subquery (Citus refuses them on distributed and reference
# tables) and cannot read a table of the control plane. They need no rewriting here: migrate
# re-applies sql/30_policies.sql before it distributes, and on a coordinator that writes
# every policy in the form a shard evaluates (maim.policy_text's Citus terms).

# Tables of public (and of MaiBot 1.x's maibot1, all agent tables) outside yoyo's
# bookkeeping, not yet distributed or reference tables (a Citus local table is what an
# interrupted run leaves), with whether each is an agent table (a NOT NULL agent_id, outside
# the control plane) and the tables it refers to.
_LOCAL_TABLES = """
select c.oid::regclass::text, c.relname::text,
       exists (select from pg_catalog.pg_attribute a
               where a.attrelid = c.oid and a.attname = 'agent_id' and a.attnotnull)
           and not (n.nspname = 'public' and c.relname = any(%(control_plane)s)),
       coalesce((select array_agg(distinct f.confrelid::regclass::text)
                 from pg_catalog.pg_constraint f
                 where f.conrelid = c.oid and f.contype = 'f' and f.confrelid <> c.oid), '{}')
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where n.nspname in ('public', 'maibot1') and c.relkind = 'r'
  and not (n.nspname = 'public' and c.relname = any(%(bookkeeping)s))
  and not exists (select from pg_catalog.pg_dist_partition p  -- distributed or reference
                  where p.logicalrelid = c.oid and (p.partmethod = 'h' or p.repmodel = 't'))
order by 2
"""

_VIEW_GRANTS = """
select c.oid::regclass::text, a.grantee::regrole::text, a.privilege_type
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
cross join lateral pg_catalog.aclexplode(c.relacl) a
where n.nspname in ('public', 'maibot1') and c.relkind = 'v'
  and a.grantee not in (0, c.relowner)
"""

#: The co-location group of the agent tables is the one ``agent_active_states`` is in.
ANCHOR = "agent_active_states"

#: Control-plane tables every key block writes, distributed by the column it writes by
#: rather than made reference tables. Citus serializes every UPDATE, upsert and DELETE of a
#: reference table with an ExclusiveLock on its one shard, held to commit, so any key block
#: left open stalled every other key block of every tenant; a single-shard write to a
#: distributed table with one replica takes no such lock (docs/decisions.md).
BY_KEY: Final = {"api_key_usage": "key_id", "api_key_usage_recent": "key_id"}
#: Each :data:`BY_KEY` table after the first joins the first's co-location group: api_key_list
#: adds up both tables by key (migrations/0022).
KEY_GROUP: Final = next(iter(BY_KEY))


def distribute(conn: psycopg.Connection[Any], *, control_plane: tuple[str, ...],
               bookkeeping: tuple[str, ...]) -> list[str]:
    """Make every table of ``public`` and ``maibot1`` Citus's: the control plane reference
    tables (but :data:`BY_KEY`'s, distributed by their key), every agent table distributed
    by ``agent_id`` and co-located with :data:`ANCHOR`, their policies already in the
    shards' form (sql/30_policies.sql). Tables already distributed are left alone, so a
    second run does nothing; each table is one transaction. Returns what it distributed."""
    grants = conn.execute(_VIEW_GRANTS).fetchall()
    done = [name for name in BY_KEY if _undo_reference(conn, name)]
    rows = conn.execute(_LOCAL_TABLES, {"control_plane": list(control_plane),
                                        "bookkeeping": list(bookkeeping)}).fetchall()
    pending = {name: (is_agent, set(refs)) for name, _, is_agent, refs in rows}
    while pending:  # referenced tables first: Citus wants a foreign key's target its own
        # BY_KEY's last: distributed before the anchor, its new co-location group would
        # become the one the anchor joins by default (see _own_group)
        ready = sorted((name for name, (_, refs) in pending.items() if not refs & set(pending)),
                       key=lambda name: (name in BY_KEY, pending[name][0], name != ANCHOR,
                                         name))
        if not ready:
            raise MigrationError(f"foreign keys form a cycle among {', '.join(sorted(pending))}")
        name = ready[0]
        is_agent, _ = pending.pop(name)
        with conn.transaction():
            # set_updated_at triggers only touch the row they fire for: safe on a shard
            conn.execute("set local citus.enable_unsafe_triggers = on")
            if name in BY_KEY:
                conn.execute("select pg_catalog.create_distributed_table(%s, %s, "
                             "colocate_with => %s)",
                             [name, BY_KEY[name], "none" if name == KEY_GROUP else KEY_GROUP])
            elif not is_agent:
                conn.execute("select pg_catalog.create_reference_table(%s)", [name])
            elif name == ANCHOR or not _distributed(conn, ANCHOR):
                conn.execute("select pg_catalog.create_distributed_table(%s, 'agent_id')",
                             [name])
            else:
                conn.execute("select pg_catalog.create_distributed_table(%s, 'agent_id', "
                             "colocate_with => %s)", [name, ANCHOR])
        done.append(name)
    done += [name for name in BY_KEY if _own_group(conn, name)]
    # The key-scope secret, for the workers to check a proof with (migrations/0017); read
    # there from inside a shard's policy (sql/20_scope.sql asks Citus to allow that).
    if not _distributed(conn, "maim.scope_secret"):
        with conn.transaction():
            conn.execute("select pg_catalog.create_reference_table('maim.scope_secret')")
    # Citus re-creates the views over a table it converts, without their grants
    for view, grantee, privilege in grants:
        conn.execute(sql.SQL("grant {} on {} to {}").format(
            sql.SQL(privilege), sql.SQL(view), sql.Identifier(grantee)))
    return done


def _undo_reference(conn: psycopg.Connection[Any], table: str) -> bool:
    """Make a :data:`BY_KEY` table that an older release made a reference table distributed
    by its key, its rows kept, in one transaction; whether it was one. Citus converts a
    reference table only by way of a local one, and refuses to while a foreign key ties it to
    another reference table, so its foreign keys are dropped and made again around it."""
    is_reference = conn.execute(
        "select exists (select from pg_catalog.pg_dist_partition "
        "where logicalrelid = to_regclass(%s) and repmodel = 't')", [table]).fetchone()
    if is_reference != (True,):
        return False
    with conn.transaction():
        keys = conn.execute(
            "select conname, pg_catalog.pg_get_constraintdef(oid) from pg_catalog.pg_constraint "
            "where conrelid = to_regclass(%s) and contype = 'f' order by conname",
            [table]).fetchall()
        for name, _ in keys:
            conn.execute(sql.SQL("alter table {} drop constraint {}").format(
                sql.Identifier(table), sql.Identifier(name)))
        conn.execute("select pg_catalog.undistribute_table(%s)", [table])
        conn.execute("select pg_catalog.create_distributed_table(%s, %s, "
                     "colocate_with => 'none')", [table, BY_KEY[table]])
        # the rows are in the shards now; the coordinator's own copy is dead weight
        conn.execute("select pg_catalog.truncate_local_data_after_distributing_table(%s)",
                     [table])
        for name, definition in keys:
            conn.execute(sql.SQL("alter table {} add constraint {} {}").format(
                sql.Identifier(table), sql.Identifier(name), sql.SQL(definition)))
    return True


def _own_group(conn: psycopg.Connection[Any], table: str) -> bool:
    """Move a :data:`BY_KEY` table out of the agent tables' co-location group, where a
    migrate of 0.9.0's development put it; whether it was there. In that group a key block's
    usage write (as maim_owner) and its first multi-shard read (as the plugin) share a
    worker's placement group under two users, which Citus refuses. Metadata only."""
    if not _colocated_with_anchor(conn, table):
        return False
    with conn.transaction():
        conn.execute("select pg_catalog.update_distributed_table_colocation(%s, "
                     "colocate_with => %s)", [table, "none" if table == KEY_GROUP else KEY_GROUP])
    return True


def _colocated_with_anchor(conn: psycopg.Connection[Any], table: str) -> bool:
    return conn.execute(
        "select exists (select from pg_catalog.pg_dist_partition t "
        "join pg_catalog.pg_dist_partition a on a.colocationid = t.colocationid "
        "where t.logicalrelid = to_regclass(%s) and a.logicalrelid = to_regclass(%s))",
        [table, ANCHOR]).fetchone() == (True,)


def _distributed(conn: psycopg.Connection[Any], table: str) -> bool:
    return conn.execute("select exists (select from pg_catalog.pg_dist_partition "
                        "where logicalrelid = to_regclass(%s))", [table]).fetchone() == (True,)


# Auditing a cluster ------------------------------------------------------------------------
_PLACEMENT = """
select case when n.nspname = 'public' then c.relname::text
            else n.nspname || '.' || c.relname end,
       (select pg_catalog.count(*) from pg_catalog.pg_dist_partition p
        where p.logicalrelid = c.oid and p.partmethod = 'h'
          and pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) = 'agent_id'),
       (select p.repmodel = 't' from pg_catalog.pg_dist_partition p
        where p.logicalrelid = c.oid),
       (select p.colocationid from pg_catalog.pg_dist_partition p where p.logicalrelid = c.oid),
       (select pg_catalog.column_to_column_name(p.logicalrelid, p.partkey)
        from pg_catalog.pg_dist_partition p
        where p.logicalrelid = c.oid and p.partmethod = 'h')
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where n.nspname in ('public', 'maibot1') and c.relkind = 'r'
  and not (n.nspname = 'public' and c.relname = any(%(bookkeeping)s))
order by 1
"""

# Run on each worker: every shard placed there whose policies (name, command, roles, both
# expressions) or row-level-security flags differ from its table's. Sent as one command.
_SHARD_CHECK = """
with mine as (
    select pg_catalog.shard_name(sh.logicalrelid, sh.shardid) as name,
           sh.logicalrelid::oid as logical,
           pg_catalog.to_regclass(pg_catalog.shard_name(sh.logicalrelid, sh.shardid))::oid
               as shard
    from pg_catalog.pg_dist_shard sh
    join pg_catalog.pg_dist_placement pl on pl.shardid = sh.shardid
    join pg_catalog.pg_class c on c.oid = sh.logicalrelid
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where pl.groupid = (select groupid from pg_catalog.pg_dist_local_group)
      and n.nspname in ('public', 'maibot1')
), sig as (
    select r.oid as rel, r.relrowsecurity and r.relforcerowsecurity as forced,
           (select pg_catalog.md5(coalesce(pg_catalog.string_agg(
                p.polname::text || p.polcmd::text || p.polroles::text
                || p.polpermissive::text || '|'
                || coalesce(pg_catalog.pg_get_expr(p.polqual, p.polrelid), '') || '|'
                || coalesce(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), ''),
                ',' order by p.polname), ''))
            from pg_catalog.pg_policy p where p.polrelid = r.oid) as policies
    from pg_catalog.pg_class r
    where r.oid in (select logical from mine union select shard from mine)
)
select coalesce(pg_catalog.json_agg(m.name order by m.name), '[]')
from mine m
left join sig l on l.rel = m.logical
left join sig s on s.rel = m.shard
where s.rel is null or not s.forced
   or (l.policies, l.forced) is distinct from (s.policies, s.forced)
"""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the audit found a table: one problem per instance, ``problem`` in words."""

    table: str
    problem: str


def placement_findings(conn: psycopg.Connection[Any], *, agent_tables: set[str],
                       bookkeeping: tuple[str, ...]) -> list[Placement]:
    """How the schema sits on the cluster: every agent table distributed by agent_id in
    :data:`ANCHOR`'s co-location group, a :data:`BY_KEY` table by its key, every other table
    a reference table, and every
    shard on every worker with its table's policies and row-level security."""
    found: list[Placement] = []
    rows = conn.execute(_PLACEMENT, {"bookkeeping": list(bookkeeping)}).fetchall()
    group = next((g for name, _, _, g, _ in rows if name == ANCHOR), None)
    key_group = next((g for name, _, _, g, _ in rows if name == KEY_GROUP), None)
    for name, by_agent, reference, colocation, column in rows:
        if name in BY_KEY:
            if column != BY_KEY[name]:
                found.append(Placement(name, f"is not distributed by {BY_KEY[name]}: as a "
                                       "reference table every key block waits for any key "
                                       "block left open (`maimdb migrate` distributes it)"))
            elif colocation == group:
                found.append(Placement(name, f"is co-located with {ANCHOR}: a key block's "
                                       "first multi-shard read fails (`maimdb migrate` "
                                       "moves it to a group of its own)"))
            elif colocation != key_group:
                found.append(Placement(name, f"is not co-located with {KEY_GROUP} "
                                       "(api_key_list adds both up by key)"))
        elif name in agent_tables:
            if not by_agent:
                found.append(Placement(name, "is not distributed by agent_id (`maimdb "
                                       "migrate` distributes it)"))
            elif colocation != group:
                found.append(Placement(name, f"is not co-located with {ANCHOR} (a join on "
                                       "agent_id would cross nodes)"))
        elif not reference:
            found.append(Placement(name, "is not a reference table (`maimdb migrate` makes "
                                   "it one)"))
    if not _may_ask_workers(conn):
        found.append(Placement("(every shard)", "not checked: the shards' policies are read "
                               "through run_command_on_workers, which only a superuser may run "
                               "(run the audit as one)"))
        return found
    for node, port, ok, result in _on_workers(conn, _SHARD_CHECK):
        if not ok:
            found.append(Placement(f"(shards on {node}:{port})", f"not checked: {result}"))
            continue
        for shard in json.loads(result):
            found.append(Placement(f"{shard} on {node}:{port}", "does not carry its table's "
                                   "policies and forced row-level security"))
    return found
