"""``maimdb migrate|rollback|status|audit|snapshot``: the schema and its isolation checks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .. import embedded
from ..connection import open_connection
from ..schema import migrate as migrations
from ..schema.audit import audit as run_audit
from ..schema.audit import definers, require_migrated
from ..schema.snapshot import snapshot as take
from ..settings import describe, resolve_dsn, settings
from .options import Dsn, Json, Yes, confirm
from .output import cell, dumps, out, say


def migrate(dsn: Dsn = None,
            dry_run: Annotated[bool, typer.Option("--dry-run",
                                                  help="List, apply nothing.")] = False,
            ) -> None:
    """Apply every pending migration, then audit isolation.

    Example: maimdb migrate --dry-run
    """
    target = resolve_dsn(dsn, start=not dry_run)
    if dsn or settings().dsn:
        say(f"server: {describe(target)}")
    else:
        say(f"server: the embedded PostgreSQL in {embedded.data_dir(settings().data_dir)} "
            "(it keeps running; `maimdb db stop` stops it)")
    done = migrations.migrate(target, dry_run=dry_run)
    verb = "would apply" if dry_run else "applied"
    if not done:
        out.print("nothing to apply: the schema is at head")
    for m in done:
        say(f"{verb} {m.id}")


def _loss(loss: migrations.Loss) -> str:
    what = f"column {loss.table}.{loss.column}" if loss.column else f"table {loss.table}"
    if loss.rows is None:
        return f"{what} (rows unknown)"
    return f"{what} ({'' if loss.exact else 'about '}{loss.rows} rows)"


def rollback(dsn: Dsn = None,
             steps: Annotated[int, typer.Option("--steps", min=1,
                                                help="How many migrations to undo.")] = 1,
             dry_run: Annotated[bool, typer.Option(
                 "--dry-run", help="Say what would be dropped, change nothing.")] = False,
             yes: Yes = False, as_json: Json = False) -> None:
    """Roll back the newest applied migrations, after saying which tables and how many rows
    they drop and asking (--yes off a terminal).

    Example: maimdb rollback --steps 2 --dry-run
    """
    plan = migrations.rollback_plan(dsn, steps=steps)
    rows = sum(loss.rows or 0 for undo in plan for loss in undo.losses if not loss.column)
    if not as_json:
        say(("would roll back" if dry_run else "rolling back") + ", newest first:")
        for undo in plan:
            drops = ", ".join(_loss(loss) for loss in undo.losses)
            say(f"  {undo.migration.id}" + (f": drops {drops}" if drops else ""))
    if not dry_run:
        confirm(f"Roll back {len(plan)} migration(s), dropping {rows} rows?", yes)
        migrations.rollback(dsn, steps=steps, expect=[u.migration.id for u in plan])
    if as_json:
        print(dumps({"dry_run": dry_run, "rolled_back": [] if dry_run else
                     [u.migration.id for u in plan],
                     "migrations": [{"id": u.migration.id, "drops": [
                         {"table": x.table, "column": x.column, "rows": x.rows,
                          "exact": x.exact} for x in u.losses]} for u in plan]}))
    elif not dry_run:
        for undo in plan:
            say(f"rolled back {undo.migration.id}")


def status(dsn: Dsn = None) -> None:
    """Show applied and pending migrations; exit 1 if any is pending, edited or unknown to
    this checkout (for CI).

    Example: maimdb status || maimdb migrate
    """
    state = migrations.status(dsn)
    table = Table("migration", "state", "sha256")
    edited = {m.id for m, _ in state.edited}
    for m in state.applied:
        table.add_row(m.id, "[red]edited[/]" if m.id in edited else "applied", m.sha256[:12])
    for m in state.pending:
        table.add_row(m.id, "[yellow]pending[/]", m.sha256[:12])
    for name in state.unknown:
        table.add_row(cell(name), "[red]not in this checkout[/]", "")
    out.print(table)
    if state.pending or state.edited or state.unknown:
        raise typer.Exit(1)


def audit(dsn: Dsn = None) -> None:
    """Check the live schema's isolation invariants; exit 1 on any finding.

    Example: maimdb audit --dsn postgresql://maim@db/maim
    """
    with open_connection(dsn) as conn:
        findings = run_audit(require_migrated(conn))
        doors = definers(conn)
    # Every SECURITY DEFINER function is a door into its owner's rights: list who may open it.
    listing = Table()
    for heading in ("SECURITY DEFINER function", "search_path", "executable by"):
        listing.add_column(heading, overflow="fold")  # never cut a name short
    for d in doors:
        listing.add_row(cell(d.function), cell(d.search_path or "(none)"),
                        cell(", ".join(d.executors) or "(owner only)"))
    out.print(listing)
    if not findings:
        out.print("no findings: every table has RLS enabled, forced, and policies; every "
                  "SECURITY DEFINER function pins search_path with pg_temp last")
        return
    table = Table("object", "problem")
    for f in findings:
        table.add_row(cell(f.object), cell(f.problem))
    out.print(table)
    raise typer.Exit(1)


def snapshot(dsn: Dsn = None,
             write: Annotated[Path | None, typer.Option(
                 "--write", help="Write to this file instead of stdout.")] = None) -> None:
    """Print the live schema as text (tables, columns, keys, indexes, policies, grants).

    Example: maimdb snapshot --write sql/schema.snapshot
    """
    with open_connection(dsn) as conn:
        text = take(require_migrated(conn))
    if write is None:
        print(text, end="")
    else:
        write.write_text(text, encoding="utf-8")
        say(f"wrote {write}")


def register(app: typer.Typer) -> None:
    for command in (migrate, rollback, status, audit, snapshot):
        app.command()(command)
