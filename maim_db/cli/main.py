"""``maimdb``: the command, assembled from one module per noun, and its one error boundary."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..errors import MaimDBError
from ..schema.migrate import load
from ..version import __version__
from . import (
    agent,
    config,
    key,
    login,
    schema,
    secrets,
    server,
    tenant,
    transfer,
    user,
    watch,
)
from .options import App
from .output import report

app = App(
    help="maim_db: the isolated data plane of multi-user MaiBot.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"maimdb {__version__} (schema {load()[-1].id})")
        raise typer.Exit()


@app.callback()
def _options(_version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print the version and the newest migration it carries, and exit.")] = False) -> None:
    """maim_db: the isolated data plane of multi-user MaiBot."""


schema.register(app)
transfer.register(app)
watch.register(app)
for name, noun in (("db", server), ("user", user), ("tenant", tenant), ("agent", agent),
                   ("key", key), ("config", config), ("secrets", secrets), ("login", login)):
    app.add_typer(noun.app, name=name)


def run() -> None:
    """The console script, and the one place the CLI handles errors: a maim_db error, or an
    OS error on a file named on the command line, is one line on stderr and exit 1, never a
    traceback. Commands just raise."""
    try:
        app()
    except MaimDBError as e:
        report(e)
        sys.exit(1)
    except OSError as e:
        report(MaimDBError(f"{e.filename}: {e.strerror}" if e.filename else str(e)))
        sys.exit(1)
