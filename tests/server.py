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

from maim_db import embedded


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextmanager
def superuser_dsn() -> Iterator[tuple[str, str]]:
    """Yield (DSN of a superuser on database ``postgres``, a label for reports)."""
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
        yield embedded.start(data_dir, "postgres"), "embedded"
    finally:
        embedded.stop(data_dir)
        shutil.rmtree(data_dir.parent, ignore_errors=True)
