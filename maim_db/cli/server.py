"""``maimdb db``: the embedded PostgreSQL server, used when ``MAIMDB_DSN`` is unset."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .. import embedded
from ..settings import as_url, resolve_dsn, settings
from ..transfer import dump as backup
from .options import App, Dsn, Json, Yes, confirm
from .output import dumps, out, say

app = App(help="The embedded PostgreSQL server (used when MAIMDB_DSN is unset); whole-"
                       "database dump, restore and reset.",
                  no_args_is_help=True)


def _data_dir() -> Path:
    return embedded.data_dir(settings().data_dir)


@app.command("start")
def db_start() -> None:
    """Start the embedded server, creating it if need be (data in MAIMDB_DATA_DIR; default
    data/postgres in this checkout, else ~/.local/share/maimdb/postgres).

    Example: maimdb db start
    """
    url = embedded.start(_data_dir(), settings().database)
    say(f"running: {url}")
    say(f"watcher: pid {embedded.spawn_watcher(_data_dir(), url)} (`maimdb watch`: ends a "
        "plugin's session that stalls others)")


@app.command("stop")
def db_stop() -> None:
    """Stop the embedded server; the data stays.

    Example: maimdb db stop
    """
    embedded.stop_watcher(_data_dir())
    if embedded.stop(_data_dir()):
        out.print("stopped")
    else:
        out.print("not running")


@app.command("status")
def db_status(as_json: Json = False) -> None:
    """Say whether the embedded server runs; exit 1 if it does not.

    Example: maimdb db status
    """
    s = embedded.status(_data_dir(), settings().database)
    if as_json:
        print(dumps({"data_dir": str(s.data_dir), "initialized": s.initialized,
                     "running": s.running, "pid": s.pid,
                     "watcher_pid": embedded.watcher_pid(s.data_dir)}))
        if not s.running:
            raise typer.Exit(1)
        return
    say(f"data dir:    {s.data_dir}")
    say(f"initialized: {'yes' if s.initialized else 'no'}")
    say(f"running:     {'yes, pid ' + str(s.pid) if s.running else 'no'}")
    watcher = embedded.watcher_pid(s.data_dir)
    say(f"watcher:     {'yes, pid ' + str(watcher) if watcher else 'no'}")
    if not s.running:
        raise typer.Exit(1)


@app.command("url")
def db_url() -> None:
    """Print the embedded server's URL (a superuser: scope is set per transaction).

    Example: export MAIMDB_DSN="$(maimdb db url)"
    """
    print(as_url(embedded.running(_data_dir(), settings().database)))


@app.command("dump")
def db_dump(
    file: Annotated[Path, typer.Argument(help="The dump file to write (mode 0600).")],
    dsn: Dsn = None,
) -> None:
    """Dump the whole database (every tenant, sealed secrets) to one 0600 file.

    pg_dump's custom format: the embedded server with its own pg_dump, MAIMDB_DSN's with the
    PATH's (which must be the server's version or newer). Connect as a superuser or a
    BYPASSRLS login: row-level security hides rows from anyone else.

    Example: maimdb db dump backups/maim-$(date +%F).dump
    """
    source, size = backup.dump(file, dsn)
    say(f"dumped {source} to {file} ({size} bytes, mode 0600): it holds every tenant's data "
        "and sealed secrets, which open only with this deployment's MAIMDB_SECRET_KEY; keep "
        "both, apart")


@app.command("restore")
def db_restore(
    file: Annotated[Path, typer.Argument(help="A file `maimdb db dump` wrote.")],
    dsn: Dsn = None,
) -> None:
    """Restore a dump into an empty database: all of it, or nothing.

    Creates the maim roles first where the server lacks them, restores in one transaction,
    then audits the result (exit 1 on any finding).

    Example: maimdb db reset --yes && maimdb db restore backups/maim-2025-01-31.dump
    """
    done = backup.restore(file, dsn)
    say(f"restored {file} into {done.database}: {done.tables} tables")
    if done.findings:
        for finding in done.findings:
            say(f"audit: {finding}")
        raise typer.Exit(1)
    say("audit: no findings; run `maimdb migrate` if this maim_db is newer than the dump")


@app.command("reset")
def db_reset(yes: Yes = False) -> None:
    """Drop the embedded server's database and create it empty (asks first).

    Every tenant's data goes; then `maimdb migrate`, or `maimdb db restore FILE`. Refused when
    MAIMDB_DSN is set: it is for the embedded server only.

    Example: maimdb db reset --yes
    """
    if settings().dsn:
        backup.reset()  # refuses before asking anything
    embedded.running(_data_dir(), settings().database)  # none, or stopped: say so, not ask
    confirm(f"Drop database {settings().database!r} of the embedded server in {_data_dir()}, "
            "with every tenant's data, and create it empty? This cannot be undone", yes)
    say(f"reset {backup.reset()}: it is empty; `maimdb migrate` or `maimdb db restore FILE`")


ROLE_CHOICES = {"app": "maim_app", "tenant": "maim_tenant", "admin": "maim_admin",
                "plugin": "maim_plugin", "owner": "maim_owner"}


@app.command("psql", context_settings={"allow_extra_args": True,
                                       "ignore_unknown_options": True})
def db_psql(
    ctx: typer.Context,
    role: Annotated[str, typer.Option("--as", help="Role for the session: app, tenant, admin, "
                                      "plugin or owner.")] = "app",
    dsn: Dsn = None,
) -> None:
    """Open psql as a maim role, so row-level security applies: on MAIMDB_DSN's server, else
    the embedded one. Arguments after the options go to psql (-c, -f, …).

    Example: maimdb db psql --as app, then:
    BEGIN; SET LOCAL maim.agent_id = 'agent_3f9a1c2b7d4e'; SELECT id FROM agents; COMMIT;
    (--as plugin: BEGIN; SELECT maim.open_key_scope('mmc_…'); … COMMIT;)
    """
    if role not in ROLE_CHOICES:
        raise typer.BadParameter(f"must be one of {', '.join(ROLE_CHOICES)}, got {role!r}",
                                 param_hint="--as")
    url = resolve_dsn(dsn)
    psql = str(embedded.bin_dir() / "psql")
    options = " ".join(filter(None, (os.environ.get("PGOPTIONS"),
                                     f"-c role={ROLE_CHOICES[role]}")))
    env = dict(os.environ, PGOPTIONS=options)
    params = conninfo_to_dict(url)
    if params.get("password"):  # in the environment, not in argv where `ps` shows it
        env["PGPASSWORD"] = str(params.pop("password"))
    sys.stdout.flush()
    os.execve(psql, [psql, as_url(make_conninfo("", **params)), *ctx.args], env)
