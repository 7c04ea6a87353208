"""The audit behind `maimdb migrate` and `maimdb audit`: clean on the real schema, and each
rule catches the mistake it exists for."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest
from psycopg import sql

from maim_db.errors import MigrationError
from maim_db.schema.audit import audit
from tests.cli import maimdb
from tests.databases import TestDB

# each test changes the schema (a table without RLS, an unsafe view) for the audit to find
pytestmark = pytest.mark.fresh_db


def _as_owner(db: TestDB, *statements: str) -> set[str]:
    with psycopg.connect(db.superuser, autocommit=True) as conn:
        conn.execute("set role maim_owner")
        for s in statements:
            conn.execute(s)  # type: ignore[call-overload]
        return {str(f) for f in audit(conn)}


def test_real_schema_is_clean(db: TestDB) -> None:
    assert _as_owner(db) == set()


def test_keys_without_agent_id_and_sequences_are_found(db: TestDB) -> None:
    found = _as_owner(
        db,
        "create table bad (agent_id text not null default maim.agent_id() references agents "
        "on delete cascade, "
        "n serial, code text unique, ref text references users (id))",
        "create unique index bad_n on bad (n)",
        "call maim.isolate_agent_table('bad')",
    )
    assert found == {
        "table bad: unique constraint bad_code_key does not include agent_id (it would leak "
        "or collide across agents)",
        "table bad: foreign key bad_ref_fkey does not include agent_id (it would leak or "
        "collide across agents)",
        "table bad: unique index bad_n does not include agent_id (it would leak or collide "
        "across agents)",
        "table bad: column n is fed by a sequence (a shared counter leaks other agents' "
        "activity); use a uuid",
    }


def test_rows_not_tied_to_their_agent_are_found(db: TestDB) -> None:
    """agent_id must take the scope by default and cascade from agents; ids are uuids."""
    found = _as_owner(
        db,
        "create table loose (agent_id text not null references agents, id text, "
        "primary key (agent_id, id))",
        "create table tied (agent_id text not null default maim.agent_id(), tenant_id text, "
        "id uuid, primary key (agent_id, id), foreign key (tenant_id, agent_id) "
        "references agents (tenant_id, id) on delete cascade)",
        "call maim.isolate_agent_table('loose')",
        "call maim.isolate_agent_table('tied')",
    )
    assert found == {
        "table loose: agent_id does not default to maim.agent_id() (a row written without "
        "it would fail instead of taking the scope)",
        "table loose: agent_id is not a foreign key to agents (id) on delete cascade "
        "(deleting an agent would leave its rows behind)",
        "table loose: column id is text, not uuid",
    }


def test_missing_and_permissive_policies_are_found(db: TestDB) -> None:
    found = _as_owner(
        db,
        "create table half (agent_id text not null default maim.agent_id() references agents "
        "on delete cascade, x int)",
        "alter table half enable row level security",
        "alter table half force row level security",
        "create policy p on half for select to maim_app using (true)",
    )
    assert found == {
        "table half: no insert/update/delete policy for maim_app",
        "table half: no select/insert/update/delete policy for maim_plugin",
        "table half: no select policy for maim_tenant",
        "table half: no select/insert/update/delete policy for maim_admin",
        "table half: policy p is always true for maim_app",
        "table half: maim_app select policy does not compare agent_id with maim.agent_id()",
    }


def test_views_and_definer_functions(db: TestDB) -> None:
    found = _as_owner(
        db,
        "create view agent_names as select id, name from agents",
        "create view safe_names with (security_invoker = true) as select id from agents",
        "create function maim.peek() returns bigint language sql security definer "
        "as 'select count(*) from public.agents'",
        # an empty path still searches pg_temp first for types and relations (issue 10)
        "create function maim.empty() returns bigint language sql security definer "
        "set search_path = '' as 'select count(*) from public.agents'",
        "create function maim.temp_first() returns bigint language sql security definer "
        "set search_path = pg_temp, pg_catalog as 'select count(*) from public.agents'",
        "create function maim.pinned() returns bigint language sql security definer "
        "set search_path = pg_catalog, pg_temp as 'select count(*) from public.agents'",
    )
    public = ("is SECURITY DEFINER and executable by PUBLIC (revoke it, grant it to the roles "
              "that need it)")

    def unpinned(function: str, path: str) -> str:
        return (f"function maim.{function}(): is SECURITY DEFINER with search_path {path!r}: "
                "set it to 'pg_catalog, pg_temp' (pg_temp last; empty still searches pg_temp "
                "first for types and tables)")

    assert found == {"view agent_names: is not security_invoker",
                     unpinned("peek", "(none)"), unpinned("empty", '""'),
                     unpinned("temp_first", "pg_temp, pg_catalog"),
                     *(f"function maim.{f}(): {public}"
                       for f in ("peek", "empty", "temp_first", "pinned"))}
    found = _as_owner(db, "revoke all on function maim.pinned() from public",
                      "grant execute on function maim.pinned() to maim_admin")
    assert f"function maim.pinned(): {public}" not in found


def test_policies_on_any_table_that_widen_access_are_found(db: TestDB) -> None:
    """Control-plane tables too: a policy for PUBLIC (which a join on pg_roles would drop),
    an always-true policy, a second permissive policy that ORs with the first, and table
    privileges that bypass or probe row-level security."""
    found = _as_owner(
        db,
        "create policy leak on api_keys for select using (true)",
        "create policy also on tenants for select to maim_tenant using (id = 'tenant_x')",
        "create policy wide on runtime_state for all to maim_app using (agent_id <> '')",
        "grant truncate, references on messages to maim_app",
        "grant trigger on agents to public",
    )
    assert found == {
        "table api_keys: policy leak applies to PUBLIC; policies name only maim_app, "
        "maim_tenant, maim_admin, maim_plugin, maim_owner",
        "table api_keys: policy leak is always true for PUBLIC",
        "table tenants: 2 permissive select policies for maim_tenant "
        "(also, tenant_select) widen each other",
        *(f"table runtime_state: 2 permissive {c} policies for maim_app "
          f"(app_{c}, wide) widen each other"
          for c in ("select", "insert", "update", "delete")),
        "table runtime_state: maim_app * policy does not compare agent_id with "
        "maim.agent_id()",
        "table messages: maim_app holds REFERENCES",
        "table messages: maim_app holds TRUNCATE",
        "table agents: PUBLIC holds TRIGGER",
    }


@pytest.mark.parametrize("leaky", [False, True])
def test_cli_audit_exit_code(db: TestDB, leaky: bool) -> None:
    if leaky:
        _as_owner(db, "create table leaky (id int)")
    result = subprocess.run([sys.executable, "-m", "maim_db.cli", "audit"],
                            env=dict(os.environ, MAIMDB_DSN=db.superuser),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == (1 if leaky else 0), result.stdout + result.stderr
    assert ("leaky" in result.stdout) is leaky
    as_json = maimdb("audit", "--json", dsn=db.superuser)
    assert as_json.returncode == result.returncode, as_json.stderr
    report = json.loads(as_json.stdout)
    assert set(report) == {"findings", "definers"}
    assert any(f["object"] == "table leaky" for f in report["findings"]) is leaky
    assert all(set(f) == {"object", "problem"} for f in report["findings"])
    doors = {d["function"]: d for d in report["definers"]}
    assert doors and all(d["search_path"] == "pg_catalog, pg_temp" for d in doors.values())
    assert "maim_app" in doors["maim.open_agent_scope(text)"]["executors"]


def test_views_an_extension_installed_are_the_extensions(db: TestDB) -> None:
    """Citus puts citus_tables and citus_schemas in public; pg_buffercache (in every build
    these tests run on) stands in for it. Its view is not reported, a view of ours beside it
    still is."""
    with psycopg.connect(db.superuser, autocommit=True) as conn:
        conn.execute("create extension pg_buffercache schema public")
        kind = conn.execute("select relkind from pg_class where relname = 'pg_buffercache'"
                            ).fetchone()
    assert kind == ("v",)  # the extension really did put a view in public
    found = _as_owner(db, "create view agent_names as select id, name from agents")
    assert found == {"view agent_names: is not security_invoker"}


def test_maibot1_tables_are_audited_like_public_ones(db: TestDB) -> None:
    """MaiBot 1.x's schema (migrations/0020) is held to the same rules: a table there with
    RLS off, a global unique key, a sequence, or a missing policy is a finding."""
    found = _as_owner(
        db,
        "alter table maibot1.images no force row level security",
        "create unique index chat_sessions_global on maibot1.chat_sessions (session_id)",
        "drop policy tenant_select on maibot1.person_info",
        "create table maibot1.bad (agent_id text not null default maim.agent_id() "
        "references agents on delete cascade, id bigserial, primary key (agent_id, id))",
        "call maim.isolate_agent_table('maibot1.bad')",
    )
    assert found == {
        "table maibot1.images: row-level security is not forced (the owner would bypass it)",
        "table maibot1.chat_sessions: unique index maibot1.chat_sessions_global does not "
        "include agent_id (it would leak or collide across agents)",
        "table maibot1.person_info: no select policy for maim_tenant",
        "table maibot1.bad: column id is fed by a sequence (a shared counter leaks other "
        "agents' activity); use a uuid",
        "table maibot1.bad: column id is bigint without default maim.maibot1_id()",
    }


def test_a_maibot1_table_without_a_policy_is_found(db: TestDB) -> None:
    """A table isolate_agent_table never saw has no policy: the audit says so."""
    found = _as_owner(
        db,
        "create table maibot1.bare (agent_id text not null default maim.agent_id() "
        "references agents on delete cascade, id bigint default maim.maibot1_id(), "
        "primary key (agent_id, id))",
        "alter table maibot1.bare enable row level security",
        "alter table maibot1.bare force row level security",
    )
    assert "table maibot1.bare: has no policy" in found


def test_who_may_create_where_the_scope_roles_look_is_found_and_migrate_revokes_public(
        db: TestDB) -> None:
    """A database first made by PostgreSQL 14 or older lets PUBLIC create in `public`: a
    plugin could plant a `=` there and set its login's search_path to reach it (both
    without a superuser). The audit names it; `maimdb migrate` revokes it; then a plugin
    cannot create there."""
    from maim_db.schema import migrate

    with psycopg.connect(db.superuser, autocommit=True) as su:
        su.execute("grant create on schema public to public")
        su.execute("grant create on schema maibot1 to maim_app")
        su.execute(sql.SQL("grant create on database {} to maim_plugin").format(
            sql.Identifier(db.name)))
    found = _as_owner(db)
    assert {f.split(" may create ")[0] for f in found} == {
        "schema public: PUBLIC", "schema maibot1: maim_app",
        f"database {db.name}: maim_plugin",
        f"database {db.name}: maim_app"}  # maim_app holds maim_plugin
    assert all("revoke CREATE" in f for f in found)
    # migrate revokes PUBLIC's; a grant someone made on purpose stops its closing audit
    with pytest.raises(MigrationError) as refused:
        migrate.migrate(db.superuser)
    assert "schema public: " not in str(refused.value)
    assert "schema maibot1: maim_app may create" in str(refused.value)
    with psycopg.connect(db.superuser, autocommit=True) as su:
        su.execute("revoke create on schema maibot1 from maim_app")
        su.execute(sql.SQL("revoke create on database {} from maim_plugin").format(
            sql.Identifier(db.name)))
    migrate.migrate(db.superuser)
    assert _as_owner(db) == set()
    with psycopg.connect(db.dsn("plugin")) as plugin, pytest.raises(
            psycopg.errors.InsufficientPrivilege):
        plugin.execute("create function public.planted() returns int language sql"
                       " as 'select 1'")
