"""``maimdb import-sqlite|export|import-export|erase``: an agent's data in and out, in the
agent's own scope."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bar
from rich.text import Text

from ..errors import MaimDBError
from ..transfer import archive
from ..transfer.maibot import ImportReport, committed, import_sqlite
from ..transfer.progress import Progress
from . import output
from .options import Agent, Dsn, Json, Yes, confirm
from .output import dumps, err, say, table


class _Lines(Progress):
    """Plain progress lines on stderr, for logs and pipes."""

    def __init__(self) -> None:
        self.done: dict[str, int] = {}
        self.total: dict[str, int] = {}

    def start(self, table: str, total: int) -> None:
        self.done[table], self.total[table] = 0, total

    def advance(self, table: str, rows: int) -> None:
        self.done[table] += rows
        print(f"{table}: {self.done[table]}/{self.total[table]}", file=sys.stderr, flush=True)

    def finish(self, table: str, rows: int) -> None:
        if self.total[table]:  # an empty table is not news
            print(f"{table}: done, {rows} written", file=sys.stderr, flush=True)


class _Bars(Progress):
    """A rich progress bar per table, for a terminal."""

    def __init__(self, bar: Bar) -> None:
        self.bar = bar
        self.tasks: dict[str, TaskID] = {}

    def start(self, table: str, total: int) -> None:
        self.tasks[table] = self.bar.add_task(table, total=total)

    def advance(self, table: str, rows: int) -> None:
        self.bar.advance(self.tasks[table], rows)

    def finish(self, table: str, rows: int) -> None:
        task = self.tasks[table]
        self.bar.update(task, completed=self.bar.tasks[task].total)


def _print_report(report: ImportReport) -> None:
    table(("table", "read", "written", "earlier runs", "skipped", "fallback"),
          [(t.target, t.read, t.written, t.earlier, sum(t.skipped.values()),
            sum(t.fallback.values())) for t in report.tables],
          title=f"{report.path} → {report.agent_id} ({report.seconds:.1f} s)")
    say(f"format: {report.format}; naive datetimes read as {report.timezone}")
    for t in report.tables:
        for reason, n in t.skipped.items():
            say(f"  {t.target}: skipped {n}: {reason}")
        for what, n in t.fallback.items():
            say(f"  {t.target}: fallback {n}: {what}")
        if t.ignored_columns:
            say(f"  {t.source}: columns with no home here: {', '.join(t.ignored_columns)}")
        if t.altered:
            shown = ", ".join(f"id {a.source_id} {a.column} ({a.change})"
                              for a in t.altered[:5])
            more = f", and {len(t.altered) - 5} more (--json lists all)" if len(t.altered) > 5 \
                else ""
            say(f"  {t.source}: {len(t.altered)} values altered to fit PostgreSQL: {shown}{more}")
        if t.clashes:
            more = (f", and {len(t.clashes) - 5} more (--json lists all)"
                    if len(t.clashes) > 5 else "")
            say(f"  {t.source}: rows whose key this agent already has, not imported: "
                f"{'; '.join(t.clashes[:5])}{more}")
    if report.ignored_tables:
        say(f"tables not imported: {', '.join(report.ignored_tables)}")
    for found in report.outside:
        say(f"kept outside MaiBot.db, not imported (a later step): {found}")


@contextmanager
def _progress(quiet: bool) -> Iterator[Progress]:
    """Bars on a terminal, lines in a log or a pipe (not with --json)."""
    if sys.stderr.isatty() and not quiet:
        with Bar(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                 TimeElapsedColumn(), console=err) as bar:
            yield _Bars(bar)
    else:
        yield _Lines()


def _interrupted(path: Path, agent: str, dsn: str | None) -> NoReturn:
    """Ctrl-C: the batch being written is rolled back, every earlier one is kept. Say how many
    rows are in (read back from the database, not counted here) and how to go on."""
    try:
        done = {t: n for t, n in committed(path, agent, dsn=dsn).items() if n}
        held = (f"{sum(done.values())} rows from {path} are committed in {agent}"
                + (f" ({', '.join(f'{t} {n}' for t, n in done.items())})" if done else ""))
    except (MaimDBError, OSError) as e:
        held = f"the rows committed could not be counted ({e})"
    output.report(MaimDBError(f"interrupted: {held}; run the same command again to resume after "
                       "them"))
    raise typer.Exit(130)


def import_sqlite_command(
    path: Annotated[Path, typer.Argument(
        help="MaiBot's data/MaiBot.db (0.7 to 0.12, or 1.0.0 to 1.2.1).")],
    agent: Agent,
    timezone: Annotated[str | None, typer.Option(
        "--timezone", help="Zone MaiBot's naive datetimes were written in; default: this "
                           "machine's.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=100_000,
                                            help="Rows per batch (one transaction).")] = 5000,
    batch_mib: Annotated[int, typer.Option("--batch-mib", min=1, max=4096,
                                           help="About this many MiB of values per batch, "
                                                "whatever the rows.")] = 16,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Refuse values PostgreSQL cannot store (NUL characters, invalid "
                         "UTF-8) instead of mending and listing them.")] = False,
    as_json: Json = False,
    dsn: Dsn = None,
) -> None:
    """Import a single-user MaiBot database into an agent; safe to rerun or resume.

    Example: maimdb import-sqlite data/MaiBot.db --agent agent_3f9a1c2b7d4e
    """
    run = partial(import_sqlite, path, agent, dsn=dsn, timezone=timezone,
                  batch_size=batch_size, batch_bytes=batch_mib * 2**20, strict=strict)
    try:
        with _progress(as_json) as progress:
            report = run(progress=progress)
    except KeyboardInterrupt:
        _interrupted(path, agent, dsn)
    if as_json:
        print(dumps(report.as_dict()))
    else:
        _print_report(report)


Every = Annotated[bool, typer.Option("--all", help="List every table, also those with no "
                                                   "rows.")]


def _counts(counts: dict[str, int], as_json: bool, title: str, extra: dict[str, Any],
            every: bool = False) -> None:
    if as_json:
        print(dumps({**extra, "tables": counts, "total": sum(counts.values())}))
        return
    table(("table", "rows"),
          [*((name, n) for name, n in counts.items() if n or every),
           (Text("total", "bold"), sum(counts.values()))], title=title)


def export_command(
    agent: Agent,
    out_dir: Annotated[Path, typer.Option("--out", help="A new or empty directory.")],
    as_json: Json = False,
    dsn: Dsn = None,
    every: Every = False,
) -> None:
    """Write every data row of an agent as JSON Lines, one file per table, plus a manifest.

    Example: maimdb export --agent agent_3f9a1c2b7d4e --out backup/
    """
    with _progress(as_json) as progress:
        counts = archive.export_agent(agent, out_dir, dsn=dsn, progress=progress)
    _counts(counts, as_json, f"exported {agent} to {out_dir}",
            {"agent_id": agent, "out": str(out_dir)}, every)


def import_export_command(
    directory: Annotated[Path, typer.Argument(help="A directory `maimdb export` wrote.")],
    agent: Agent,
    drop_secrets: Annotated[bool, typer.Option(
        "--drop-secrets", help="Into another tenant's agent: restore all but the sealed "
                               "secrets (they never cross tenants).")] = False,
    as_json: Json = False,
    dsn: Dsn = None,
    every: Every = False,
) -> None:
    """Restore an export into an agent that holds no data yet (all of it, or nothing).

    The export's signature is checked with MAIMDB_SECRET_KEY (or a fallback key) first.

    Example: maimdb import-export backup/ --agent agent_9c1d2e3f4a5b
    """
    counts = archive.import_export(directory, agent, drop_secrets=drop_secrets, dsn=dsn)
    _counts(counts, as_json, f"restored {directory} into {agent}",
            {"agent_id": agent, "from": str(directory)}, every)


def erase_command(agent: Agent, yes: Yes = False, as_json: Json = False,
                  dsn: Dsn = None, every: Every = False) -> None:
    """Delete every data row of an agent (the right to erasure); the agent itself stays.

    Example: maimdb erase --agent agent_3f9a1c2b7d4e --yes
    """
    confirm(f"Delete every data row of {agent}? This cannot be undone", yes)
    counts = archive.erase_agent(agent, dsn=dsn)
    if every:
        counts = {m.table_name(): counts.get(m.table_name(), 0) for m in archive.ERASED_ROWS}
    _counts(counts, as_json, f"erased {agent}", {"agent_id": agent}, every)


def register(app: typer.Typer) -> None:
    app.command("import-sqlite")(import_sqlite_command)
    app.command("export")(export_command)
    app.command("import-export")(import_export_command)
    app.command("erase")(erase_command)
