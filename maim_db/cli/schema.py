"""``maimdb migrate|rollback|status|audit|snapshot``: the schema and its isolation checks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from .. import embedded
from ..connection import open_connection
from ..schema import citus
from ..schema import migrate as migrations
from ..schema.audit import Definer, Finding, definers, require_migrated
from ..schema.audit import audit as run_audit
from ..schema.snapshot import snapshot as take
from ..settings import describe, resolve_dsn, settings
from .options import Dsn, Json, Yes, confirm
from .output import dumps, out, say, table


def migrate(dsn: Dsn = None,
            dry_run: Annotated[bool, typer.Option("--dry-run",
                                                  help="List, apply nothing.")] = False,
            as_json: Json = False) -> None:
    """Apply every pending migration, then audit isolation.

    Example: maimdb migrate --dry-run
    """
    target = resolve_dsn(dsn, start=not dry_run)
    embedded_server = not (dsn or settings().dsn)
    if not embedded_server:
        server = describe(target)
    else:
        server = (f"the embedded PostgreSQL in {embedded.data_dir(settings().data_dir)} "
                  "(it keeps running, with its watcher; `maimdb db stop` stops both)")
        if not dry_run:
            embedded.spawn_watcher(embedded.data_dir(settings().data_dir), target)
    if not as_json:
        say(f"server: {server}")
        if embedded_server:
            say(f"data directory: {embedded.data_dir_reason(settings().data_dir)}")
    if dry_run:
        _dry_run(target, server, as_json)
        return
    done = [m.id for m in migrations.migrate(target)]
    if as_json:
        print(dumps({"server": server, "dry_run": dry_run, "migrations": done,
                     "applied": done}))
        return
    if not done:
        out.print("nothing to apply: the schema is at head")
    for m in done:
        say(f"applied {m}")


def _dry_run(target: str, server: str, as_json: bool) -> None:
    """List what would be applied, then refuse (exit 1, one line) if a need is unmet."""
    found = migrations.plan(target)
    pending = [m.id for m in found.pending]
    if as_json:
        print(dumps({"server": server, "dry_run": True, "migrations": pending, "applied": [],
                     "unmet": [{"migration": u.migration, "needs": u.needs}
                               for u in found.unmet]}))
    else:
        if not pending:
            out.print("nothing to apply: the schema is at head")
        for m in pending:
            say(f"would apply {m}")
    migrations.migrate_check(found)


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


def status(dsn: Dsn = None, as_json: Json = False) -> None:
    """Show applied and pending migrations; exit 1 if any is pending, edited or unknown to
    this checkout (for CI).

    Example: maimdb status || maimdb migrate
    """
    state = migrations.status(dsn)
    with open_connection(dsn) as conn:
        cluster = citus.nodes(conn)  # empty off Citus
    edited = {m.id for m, _ in state.edited}
    rows = ([(m.id, "edited" if m.id in edited else "applied", m.sha256) for m in state.applied]
            + [(m.id, "pending", m.sha256) for m in state.pending]
            + [(name, "unknown", None) for name in state.unknown])
    current = not (state.pending or state.edited or state.unknown)
    if as_json:
        shape: dict[str, object] = {"current": current, "migrations": [
            {"id": id_, "state": st, "sha256": sha} for id_, st, sha in rows]}
        if cluster:
            shape["nodes"] = [{"name": n.name, "port": n.port, "role": n.role,
                               "active": n.active} for n in cluster]
        print(dumps(shape))
    else:
        shown = {"applied": Text("applied"), "edited": Text("edited", "red"),
                 "pending": Text("pending", "yellow"),
                 "unknown": Text("not in this checkout", "red")}
        table(("migration", "state", "sha256"),
              [(id_, shown[st], sha[:12] if sha else None) for id_, st, sha in rows])
        if cluster:
            table(("Citus node", "port", "role", "active"),
                  [(n.name, n.port, n.role, True if n.active else Text("no", "red"))
                   for n in cluster])
    if not current:
        raise typer.Exit(1)


def audit(dsn: Dsn = None, as_json: Json = False) -> None:
    """Check the live schema's isolation invariants; exit 1 on any finding.

    Example: maimdb audit --dsn postgresql://maim@db/maim
    """
    with open_connection(dsn) as conn:
        findings = run_audit(require_migrated(conn))
        doors = definers(conn)
    if as_json:
        print(dumps({
            "findings": [{"object": f.object, "problem": f.problem} for f in findings],
            "definers": [{"function": d.function, "search_path": d.search_path,
                          "executors": list(d.executors)} for d in doors]}))
    else:
        _print_audit(findings, doors)
    if findings:
        raise typer.Exit(1)


def _print_audit(findings: list[Finding], doors: list[Definer]) -> None:
    # Every SECURITY DEFINER function is a door into its owner's rights: list who may open it.
    table(("SECURITY DEFINER function", "search_path", "executable by"),
          [(d.function, d.search_path or "(none)", list(d.executors) or "(owner only)")
           for d in doors])
    if not findings:
        out.print("no findings: every table has RLS enabled, forced, and policies; every "
                  "SECURITY DEFINER function pins search_path with pg_temp last")
        return
    table(("object", "problem"), [(f.object, f.problem) for f in findings])


def snapshot(dsn: Dsn = None,
             write: Annotated[Path | None, typer.Option(
                 "--write", help="Write to this file instead of stdout.")] = None,
             citus: Annotated[bool, typer.Option(
                 "--citus", help="The policies as a Citus coordinator carries them, rendered "
                 "on this server and rolled back (sql/schema.citus.snapshot).")] = False,
             ) -> None:
    """Print the live schema as text: tables, columns, constraints, indexes, triggers, grants,
    every policy's full text and every function in maim with its body.

    Example: maimdb snapshot --write sql/schema.snapshot
    """
    with open_connection(dsn) as conn:
        text = take(require_migrated(conn), citus=citus)
    if write is None:
        print(text, end="")
    else:
        write.write_text(text, encoding="utf-8")
        say(f"wrote {write}")


def register(app: typer.Typer) -> None:
    for command in (migrate, rollback, status, audit, snapshot):
        app.command()(command)
