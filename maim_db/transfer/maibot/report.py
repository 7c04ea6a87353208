"""What an import reports: per table, what was read, written, skipped, mended and why."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TableReport:
    source: str
    target: str
    read: int = 0
    written: int = 0
    earlier: int = 0  # written by earlier runs of this import
    skipped: Counter[str] = field(default_factory=Counter)
    fallback: Counter[str] = field(default_factory=Counter)
    ignored_columns: list[str] = field(default_factory=list)
    altered: list[Altered] = field(default_factory=list)  # every value mended on the way
    batches: int = 0
    #: 1.x: the keys of rows not imported because the agent already has a row with them
    clashes: list[str] = field(default_factory=list)
    #: 1.x: why every row of this table was dropped (1.x discards them on upgrade too)
    dropped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "read": self.read,
                "written": self.written, "earlier": self.earlier,
                "skipped": dict(self.skipped), "fallback": dict(self.fallback),
                "ignored_columns": self.ignored_columns, "batches": self.batches,
                "clashes": self.clashes, "dropped": self.dropped,
                "altered": [{"source_id": a.source_id, "column": a.column, "change": a.change}
                            for a in self.altered]}


@dataclass(frozen=True, slots=True)
class Altered:
    """One value the import could not store as the file holds it, and what it did instead."""

    source_id: int
    column: str
    change: str


@dataclass
class ImportReport:
    path: str
    agent_id: str
    source_key: str
    format: str
    timezone: str
    tables: list[TableReport] = field(default_factory=list)
    ignored_tables: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: 1.x: data the bot keeps beside MaiBot.db that was found and not imported
    outside: list[str] = field(default_factory=list)

    def table(self, target: str) -> TableReport:
        return next(t for t in self.tables if t.target == target)

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "agent_id": self.agent_id, "source_key": self.source_key,
                "format": self.format, "timezone": self.timezone,
                "seconds": round(self.seconds, 3), "ignored_tables": self.ignored_tables,
                "not_imported_outside_the_file": self.outside,
                "tables": [t.as_dict() for t in self.tables]}
