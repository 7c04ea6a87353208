"""What the commands share: their options, defined once, and the admin-scope block."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from typer import _click
from typer.core import TyperCommand, TyperGroup, TyperOption
from typer.models import CommandFunctionType

from .. import Block, MaimDBError, connect
from ..control import tenancy
from .output import emit

Dsn = Annotated[str | None, typer.Option(
    "--dsn", envvar="MAIMDB_DSN", show_envvar=True,
    help="PostgreSQL DSN; default: the embedded server.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Limit = Annotated[int, typer.Option("--limit", min=1, max=tenancy.MAX_PAGE)]
Offset = Annotated[int, typer.Option("--offset", min=0)]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
Agent = Annotated[str, typer.Option("--agent", help="The agent (agent_…) whose rows these are.")]


def finite(value: float) -> float:
    """An option's number is a number: typer 0.27 (the floor) lets ``nan`` through a range."""
    if value != value:  # NaN is the one float unequal to itself
        raise typer.BadParameter("must be a number, not nan")
    return value


class _UntypedSwitches(_click.Command):
    """A flag takes no value, so `--help` shows none: `--yes`, not `--yes <bool>` (mixed into
    typer's command and group classes, which share only click's Command)."""

    def get_params(self, ctx: _click.Context) -> list[_click.Parameter]:
        params = super().get_params(ctx)
        for p in params:
            if isinstance(p, TyperOption) and p.is_flag and p.metavar is None:
                p.metavar = ""
        return params


class Command(_UntypedSwitches, TyperCommand):
    pass


class Group(_UntypedSwitches, TyperGroup):
    pass


class App(typer.Typer):
    """``typer.Typer`` whose groups and commands print flags without a type."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=Group, **kwargs)

    def command(self, name: str | None = None, **kwargs: Any
                ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        return super().command(name, cls=Command, **kwargs)


def admin(dsn: str | None) -> AbstractContextManager[Block]:
    """One admin-scope transaction: the control-plane commands are the operator's."""
    return connect(dsn, admin=True)


def confirm(question: str, yes: bool) -> None:
    """Ask before a destructive change unless ``--yes``; off a terminal, refuse to guess."""
    if yes:
        return
    if not typer.get_text_stream("stdin").isatty():
        raise MaimDBError("this asks for confirmation; pass --yes when not on a terminal")
    if not typer.confirm(question, default=False):
        raise MaimDBError("aborted: nothing was changed")


def status_command(change: Callable[[Block, str, Any], BaseModel], status: str,
                   columns: Sequence[str], metavar: str) -> Callable[..., None]:
    """A command that sets one status (``suspend``, ``activate``, …) and shows the row."""
    def command(target: str = typer.Argument(..., metavar=metavar), dsn: Dsn = None,
                as_json: Json = False) -> None:
        with admin(dsn) as db:
            row = change(db, target, status)
        emit(row, as_json, columns)
    return command
