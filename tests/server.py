"""Where the test PostgreSQL comes from, in the README's order: ``MAIMDB_TEST_DSN``; a
testcontainers server where a Docker daemon answers; else the embedded wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from maim_db import embedded


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def non_durable(dsn: str) -> None:
    """PostgreSQL's "non-durable settings" on a throwaway test server: a crash may lose it
    whole, and in exchange a commit, a checkpoint and a cloned database cost no disk flush —
    most of a test's setup time. Only for servers the tests start themselves; a server behind
    ``MAIMDB_TEST_DSN`` is left as it is (.ci/run starts its PostgreSQL 15 with these)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for setting in NON_DURABLE:
            name, value = setting.split("=")
            conn.execute(sql.SQL("alter system set {} = {}").format(
                sql.Identifier(name), sql.Literal(value)))
        conn.execute("select pg_reload_conf()")


# each one a sighup setting: a reload applies it, no restart
NON_DURABLE = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


@contextmanager
def superuser_dsn() -> Iterator[tuple[str, str]]:
    """Yield (DSN of a superuser on database ``postgres``, a label for reports). Under
    ``pytest -n``, worker ``gwN`` takes ``MAIMDB_TEST_DSN_GWN`` first (.ci/run: one server
    per worker, as roles are cluster-wide)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker and (dsn := os.environ.get(f"MAIMDB_TEST_DSN_{worker.upper()}")):
        yield dsn, f"MAIMDB_TEST_DSN_{worker.upper()}"  # pytest -n: a server per worker
        return
    if dsn := os.environ.get("MAIMDB_TEST_DSN"):
        yield dsn, "MAIMDB_TEST_DSN"
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:18", driver=None) as pg:
            yield pg.get_connection_url(), "testcontainers postgres:18"
        return
    data_dir = Path(tempfile.mkdtemp(prefix="maimdb-test-")) / "pg"
    data_dir.parent.chmod(0o755)  # as root the server runs as another user: it must enter
    try:
        dsn = embedded.start(data_dir, "postgres")
        non_durable(dsn)
        yield dsn, "embedded"
    finally:
        embedded.stop(data_dir)
        shutil.rmtree(data_dir.parent, ignore_errors=True)
