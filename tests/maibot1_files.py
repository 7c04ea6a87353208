"""MaiBot 1.x files, built from the DDL each release's own code creates.

tests/maibot1/<release>.json holds what tools/maibot1_ddl.py recorded by running that release's
``initialize_database()``: its ``PRAGMA user_version`` and every table's and index's DDL.
``build`` makes a file of that shape and fills canonical rows: every column of every table,
valued by its declared SQLite type (the enum columns with their allowed names), so that a
test can compare each imported value with the one it wrote. ``0.12-upgraded-by-1.2.1.json``
is a 0.12 file (tests/maibot_files.py) after 1.2.1 itself upgraded it, rows included.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from maim_db.tables import maibot1 as m1
from maim_db.transfer.maibot.convert import literal_values

HERE = Path(__file__).resolve().parent / "maibot1"
#: One release per schema version 1.x leaves behind, and the five the issue names.
RELEASES = ("1.0.0", "1.0.3", "1.0.4", "1.0.7", "1.0.8", "1.0.12", "1.1.4", "1.2.0", "1.2.1")
UPGRADED = "0.12-upgraded-by-1.2.1"
MODELS = {m.table: m for m in m1.ROWS}
#: An id far beyond what a bot reaches, the largest a maibot1 table holds: kept as it is.
BIG_ID = 2**53 - 1


@cache
def facts(release: str) -> dict[str, Any]:
    return json.loads((HERE / f"{release}.json").read_text())  # type: ignore[no-any-return]


def create(conn: sqlite3.Connection, release: str) -> None:
    """The empty file ``release`` leaves: its tables, its indexes, its user_version."""
    f = facts(release)
    for ddl in f["tables"].values():
        conn.execute(ddl)
    for ddl in f["indexes"].values():
        conn.execute(ddl)
    conn.execute(f"pragma user_version = {int(f['user_version'])}")


def table_info(conn: sqlite3.Connection, table: str) -> list[tuple[str, str, bool, bool]]:
    """(column, declared type, not null, primary key) in order."""
    return [(r[1], r[2].upper(), bool(r[3]), bool(r[5]))
            for r in conn.execute(f'pragma table_info("{table}")')]


def value(table: str, column: str, declared: str, notnull: bool, pk: bool, n: int) -> Any:
    """Row ``n``'s value of a column, by its declared type; NULL in every third row where
    the column allows it."""
    model = MODELS.get(table)
    field = model.model_fields.get(column) if model else None
    allowed = literal_values(field.annotation) if field else None
    if not notnull and not pk and n % 3 == 0:
        return None
    if allowed:
        return allowed[n % len(allowed)]
    if declared.startswith("INTEGER"):
        if pk:
            return BIG_ID if n == 3 else n
        return n * 7 + len(column)
    if declared.startswith(("FLOAT", "REAL")):
        return n + 0.25 + len(column) / 8
    if declared.startswith("BOOLEAN"):
        return n % 2
    if declared.startswith("DATETIME"):
        return f"2026-0{n % 9 + 1}-1{n % 10} 2{n % 4}:30:45.{n:06d}"
    if declared.startswith("BLOB"):
        return bytes([0x82, 0, n % 256, 0xFF, 0x00]) + "麦".encode() + b"\x00"
    return f"{table}.{column} 第{n}行 🎉"


def build(path: Path, release: str = "1.2.1", *, rows: int = 4,
          messages: int | None = None) -> Path:
    """A file of ``release`` holding ``rows`` canonical rows in every table (``messages``
    rows in mai_messages, when given)."""
    with sqlite3.connect(path) as conn:
        create(conn, release)
        for table in facts(release)["tables"]:
            info = table_info(conn, table)
            count = messages if messages is not None and table == "mai_messages" else rows
            marks = ", ".join("?" for _ in info)
            quoted = ", ".join(f'"{c}"' for c, *_ in info)
            conn.executemany(f'insert into "{table}" ({quoted}) values ({marks})',
                             ([value(table, *col, n) for col in info]
                              for n in range(1, count + 1)))
    conn.close()
    return path


def build_upgraded(path: Path) -> Path:
    """The 0.12 file of tests/maibot_files.py as MaiBot 1.2.1 left it after upgrading it."""
    f = facts(UPGRADED)
    with sqlite3.connect(path) as conn:
        create(conn, UPGRADED)
        for table, rows in f["rows"].items():
            cols = f["columns"][table]
            marks = ", ".join("?" for _ in cols)
            quoted = ", ".join(f'"{c}"' for c in cols)
            conn.executemany(f'insert into "{table}" ({quoted}) values ({marks})',
                             ([_cell(v) for v in r] for r in rows))
    conn.close()
    return path


def _cell(v: Any) -> Any:
    return base64.b64decode(v["base64"]) if isinstance(v, dict) else v


def read_all(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of a built file, by column name, in rowid order."""
    conn = sqlite3.connect(path)
    conn.text_factory = lambda b: b.decode("utf-8", "replace")  # a test may break some text
    try:
        out = {}
        for (table,) in conn.execute("select name from sqlite_master where type = 'table' "
                                     "and name not like 'sqlite_%'").fetchall():
            cur = conn.execute(f'select * from "{table}" order by rowid')
            names = [d[0] for d in cur.description]
            out[table] = [dict(zip(names, r, strict=True)) for r in cur]
        return out
    finally:
        conn.close()


def naive(text: str) -> datetime:
    return datetime.fromisoformat(text)
