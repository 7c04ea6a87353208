"""``maimdb agent``: agents, one bot persona each (admin scope)."""

from __future__ import annotations

from typing import Annotated, get_args

import typer

from ..control import tenancy
from ..tables import Agent
from ..tables.control_plane import AgentStatus
from .options import App, Dsn, Json, Limit, Offset, Yes, admin, confirm, status_command
from .output import emit, fields

COLUMNS = ("id", "name", "tenant_id", "status", "created_at")

app = App(help="Agents: one bot persona each.", no_args_is_help=True)


@app.command("create")
def agent_create(name: str,
                 tenant: Annotated[str, typer.Option("--tenant", help="The owning tenant id.")],
                 dsn: Dsn = None, as_json: Json = False,
                 description: Annotated[str | None, typer.Option()] = None) -> None:
    """Create an agent in a tenant.

    Example: maimdb agent create 麦麦 --tenant tenant_1a2b3c4d5e6f --json
    """
    with admin(dsn) as db:
        row = tenancy.create_agent(db, name, tenant_id=tenant, description=description)
    emit(row, as_json, COLUMNS)


@app.command("list")
def agent_list(dsn: Dsn = None, as_json: Json = False,
               tenant: Annotated[str | None, typer.Option(help="Only this tenant's.")] = None,
               status: Annotated[str | None, typer.Option(
                   help="|".join(get_args(AgentStatus)))] = None,
               limit: Limit = 50, offset: Offset = 0) -> None:
    """List agents, newest first.

    Example: maimdb agent list --tenant tenant_1a2b3c4d5e6f
    """
    with admin(dsn) as db:
        page = tenancy.list_agents(db, tenant_id=tenant, status=status,  # type: ignore[arg-type]
                                   limit=limit, offset=offset)
    emit(page.items, as_json, COLUMNS, page.total)


@app.command("show")
def agent_show(agent_id: str, dsn: Dsn = None, as_json: Json = False) -> None:
    """Show one agent, every field.

    Example: maimdb agent show agent_1a2b3c4d5e6f --json
    """
    with admin(dsn) as db:
        row = db.get(Agent, agent_id)
    emit(row if as_json else fields(row), as_json)


for verb, status, text in (
        ("suspend", "suspended", "Suspend an agent: it can no longer open scope or use its keys; "
                                 "its data stays."),
        ("activate", "active", "Reactivate an agent."),
        ("archive", "archived", "Archive an agent (keeps data, stops it).")):
    app.command(verb, help=f"{text}\n\nExample: maimdb agent {verb} agent_1a2b3c4d5e6f")(
        status_command(tenancy.set_agent_status, status, COLUMNS, "AGENT_ID"))


@app.command("rename")
def agent_rename(agent_id: str, name: str, dsn: Dsn = None, as_json: Json = False) -> None:
    """Rename an agent (names are unique per tenant).

    Example: maimdb agent rename agent_1a2b3c4d5e6f 小麦
    """
    with admin(dsn) as db:
        row = tenancy.rename_agent(db, agent_id, name)
    emit(row, as_json, COLUMNS)


@app.command("delete")
def agent_delete(agent_id: str, dsn: Dsn = None, as_json: Json = False, yes: Yes = False) -> None:
    """Delete an agent and every row it owns; report what went per table.

    Example: maimdb agent delete agent_1a2b3c4d5e6f --yes --json
    """
    confirm(f"Delete agent {agent_id} and all its data?", yes)
    with admin(dsn) as db:
        removed = tenancy.delete_agent(db, agent_id)
    emit(removed, as_json)
