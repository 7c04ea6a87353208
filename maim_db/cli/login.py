"""``maimdb login``: one login per service, each in the one maim role it needs (run as the
migrator; docs/operations.md, "A production install")."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..schema import logins
from .options import App, Dsn, Json
from .output import cell, dumps, emit, out, say

app = App(help="Logins for the services: each holds one maim role (run as the migrator).",
          no_args_is_help=True)

Kind = Annotated[str, typer.Option(
    "--as", help="The service: admin (control plane), app (runtime), tenant (web back end) "
                 "or plugin.")]


def _kind(kind: str) -> str:
    if kind not in logins.KINDS:
        raise typer.BadParameter(f"must be one of {', '.join(logins.KINDS)}, got {kind!r}",
                                 param_hint="--as")
    return kind


def _password() -> str:
    """One line from stdin, the line end dropped: never an argument (`ps` shows those)."""
    line = typer.get_text_stream("stdin").readline()
    return line.removesuffix("\n").removesuffix("\r")


@app.command("create")
def login_create(name: str, kind: Kind, dsn: Dsn = None, as_json: Json = False,
                 password_stdin: Annotated[bool, typer.Option(
                     "--password-stdin", help="Read the password from the first line of "
                     "stdin (without it the login has none: certificate or peer "
                     "authentication).")] = False) -> None:
    """Make a login for one service, in the one maim role it needs.

    The password is sent as a SCRAM verifier and never printed.

    Example: maimdb login create maibot_runtime --as app --password-stdin < password.txt
    """
    kind = _kind(kind)
    password = _password() if password_stdin else None
    made = logins.create(dsn, name, kind, password=password)
    result = {"login": made.login, "role": logins.KINDS[kind], "password": password is not None}
    if as_json:
        print(dumps(result))
    else:
        say(f"login {made.login}: in {result['role']}, "
            + ("password set" if password is not None else "no password"))


@app.command("grant")
def login_grant(name: str, kind: Kind, dsn: Dsn = None, as_json: Json = False) -> None:
    """Put an existing login in the maim role of one service.

    Refused if it can already become another maim role, bypasses row-level security, can
    create roles, or has members.

    Example: maimdb login grant maibot_runtime --as app
    """
    kind = _kind(kind)
    made = logins.grant(dsn, name, kind)
    if as_json:
        print(dumps({"login": made.login, "role": logins.KINDS[kind]}))
    else:
        say(f"login {made.login}: in {logins.KINDS[kind]}")


@app.command("list")
def login_list(dsn: Dsn = None, as_json: Json = False) -> None:
    """List the logins that can become a maim role, and what is unsafe about them.

    Superusers are left out: row-level security does not apply to them.

    Example: maimdb login list --json
    """
    found = logins.list_logins(dsn)
    if as_json:
        emit(found, True, (), len(found))
        return
    table = Table("login", "roles", "problems")
    for row in found:
        table.add_row(cell(row.login), cell(", ".join(row.roles)),
                      cell("; ".join(row.problems) or "none"))
    out.print(table)
