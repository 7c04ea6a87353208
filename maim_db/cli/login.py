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
    "--as", help="The service: admin (control plane), app (runtime), tenant (web back end), "
                 "plugin, or (create only) watcher (`maimdb watch`; needs a superuser).")]


def _kind(kind: str, *, watcher: bool = False) -> str:
    kinds = [*logins.KINDS, *(["watcher"] if watcher else [])]
    if kind not in kinds:
        raise typer.BadParameter(f"must be one of {', '.join(kinds)}, got {kind!r}",
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
                     "authentication).")] = False,
                 connection_limit: Annotated[int | None, typer.Option(
                     "--connection-limit", min=1, max=10000,
                     help="Connections it may hold at once (default: "
                     f"{logins.PLUGIN_CONNECTION_LIMIT} for a plugin, else no limit).")
                 ] = None) -> None:
    """Make a login for one service, in the one maim role it needs.

    The password is sent as a SCRAM verifier and never printed. A plugin's login may hold
    10 connections at once unless --connection-limit says otherwise.

    Example: maimdb login create maibot_runtime --as app --password-stdin < password.txt
    """
    kind = _kind(kind, watcher=True)
    password = _password() if password_stdin else None
    made = logins.create(dsn, name, kind, password=password, connection_limit=connection_limit)
    if connection_limit is None and kind == "plugin":
        connection_limit = logins.PLUGIN_CONNECTION_LIMIT
    result = {"login": made.login, "role": logins.role_of(kind),
              "password": password is not None, "connection_limit": connection_limit}
    if as_json:
        print(dumps(result))
    else:
        say(f"login {made.login}: in {result['role']}, "
            + ("password set" if password is not None else "no password")
            + (f", at most {connection_limit} connections" if connection_limit else ""))


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
