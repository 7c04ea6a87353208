"""``maimdb tenant|agent|key|config``: the control plane from a terminal. Everything runs in
admin scope against ``MAIMDB_DSN`` (or the embedded server). Rich tables by default,
``--json`` for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.table import Table

from maim_db import Database, MaimDBError, connect, keys, tenancy, transfer
from maim_db import config_document as cd
from maim_db.tables import Agent

from .output import cell, dumps, err, fail, out, say

Dsn = Annotated[str | None, typer.Option("--dsn", envvar="MAIMDB_DSN",
                                          help="PostgreSQL DSN; default: the embedded server.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Limit = Annotated[int, typer.Option("--limit", min=1, max=tenancy.MAX_PAGE)]
Offset = Annotated[int, typer.Option("--offset", min=0)]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


@contextmanager
def admin(dsn: str | None) -> Iterator[Database]:
    """One admin-scope transaction; a maim_db error becomes one line on stderr and exit 1."""
    try:
        with connect(dsn, admin=True) as db:
            yield db
    except MaimDBError as e:
        fail(e)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude={"key_hash"})
    return value


def emit(rows: BaseModel | Sequence[BaseModel] | dict[str, Any], as_json: bool,
         columns: Sequence[str] = (), total: int | None = None) -> None:
    if as_json:
        data: Any = ([_plain(r) for r in rows] if isinstance(rows, list | tuple)
                     else _plain(rows))
        if total is not None:
            data = {"items": data, "total": total}
        print(dumps(data))
        return
    items = rows if isinstance(rows, list | tuple) else [rows]
    if isinstance(rows, dict):
        table = Table("key", "value")
        for k, v in rows.items():
            table.add_row(cell(k), cell(json.dumps(v, ensure_ascii=False)
                                        if not isinstance(v, str) else v))
    else:
        table = Table(*columns)
        for r in items:
            dumped = _plain(r)
            table.add_row(*(cell(dumped.get(c, "")) for c in columns))
    out.print(table)
    if total is not None:
        say(f"{len(items)} of {total}")


def confirm(question: str, yes: bool) -> None:
    if not yes and not typer.confirm(question, default=False):
        fail(MaimDBError("aborted: nothing was changed"))


TENANT_COLUMNS = ("id", "tenant_name", "tenant_type", "status", "owner_id", "created_at")
AGENT_COLUMNS = ("id", "name", "tenant_id", "status", "created_at")
KEY_COLUMNS = ("id", "name", "agent_id", "key_prefix", "permissions", "status", "expires_at",
               "last_used_at", "usage_count")

# -- tenant ----------------------------------------------------------------------------------

tenant_app = typer.Typer(help="Tenants: an owner's group of agents.", no_args_is_help=True)


@tenant_app.command("create")
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
    emit(row, as_json, TENANT_COLUMNS)


@tenant_app.command("list")
def tenant_list(dsn: Dsn = None, as_json: Json = False,
                owner: Annotated[str | None, typer.Option(help="Only this owner's.")] = None,
                status: Annotated[str | None, typer.Option(
                    help="active|inactive|suspended")] = None,
                limit: Limit = 50, offset: Offset = 0) -> None:
    """List tenants, newest first.

    Example: maimdb tenant list --owner user_1a2b3c4d5e6f --limit 20
    """
    with admin(dsn) as db:
        page = tenancy.list_tenants(db, owner_id=owner, status=status,  # type: ignore[arg-type]
                                    limit=limit, offset=offset)
    emit(page.items, as_json, TENANT_COLUMNS, page.total)


def _tenant_status(status: str) -> Callable[[str, str | None, bool], None]:
    def command(tenant_id: str, dsn: Dsn = None, as_json: Json = False) -> None:
        with admin(dsn) as db:
            row = tenancy.set_tenant_status(db, tenant_id, status)  # type: ignore[arg-type]
        emit(row, as_json, TENANT_COLUMNS)
    return command


tenant_app.command("suspend", help="Suspend a tenant: none of its agents may act.\n\n"
                   "Example: maimdb tenant suspend tenant_1a2b3c4d5e6f"
                   )(_tenant_status("suspended"))
tenant_app.command("activate", help="Reactivate a tenant.\n\n"
                   "Example: maimdb tenant activate tenant_1a2b3c4d5e6f"
                   )(_tenant_status("active"))


@tenant_app.command("rename")
def tenant_rename(tenant_id: str, name: str, dsn: Dsn = None, as_json: Json = False) -> None:
    """Rename a tenant.

    Example: maimdb tenant rename tenant_1a2b3c4d5e6f "Team bots"
    """
    with admin(dsn) as db:
        row = tenancy.rename_tenant(db, tenant_id, name)
    emit(row, as_json, TENANT_COLUMNS)


@tenant_app.command("delete")
def tenant_delete(tenant_id: str, dsn: Dsn = None, as_json: Json = False,
                  yes: Yes = False) -> None:
    """Delete a tenant, its agents and all their data; report what went per table.

    Example: maimdb tenant delete tenant_1a2b3c4d5e6f --yes
    """
    confirm(f"Delete tenant {tenant_id} and everything of its agents?", yes)
    with admin(dsn) as db:
        removed = tenancy.delete_tenant(db, tenant_id)
    emit(removed, as_json)


# -- agent -----------------------------------------------------------------------------------

agent_app = typer.Typer(help="Agents: one bot persona each.", no_args_is_help=True)


@agent_app.command("create")
def agent_create(name: str,
                 tenant: Annotated[str, typer.Option("--tenant", help="The owning tenant id.")],
                 dsn: Dsn = None, as_json: Json = False,
                 description: Annotated[str | None, typer.Option()] = None) -> None:
    """Create an agent in a tenant.

    Example: maimdb agent create 麦麦 --tenant tenant_1a2b3c4d5e6f --json
    """
    with admin(dsn) as db:
        row = tenancy.create_agent(db, name, tenant_id=tenant, description=description)
    emit(row, as_json, AGENT_COLUMNS)


@agent_app.command("list")
def agent_list(dsn: Dsn = None, as_json: Json = False,
               tenant: Annotated[str | None, typer.Option(help="Only this tenant's.")] = None,
               status: Annotated[str | None, typer.Option()] = None,
               limit: Limit = 50, offset: Offset = 0) -> None:
    """List agents, newest first.

    Example: maimdb agent list --tenant tenant_1a2b3c4d5e6f
    """
    with admin(dsn) as db:
        page = tenancy.list_agents(db, tenant_id=tenant, status=status,  # type: ignore[arg-type]
                                   limit=limit, offset=offset)
    emit(page.items, as_json, AGENT_COLUMNS, page.total)


@agent_app.command("show")
def agent_show(agent_id: str, dsn: Dsn = None, as_json: Json = False) -> None:
    """Show one agent.

    Example: maimdb agent show agent_1a2b3c4d5e6f --json
    """
    with admin(dsn) as db:
        row = db.get(Agent, agent_id)
    emit(row, as_json, AGENT_COLUMNS)


def _agent_status(status: str) -> Callable[[str, str | None, bool], None]:
    def command(agent_id: str, dsn: Dsn = None, as_json: Json = False) -> None:
        with admin(dsn) as db:
            row = tenancy.set_agent_status(db, agent_id, status)  # type: ignore[arg-type]
        emit(row, as_json, AGENT_COLUMNS)
    return command


agent_app.command("suspend", help="Suspend an agent: it can no longer open scope or use its "
                  "keys; its data stays.\n\nExample: maimdb agent suspend agent_1a2b3c4d5e6f"
                  )(_agent_status("suspended"))
agent_app.command("activate", help="Reactivate an agent.\n\n"
                  "Example: maimdb agent activate agent_1a2b3c4d5e6f")(_agent_status("active"))
agent_app.command("archive", help="Archive an agent (keeps data, stops it).\n\n"
                  "Example: maimdb agent archive agent_1a2b3c4d5e6f")(_agent_status("archived"))


@agent_app.command("rename")
def agent_rename(agent_id: str, name: str, dsn: Dsn = None, as_json: Json = False) -> None:
    """Rename an agent (names are unique per tenant).

    Example: maimdb agent rename agent_1a2b3c4d5e6f 小麦
    """
    with admin(dsn) as db:
        row = tenancy.rename_agent(db, agent_id, name)
    emit(row, as_json, AGENT_COLUMNS)


@agent_app.command("delete")
def agent_delete(agent_id: str, dsn: Dsn = None, as_json: Json = False, yes: Yes = False) -> None:
    """Delete an agent and every row it owns; report what went per table.

    Example: maimdb agent delete agent_1a2b3c4d5e6f --yes --json
    """
    confirm(f"Delete agent {agent_id} and all its data?", yes)
    with admin(dsn) as db:
        removed = tenancy.delete_agent(db, agent_id)
    emit(removed, as_json)


# -- key -------------------------------------------------------------------------------------

key_app = typer.Typer(help="API keys: the secret is shown once.", no_args_is_help=True)


@key_app.command("create")
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
        print(dumps({**_plain(issued.record), "secret": issued.secret}))
    else:
        emit(issued.record, False, KEY_COLUMNS)
        say(f"secret: {issued.secret}")


@key_app.command("list")
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
    emit(page.items, as_json, KEY_COLUMNS, page.total)


@key_app.command("revoke")
def key_revoke(key_id: str, dsn: Dsn = None, as_json: Json = False) -> None:
    """Disable a key now.

    Example: maimdb key revoke key_1a2b3c4d5e6f
    """
    with admin(dsn) as db:
        row = keys.revoke(db, key_id)
    emit(row, as_json, KEY_COLUMNS)


@key_app.command("rotate")
def key_rotate(key_id: str, dsn: Dsn = None, as_json: Json = False,
               grace_hours: Annotated[float, typer.Option(
                   min=0, max=24 * 365, help="How long the old key keeps working (hours).")
               ] = 24.0) -> None:
    """Issue a replacement key; the old one works for --grace-hours more.

    Example: maimdb key rotate key_1a2b3c4d5e6f --grace-hours 2 --json
    """
    until = datetime.now(UTC) + timedelta(hours=grace_hours)
    with admin(dsn) as db:
        issued = keys.rotate(db, key_id, old_valid_until=until)
    err.print("[yellow]warning:[/] the new secret is shown only now; store it safely.")
    _show_issued(issued, as_json)


@key_app.command("check")
def key_check(secret: Annotated[str, typer.Option(
                  prompt="API key", hide_input=True, envvar="MAIMDB_API_KEY",
                  help="The key; asked for when not given, so it stays out of shell history.")],
              dsn: Dsn = None, as_json: Json = False) -> None:
    """Resolve a key the way the runtime does (counts as a use); exit 1 if it is refused.

    Example: MAIMDB_API_KEY=mmc_… maimdb key check --json
    """
    with admin(dsn) as db:
        resolved = keys.resolve_in(db, secret)
    data = {"agent_id": resolved.agent_id, "tenant_id": resolved.tenant_id,
            "key_id": resolved.key_id, "permissions": list(resolved.permissions)}
    emit(data, as_json)


# -- config ----------------------------------------------------------------------------------

config_app = typer.Typer(help="Agent configuration documents.", no_args_is_help=True)


@config_app.command("show")
def config_show(agent_id: str, dsn: Dsn = None,
                reveal: Annotated[bool, typer.Option(
                    help="Decrypt provider secrets (needs MAIMDB_SECRET_KEY).")] = False) -> None:
    """Print an agent's configuration document as JSON (secrets masked).

    Example: maimdb config show agent_1a2b3c4d5e6f > config.json
    """
    with admin(dsn) as db:
        doc = cd.read(db, agent_id, reveal=reveal)
    print(dumps(doc))


@config_app.command("set")
def config_set(agent_id: str,
               file: Annotated[Path, typer.Argument(help="A (partial) JSON document; - for "
                                                         "stdin.")],
               dsn: Dsn = None) -> None:
    """Apply a partial configuration document; only the fields sent change.

    Example: echo '{"config_overrides":{"chat":{"talk_value":0.5}}}' |
    maimdb config set agent_1a2b3c4d5e6f -
    """
    text = sys.stdin.read() if str(file) == "-" else _read_text(file)
    try:
        patch = json.loads(text)
    except json.JSONDecodeError as e:
        fail(MaimDBError(f"not valid JSON: {e}"))
    with admin(dsn) as db:
        doc = cd.update(db, patch, agent_id)
    print(dumps(doc))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        fail(MaimDBError(f"cannot read {path}: {e.strerror}"))


@config_app.command("import-toml")
def config_import_toml(agent_id: str,
                       bot_config: Annotated[Path, typer.Argument(help="bot_config.toml")],
                       models: Annotated[Path | None, typer.Option(
                           "--models", help="model_config.toml")] = None,
                       dsn: Dsn = None) -> None:
    """Load a single-user MaiBot's bot_config.toml (and model_config.toml) into an agent.

    Example: maimdb config import-toml agent_1a2b3c4d5e6f bot_config.toml
    --models model_config.toml
    """
    try:
        patch, skipped = cd.from_toml(_read_text(bot_config),
                                      _read_text(models) if models else None)
    except MaimDBError as e:
        fail(e)
    with admin(dsn) as db:
        cd.update(db, patch, agent_id)
    say(f"imported into {agent_id}")
    if skipped:
        out.print("skipped (no column for these MaiBot settings): " + ", ".join(skipped))


@config_app.command("export-toml")
def config_export_toml(agent_id: str,
                       out_dir: Annotated[Path, typer.Option("--out", help="Directory.")],
                       dsn: Dsn = None,
                       reveal: Annotated[bool, typer.Option(
                           help="Write real provider secrets (needs MAIMDB_SECRET_KEY).")
                       ] = False) -> None:
    """Write bot_config.toml and model_config.toml in MaiBot's layout.

    Example: maimdb config export-toml agent_1a2b3c4d5e6f --out ./exported
    """
    with admin(dsn) as db:
        doc = cd.read(db, agent_id, reveal=reveal)
    bot, model = cd.to_toml(doc)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in (("bot_config.toml", bot), ("model_config.toml", model)):
            with transfer.private_file(out_dir / name, replace=True) as f:  # may hold secrets
                f.write(text.encode())
    except (OSError, MaimDBError) as e:
        fail(e)
    say(f"wrote {out_dir / 'bot_config.toml'} and {out_dir / 'model_config.toml'}")


def register(app: typer.Typer) -> None:
    app.add_typer(tenant_app, name="tenant")
    app.add_typer(agent_app, name="agent")
    app.add_typer(key_app, name="key")
    app.add_typer(config_app, name="config")
