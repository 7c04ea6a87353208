"""sql/schema.snapshot is the schema a fresh migrate produces: a migration that changes the
schema without updating the snapshot (``maimdb snapshot --write sql/schema.snapshot``) fails
here, so every change is reviewed as a diff of one file."""

from __future__ import annotations

import difflib
from pathlib import Path

import psycopg

from maim_db.schema.snapshot import snapshot
from tests.databases import TestDB

COMMITTED = Path(__file__).resolve().parent.parent / "sql" / "schema.snapshot"


def test_fresh_migrate_matches_the_committed_snapshot(db: TestDB) -> None:
    with psycopg.connect(db.superuser) as conn:
        live = snapshot(conn)
    committed = COMMITTED.read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(committed.splitlines(True), live.splitlines(True),
                                        "sql/schema.snapshot", "fresh migrate"))
    assert live == committed, ("schema differs from sql/schema.snapshot; if intended, run "
                               "`maimdb snapshot --write sql/schema.snapshot`\n" + diff)
