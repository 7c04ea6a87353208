"""A real PgBouncer (Debian's) in transaction mode in front of the test server.

It runs as the user that owns the server's socket directory (PgBouncer refuses to run as
root), listens on a free loopback port, and passes every database name through.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.databases import LOGINS, PASSWORD

BINARY = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def available() -> bool:
    return Path(BINARY).exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(server_dsn: str, users: dict[str, str]) -> Iterator[tuple[str, int]]:
    """Start PgBouncer for the server behind ``server_dsn``; yield (host, port)."""
    params = conninfo_to_dict(server_dsn)
    host, port = str(params.get("host") or "127.0.0.1"), str(params.get("port") or 5432)
    workdir = Path(tempfile.mkdtemp(prefix="maimdb-pgbouncer-"))
    listen = _free_port()
    run_as = pwd.getpwuid(os.stat(host).st_uid).pw_name if host.startswith("/") else None
    (workdir / "users.txt").write_text(
        "".join(f'"{u}" "{p}"\n' for u, p in users.items()))
    (workdir / "pgbouncer.ini").write_text(f"""
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = trust
auth_file = {workdir}/users.txt
pool_mode = transaction
default_pool_size = 4
max_client_conn = 500
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = {workdir}/pgbouncer.log
pidfile = {workdir}/pgbouncer.pid
""")
    command = [BINARY, "-d", str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:
        user = run_as or "nobody"
        shutil.chown(workdir, user)
        for f in workdir.iterdir():
            shutil.chown(f, user)
        command[1:1] = ["-u", user]
    subprocess.run(command, check=True, capture_output=True, timeout=30)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", listen), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    log = (workdir / "pgbouncer.log").read_text(errors="replace")
                    raise RuntimeError(f"pgbouncer did not start:\n{log}") from None
                time.sleep(0.05)
        yield "127.0.0.1", listen
    finally:
        pid_file = workdir / "pgbouncer.pid"
        if pid_file.exists():
            with suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().strip()), 15)
        time.sleep(0.1)
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def for_the_tests(server_dsn: str) -> Iterator[tuple[str, int]]:
    """A PgBouncer that knows the test logins, in front of ``server_dsn``: the session fixture
    of the conftest and of the Citus tests. Missing, it skips them (fails them in .ci/run)."""
    if not available():
        missing = "Debian's pgbouncer is not installed (apt-get install pgbouncer)"
        if os.environ.get("MAIMDB_REQUIRE_PGBOUNCER"):  # .ci/run: a skip would hide the pooler
            pytest.fail(missing)
        pytest.skip(missing)
    with running(server_dsn, {login: PASSWORD for login, _ in LOGINS.values()}) as address:
        yield address
