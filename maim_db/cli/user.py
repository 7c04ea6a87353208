"""``maimdb user``: the people who own tenants (admin scope). Logins are the web back end's."""

from __future__ import annotations

from typing import Annotated

import typer

from ..control import tenancy
from .options import App, Dsn, Json, Limit, Offset, admin
from .output import emit

COLUMNS = ("id", "username", "email", "is_active", "created_at")

app = App(help="Users: the owners of tenants.", no_args_is_help=True)


@app.command("create")
def user_create(username: str, dsn: Dsn = None, as_json: Json = False,
                email: Annotated[str | None, typer.Option(help="Their e-mail address.")] = None,
                ) -> None:
    """Create a user to own tenants (tenant create --owner). They have no password: the web
    back end sets one.

    Example: maimdb user create alice --email alice@example.com --json
    """
    with admin(dsn) as db:
        row = tenancy.create_user(db, username, email=email)
    emit(row, as_json, COLUMNS)


@app.command("list")
def user_list(dsn: Dsn = None, as_json: Json = False, limit: Limit = 50,
              offset: Offset = 0) -> None:
    """List users, newest first.

    Example: maimdb user list --json
    """
    with admin(dsn) as db:
        page = tenancy.list_users(db, limit=limit, offset=offset)
    emit(page.items, as_json, COLUMNS, page.total)
