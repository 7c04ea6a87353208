"""Import bookkeeping (migrations/0008_import_progress.sql): how far each MaiBot database's
import has got, per agent and table."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import UUID

from ..row import Row, server_default


class ImportProgress(Row):
    """The highest source id of one MaiBot table committed into this agent."""

    table: ClassVar[str] = "import_progress"
    key: ClassVar[tuple[str, ...]] = ("agent_id", "id")

    agent_id: str = server_default()
    id: UUID = server_default()
    source_key: str
    source_table: str
    last_source_id: int
    rows_written: int = server_default()
    updated_at: datetime = server_default()


ROWS: tuple[type[Row], ...] = (ImportProgress,)
