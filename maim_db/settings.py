"""Settings from the environment (``MAIMDB_*``), read once per call so tests can change them."""

from __future__ import annotations

import calendar
import time
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
import tzlocal
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigurationError, InputError


class Settings(BaseSettings):
    """``MAIMDB_DSN`` picks the server; without it the embedded one under ``MAIMDB_DATA_DIR``."""

    model_config = SettingsConfigDict(env_prefix="MAIMDB_", extra="ignore")

    dsn: str | None = None
    # Behind PgBouncer in transaction mode: no server-side prepared statements.
    pgbouncer: bool = False
    # None: the checkout's data/postgres, else the per-user one (embedded.data_dir)
    data_dir: Path | None = None
    database: str = Field(default="maim", min_length=1)
    # The zone naive datetimes are read in where maim_db is asked to (the Peewee bridge);
    # None: this machine's local zone.
    timezone: str | None = None
    # Seconds a block's statement waits for a lock before it fails with BlockedError: the
    # bound on how long a plugin holding a lock (or a migration queued behind one) stalls a
    # service. 0: no limit of maim_db's (the server's lock_timeout applies).
    lock_timeout: float = Field(default=4.0, ge=0, le=86400)
    # Seconds a block's statement may run in all; 0 (the default): no limit of maim_db's.
    statement_timeout: float = Field(default=0.0, ge=0, le=86400)
    # Seconds `maimdb migrate`/`rollback` wait for another session's migration lock before
    # they stop and name the session that holds it (any login can take an advisory lock).
    migrate_lock_wait: float = Field(default=60.0, ge=0, le=86400)

    @field_validator("data_dir")
    @classmethod
    def _not_empty(cls, value: Path | None) -> Path | None:
        # an empty MAIMDB_DATA_DIR would mean "right here"
        if value is not None and str(value) in ("", "."):
            raise ValueError("must name a directory for the embedded server's data")
        return value


def settings() -> Settings:
    try:
        return Settings()
    except ValidationError as err:
        problems = "; ".join(f"MAIMDB_{str(e['loc'][0]).upper()}: {e['msg']}"
                             for e in err.errors())
        raise ConfigurationError(f"invalid environment: {problems}") from None


def zone(name: str | None) -> tuple[tzinfo, str]:
    """The time zone ``name`` (an IANA name) and how to say it; None: this machine's, with
    its daylight-saving rules (not today's offset: a July time read in January must still get
    July's)."""
    if name is None:
        return _local_zone()
    try:
        return ZoneInfo(name), name
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"unknown time zone {name!r}; use an IANA name such as "
                         "Asia/Shanghai") from None


def configured_zone(name: str | None = None, *, local: bool = False) -> tzinfo | None:
    """``name``, else ``MAIMDB_TIMEZONE``, as a zone; neither: this machine's zone when
    ``local``, else None (PostgreSQL's session TimeZone decides)."""
    name = name or settings().timezone
    if name is None and not local:
        return None
    try:
        return zone(name)[0]
    except InputError as err:
        raise ConfigurationError(f"MAIMDB_TIMEZONE: {err}") from None


def _local_zone() -> tuple[tzinfo, str]:
    """The machine's zone by name (``TZ``, else the system's configuration, as tzlocal finds
    it), else the C library's local time (a POSIX ``TZ`` rule such as ``CET-1CEST,M3.5.0,
    M10.5.0/3``, which names no zone and tzlocal refuses)."""
    try:
        found = tzlocal.get_localzone()
    except (LookupError, ValueError, OSError):  # ZoneInfoNotFoundError is a LookupError
        return _LocalTime(), "local time (" + "/".join(time.tzname) + ")"
    return found, str(getattr(found, "key", None) or found)


class _LocalTime(tzinfo):
    """The C library's local time, offsets looked up per moment (``time.localtime``)."""

    def _at(self, dt: datetime) -> time.struct_time:
        stamp = time.mktime((dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second,
                             dt.weekday(), 0, -1))
        return time.localtime(stamp)

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(seconds=self._at(dt or datetime.now()).tm_gmtoff)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=1) if self._at(dt or datetime.now()).tm_isdst > 0 else timedelta()

    def tzname(self, dt: datetime | None) -> str:
        return self._at(dt or datetime.now()).tm_zone

    def fromutc(self, dt: datetime) -> datetime:
        # dt holds the UTC wall time (with tzinfo=self, as fromutc is called)
        local = time.localtime(calendar.timegm(dt.replace(tzinfo=None).timetuple()))
        return datetime(*local[:6], dt.microsecond, tzinfo=self)


def resolve_dsn(dsn: str | None, *, start: bool = False) -> str:
    """An explicit DSN, else ``MAIMDB_DSN``, else the embedded server — which must be running
    unless ``start`` (``maimdb migrate`` and ``db start`` only: a library call never creates
    or restarts a server). A DSN that does not parse is a :class:`ConfigurationError` here,
    not a pool timeout later."""
    if dsn:
        return _parsed(dsn)
    configured = settings()
    if configured.dsn:
        return _parsed(configured.dsn)
    from . import embedded  # imported only when it is the server asked for

    where = embedded.data_dir(configured.data_dir)
    if start:
        return embedded.start(where, configured.database)
    return embedded.running(where, configured.database)


def _parsed(dsn: str) -> str:
    try:
        conninfo_to_dict(dsn)
    except (psycopg.ProgrammingError, TypeError) as err:
        raise ConfigurationError(f"invalid DSN: {err} (expected 'postgresql://user@host/db' "
                                 "or 'host=... dbname=...')") from None
    return dsn


def connection_options(pgbouncer: bool | None = None) -> dict[str, Any]:
    """psycopg connection options. maim_db prepares a statement from its second run;
    behind PgBouncer in transaction mode (``MAIMDB_PGBOUNCER=1``) the next transaction may
    land on a server that never saw it, so preparing is off there."""
    bouncer = settings().pgbouncer if pgbouncer is None else pgbouncer
    # UTF8 whatever the login's or the database's default: maim_db's text is Python's, and a
    # plugin login may have set its own default (PgBouncer passes this one through).
    return {"autocommit": True, "prepare_threshold": None if bouncer else 5,
            "client_encoding": "UTF8"}


def describe(dsn: str) -> str:
    """A DSN for a person: database, host and port, never the password."""
    params = conninfo_to_dict(dsn)
    host = params.get("host") or "localhost"
    return f'database "{params.get("dbname") or params.get("user") or "?"}" on {host} ' \
           f'port {params.get("port") or 5432}'


def as_url(dsn: str) -> str:
    """A DSN as a ``postgresql://`` URL (a socket directory goes in ``?host=``)."""
    params = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
    user, password = params.pop("user", ""), params.pop("password", None)
    host, port = params.pop("host", ""), params.pop("port", "")
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    netloc = (auth + "@" if auth else "")
    if host.startswith("/"):
        params = {"host": host, **({"port": port} if port else {}), **params}
    else:
        netloc += host + (f":{port}" if port else "")
    database = quote(params.pop("dbname", ""), safe="")
    return f"postgresql://{netloc}/{database}" + (f"?{urlencode(params)}" if params else "")
