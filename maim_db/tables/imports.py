"""Import bookkeeping: how far each MaiBot database's import has got, per agent and table
(migrations/0008_import_progress.sql), and which import is running (0013's import_claims)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import UUID

from ..row import BigInt, Row, server_default


class ImportProgress(Row):
    """The highest source id of one MaiBot table committed into this agent."""

    table: ClassVar[str] = "import_progress"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    source_key: str
    source_table: str
    last_source_id: BigInt
    rows_written: BigInt = server_default()
    updated_at: datetime = server_default()


class ImportClaim(Row):
    """A running import of one MaiBot database into this agent: live while backend
    ``holder_pid`` holds advisory lock ``lock_key`` (maim_db/transfer/maibot/)."""

    table: ClassVar[str] = "import_claims"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "source_key")

    agent_id: str = server_default()
    source_key: str
    holder_pid: int
    lock_key: BigInt
    claimed_at: datetime = server_default()


ROWS: tuple[type[Row], ...] = (ImportProgress, ImportClaim)
