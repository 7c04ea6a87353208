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
from .options import App, Dsn, Json
from .output import dumps, out, say

app = App(help="The embedded PostgreSQL server (used when MAIMDB_DSN is unset).",
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


@app.command("stop")
def db_stop() -> None:
    """Stop the embedded server; the data stays.

    Example: maimdb db stop
    """
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
                     "running": s.running, "pid": s.pid}))
        if not s.running:
            raise typer.Exit(1)
        return
    say(f"data dir:    {s.data_dir}")
    say(f"initialized: {'yes' if s.initialized else 'no'}")
    say(f"running:     {'yes, pid ' + str(s.pid) if s.running else 'no'}")
    if not s.running:
        raise typer.Exit(1)


@app.command("url")
def db_url() -> None:
    """Print the embedded server's URL (a superuser: scope is set per transaction).

    Example: export MAIMDB_DSN="$(maimdb db url)"
    """
    print(as_url(embedded.running(_data_dir(), settings().database)))


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
