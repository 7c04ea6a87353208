"""Settings from the environment (``MAIMDB_*``), read once per call so tests can change them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigurationError


class Settings(BaseSettings):
    """``MAIMDB_DSN`` picks the server; without it the embedded one under ``MAIMDB_DATA_DIR``."""

    model_config = SettingsConfigDict(env_prefix="MAIMDB_", extra="ignore")

    dsn: str | None = None
    # Behind PgBouncer in transaction mode: no server-side prepared statements.
    pgbouncer: bool = False
    data_dir: Path = Path("data/postgres")
    database: str = Field(default="maim", min_length=1)

    @field_validator("data_dir")
    @classmethod
    def _not_empty(cls, value: Path) -> Path:
        if str(value) in ("", "."):  # an empty MAIMDB_DATA_DIR would mean "right here"
            raise ValueError("must name a directory for the embedded server's data")
        return value


def settings() -> Settings:
    try:
        return Settings()
    except ValidationError as err:
        problems = "; ".join(f"MAIMDB_{str(e['loc'][0]).upper()}: {e['msg']}"
                             for e in err.errors())
        raise ConfigurationError(f"invalid environment: {problems}") from None


def resolve_dsn(dsn: str | None) -> str:
    """An explicit DSN, else ``MAIMDB_DSN``, else the embedded server (started if needed).
    A DSN that does not parse is a :class:`ConfigurationError` here, not a pool timeout
    later."""
    if dsn:
        return _parsed(dsn)
    configured = settings()
    if configured.dsn:
        return _parsed(configured.dsn)
    from . import embedded  # the server is started only when it is the one asked for

    return embedded.start(configured.data_dir, configured.database)


def _parsed(dsn: str) -> str:
    try:
        conninfo_to_dict(dsn)
    except (psycopg.ProgrammingError, TypeError) as err:
        raise ConfigurationError(f"invalid DSN: {err} (expected 'postgresql://user@host/db' "
                                 "or 'host=... dbname=...')") from None
    return dsn


def connection_options(pgbouncer: bool | None = None) -> dict[str, Any]:
    """psycopg connection options. psycopg prepares a statement after 5 runs by default;
    behind PgBouncer in transaction mode (``MAIMDB_PGBOUNCER=1``) the next transaction may
    land on a server that never saw it, so preparing is off there."""
    bouncer = settings().pgbouncer if pgbouncer is None else pgbouncer
    return {"autocommit": True, "prepare_threshold": None if bouncer else 5}
