"""The benchmarks run from a fresh clone as the README installs it (issue 36, "Done when"):
their own embedded server starts for whoever runs them, root included. Nothing here is timed."""

from __future__ import annotations

import psycopg
import pytest

from benchmarks import data, policy_cost


def test_the_benchmarks_start_their_own_server(monkeypatch: pytest.MonkeyPatch) -> None:
    # As root the embedded server runs as another OS user, which must enter the directory the
    # benchmark made for it (a 0700 mkdtemp stopped `python -m benchmarks` there).
    monkeypatch.delenv("MAIMDB_BENCH_DSN", raising=False)
    with data.server() as dsn, psycopg.connect(dsn) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_the_benchmarks_pgbench_signs_in_to_their_own_server(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m benchmarks` runs pgbench as the embedded server's superuser, who has a
    password (its passfile) since 0.6.0: without it pgbench failed and ended the run."""
    monkeypatch.delenv("MAIMDB_BENCH_DSN", raising=False)
    with data.server() as dsn:
        bench = data.create(dsn, "maimdb_bench_smoke", 2, 1)
        assert policy_cost._pgbench(bench, "select 1;\n", 1) > 0
