"""sql/schema.snapshot is the schema a fresh migrate produces: a migration that changes the
schema without updating the snapshot (``maimdb snapshot --write sql/schema.snapshot``) fails
here, so every change is reviewed as a diff of one file."""

from __future__ import annotations

import difflib
from pathlib import Path

import psycopg
import psycopg.sql
import pytest

from maim_db.schema.snapshot import snapshot
from tests.databases import TestDB

pytestmark = pytest.mark.fresh_db  # a test edits a function and a policy

COMMITTED = Path(__file__).resolve().parent.parent / "sql" / "schema.snapshot"


def test_fresh_migrate_matches_the_committed_snapshot(db: TestDB) -> None:
    with psycopg.connect(db.superuser) as conn:
        live = snapshot(conn)
    committed = COMMITTED.read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(committed.splitlines(True), live.splitlines(True),
                                        "sql/schema.snapshot", "fresh migrate"))
    assert live == committed, ("schema differs from sql/schema.snapshot; if intended, run "
                               "`maimdb snapshot --write sql/schema.snapshot`\n" + diff)


def test_a_changed_definer_body_or_policy_shows_in_the_snapshot(db: TestDB) -> None:
    """The review diff shows what a definer function does and what a policy says, not only
    their signatures and names."""
    with psycopg.connect(db.superuser, autocommit=True) as conn:
        before = snapshot(conn).splitlines()
        body = conn.execute("select prosrc from pg_proc "
                            "where oid = 'maim.open_agent_scope(text)'::regprocedure").fetchone()
        assert body is not None
        conn.execute(psycopg.sql.SQL(
            "create or replace function maim.open_agent_scope(agent text) returns text "
            "language plpgsql volatile security definer "
            "set search_path = pg_catalog, pg_temp as {}").format(
            psycopg.sql.Literal(body[0].replace("return agent;", "perform 1; return agent;"))))
        conn.execute("alter policy app_select on messages using (true)")
        after = snapshot(conn).splitlines()
    added = [line for line in difflib.ndiff(before, after) if line.startswith("+ ")]
    assert "+   |     perform 1; return agent;" in added
    assert any(line.startswith("+   policy app_select select to maim_app, maim_plugin using (true)")
               for line in added), added
    assert len(added) == 2, added
