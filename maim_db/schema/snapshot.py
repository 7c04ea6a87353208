"""A text snapshot of the schema, read from the catalog: every table's columns, constraints,
indexes, triggers, RLS flags, grants and policies (their full text), and every function in
``maim`` with its body, so a change to a SECURITY DEFINER function shows in review too.

``sql/schema.snapshot`` is the committed copy; a test migrates a fresh database and compares,
so every schema change shows up in review as a diff of one readable file.
``sql/schema.citus.snapshot`` is the same with the policies in their Citus form, which
tests/test_citus.py compares with a cluster's live policies.
"""

from __future__ import annotations

import textwrap
from typing import Any, Final

import psycopg

from ..errors import translate
from .audit import BOOKKEEPING, DATA_SCHEMAS

# public's tables by name, then those of the other schemas (MaiBot 1.x's maibot1) by
# schema-qualified name
_TABLES: Final = """
select c.oid, case when n.nspname = 'public' then c.relname::text
                   else n.nspname || '.' || c.relname end,
       c.relrowsecurity, c.relforcerowsecurity, n.nspname::text, c.relname::text
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p')
  and not (n.nspname = 'public' and c.relname = any(%(bookkeeping)s))
order by n.nspname <> 'public', 2
"""
_COLUMNS: Final = """
select a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid)
from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where a.attrelid = %s and a.attnum > 0 and not a.attisdropped
order by a.attnum
"""
_CONSTRAINTS: Final = """
select conname::text, pg_get_constraintdef(oid) from pg_constraint
where conrelid = %s and contype <> 'n' order by 1
"""
_INDEXES: Final = """
select indexrelid::regclass::text, pg_get_indexdef(indexrelid) from pg_index i
where indrelid = %s
  and not exists (select from pg_constraint c where c.conindid = i.indexrelid
                  and c.conrelid = i.indrelid)
order by 1
"""
_TRIGGERS: Final = """
select tgname::text, pg_get_triggerdef(oid) from pg_trigger
where tgrelid = %s and not tgisinternal order by 1
"""
_POLICIES: Final = """
select polname::text, polcmd::text, polpermissive,
       array(select case when r = 0 then 'PUBLIC' else r::regrole::text end
             from unnest(polroles) as r order by 1),
       pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid)
from pg_policy where polrelid = %s order by 1
"""
_GRANTS: Final = """
select grantee::text, string_agg(privilege_type::text, ', ' order by privilege_type)
from information_schema.role_table_grants
where table_schema = %s and table_name = %s
  and (grantee like 'maim\\_%%' or grantee = 'PUBLIC')
  and grantee <> 'maim_owner'  -- the owner's rights are implied (and differ by version)
group by 1 order by 1
"""
_FUNCTIONS: Final = """
select p.oid::regprocedure::text, pg_get_function_result(p.oid), p.provolatile::text,
       p.prosecdef, coalesce(array_to_string(p.proconfig, ' '), ''),
       array(select case when a.grantee = 0 then 'PUBLIC' else a.grantee::regrole::text end
             from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) as a
             where a.privilege_type = 'EXECUTE' and a.grantee <> p.proowner order by 1),
       l.lanname::text, p.prosrc
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
join pg_language l on l.oid = p.prolang
where n.nspname = 'maim' order by 1
"""
#: A function body's lines start with this: kept as written, where other lines are folded.
BODY: Final = "  |"
_VOLATILITY: Final = {"i": "immutable", "s": "stable", "v": "volatile"}
_COMMANDS: Final = {"r": "select", "a": "insert", "w": "update", "d": "delete", "*": "all"}


def snapshot(conn: psycopg.Connection[Any], *, citus: bool = False) -> str:
    """The schema as stable, line-oriented text. ``citus``: with every policy in the form a
    Citus coordinator carries (sql/30_policies.sql) and maim.on_citus() answering true
    (sql/20_scope.sql), written as maim_owner in a transaction that is rolled back, so one
    server shows what a cluster must hold."""
    try:
        if not citus:
            return _snapshot(conn)
        with conn.transaction(force_rollback=True):
            conn.execute("set local role maim_owner")
            conn.execute("call maim.apply_policies(null, true)")
            conn.execute("call maim.define_on_citus(true)")
            conn.execute("reset role")
            return _snapshot(conn)
    except psycopg.Error as err:
        raise translate(err) from err


def _snapshot(conn: psycopg.Connection[Any]) -> str:
    lines: list[str] = []
    for oid, table, enabled, forced, schema, relname in conn.execute(
            _TABLES, {"schemas": list(DATA_SCHEMAS), "bookkeeping": list(BOOKKEEPING)}
    ).fetchall():
        lines.append(f"table {table}  rls={'on' if enabled else 'off'}"
                     f" force={'on' if forced else 'off'}")
        for name, typ, notnull, default in conn.execute(_COLUMNS, [oid]).fetchall():
            extra = (" not null" if notnull else "") + (f" default {default}" if default else "")
            lines.append(f"  column {name} {typ}{extra}")
        for name, definition in conn.execute(_CONSTRAINTS, [oid]).fetchall():
            lines.append(f"  constraint {name} {definition}")
        for name, definition in conn.execute(_INDEXES, [oid]).fetchall():
            lines.append(f"  index {name} {definition}")
        for name, definition in conn.execute(_TRIGGERS, [oid]).fetchall():
            lines.append(f"  trigger {name} {definition}")
        for name, cmd, permissive, roles, using, check in conn.execute(
                _POLICIES, [oid]).fetchall():
            rule = (f" using ({using})" if using else "") + (f" check ({check})" if check else "")
            kind = "" if permissive else " restrictive"
            lines.append(f"  policy {name}{kind} {_COMMANDS[cmd]} to {', '.join(roles)}{rule}")
        for grantee, privileges in conn.execute(_GRANTS, [schema, relname]).fetchall():
            lines.append(f"  grant {privileges} to {grantee}")
        lines.append("")
    for signature, result, volatility, definer, config, callers, language, body in conn.execute(
            _FUNCTIONS).fetchall():
        security = " security definer" if definer else ""
        settings = f" set {config}" if config else ""
        kind = f"function {signature} returns {result}" if result else f"procedure {signature}"
        execute = f" execute {', '.join(callers)}" if callers else " execute owner only"
        lines.append(f"{kind} language {language} {_VOLATILITY[volatility]}{security}{settings}"
                     f"{execute}")
        lines.extend(f"{BODY} {line}".rstrip() for line in _body(body))
        lines.append("")
    return "\n".join(_fold(line) for line in lines).rstrip("\n") + "\n"


def _body(source: str) -> list[str]:
    """A function's source as written, without the blank lines around it and its common
    indentation."""
    return textwrap.dedent(source.expandtabs(4)).strip("\n").splitlines()


def _fold(line: str) -> str:
    """Runs of white space as one space (the catalog's spacing differs between versions);
    a body line stays as written."""
    if line.startswith(BODY):
        return line
    indent = "  " if line.startswith("  ") else ""
    return indent + " ".join(line.split())
