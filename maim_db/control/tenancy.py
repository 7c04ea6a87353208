"""Tenant and agent lifecycle for the control plane (admin scope): create, rename, suspend,
reactivate, archive, delete, and the paginated listings the web UI shows.

Suspending is enforced by the database, not here: ``maim.open_agent_scope`` and
``maim.resolve_api_key`` refuse an agent that is not active or whose tenant is not active.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, get_args

from psycopg import sql

from ..connection import Database
from ..errors import ConflictError, InputError, not_found
from ..ids import check, check_input, check_name, new_agent_id, new_tenant_id, new_user_id
from ..row import Row
from ..tables import ALL_ROWS, Agent, ApiKeyInfo, Tenant, User
from ..tables.control_plane import AgentStatus, ApiKeyStatus, TenantStatus, TenantType

T = TypeVar("T", bound=Row)
MAX_PAGE = 500


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing, newest first, and how many rows there are in all."""

    items: list[T]
    total: int
    limit: int
    offset: int


ID_FILTERS = {"owner_id": "user", "tenant_id": "tenant", "agent_id": "agent"}


def _filters(model: type[Row], where: dict[str, Any]) -> dict[str, Any]:
    """A filter that cannot match (a status the column does not allow, a malformed id) is a
    mistake to report, not an empty page."""
    given = {k: v for k, v in where.items() if v is not None}
    for column, value in given.items():
        if column in ID_FILTERS:
            check_input(ID_FILTERS[column], value)
        elif column == "status":
            allowed = get_args(model.model_fields["status"].annotation)
            if value not in allowed:
                raise InputError(f"status must be one of {', '.join(allowed)}; got {value!r}")
    return given


def _page(db: Database, model: type[T], where: dict[str, Any], limit: int,
          offset: int) -> Page[T]:
    for name, value, low in (("limit", limit, 1), ("offset", offset, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    if limit > MAX_PAGE:
        raise InputError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    where = _filters(model, where)
    total = db.scalar(*_count(model, where))
    query, params = _listing(model, where, limit, offset)
    return Page(db.fetch(model, query, params), int(total), limit, offset)


def _count(model: type[Row], where: dict[str, Any]) -> tuple[sql.Composed, list[Any]]:
    from ..statements import find

    inner, params = find(model, where, (), None)
    return sql.SQL("select count(*) from ({}) as rows").format(inner), params


def _listing(model: type[Row], where: dict[str, Any], limit: int,
             offset: int) -> tuple[sql.Composed, list[Any]]:
    from ..statements import find

    query, params = find(model, where, ["-created_at", "id"], limit)
    return sql.SQL("{} offset {}").format(query, sql.Literal(offset)), params


# -- users -----------------------------------------------------------------------------------

# The web back end owns logins and their hash scheme; a user made here has none yet. "!" is
# no scheme's hash (as in /etc/shadow), so no password matches it until the back end sets one.
NO_PASSWORD = "!"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


def create_user(db: Database, username: str, *, email: str | None = None) -> User:
    """A user who can own tenants, without a password (the web back end sets it)."""
    check_name("username", username)
    if email is not None and not _EMAIL.fullmatch(email):
        raise InputError(f"email must look like name@host, got {email!r}")
    for column, value in (("username", username), ("email", email)):
        if value is not None and db.rows(
                sql.SQL("select 1 from users where {} = %s").format(sql.Identifier(column)),
                [value]):
            raise ConflictError(f"a user with {column} {value!r} already exists")
    return db.insert(User.from_input(id=new_user_id(), username=username, email=email,
                                     hashed_password=NO_PASSWORD))


def list_users(db: Database, *, limit: int = 50, offset: int = 0) -> Page[User]:
    return _page(db, User, {}, limit, offset)


# -- tenants ---------------------------------------------------------------------------------

def create_tenant(db: Database, name: str, *, owner_id: str | None = None,
                  tenant_type: TenantType = "personal", description: str | None = None,
                  contact_email: str | None = None) -> Tenant:
    check_name("tenant name", name)
    if owner_id is not None and not db.rows("select 1 from users where id = %s",
                                            [check_input("user", owner_id)]):
        raise not_found("user", owner_id, db.scope)
    return db.insert(Tenant.from_input(id=new_tenant_id(), tenant_name=name, owner_id=owner_id,
                                    tenant_type=tenant_type, description=description,
                                    contact_email=contact_email))


def _set(db: Database, model: type[T], id: str, **values: Any) -> T:
    if db.update(model, where={"id": id}, set=values) == 0:
        raise not_found(model, id, db.scope)
    return db.get(model, id)


def rename_tenant(db: Database, tenant_id: str, name: str) -> Tenant:
    check_name("tenant name", name)
    return _set(db, Tenant, tenant_id, tenant_name=name)


def set_tenant_status(db: Database, tenant_id: str, status: TenantStatus) -> Tenant:
    """``suspended`` stops every agent of the tenant from opening scope or using keys."""
    return _set(db, Tenant, tenant_id, status=status)


def list_tenants(db: Database, *, owner_id: str | None = None, status: TenantStatus | None = None,
                 limit: int = 50, offset: int = 0) -> Page[Tenant]:
    return _page(db, Tenant, {"owner_id": owner_id, "status": status}, limit, offset)


# -- agents ----------------------------------------------------------------------------------

def create_agent(db: Database, name: str, *, tenant_id: str, description: str | None = None,
                 template_id: str | None = None) -> Agent:
    check("tenant", tenant_id)
    check_name("agent name", name)
    if not db.rows("select 1 from tenants where id = %s", [tenant_id]):
        raise not_found("tenant", tenant_id, db.scope)
    if db.rows("select 1 from agents where tenant_id = %s and name = %s", [tenant_id, name]):
        raise ConflictError(f"tenant {tenant_id} already has an agent named {name!r}",
                            constraint="agents_tenant_id_name_key")
    return db.insert(Agent.from_input(id=new_agent_id(), tenant_id=tenant_id, name=name,
                                   description=description, template_id=template_id))


def rename_agent(db: Database, agent_id: str, name: str) -> Agent:
    check_name("agent name", name)
    return _set(db, Agent, agent_id, name=name)


def set_agent_status(db: Database, agent_id: str, status: AgentStatus) -> Agent:
    """``suspended``/``inactive``/``archived`` stop the agent from opening scope or using keys;
    its data stays."""
    return _set(db, Agent, agent_id, status=status)


def list_agents(db: Database, *, tenant_id: str | None = None,
                status: AgentStatus | None = None, limit: int = 50,
                offset: int = 0) -> Page[Agent]:
    return _page(db, Agent, {"tenant_id": tenant_id, "status": status}, limit, offset)


def list_keys(db: Database, *, tenant_id: str | None = None, agent_id: str | None = None,
              status: ApiKeyStatus | None = None, limit: int = 50,
              offset: int = 0) -> Page[ApiKeyInfo]:
    """Keys as a dashboard lists them (no hash; uses added up), in admin or tenant scope."""
    return _page(db, ApiKeyInfo, {"tenant_id": tenant_id, "agent_id": agent_id, "status": status},
                 limit, offset)


# -- deletion --------------------------------------------------------------------------------

def _agent_tables() -> list[type[Row]]:
    return [m for m in ALL_ROWS if "agent_id" in m.model_fields]


def _counts(db: Database, column: str, value: str) -> dict[str, int]:
    """Rows per agent-scoped table belonging to the agent(s), in one statement."""
    def owned(model: type[Row]) -> sql.Composable:
        if column == "id":
            return sql.SQL("agent_id = %s")
        if "tenant_id" in model.model_fields:  # includes tenant-wide rows (agent_id NULL)
            return sql.SQL("tenant_id = %s")
        return sql.SQL("agent_id in (select id from agents where tenant_id = %s)")

    parts = [sql.SQL("select {} as t, count(*) as n from {} where {}").format(
        sql.Literal(m.table), sql.Identifier(m.table), owned(m)) for m in _agent_tables()]
    query = sql.SQL(" union all ").join(parts)
    return {t: int(n) for t, n in db.rows(query, [value] * len(parts))}


def delete_agent(db: Database, agent_id: str) -> dict[str, int]:
    """Delete an agent and, by cascade, every row it owns; return what went, per table."""
    counts = _counts(db, "id", agent_id)
    if db.delete(Agent, where={"id": agent_id}) == 0:
        raise not_found("agent", agent_id, db.scope)
    return {"agents": 1, **{t: n for t, n in counts.items() if n}}


def delete_tenant(db: Database, tenant_id: str) -> dict[str, int]:
    """Delete a tenant, its agents and everything they own; return what went, per table."""
    # On Citus the counts read every shard in parallel, after which the reference tables may
    # not be written in the same transaction; one connection per node allows both. Elsewhere
    # this is an unused placeholder setting, gone at commit.
    db.execute("set local citus.multi_shard_modify_mode = 'sequential'")
    counts = _counts(db, "tenant_id", tenant_id)
    agents = int(db.scalar("select count(*) from agents where tenant_id = %s", [tenant_id]))
    if db.delete(Tenant, where={"id": tenant_id}) == 0:
        raise not_found("tenant", tenant_id, db.scope)
    return {"tenants": 1, "agents": agents, **{t: n for t, n in counts.items() if n}}
