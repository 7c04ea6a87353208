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


def test_the_help_says_what_the_snapshot_holds() -> None:
    """`maimdb snapshot --help` names what review relies on it for: function bodies and
    triggers, not only tables and policies (in process: the text, not the entry point)."""
    from typer.testing import CliRunner

    from maim_db.cli.main import app

    shown = CliRunner().invoke(app, ["snapshot", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    for part in ("triggers", "policy's full text", "grants", "function in maim with its body"):
        assert part in text, (part, text)


CITUS = COMMITTED.with_name("schema.citus.snapshot")


def test_the_citus_form_matches_the_committed_citus_snapshot(db: TestDB) -> None:
    """The policies as a Citus coordinator carries them (issue 33.3), rendered on one server
    from the same definition (sql/30_policies.sql): the committed copy is what
    tests/test_citus.py compares the cluster's live policies with. It differs from the
    one-server snapshot in policy lines and maim.on_citus()'s answer only (issue 36: a
    constant migrate chooses), and no policy in it reads a table (a shard cannot evaluate a
    subquery)."""
    with psycopg.connect(db.superuser) as conn:
        live = snapshot(conn, citus=True)
        assert snapshot(conn) == COMMITTED.read_text(encoding="utf-8")  # nothing kept
    committed = CITUS.read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(committed.splitlines(True), live.splitlines(True),
                                        "sql/schema.citus.snapshot", "fresh migrate"))
    assert live == committed, ("the Citus form differs from sql/schema.citus.snapshot; if "
                               "intended, run `maimdb snapshot --citus --write "
                               "sql/schema.citus.snapshot`\n" + diff)
    changed = [line for line in difflib.ndiff(COMMITTED.read_text(encoding="utf-8")
                                              .splitlines(), live.splitlines())
               if line[:2] in ("+ ", "- ")]
    answers = [line for line in changed if not line[2:].startswith("  policy ")]
    assert answers == ["-   | select false", "+   | select true"], changed
    policies = [line for line in live.splitlines() if line.startswith("  policy ")]
    assert policies and not any(" SELECT " in line for line in policies)  # the deparser's


def test_the_snapshot_holds_the_maibot1_schema(db: TestDB) -> None:
    """MaiBot 1.x's tables (migrations/0020) are in the review diff like public's: columns,
    keys, indexes, policies and grants, named with their schema (maibot1.images is not
    public's images)."""
    with psycopg.connect(db.superuser) as conn:
        lines = snapshot(conn).splitlines()
    start = lines.index("table maibot1.images rls=on force=on")
    block = lines[start:lines.index("", start)]
    assert "  column id bigint not null default maim.maibot1_id()" in block
    assert "  grant DELETE, INSERT, SELECT, UPDATE to maim_app" in block
    assert "  grant SELECT to maim_tenant" in block
    assert any(line.startswith("  policy app_select select to maim_app, maim_plugin using "
                               "((agent_id = ( SELECT maim.agent_id()")
               for line in block), block
    assert "table images rls=on force=on" in lines  # 0.x's, still there under its name
