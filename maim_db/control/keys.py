# WARNING: generated from maim_db/control/keys_async.py by tools/async_to_sync.py;
# do not edit: change the async source and run `python tools/async_to_sync.py`.

"""API keys: issued once, stored as a hash, resolved inside PostgreSQL.

A secret is ``mmc_`` + 43 URL-safe characters (32 random bytes). Only its SHA-256 and a
12-character display prefix are stored; the secret is returned by :func:`issue` and
:func:`rotate` once and never again. Resolution is ``maim.resolve_api_key`` (a SECURITY
DEFINER function, migrations/0006_access.sql) — the only way ``maim_app`` touches
``api_keys`` — and it answers "no" the same way for unknown, malformed, revoked, expired and
suspended.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final, cast

import psycopg

from .. import ids
from ..connection import Database, open_connection
from ..errors import AuthenticationError, ConflictError, InputError, not_found, translate
from ..ids import check_name, new_key_id
from ..scope import PERMISSIONS, Permission, check_key_secret
from ..tables import Agent, ApiKey
from .records import IssuedKey as IssuedKey
from .records import ResolvedKey as ResolvedKey

PREFIX: Final = "mmc_"
DISPLAY_CHARS: Final = 12

_RESOLVE: Final = "select agent_id, tenant_id, key_id, permissions from maim.resolve_api_key(%s)"


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> bytes:
    """What the database stores and compares: ``sha256(convert_to(key, 'UTF8'))``."""
    return hashlib.sha256(secret.encode()).digest()


def _permissions(permissions: Iterable[str]) -> list[Permission]:
    if isinstance(permissions, str) or not isinstance(permissions, Iterable):
        raise InputError(f"permissions takes a list of names, e.g. ['chat'], got {permissions!r}")
    chosen = list(dict.fromkeys(permissions))
    unknown = [p for p in chosen if p not in PERMISSIONS]
    if unknown:
        raise InputError(f"unknown permission(s) {unknown}; known: {', '.join(PERMISSIONS)}")
    return cast("list[Permission]", chosen)


def issue(
    db: Database,
    *,
    agent_id: str,
    name: str,
    permissions: Iterable[str] = (),
    description: str | None = None,
    expires_at: datetime | None = None,
) -> IssuedKey:
    """Issue a key for ``agent_id`` (admin scope). The secret is in the result, once."""
    check_name("key name", name)
    if expires_at is not None:
        _moment("expires_at", expires_at, future=True)
    agent = db.get(Agent, agent_id)
    if db.rows(
        "select 1 from api_keys where tenant_id = %s and name = %s and replaced_by is null",
        [agent.tenant_id, name],
    ):
        raise ConflictError(
            f"tenant {agent.tenant_id} already has a key named {name!r}",
            constraint="api_keys_tenant_name",
        )
    secret = new_secret()
    record = db.insert(
        ApiKey.from_input(
            id=new_key_id(),
            tenant_id=agent.tenant_id,
            agent_id=agent.id,
            name=name,
            description=description,
            key_hash=hash_secret(secret),
            key_prefix=secret[:DISPLAY_CHARS],
            permissions=_permissions(permissions),
            expires_at=expires_at,
        )
    )
    return IssuedKey(record, secret)


def _moment(what: str, value: object, *, future: bool) -> datetime:
    """A timezone-aware datetime (in the future, where a past one would make a dead key)."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InputError(f"{what} takes a timezone-aware datetime, got {value!r}")
    if future and value <= datetime.now(UTC):
        raise InputError(f"{what} is in the past ({value.isoformat()}): the key would never work")
    return value


def _change(db: Database, key_id: str, **values: Any) -> ApiKey:
    ids.check_input("key", key_id)
    if db.update(ApiKey, where={"id": key_id}, set=values) == 0:
        raise not_found("API key", key_id, db.scope)
    return db.get(ApiKey, key_id)


def revoke(db: Database, key_id: str) -> ApiKey:
    """Disable a key now."""
    return _change(db, key_id, status="disabled")


def expire(db: Database, key_id: str, at: datetime) -> ApiKey:
    """Let a key stop working at ``at`` (a past time means now)."""
    return _change(db, key_id, expires_at=_moment("expire() at", at, future=False))


def set_permissions(db: Database, key_id: str, permissions: Iterable[str]) -> ApiKey:
    return _change(db, key_id, permissions=_permissions(permissions))


def rotate(db: Database, key_id: str, *, old_valid_until: datetime) -> IssuedKey:
    """Issue a new key with the old one's name, agent and permissions; the old key keeps
    working until ``old_valid_until`` and is marked as replaced. Only a working key can be
    rotated: rotating a revoked or expired one would hand its access back."""
    _moment("old_valid_until", old_valid_until, future=False)
    old = db.get(ApiKey, ids.check_input("key", key_id))
    if old.replaced_by is not None:
        raise InputError(f"API key {key_id} was already rotated (replaced by {old.replaced_by})")
    if old.status != "active":
        raise InputError(
            f"API key {key_id} is {old.status}; issue a new key instead of rotating it"
        )
    if old.expires_at is not None and old.expires_at <= datetime.now(UTC):
        raise InputError(
            f"API key {key_id} expired at {old.expires_at.isoformat()}; issue a "
            "new key instead of rotating it"
        )
    secret = new_secret()
    new = db.insert(
        ApiKey(
            id=new_key_id(),
            tenant_id=old.tenant_id,
            agent_id=old.agent_id,
            name=f"{old.name[:80]} (rotating {secrets.token_hex(4)})",
            description=old.description,
            key_hash=hash_secret(secret),
            key_prefix=secret[:DISPLAY_CHARS],
            permissions=list(old.permissions),
            expires_at=old.expires_at,
        )
    )
    current_expiry = old.expires_at
    until = old_valid_until if current_expiry is None else min(current_expiry, old_valid_until)
    _change(db, key_id, replaced_by=new.id, expires_at=until)
    return IssuedKey(_change(db, new.id, name=old.name), secret)


def _resolved(row: tuple[Any, ...] | None) -> ResolvedKey:
    if row is None:
        raise AuthenticationError(
            "invalid API key: unknown, revoked, expired, or its agent or tenant is suspended"
        )
    agent_id, tenant_id, key_id, permissions = row
    return ResolvedKey(agent_id, tenant_id, key_id, tuple(permissions))


def resolve(secret: str, dsn: str | None = None) -> ResolvedKey:
    """Resolve a key to its agent (as ``maim_app``, through ``maim.resolve_api_key``) and
    record the use. Resolve once per session, then use ``agent_id=`` scope."""
    check_key_secret(secret)
    try:
        with open_connection(dsn) as conn, conn.transaction():
            conn.execute("select pg_catalog.set_config('role', 'maim_app', true)")
            return _resolved((conn.execute(_RESOLVE, [secret])).fetchone())
    except psycopg.Error as err:
        raise translate(err) from err


def resolve_in(db: Database, secret: str) -> ResolvedKey:
    """:func:`resolve` inside an open admin-scope block (the control plane's path)."""
    rows = db.rows(_RESOLVE, [check_key_secret(secret)])
    return _resolved(rows[0] if rows else None)


# The generated module hands these out as well: one import for both flavours.
from .keys_async import aexpire as aexpire
from .keys_async import aissue as aissue
from .keys_async import aresolve as aresolve
from .keys_async import aresolve_in as aresolve_in
from .keys_async import arevoke as arevoke
from .keys_async import arotate as arotate
from .keys_async import aset_permissions as aset_permissions
