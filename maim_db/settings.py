"""Settings from the environment (``MAIMDB_*``), read once per call so tests can change them."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigurationError


class Settings(BaseSettings):
    """``MAIMDB_DSN`` picks the server; without it the embedded one under ``MAIMDB_DATA_DIR``."""

    model_config = SettingsConfigDict(env_prefix="MAIMDB_", extra="ignore")

    dsn: str | None = None
    # Behind PgBouncer in transaction mode: no server-side prepared statements.
    pgbouncer: bool = False
    data_dir: Path = Path("data/postgres")
    database: str = "maim"


def settings() -> Settings:
    try:
        return Settings()
    except ValidationError as err:
        problems = "; ".join(f"MAIMDB_{str(e['loc'][0]).upper()}: {e['msg']}"
                             for e in err.errors())
        raise ConfigurationError(f"invalid environment: {problems}") from None
