"""``maimdb tenant``: tenants, an owner's group of agents (admin scope)."""

from __future__ import annotations

from typing import Annotated, get_args

import typer

from ..control import tenancy
from ..tables.control_plane import TenantStatus
from .options import App, Dsn, Json, Limit, Offset, Yes, admin, confirm, status_command
from .output import emit

COLUMNS = ("id", "tenant_name", "tenant_type", "status", "owner_id", "created_at")

app = App(help="Tenants: an owner's group of agents.", no_args_is_help=True)


@app.command("create")
def tenant_create(name: str, dsn: Dsn = None, as_json: Json = False,
                  owner: Annotated[str | None, typer.Option(help="Owning user id.")] = None,
                  tenant_type: Annotated[str, typer.Option(
                      "--type", help="personal|enterprise")] = "personal",
                  ) -> None:
    """Create a tenant.

    Example: maimdb tenant create "Alice's bots" --json
    """
    with admin(dsn) as db:
        row = tenancy.create_tenant(db, name, owner_id=owner,
                                    tenant_type=tenant_type)  # type: ignore[arg-type]
    emit(row, as_json, COLUMNS)


@app.command("list")
def tenant_list(dsn: Dsn = None, as_json: Json = False,
                owner: Annotated[str | None, typer.Option(help="Only this owner's.")] = None,
                status: Annotated[str | None, typer.Option(
                    help="|".join(get_args(TenantStatus)))] = None,
                limit: Limit = 50, offset: Offset = 0) -> None:
    """List tenants, newest first.

    Example: maimdb tenant list --owner user_1a2b3c4d5e6f --limit 20
    """
    with admin(dsn) as db:
        page = tenancy.list_tenants(db, owner_id=owner, status=status,  # type: ignore[arg-type]
                                    limit=limit, offset=offset)
    emit(page.items, as_json, COLUMNS, page.total)


for verb, status, text in (
        ("suspend", "suspended", "Suspend a tenant: none of its agents may act."),
        ("activate", "active", "Reactivate a tenant.")):
    app.command(verb, help=f"{text}\n\nExample: maimdb tenant {verb} tenant_1a2b3c4d5e6f")(
        status_command(tenancy.set_tenant_status, status, COLUMNS, "TENANT_ID"))


@app.command("rename")
def tenant_rename(tenant_id: str, name: str, dsn: Dsn = None, as_json: Json = False) -> None:
    """Rename a tenant.

    Example: maimdb tenant rename tenant_1a2b3c4d5e6f "Team bots"
    """
    with admin(dsn) as db:
        row = tenancy.rename_tenant(db, tenant_id, name)
    emit(row, as_json, COLUMNS)


@app.command("delete")
def tenant_delete(tenant_id: str, dsn: Dsn = None, as_json: Json = False,
                  yes: Yes = False) -> None:
    """Delete a tenant, its agents and all their data; report what went per table.

    Example: maimdb tenant delete tenant_1a2b3c4d5e6f --yes
    """
    confirm(f"Delete tenant {tenant_id} and everything of its agents?", yes)
    with admin(dsn) as db:
        removed = tenancy.delete_tenant(db, tenant_id)
    emit(removed, as_json)
