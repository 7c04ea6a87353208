"""The schema audit: the invariants isolation depends on, checked against the live catalog.

``maimdb migrate`` refuses to finish when any finding remains; ``maimdb audit`` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import psycopg

# yoyo's bookkeeping tables: no grants to any maim role, so not reachable by scoped code.
BOOKKEEPING: Final = ("_yoyo_migration", "_yoyo_log", "_yoyo_version", "yoyo_lock")

_TABLES: Final = """
select c.relname::text,
       c.relrowsecurity,
       c.relforcerowsecurity,
       (select count(*) from pg_policy p where p.polrelid = c.oid)
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = 'public' and c.relkind in ('r', 'p') and not (c.relname = any(%s))
order by 1
"""

_VIEWS: Final = """
select c.relname::text
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where n.nspname in ('public', 'maim') and c.relkind in ('v', 'm')
  and not coalesce(c.reloptions @> array['security_invoker=true'], false)
order by 1
"""

_DEFINERS: Final = """
select p.oid::regprocedure::text
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
where n.nspname in ('public', 'maim') and p.prosecdef
  and not exists (select from unnest(coalesce(p.proconfig, '{}')) s where s like 'search_path=%%')
order by 1
"""


@dataclass(frozen=True, slots=True)
class Finding:
    object: str
    problem: str

    def __str__(self) -> str:
        return f"{self.object}: {self.problem}"


def audit(conn: psycopg.Connection[Any]) -> list[Finding]:
    """Every violation of the isolation invariants in the current database."""
    findings: list[Finding] = []
    for table, enabled, forced, policies in conn.execute(_TABLES, [list(BOOKKEEPING)]):
        if not enabled:
            findings.append(Finding(f"table {table}", "row-level security is not enabled"))
        if not forced:
            findings.append(Finding(f"table {table}", "row-level security is not forced "
                                    "(the owner would bypass it)"))
        if policies == 0:
            findings.append(Finding(f"table {table}", "has no policy"))
    for (view,) in conn.execute(_VIEWS):
        findings.append(Finding(f"view {view}", "is not security_invoker"))
    for (function,) in conn.execute(_DEFINERS):
        findings.append(Finding(f"function {function}",
                                "is SECURITY DEFINER without a pinned search_path"))
    return findings
