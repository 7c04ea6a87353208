"""Settings from the environment (``MAIMDB_*``), read once per call so tests can change them."""

from __future__ import annotations

from pathlib import Path

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
