"""The original project's id formats (``tenant_…``, ``agent_…``, ``key_…``, ``user_…``).

The same patterns are CHECK constraints in migrations/0001_control_plane.sql; validating here
lets a bad id fail before any SQL is sent.
"""

from __future__ import annotations

import re
import secrets
from typing import Final

from .errors import InputError, ScopeError

PATTERNS: Final = {
    "user": re.compile(r"user_[A-Za-z0-9_-]{1,45}"),
    "tenant": re.compile(r"tenant_[A-Za-z0-9_-]{1,43}"),
    "agent": re.compile(r"agent_[A-Za-z0-9_-]{1,44}"),
    "key": re.compile(r"key_[A-Za-z0-9_-]{1,46}"),
}


def _new(kind: str) -> str:
    return f"{kind}_{secrets.token_hex(6)}"


def new_user_id() -> str:
    return _new("user")


def new_tenant_id() -> str:
    return _new("tenant")


def new_agent_id() -> str:
    return _new("agent")


def new_key_id() -> str:
    return _new("key")


def check(kind: str, value: object) -> str:
    """Return ``value`` if it is a well-formed id of ``kind``, else raise :class:`ScopeError`."""
    if not isinstance(value, str) or not PATTERNS[kind].fullmatch(value):
        raise ScopeError(
            f"invalid {kind} id {value!r}: expected '{kind}_' followed by letters, digits, "
            f"'_' or '-' (for example {_new(kind)!r})"
        )
    return value


def check_input(kind: str, value: object) -> str:
    """:func:`check` for an id given as data (a key to revoke, a listing filter) rather than
    as a scope: a malformed one is an :class:`InputError`."""
    try:
        return check(kind, value)
    except ScopeError as err:
        raise InputError(str(err)) from None


NAME_LIMIT: Final = 100  # the schema's check on every name column
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_name(what: str, value: object) -> None:
    """A person-given name (tenant, agent, key, user): 1 to 100 characters, not only spaces,
    no control characters. Checked before SQL, so the message can say what is wrong. (A value
    that is not text at all is left to the row model, whose message names the field.)"""
    if not isinstance(value, str):
        return
    if not value.strip():
        raise InputError(f"{what} must not be empty or only spaces, got {value!r}")
    if len(value) > NAME_LIMIT:
        raise InputError(f"{what} is {len(value)} characters long; the limit is {NAME_LIMIT}")
    if _CONTROL.search(value):
        raise InputError(f"{what} must not contain control characters (newlines, tabs, …), "
                         f"got {value!r}")
