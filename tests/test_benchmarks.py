"""The benchmarks run from a fresh clone as the README installs it (issue 36, "Done when"):
their own embedded server starts for whoever runs them, root included. Nothing here is timed."""

from __future__ import annotations

import psycopg
import pytest

from benchmarks import data


def test_the_benchmarks_start_their_own_server(monkeypatch: pytest.MonkeyPatch) -> None:
    # As root the embedded server runs as another OS user, which must enter the directory the
    # benchmark made for it (a 0700 mkdtemp stopped `python -m benchmarks` there).
    monkeypatch.delenv("MAIMDB_BENCH_DSN", raising=False)
    with data.server() as dsn, psycopg.connect(dsn) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
