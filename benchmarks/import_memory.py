"""``python -m benchmarks.import_memory [MESSAGES]``: the importer's peak memory on a file of
few, huge rows (issue 11, item 6).

A MaiBot file of MESSAGES (default 1000) messages of about 200 kB of text each is imported
into a fresh agent twice, each time in a new process whose peak RSS (``ru_maxrss``) is read
when it ends: once with the default byte bound (``BATCH_BYTES``, 16 MiB a batch) and once
bounded by rows alone, as before (5,000 rows a batch, whatever their size). The baseline in
the same run is a process that only imports the library and opens the file. Memory, unlike
time, is not noisy, so the numbers are absolute; the ratio shows what the byte bound saves.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from maim_db import connect
from maim_db.control import tenancy

from . import data

_CHILD = """
import resource, sys
from pathlib import Path
from maim_db.transfer.maibot import import_sqlite, open_source
path, agent, dsn, batch_bytes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if agent == "-":
    open_source(Path(path)).conn.close()
else:
    report = import_sqlite(Path(path), agent, dsn=dsn, timezone="UTC", batch_bytes=batch_bytes)
    assert report.table("messages").written > 0
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_mib(path: Path, agent: str, dsn: str, batch_bytes: int) -> float:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path), agent, dsn,
                          str(batch_bytes)], check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1]) / 1024  # ru_maxrss is in KiB on Linux


def _file(directory: Path, messages: int) -> tuple[Path, float]:
    import sqlite3

    from tests.maibot_files import build

    path = build(directory / "MaiBot.db", "0.12", messages=messages)
    text = "长" * 70_000  # 210,000 bytes of UTF-8
    with sqlite3.connect(path) as conn:
        conn.execute("update messages set processed_plain_text = ?", [text])
    conn.close()
    return path, messages * len(text.encode()) / 2**20


def run(dsn: str, messages: int) -> dict[str, float]:
    from maim_db.transfer.maibot import BATCH_BYTES

    with tempfile.TemporaryDirectory() as tmp:
        path, text_mib = _file(Path(tmp), messages)
        agents = []
        with connect(dsn, admin=True) as adm:
            tenant = tenancy.create_tenant(adm, f"memory bench {uuid.uuid4().hex[:8]}")
            for name in ("bytes", "rows"):
                agents.append(tenancy.create_agent(adm, name, tenant_id=tenant.id).id)
        baseline = _peak_mib(path, "-", dsn, BATCH_BYTES)
        bounded = _peak_mib(path, agents[0], dsn, BATCH_BYTES)
        rows_only = _peak_mib(path, agents[1], dsn, 2**40)
    return {"messages": messages, "text_mib": round(text_mib, 1),
            "baseline_mib": round(baseline, 1), "byte_bound_mib": round(bounded, 1),
            "rows_only_mib": round(rows_only, 1),
            "ratio_byte_bound_vs_rows_only": round(bounded / rows_only, 3)}


def main() -> None:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with data.server() as server_dsn:
        b = data.create(server_dsn, "maimdb_bench_memory", 1, 1)
        result = run(b.dsn, messages)
    print(f"import memory: {result['messages']} messages, {result['text_mib']} MiB of text: "
          f"peak RSS {result['byte_bound_mib']} MiB with the byte bound, "
          f"{result['rows_only_mib']} MiB bounded by rows only "
          f"(x{result['ratio_byte_bound_vs_rows_only']}); the process itself "
          f"{result['baseline_mib']} MiB")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
