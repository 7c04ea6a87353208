"""What the control plane hands back, defined once for its sync and async twins (the
functions are generated, tools/async_to_sync.py; a class defined in both modules would be two
classes, and ``isinstance`` would tell the twins' results apart)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ..row import Row
from ..scope import check_permission
from ..tables import ApiKey

T = TypeVar("T", bound=Row)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing, newest first, and how many rows there are in all."""

    items: list[T]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class IssuedKey:
    """A key record plus its secret, which exists only here: show it once."""

    record: ApiKey
    secret: str = field(repr=False)


@dataclass(frozen=True)
class ResolvedKey:
    agent_id: str
    tenant_id: str
    key_id: str
    permissions: tuple[str, ...]

    def require(self, permission: str) -> None:
        """Raise :class:`AuthenticationError` unless the key grants ``permission``
        (``config_write`` includes ``config_read``)."""
        check_permission(self.permissions, permission, f"key {self.key_id}")
