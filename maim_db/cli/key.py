"""``maimdb key``: API keys; a secret is shown once, when it is issued (admin scope)."""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from ..control import keys, tenancy
from .options import App, Dsn, Json, Limit, Offset, admin, finite
from .output import dumps, emit, err, plain, say

COLUMNS = ("id", "name", "agent_id", "key_prefix", "permissions", "status", "expires_at",
           "last_used_at", "usage_count")

app = App(help="API keys: the secret is shown once.", no_args_is_help=True)


@app.command("create")
def key_create(name: str,
               agent: Annotated[str, typer.Option("--agent", help="The agent the key opens.")],
               dsn: Dsn = None, as_json: Json = False,
               permission: Annotated[list[str] | None, typer.Option(
                   "--permission", "-p", help="chat, config_read, config_write, analytics; "
                   "repeat for several.")] = None,
               expires_in_days: Annotated[int | None, typer.Option(
                   min=1, max=36500, help="Days until the key stops working.")] = None,
               ) -> None:
    """Issue a key for an agent; prints the secret this once.

    Example: maimdb key create runtime --agent agent_1a2b3c4d5e6f -p chat --json
    """
    expires = (datetime.now(UTC) + timedelta(days=expires_in_days)) if expires_in_days else None
    with admin(dsn) as db:
        issued = keys.issue(db, agent_id=agent, name=name, permissions=permission or ["chat"],
                            expires_at=expires)
    err.print("[yellow]warning:[/] the secret is shown only now; store it safely.")
    _show_issued(issued, as_json)


def _show_issued(issued: keys.IssuedKey, as_json: bool) -> None:
    if as_json:
        print(dumps({**plain(issued.record), "secret": issued.secret}))
    else:
        emit(issued.record, False, COLUMNS)
        say(f"secret: {issued.secret}")


@app.command("list")
def key_list(dsn: Dsn = None, as_json: Json = False,
             tenant: Annotated[str | None, typer.Option()] = None,
             agent: Annotated[str | None, typer.Option()] = None,
             status: Annotated[str | None, typer.Option(help="active|disabled|expired")] = None,
             limit: Limit = 50, offset: Offset = 0) -> None:
    """List keys (never their secrets), newest first.

    Example: maimdb key list --agent agent_1a2b3c4d5e6f --status active
    """
    with admin(dsn) as db:
        page = tenancy.list_keys(db, tenant_id=tenant, agent_id=agent,
                                 status=status,  # type: ignore[arg-type]
                                 limit=limit, offset=offset)
    emit(page.items, as_json, COLUMNS, page.total)


@app.command("revoke")
def key_revoke(key_id: str, dsn: Dsn = None, as_json: Json = False) -> None:
    """Disable a key now.

    Example: maimdb key revoke key_1a2b3c4d5e6f
    """
    with admin(dsn) as db:
        row = keys.revoke(db, key_id)
    emit(row, as_json, COLUMNS)


@app.command("rotate")
def key_rotate(key_id: str, dsn: Dsn = None, as_json: Json = False,
               grace_hours: Annotated[float, typer.Option(
                   min=0, max=24 * 365, callback=finite,
                   help="How long the old key keeps working (hours).")
               ] = 24.0) -> None:
    """Issue a replacement key; the old one works for --grace-hours more.

    Example: maimdb key rotate key_1a2b3c4d5e6f --grace-hours 2 --json
    """
    until = datetime.now(UTC) + timedelta(hours=grace_hours)
    with admin(dsn) as db:
        issued = keys.rotate(db, key_id, old_valid_until=until)
    err.print("[yellow]warning:[/] the new secret is shown only now; store it safely.")
    _show_issued(issued, as_json)


@app.command("check")
def key_check(secret: Annotated[str | None, typer.Option(
                  envvar="MAIMDB_API_KEY",
                  help="The key; when not given, asked for on the terminal (or read as one "
                       "line from a pipe), so it stays out of shell history.")] = None,
              dsn: Dsn = None, as_json: Json = False) -> None:
    """Resolve a key the way the runtime does (counts as a use); exit 1 if it is refused.

    Example: MAIMDB_API_KEY=mmc_… maimdb key check --json
    """
    if secret is None:
        secret = _read_secret()
    with admin(dsn) as db:
        resolved = keys.resolve_in(db, secret)
    data = {"agent_id": resolved.agent_id, "tenant_id": resolved.tenant_id,
            "key_id": resolved.key_id, "permissions": list(resolved.permissions)}
    emit(data, as_json)


def _read_secret() -> str:
    """The key from the terminal, unechoed, the prompt on stderr (stdout is the result); from a
    pipe, its first line, without a prompt or a warning."""
    if sys.stdin.isatty():
        return getpass.getpass("API key: ", stream=sys.stderr)
    return sys.stdin.readline().strip()
