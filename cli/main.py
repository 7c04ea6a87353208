"""``maimdb``: migrate the schema, run the embedded server, audit isolation."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from maim_db import embedded
from maim_db import migrate as migrations
from maim_db.audit import audit as run_audit
from maim_db.audit import definers, require_migrated
from maim_db.connection import open_connection
from maim_db.errors import MaimDBError
from maim_db.settings import settings

from . import control, secrets, transfer
from .output import cell, fail, out, report, say

app = typer.Typer(
    help="maim_db: the isolated data plane of multi-user MaiBot.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The embedded PostgreSQL server (used when MAIMDB_DSN is unset).",
                     no_args_is_help=True)
app.add_typer(db_app, name="db")
control.register(app)
transfer.register(app)
secrets.register(app)


DsnOption = Annotated[
    str | None,
    typer.Option("--dsn", envvar="MAIMDB_DSN", show_envvar=True,
                 help="PostgreSQL DSN; default: the embedded server."),
]


@app.command()
def migrate(dsn: DsnOption = None,
            dry_run: Annotated[bool, typer.Option("--dry-run",
                                                  help="List, apply nothing.")] = False,
            ) -> None:
    """Apply every pending migration, then audit isolation.

    Example: maimdb migrate --dry-run
    """
    try:
        done = migrations.migrate(dsn, dry_run=dry_run)
    except MaimDBError as e:
        fail(e)
    verb = "would apply" if dry_run else "applied"
    if not done:
        out.print("nothing to apply: the schema is at head")
    for m in done:
        say(f"{verb} {m.id}")


@app.command()
def rollback(dsn: DsnOption = None,
             steps: Annotated[int, typer.Option("--steps", min=1,
                                                help="How many migrations to undo.")] = 1,
             ) -> None:
    """Roll back the newest applied migrations.

    Example: maimdb rollback --steps 2
    """
    try:
        undone = migrations.rollback(dsn, steps=steps)
    except MaimDBError as e:
        fail(e)
    if not undone:
        out.print("nothing to roll back")
    for m in undone:
        say(f"rolled back {m.id}")


@app.command()
def status(dsn: DsnOption = None) -> None:
    """Show applied and pending migrations; exit 1 if any is pending, edited or unknown to
    this checkout (for CI).

    Example: maimdb status || maimdb migrate
    """
    try:
        state = migrations.status(dsn)
    except MaimDBError as e:
        fail(e)
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


@app.command()
def audit(dsn: DsnOption = None) -> None:
    """Check the live schema's isolation invariants; exit 1 on any finding.

    Example: maimdb audit --dsn postgresql://maim@db/maim
    """
    try:
        with open_connection(dsn) as conn:
            findings = run_audit(require_migrated(conn))
            doors = definers(conn)
    except MaimDBError as e:
        fail(e)
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


@app.command()
def snapshot(dsn: DsnOption = None,
             write: Annotated[Path | None, typer.Option(
                 "--write", help="Write to this file instead of stdout.")] = None) -> None:
    """Print the live schema as text (tables, columns, keys, indexes, policies, grants).

    Example: maimdb snapshot --write sql/schema.snapshot
    """
    from maim_db.snapshot import snapshot as take

    try:
        with open_connection(dsn) as conn:
            text = take(require_migrated(conn))
    except MaimDBError as e:
        fail(e)
    if write is None:
        print(text, end="")
    else:
        try:
            write.write_text(text, encoding="utf-8")
        except OSError as e:
            fail(e)
        say(f"wrote {write}")


def _data_dir() -> Path:
    return settings().data_dir


@db_app.command("start")
def db_start() -> None:
    """Start the embedded server (data in MAIMDB_DATA_DIR, default ./data/postgres).

    Example: maimdb db start
    """
    try:
        url = embedded.start(_data_dir(), settings().database)
    except MaimDBError as e:
        fail(e)
    say(f"running: {url}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded server; the data stays.

    Example: maimdb db stop
    """
    if embedded.stop(_data_dir()):
        out.print("stopped")
    else:
        out.print("not running")


@db_app.command("status")
def db_status() -> None:
    """Say whether the embedded server runs; exit 1 if it does not.

    Example: maimdb db status
    """
    s = embedded.status(_data_dir(), settings().database)
    say(f"data dir:    {s.data_dir}")
    say(f"initialized: {'yes' if s.initialized else 'no'}")
    say(f"running:     {'yes, pid ' + str(s.pid) if s.running else 'no'}")
    if not s.running:
        raise typer.Exit(1)


@db_app.command("url")
def db_url() -> None:
    """Print the embedded server's DSN (a superuser: scope is set per transaction).

    Example: export MAIMDB_DSN="$(maimdb db url)"
    """
    s = embedded.status(_data_dir(), settings().database)
    if s.url is None:
        fail(MaimDBError("the embedded server is not running: run `maimdb db start`"))
    print(s.url)


ROLE_CHOICES = {"app": "maim_app", "tenant": "maim_tenant", "admin": "maim_admin",
                "owner": "maim_owner"}


@db_app.command("psql")
def db_psql(
    role: Annotated[str, typer.Option("--as", help="Role for the session: app, tenant, admin "
                                      "or owner.")] = "app",
) -> None:
    """Open psql on the embedded server as a maim role, so row-level security applies.

    Example: maimdb db psql --as app, then:
    BEGIN; SET maim.agent_id = 'agent_3f9a1c2b7d4e'; SELECT * FROM agents; COMMIT;
    """
    if role not in ROLE_CHOICES:
        raise typer.BadParameter(f"must be one of {', '.join(ROLE_CHOICES)}, got {role!r}",
                                 param_hint="--as")
    try:
        url = embedded.start(_data_dir(), settings().database)
    except MaimDBError as e:
        fail(e)
    psql = str(embedded.bin_dir() / "psql")
    env = dict(os.environ, PGOPTIONS=f"-c role={ROLE_CHOICES[role]}")
    sys.stdout.flush()
    os.execve(psql, [psql, url], env)


def run() -> None:
    """The console script. A maim_db error no command caught (a bad environment read while
    a command starts, say) is still one line and exit 1, never a traceback."""
    try:
        app()
    except MaimDBError as e:
        report(e)
        sys.exit(1)
