"""A single-user MaiBot's ``data/MaiBot.db`` into one agent: :func:`import_sqlite`
(:mod:`.importer`) reads the file (:mod:`.source`), plans each table (:mod:`.plan`), converts
its values (:mod:`.convert`) and reports what it did (:mod:`.report`)."""

from ..progress import Progress
from .importer import BATCH, BATCH_BYTES, committed, import_claim, import_sqlite
from .plan import RETIRED, TABLES, TableMap, catalog, plan
from .report import Altered, ImportReport, TableReport
from .source import NUL_REMOVED, UTF8_REPLACED, Bound, Source, open_source, source_key

__all__ = [
    "BATCH", "BATCH_BYTES", "NUL_REMOVED", "RETIRED", "TABLES", "UTF8_REPLACED", "Altered",
    "Bound", "ImportReport", "Progress", "Source", "TableMap", "TableReport", "catalog",
    "committed", "import_claim", "import_sqlite", "open_source", "plan", "source_key",
]
