"""The schema audit: the invariants isolation depends on, checked against the live catalog.

``maimdb migrate`` refuses to finish when any finding remains; ``maimdb audit`` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import psycopg

from ..errors import MigrationError, translate
from . import citus

# yoyo's bookkeeping tables: no grants to any maim role, so not reachable by scoped code.
BOOKKEEPING: Final = ("_yoyo_migration", "_yoyo_log", "_yoyo_version", "yoyo_lock")

# Control-plane tables that carry agent_id but are keyed by tenant: their keys and policies
# are written out in migrations/0001_control_plane.sql, not made by maim.isolate_agent_table.
CONTROL_PLANE: Final = ("api_keys", "plugin_settings")

#: The schemas whose tables the audit holds to the rules: maim_db's own, and MaiBot 1.x's
#: (migrations/0020), whose tables are all agent tables. A table of ``public`` is named
#: bare (``messages``), any other with its schema (``maibot1.images``).
DATA_SCHEMAS: Final = ("public", "maibot1")
#: The schema of MaiBot 1.x's tables: integer ids from maim.maibot1_id() instead of uuids.
MAIBOT1: Final = "maibot1"
_NAME: Final = ("case when n.nspname = 'public' then c.relname::text "
                "else n.nspname || '.' || c.relname end")

ROLES: Final = ("maim_app", "maim_tenant", "maim_admin", "maim_plugin")
# The roles that act inside one agent: each agent table gives them the same policies.
AGENT_ROLES: Final = ("maim_app", "maim_plugin")
OWNER: Final = "maim_owner"  # for the definer_* policies its SECURITY DEFINER functions need
COMMANDS: Final = {"r": "select", "a": "insert", "w": "update", "d": "delete"}

# Agent tables: a NOT NULL agent_id column (the scope key), outside the control plane.
_AGENT_TABLES: Final = f"""
select c.oid, {_NAME}, n.nspname::text
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid and a.attname = 'agent_id' and a.attnotnull
where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p')
  and not (n.nspname = 'public' and c.relname = any(%(control_plane)s))
order by 2
"""

_POLICIES: Final = """
select r.rolname::text, p.polcmd::text, pg_get_expr(p.polqual, p.polrelid),
       pg_get_expr(p.polwithcheck, p.polrelid)
from pg_policy p
cross join lateral unnest(p.polroles) as pr(oid)
join pg_roles r on r.oid = pr.oid
where p.polrelid = %s
"""

# Unique/primary keys and foreign keys that do not include agent_id.
_KEYS_WITHOUT_AGENT: Final = """
select con.conname::text, con.contype::text
from pg_constraint con
where con.conrelid = %s and con.contype in ('p', 'u', 'f')
  and not exists (select from unnest(con.conkey) k(attnum)
                  join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum
                  where a.attname = 'agent_id')
union all
select i.indexrelid::regclass::text, 'i'
from pg_index i
where i.indrelid = %s and i.indisunique
  and not exists (select from pg_constraint c where c.conindid = i.indexrelid)
  and not exists (select from unnest(i.indkey) k(attnum)
                  join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
                  where a.attname = 'agent_id')
"""

# Columns fed by a sequence: identity, serial, or a nextval() default.
_SEQUENCE_COLUMNS: Final = """
select a.attname::text
from pg_attribute a
left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where a.attrelid = %s and a.attnum > 0 and not a.attisdropped
  and (a.attidentity <> '' or pg_get_expr(d.adbin, d.adrelid) like 'nextval(%%')
"""

# How an agent table's rows are tied to their agent: agent_id defaults to the scope and is a
# foreign key to agents that cascades (erasing an agent erases its rows); `id`, where there
# is one, is a uuid (in maibot1: a bigint from maim.maibot1_id()).
_AGENT_COLUMN: Final = """
select coalesce(pg_get_expr(d.adbin, d.adrelid), ''),
       exists (select from pg_constraint con
               cross join lateral unnest(con.conkey, con.confkey) k(col, ref)
               join pg_attribute r on r.attrelid = con.confrelid and r.attnum = k.ref
               where con.conrelid = a.attrelid and con.contype = 'f'
                 and con.confrelid = to_regclass('public.agents') and con.confdeltype = 'c'
                 and k.col = a.attnum and r.attname = 'id'),
       (select format_type(i.atttypid, i.atttypmod) from pg_attribute i
        where i.attrelid = a.attrelid and i.attname = 'id' and not i.attisdropped),
       (select coalesce(pg_get_expr(e.adbin, e.adrelid), '') from pg_attribute i
        left join pg_attrdef e on e.adrelid = i.attrelid and e.adnum = i.attnum
        where i.attrelid = a.attrelid and i.attname = 'id' and not i.attisdropped)
from pg_attribute a
left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where a.attrelid = %s and a.attname = 'agent_id'
"""

_TABLES: Final = f"""
select {_NAME},
       c.relrowsecurity,
       c.relforcerowsecurity,
       (select count(*) from pg_policy p where p.polrelid = c.oid)
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p')
  and not (n.nspname = 'public' and c.relname = any(%(bookkeeping)s))
order by 1
"""

# Every policy on every table, with its roles as names (PUBLIC for oid 0, which a join on
# pg_roles would silently drop) and whether it is permissive.
_ALL_POLICIES: Final = f"""
select {_NAME}, p.polname::text, p.polcmd::text, p.polpermissive,
       case when pr.oid = 0 then 'PUBLIC' else r.rolname::text end,
       pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
from pg_policy p
join pg_class c on c.oid = p.polrelid
join pg_namespace n on n.oid = c.relnamespace
cross join lateral unnest(p.polroles) as pr(oid)
left join pg_roles r on r.oid = pr.oid
where n.nspname = any(%(schemas)s)
order by 1, 2
"""

# Table privileges no scoped role needs: TRUNCATE ignores row-level security, REFERENCES
# lets a foreign key probe hidden rows, TRIGGER runs code as the table's owner.
_RISKY_GRANTS: Final = f"""
select {_NAME}, coalesce(r.rolname::text, 'PUBLIC'), a.privilege_type
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
cross join lateral aclexplode(c.relacl) as a
left join pg_roles r on r.oid = a.grantee
where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p')
  and a.privilege_type in ('TRUNCATE', 'REFERENCES', 'TRIGGER')
  and a.grantee <> c.relowner
order by 1, 2, 3
"""

# Who besides maim_owner may create where the scope roles look names up: in `public`,
# `maibot1` or `maim` (on every block's search_path, or named by it), or a schema of their
# own (CREATE on the database). A plugin holding it could plant an operator or a function
# that a statement parsed under its own search_path picks (CVE-2018-1058's class). A
# database first made by PostgreSQL 14 or older keeps CREATE on `public` for PUBLIC. Every
# role has PUBLIC's privileges: where PUBLIC has it, PUBLIC alone is named.
_CREATORS: Final = """
with who (rolname) as (select pg_catalog.unnest(%(roles)s::text[]))
select 'schema ' || n.nspname, w.rolname
from pg_namespace n cross join who w
where n.nspname = any(%(schemas)s)
  and pg_catalog.has_schema_privilege(w.rolname, n.oid, 'CREATE')
  and (w.rolname = 'public' or not pg_catalog.has_schema_privilege('public', n.oid, 'CREATE'))
union all
select 'database ' || pg_catalog.current_database(), w.rolname
from who w
where pg_catalog.has_database_privilege(w.rolname, pg_catalog.current_database(), 'CREATE')
  and (w.rolname = 'public' or not pg_catalog.has_database_privilege(
           'public', pg_catalog.current_database(), 'CREATE'))
order by 1, 2
"""

# A view an extension installed (Citus's citus_tables, pg_buffercache) is the extension's,
# created by a superuser with the extension; it reads the extension's data, not ours.
_VIEWS: Final = f"""
select {_NAME}
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where n.nspname in ('public', 'maibot1', 'maim') and c.relkind in ('v', 'm')
  and not coalesce(c.reloptions @> array['security_invoker=true'], false)
  and not exists (select from pg_depend d
                  where d.classid = 'pg_class'::regclass and d.objid = c.oid
                    and d.deptype = 'e')
order by 1
"""

# Every SECURITY DEFINER function: its pinned search_path ('' when none is set) and who may
# execute it (PUBLIC for the grantee 0; the owner always may).
_DEFINERS: Final = """
select p.oid::regprocedure::text,
       coalesce((select substr(s, length('search_path=') + 1)
                 from unnest(p.proconfig) s where s like 'search_path=%%'), ''),
       coalesce((select array_agg(case when a.grantee = 0 then 'PUBLIC'
                                       else a.grantee::regrole::text end)
                 from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                 where a.privilege_type = 'EXECUTE' and a.grantee <> p.proowner), '{}')
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
where n.nspname in ('public', 'maibot1', 'maim') and p.prosecdef
order by 1
"""


@dataclass(frozen=True, slots=True)
class Definer:
    """A SECURITY DEFINER function: a door into its owner's rights."""

    function: str
    search_path: str
    executors: tuple[str, ...]

    @property
    def pinned(self) -> bool:
        """PostgreSQL searches pg_temp first for types and relations unless the path names
        it, so only a path that ends with pg_temp keeps a caller's temporary objects from
        standing in for what the body means (an empty path does not)."""
        schemas = [s.strip().strip('"') for s in self.search_path.split(",") if s.strip()]
        return bool(schemas) and schemas[-1] == "pg_temp"


@dataclass(frozen=True, slots=True)
class Finding:
    object: str
    problem: str

    def __str__(self) -> str:
        return f"{self.object}: {self.problem}"


def require_migrated(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """Refuse a database maim_db never migrated: "no findings" there would mean nothing."""
    try:
        migrated = conn.execute("select to_regclass('maim.migration_checksums')").fetchone()
    except psycopg.Error as err:
        raise translate(err) from err
    if migrated == (None,):
        raise MigrationError(f"database {conn.info.dbname!r} is not migrated: run `maimdb "
                             "migrate` against it first (or point --dsn/MAIMDB_DSN at the "
                             "right one)")
    return conn


def audit(conn: psycopg.Connection[Any]) -> list[Finding]:
    """Every violation of the isolation invariants in the current database."""
    try:
        return _audit(conn)
    except psycopg.Error as err:
        raise translate(err) from err


def definers(conn: psycopg.Connection[Any]) -> list[Definer]:
    """Every SECURITY DEFINER function in ``public``, ``maibot1`` and ``maim``, with who may
    run it."""
    try:
        return [Definer(f, path, tuple(sorted(who)))
                for f, path, who in conn.execute(_DEFINERS)]
    except psycopg.Error as err:
        raise translate(err) from err


def _audit(conn: psycopg.Connection[Any]) -> list[Finding]:
    findings: list[Finding] = []
    schemas = list(DATA_SCHEMAS)
    for table, enabled, forced, policies in conn.execute(
            _TABLES, {"schemas": schemas, "bookkeeping": list(BOOKKEEPING)}):
        if not enabled:
            findings.append(Finding(f"table {table}", "row-level security is not enabled"))
        if not forced:
            findings.append(Finding(f"table {table}", "row-level security is not forced "
                                    "(the owner would bypass it)"))
        if policies == 0:
            findings.append(Finding(f"table {table}", "has no policy"))
    agent_tables = conn.execute(_AGENT_TABLES, {"schemas": schemas,
                                                "control_plane": list(CONTROL_PLANE)}).fetchall()
    for oid, table, schema in agent_tables:
        findings.extend(_agent_table(conn, oid, table, schema))
    for (view,) in conn.execute(_VIEWS):
        findings.append(Finding(f"view {view}", "is not security_invoker"))
    for definer in definers(conn):
        if not definer.pinned:
            findings.append(Finding(
                f"function {definer.function}",
                f"is SECURITY DEFINER with search_path {definer.search_path or '(none)'!r}: "
                "set it to 'pg_catalog, pg_temp' (pg_temp last; empty still searches pg_temp "
                "first for types and tables)"))
        if "PUBLIC" in definer.executors:  # EXECUTE is granted to PUBLIC by default
            findings.append(Finding(f"function {definer.function}", "is SECURITY DEFINER and "
                                    "executable by PUBLIC (revoke it, grant it to the roles "
                                    "that need it)"))
    for table, grantee, privilege in conn.execute(_RISKY_GRANTS, {"schemas": schemas}):
        findings.append(Finding(f"table {table}", f"{grantee} holds {privilege}"))
    for where, role in conn.execute(_CREATORS, {"schemas": [*schemas, "maim"],
                                                "roles": ["public", *ROLES]}):
        findings.append(Finding(where, f"{role.upper() if role == 'public' else role} may "
                                "create objects there, which a statement parsed under a "
                                "plugin's search_path could pick up (revoke CREATE; `maimdb "
                                "migrate` revokes it on schema public)"))
    findings.extend(_policies(conn.execute(_ALL_POLICIES, {"schemas": schemas}).fetchall()))
    if citus.installed(conn):
        for function, role in citus.remote_sql_executors(conn):
            what = ("choose its transaction's distributed id (which a key scope's proof is "
                    "bound to)" if function.startswith(citus.ASSIGNED_ID) else
                    "run SQL on other Citus nodes through it")
            findings.append(Finding(f"function {function}", f"{role} may {what} (`maimdb "
                                    "migrate` revokes it from PUBLIC)"))
        findings.extend(Finding(f"role {role}", problem)
                        for role, problem in citus.role_findings(conn))
        findings.extend(Finding(where, problem) for where, problem in citus.hba_findings(conn))
        findings.extend(Finding(f"worker {node}", problem)
                        for node, problem in citus.activity_findings(conn))
        findings.extend(Finding(f"table {p.table}", p.problem) for p in citus.placement_findings(
            conn, agent_tables={t for _, t, _ in agent_tables}, bookkeeping=BOOKKEEPING))
    return findings


def _policies(rows: list[tuple[Any, ...]]) -> list[Finding]:
    """Rules for every policy on every table: named roles only; nothing always-true for a
    scoped role; at most one permissive policy per table, command and role, because
    permissive policies OR together and a second one silently widens the first."""
    findings: list[Finding] = []
    permissive: dict[tuple[str, str, str], list[str]] = {}
    for table, name, cmd, is_permissive, role, using, check in rows:
        where = f"table {table}"
        if role not in (*ROLES, OWNER):
            findings.append(Finding(where, f"policy {name} applies to {role}; policies name "
                                    f"only {', '.join((*ROLES, OWNER))}"))
        if role in (*AGENT_ROLES, "maim_tenant", "PUBLIC") and "true" in (using, check):
            findings.append(Finding(where, f"policy {name} is always true for {role}"))
        if is_permissive:
            for c in COMMANDS if cmd == "*" else [cmd]:
                permissive.setdefault((table, c, role), []).append(name)
    for (table, cmd, role), names in permissive.items():
        if len(names) > 1:
            findings.append(Finding(f"table {table}", f"{len(names)} permissive "
                                    f"{COMMANDS.get(cmd, cmd)} policies for {role} "
                                    f"({', '.join(names)}) widen each other"))
    return findings


def _agent_table(conn: psycopg.Connection[Any], oid: int, table: str,
                 schema: str) -> list[Finding]:
    """The rules every agent-scoped table follows (``maim.isolate_agent_table``,
    docs/conventions.md)."""
    where = f"table {table}"
    findings: list[Finding] = []
    policies = conn.execute(_POLICIES, [oid]).fetchall()
    have = {(role, cmd) for role, cmd, _, _ in policies}
    for role in ROLES:
        needed = ["r"] if role == "maim_tenant" else list(COMMANDS)
        missing = [COMMANDS[c] for c in needed if (role, c) not in have]
        if missing:
            findings.append(Finding(where, f"no {'/'.join(missing)} policy for {role}"))
    for role, cmd, using, check in policies:  # always-true policies: see _policies
        if role in AGENT_ROLES and "maim.agent_id()" not in (using or "") + (check or ""):
            findings.append(Finding(where, f"{role} {COMMANDS.get(cmd, cmd)} policy does "
                                    "not compare agent_id with maim.agent_id()"))
    kinds = {"p": "primary key", "u": "unique constraint", "f": "foreign key",
             "i": "unique index"}
    for name, kind in conn.execute(_KEYS_WITHOUT_AGENT, [oid, oid]).fetchall():
        findings.append(Finding(where, f"{kinds[kind]} {name} does not include agent_id "
                                "(it would leak or collide across agents)"))
    tie = conn.execute(_AGENT_COLUMN, [oid]).fetchone()
    default, cascades, id_type, id_default = tie if tie is not None else ("", False, None, "")
    if default != "maim.agent_id()":
        findings.append(Finding(where, "agent_id does not default to maim.agent_id() (a row "
                                "written without it would fail instead of taking the scope)"))
    if not cascades:
        findings.append(Finding(where, "agent_id is not a foreign key to agents (id) on delete "
                                "cascade (deleting an agent would leave its rows behind)"))
    if schema == MAIBOT1:  # 1.x keeps integer ids: 53-bit ones, from no sequence
        if id_type not in (None, "bigint"):
            findings.append(Finding(where, f"column id is {id_type}, not bigint"))
        elif id_type is not None and id_default != "maim.maibot1_id()":
            findings.append(Finding(where, "column id is bigint without default "
                                    "maim.maibot1_id()"))
    elif id_type not in (None, "uuid"):
        findings.append(Finding(where, f"column id is {id_type}, not uuid"))
    for (column,) in conn.execute(_SEQUENCE_COLUMNS, [oid]).fetchall():
        findings.append(Finding(where, f"column {column} is fed by a sequence (a shared "
                                "counter leaks other agents' activity); use a uuid"))
    return findings
