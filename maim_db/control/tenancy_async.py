"""Tenant and agent lifecycle for the control plane (admin scope): create, rename, suspend,
reactivate, archive, delete, and the paginated listings the web UI shows.

Suspending is enforced by the database, not here: ``maim.open_agent_scope`` and
``maim.resolve_api_key`` refuse an agent that is not active or whose tenant is not active.
"""

# The source of tenancy.py, which tools/async_to_sync.py generates.  # async only
from __future__ import annotations

import asyncio  # async only
import re
from collections.abc import Callable
from typing import Any, TypeVar, get_args

import psycopg
from psycopg import sql

from ..connection_async import AsyncDatabase, aopen_connection
from ..errors import AuthenticationError, ConflictError, InputError, not_found, translate
from ..ids import check, check_input, check_name, new_agent_id, new_tenant_id, new_user_id
from ..row import Row
from ..statements import Statement, find
from ..tables import ALL_ROWS, MAIBOT1_ROWS, Agent, ApiKeyInfo, Tenant, User, UserProfile
from ..tables.control_plane import AgentStatus, ApiKeyStatus, TenantStatus, TenantType
from .records import Page as Page

T = TypeVar("T", bound=Row)
MAX_PAGE = 500


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


async def _apage(db: AsyncDatabase, model: type[T], where: dict[str, Any], limit: int,
                 offset: int) -> Page[T]:
    for name, value, low in (("limit", limit, 1), ("offset", offset, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    if limit > MAX_PAGE:
        raise InputError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    where = _filters(model, where)
    total = await db.scalar(*_count(model, where))
    query, params = _listing(model, where, limit, offset)
    return Page(await db.fetch(model, query, params), int(total), limit, offset)


def _count(model: type[Row], where: dict[str, Any]) -> tuple[sql.Composed, list[Any]]:
    inner, params = find(model, where, (), None)
    return sql.SQL("select count(*) from ({}) as rows").format(inner), params


def _listing(model: type[Row], where: dict[str, Any], limit: int,
             offset: int) -> Statement:
    return find(model, where, ["-created_at", "id"], limit, offset=offset)


# -- users -----------------------------------------------------------------------------------

# The web back end owns logins and their hash scheme; a user made here has none yet. "!" is
# no scheme's hash (as in /etc/shadow), so no password matches it until the back end sets one.
NO_PASSWORD = "!"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


async def acreate_user(db: AsyncDatabase, username: str, *,
                       email: str | None = None) -> User:
    """A user who can own tenants, without a password (the web back end sets it)."""
    check_name("username", username)
    if email is not None and not _EMAIL.fullmatch(email):
        raise InputError(f"email must look like name@host, got {email!r}")
    for column, value in (("username", username), ("email", email)):
        if value is not None and await db.rows(
                sql.SQL("select 1 from users where {} = %s").format(sql.Identifier(column)),
                [value]):
            raise ConflictError(f"a user with {column} {value!r} already exists")
    return await db.insert(User.from_input(id=new_user_id(), username=username, email=email,
                                     hashed_password=NO_PASSWORD))


async def alist_users(db: AsyncDatabase, *, limit: int = 50,
                      offset: int = 0) -> Page[User]:
    return await _apage(db, User, {}, limit, offset)


# -- logins (docs/decisions.md, "The web back end's login check") ----------------------------

#: A bcrypt hash, as MaimWebBackend stores them (``bcrypt.hashpw``): ``$2b$``, the cost, 22
#: characters of salt and 31 of hash. Its first 29 characters are the setting (scheme, cost,
#: salt) that hashing a password again needs.
BCRYPT = re.compile(r"\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}")
#: What an unknown user's password is hashed with, so a wrong name costs the caller the same
#: time as a wrong password (no user's setting: the salt is all zero bits).
DECOY_SETTING = "$2b$12$" + "." * 22
BAD_LOGIN = "incorrect username or password"

_SETTING = "select maim.login_setting(%s)"
_CHECK = ("select id, username, email, is_active, created_at, updated_at "
          "from maim.check_login(%s, %s)")


async def aset_password_hash(db: AsyncDatabase, user_id: str, password_hash: str) -> UserProfile:
    """Store a user's password hash (admin scope), made by the web back end
    (``bcrypt.hashpw(password, bcrypt.gensalt())``); only a bcrypt hash is taken, the scheme
    :func:`check_login` speaks."""
    if not isinstance(password_hash, str) or not BCRYPT.fullmatch(password_hash):
        raise InputError("password_hash must be a bcrypt hash ($2b$12$ and 53 characters), "
                         "as bcrypt.hashpw makes it")
    await _aset(db, User, check_input("user", user_id), hashed_password=password_hash)
    return await db.get(UserProfile, user_id)


async def acheck_login(username: str, hash_password: Callable[[str], str],
                       dsn: str | None = None) -> UserProfile:
    """The user whose password is the one ``hash_password`` hashes, for the web back end's
    login, as ``maim_tenant``: no scope, no admin rights, and no stored hash leaves the
    database. ``maim.login_setting`` gives the user's bcrypt setting (salt and cost, not
    secret); ``hash_password(setting)`` — the caller's, e.g. ``lambda s:
    bcrypt.hashpw(password.encode(), s.encode()).decode()`` — hashes the password with it;
    ``maim.check_login`` compares in the database. A wrong name or password, or a user with
    no password, is one :class:`AuthenticationError`; an inactive user's right password is
    another (``user … is inactive``)."""
    if not isinstance(username, str) or not username or len(username) > 100:
        raise AuthenticationError(BAD_LOGIN)
    try:
        async with await aopen_connection(dsn) as conn:
            async with conn.transaction():
                await conn.execute("select pg_catalog.set_config('role', 'maim_tenant', true)")
                found = await (await conn.execute(_SETTING, [username])).fetchone()
            setting = found[0] if found else None
            # the hashing (bcrypt: a quarter second of CPU) runs outside any transaction
            use = setting or DECOY_SETTING
            made = await asyncio.to_thread(hash_password, use)  # sync: made = hash_password(use)
            if setting is None or not isinstance(made, str):
                raise AuthenticationError(BAD_LOGIN)
            async with conn.transaction():
                await conn.execute("select pg_catalog.set_config('role', 'maim_tenant', true)")
                cursor = await conn.execute(_CHECK, [username, made])
                row = await cursor.fetchone()
                names = [c.name for c in cursor.description or ()]
    except psycopg.Error as err:
        raise translate(err) from err
    if row is None:
        raise AuthenticationError(BAD_LOGIN)
    user = UserProfile.model_validate(dict(zip(names, row, strict=True)))
    if not user.is_active:
        raise AuthenticationError(f"user {username!r} is inactive")
    return user


# -- tenants ---------------------------------------------------------------------------------

async def acreate_tenant(db: AsyncDatabase, name: str, *, owner_id: str | None = None,
                  tenant_type: TenantType = "personal", description: str | None = None,
                  contact_email: str | None = None) -> Tenant:
    check_name("tenant name", name)
    if owner_id is not None and not await db.rows("select 1 from users where id = %s",
                                            [check_input("user", owner_id)]):
        raise not_found("user", owner_id, db.scope)
    return await db.insert(Tenant.from_input(
        id=new_tenant_id(), tenant_name=name, owner_id=owner_id, tenant_type=tenant_type,
        description=description, contact_email=contact_email))


async def _aset(db: AsyncDatabase, model: type[T], id: str, **values: Any) -> T:
    if await db.update(model, where={"id": id}, set=values) == 0:
        raise not_found(model, id, db.scope)
    return await db.get(model, id)


async def arename_tenant(db: AsyncDatabase, tenant_id: str, name: str) -> Tenant:
    check_name("tenant name", name)
    return await _aset(db, Tenant, tenant_id, tenant_name=name)


async def aset_tenant_status(db: AsyncDatabase, tenant_id: str,
                             status: TenantStatus) -> Tenant:
    """``suspended`` stops every agent of the tenant from opening scope or using keys."""
    return await _aset(db, Tenant, tenant_id, status=status)


async def alist_tenants(db: AsyncDatabase, *, owner_id: str | None = None,
                        status: TenantStatus | None = None, limit: int = 50,
                        offset: int = 0) -> Page[Tenant]:
    return await _apage(db, Tenant, {"owner_id": owner_id, "status": status}, limit, offset)


# -- agents ----------------------------------------------------------------------------------

async def acreate_agent(db: AsyncDatabase, name: str, *, tenant_id: str,
                        description: str | None = None,
                        template_id: str | None = None) -> Agent:
    check("tenant", tenant_id)
    check_name("agent name", name)
    if not await db.rows("select 1 from tenants where id = %s", [tenant_id]):
        raise not_found("tenant", tenant_id, db.scope)
    if await db.rows("select 1 from agents where tenant_id = %s and name = %s", [tenant_id, name]):
        raise ConflictError(f"tenant {tenant_id} already has an agent named {name!r}",
                            constraint="agents_tenant_id_name_key")
    return await db.insert(Agent.from_input(id=new_agent_id(), tenant_id=tenant_id, name=name,
                                   description=description, template_id=template_id))


async def arename_agent(db: AsyncDatabase, agent_id: str, name: str) -> Agent:
    check_name("agent name", name)
    return await _aset(db, Agent, agent_id, name=name)


async def aset_agent_status(db: AsyncDatabase, agent_id: str, status: AgentStatus) -> Agent:
    """``suspended``/``inactive``/``archived`` stop the agent from opening scope or using keys;
    its data stays."""
    return await _aset(db, Agent, agent_id, status=status)


async def alist_agents(db: AsyncDatabase, *, tenant_id: str | None = None,
                       status: AgentStatus | None = None, limit: int = 50,
                       offset: int = 0) -> Page[Agent]:
    return await _apage(db, Agent, {"tenant_id": tenant_id, "status": status}, limit, offset)


async def alist_keys(db: AsyncDatabase, *, tenant_id: str | None = None,
                     agent_id: str | None = None, status: ApiKeyStatus | None = None,
                     limit: int = 50, offset: int = 0) -> Page[ApiKeyInfo]:
    """Keys as a dashboard lists them (no hash; uses added up), in admin or tenant scope."""
    return await _apage(db, ApiKeyInfo,
                        {"tenant_id": tenant_id, "agent_id": agent_id, "status": status},
                        limit, offset)


# -- deletion --------------------------------------------------------------------------------

def _agent_tables() -> list[type[Row]]:
    return [m for m in ALL_ROWS + MAIBOT1_ROWS if "agent_id" in m.model_fields]


async def _acounts(db: AsyncDatabase, column: str, value: str) -> dict[str, int]:
    """Rows per agent-scoped table belonging to the agent(s), in one statement."""
    def owned(model: type[Row]) -> sql.Composable:
        if column == "id":
            return sql.SQL("agent_id = %s")
        if "tenant_id" in model.model_fields:  # includes tenant-wide rows (agent_id NULL)
            return sql.SQL("tenant_id = %s")
        return sql.SQL("agent_id in (select id from agents where tenant_id = %s)")

    parts = [sql.SQL("select {} as t, count(*) as n from {} where {}").format(
        sql.Literal(m.table_name()), sql.Identifier(*m.table_path()), owned(m))
        for m in _agent_tables()]
    query = sql.SQL(" union all ").join(parts)
    return {t: int(n) for t, n in await db.rows(query, [value] * len(parts))}


async def adelete_agent(db: AsyncDatabase, agent_id: str) -> dict[str, int]:
    """Delete an agent and, by cascade, every row it owns; return what went, per table."""
    counts = await _acounts(db, "id", agent_id)
    if await db.delete(Agent, where={"id": agent_id}) == 0:
        raise not_found("agent", agent_id, db.scope)
    return {"agents": 1, **{t: n for t, n in counts.items() if n}}


async def adelete_tenant(db: AsyncDatabase, tenant_id: str) -> dict[str, int]:
    """Delete a tenant, its agents and everything they own; return what went, per table."""
    # On Citus the counts read every shard in parallel, after which the reference tables may
    # not be written in the same transaction; one connection per node allows both. Elsewhere
    # this is an unused placeholder setting, gone at commit.
    await db.execute("set local citus.multi_shard_modify_mode = 'sequential'")
    counts = await _acounts(db, "tenant_id", tenant_id)
    agents = int(await db.scalar("select count(*) from agents where tenant_id = %s", [tenant_id]))
    if await db.delete(Tenant, where={"id": tenant_id}) == 0:
        raise not_found("tenant", tenant_id, db.scope)
    return {"tenants": 1, "agents": agents, **{t: n for t, n in counts.items() if n}}


# The generated module hands these out as well: one import for both flavours.
# sync: from .tenancy_async import acheck_login as acheck_login
# sync: from .tenancy_async import acreate_agent as acreate_agent
# sync: from .tenancy_async import acreate_tenant as acreate_tenant
# sync: from .tenancy_async import acreate_user as acreate_user
# sync: from .tenancy_async import adelete_agent as adelete_agent
# sync: from .tenancy_async import adelete_tenant as adelete_tenant
# sync: from .tenancy_async import alist_agents as alist_agents
# sync: from .tenancy_async import alist_keys as alist_keys
# sync: from .tenancy_async import alist_tenants as alist_tenants
# sync: from .tenancy_async import alist_users as alist_users
# sync: from .tenancy_async import arename_agent as arename_agent
# sync: from .tenancy_async import arename_tenant as arename_tenant
# sync: from .tenancy_async import aset_agent_status as aset_agent_status
# sync: from .tenancy_async import aset_password_hash as aset_password_hash
# sync: from .tenancy_async import aset_tenant_status as aset_tenant_status
