"""Times as MaiBot 1.x writes and reads them: naive datetimes in ``MAIMDB_TIMEZONE``.

1.x calls ``datetime.now()`` everywhere and compares what it reads with it; maim_db keeps
``timestamptz``. The zone is the Peewee bridge's (:func:`maim_db.settings.configured_zone`:
``MAIMDB_TIMEZONE``, else this machine's), so a 0.x and a 1.x process of one deployment agree.

- :class:`LocalDateTime`, the column type of every 1.x time: a naive value is written as a
  time in that zone, an aware one as it is; what is read comes back naive in that zone.
- :func:`register_naive_loaders`: the same for rows of raw SQL (``text()``), which SQLAlchemy
  cannot type — every ``timestamptz`` the engine's connections read is naive in the zone.
"""

from __future__ import annotations

import os
from datetime import datetime, tzinfo
from typing import Any

from psycopg import postgres
from psycopg.abc import AdaptContext, Buffer
from psycopg.types.datetime import TimestamptzBinaryLoader, TimestamptzLoader
from sqlalchemy.engine import Dialect
from sqlalchemy.types import DateTime, TypeDecorator

from ..settings import configured_zone

__all__ = ["LocalDateTime", "local_zone", "register_naive_loaders", "zone_name"]

_zones: dict[str | None, tuple[tzinfo, str | None]] = {}


def _zone_for(name: str | None) -> tuple[tzinfo, str | None]:
    found = _zones.get(name)
    if found is None:
        tz = configured_zone(name, local=True)
        assert tz is not None  # local=True: never None
        found = _zones[name] = (tz, getattr(tz, "key", None))
    return found


def local_zone() -> tzinfo:
    """The zone 1.x's naive datetimes are in: ``MAIMDB_TIMEZONE``, else this machine's
    (looked up again when the variable changes, so a test or a service may set it late)."""
    return _zone_for(os.environ.get("MAIMDB_TIMEZONE") or None)[0]


def zone_name() -> str | None:
    """:func:`local_zone`'s IANA name (the session's ``TimeZone``), None when it has none (a
    POSIX ``TZ`` rule)."""
    return _zone_for(os.environ.get("MAIMDB_TIMEZONE") or None)[1]


def naive(value: datetime) -> datetime:
    """An aware ``value`` as the naive time in :func:`local_zone`."""
    return value.astimezone(local_zone()).replace(tzinfo=None)


class LocalDateTime(TypeDecorator[datetime]):
    """``timestamptz`` as 1.x's naive local datetimes (module docstring)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=local_zone())
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if isinstance(value, datetime) and value.tzinfo is not None:
            return naive(value)
        return value  # type: ignore[no-any-return]


class _NaiveLoader(TimestamptzLoader):
    def load(self, data: Buffer) -> datetime:
        return naive(super().load(data))


class _NaiveBinaryLoader(TimestamptzBinaryLoader):
    def load(self, data: Buffer) -> datetime:
        return naive(super().load(data))


_TIMESTAMPTZ = postgres.types["timestamptz"].oid


def register_naive_loaders(context: AdaptContext) -> None:
    """Make every ``timestamptz`` read through ``context`` (a psycopg connection) a naive
    time in :func:`local_zone`, in text and binary results alike."""
    context.adapters.register_loader(_TIMESTAMPTZ, _NaiveLoader)
    context.adapters.register_loader(_TIMESTAMPTZ, _NaiveBinaryLoader)
