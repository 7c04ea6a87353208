"""``maimdb import-sqlite`` throughput: message rows per second from a MaiBot 0.12 file, and
(:func:`run_1x`) rows per second from a MaiBot 1.2.1 file against a 0.12 file of as many
messages, in the same run.

``maim_db``: the whole import (read through SQLite, convert, COPY into a temporary table,
INSERT … SELECT under RLS, progress mark per batch) into a fresh agent. ``raw``, the ceiling:
the same rows read from the same file and converted by the same code, then one binary
``COPY messages FROM STDIN`` straight into the table as the superuser (no RLS, no temporary
table, no batching). The target is an absolute 50,000 rows/s; the ratio shows what the safe
path costs on the same machine in the same run.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from maim_db import connect
from maim_db.control import tenancy
from maim_db.transfer.maibot import (
    TABLES,
    Bound,
    catalog,
    import_sqlite,
    open_source,
    plan,
    source_key,
)
from tests.maibot1_files import build as build_1x
from tests.maibot_files import build

from .data import Bench


def _fresh_agent(dsn: str, name: str) -> str:
    with connect(dsn, admin=True) as adm:
        tenant = tenancy.create_tenant(adm, f"import bench {name} {uuid.uuid4().hex[:8]}")
        return tenancy.create_agent(adm, name, tenant_id=tenant.id).id


def _raw(dsn: str, path: Path, agent: str) -> float:
    started = time.perf_counter()
    source = open_source(path)
    messages = next(t for t in TABLES if t.source == "messages")
    with psycopg.connect(dsn, autocommit=True) as conn:
        p = plan(messages, source.tables["messages"], catalog(conn, "messages"),
                 uuid.uuid4(), UTC)
        cols = ["agent_id", *p.columns]
        types = [catalog(conn, "messages")["agent_id"][0], *p.types]
        with conn.transaction(), conn.cursor().copy(
                sql.SQL("copy messages ({}) from stdin (format binary)").format(
                    sql.SQL(", ").join(map(sql.Identifier, cols)))) as copy:
            copy.set_types(types)
            bound = Bound(5000, 2**40, source_key(source))
            for rows in source.batches("messages", p.source_columns, 0, bound, []):
                for row in rows:
                    copy.write_row([agent, *p.make(row)])
    source.conn.close()
    return time.perf_counter() - started


def run(b: Bench, rows: int, log: Callable[[str], None]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = build(Path(tmp) / "MaiBot.db", "0.12", messages=rows)
        raw_seconds = _raw(b.dsn, path, _fresh_agent(b.dsn, "raw"))
        agent = _fresh_agent(b.dsn, "maim")
        report = import_sqlite(path, agent, dsn=b.dsn, timezone="UTC")
    written = report.table("messages").written
    assert written == rows, (written, rows)
    # the import's own clock covers every table; messages dominate, the rest is tiny
    maim = rows / report.seconds
    raw = rows / raw_seconds
    record = {
        "workload": "import_sqlite", "mode": f"messages/{rows}",
        "ops_per_s": {"raw": round(raw, 1), "peewee": None, "maim_db": round(maim, 1)},
        "ratio_vs_raw": round(maim / raw, 3), "ratio_vs_peewee": None,
        "target_rows_per_s": 50_000,
    }
    log(f"import   messages/{rows:<18} raw {raw:>9.0f}  rows/s        maim_db {maim:>9.0f}"
        f"  vs raw {maim / raw:.2f}  (target 50000 rows/s)")
    return record


def run_1x(b: Bench, rows: int, log: Callable[[str], None], rounds: int = 3) -> dict[str, Any]:
    """A 1.2.1 file (tests/maibot1_files.py: every column filled) and a 0.12 file of ``rows``
    messages each, imported into fresh agents in turns, ``rounds`` times; rows/s of every
    table, medians. No raw ceiling: the comparison is the 0.x importer, same run."""
    seen: dict[str, list[float]] = {"0.x": [], "1.x": []}
    with tempfile.TemporaryDirectory() as tmp:
        files = {"0.x": build(Path(tmp) / "0x.db", "0.12", messages=rows),
                 "1.x": build_1x(Path(tmp) / "1x.db", "1.2.1", messages=rows)}
        for n in range(rounds):
            for kind in ("0.x", "1.x") if n % 2 == 0 else ("1.x", "0.x"):
                report = import_sqlite(files[kind], _fresh_agent(b.dsn, f"import {kind}"),
                                       dsn=b.dsn, timezone="UTC")
                seen[kind].append(sum(t.written for t in report.tables) / report.seconds)
    old, new = (sorted(seen[k])[len(seen[k]) // 2] for k in ("0.x", "1.x"))
    log(f"import   1.x messages/{rows:<15} 0.x {old:>9.0f}  rows/s        1.x {new:>9.0f}"
        f"  1.x vs 0.x {new / old:.2f}")
    return {"workload": "import_sqlite_1x", "mode": f"messages/{rows}",
            "ops_per_s": {"raw": None, "peewee": None, "maim_db": round(new, 1),
                          "maim_db_0x": round(old, 1)},
            "ratio_vs_raw": None, "ratio_vs_peewee": None, "ratio_vs_0x": round(new / old, 3)}
