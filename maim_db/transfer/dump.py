"""A whole database as one file, and back: ``pg_dump``/``pg_restore`` in custom format, with
the checks an operator otherwise learns by losing a backup.

- The tools must be able to read the server: ``pg_dump`` refuses a server newer than itself
  (Debian's 15 against the embedded 18), so the embedded server uses the wheel's own tools and
  a ``MAIMDB_DSN`` server the PATH's, checked first, with one line naming both versions.
- A dump holds every tenant's rows and every sealed secret: it is written 0600, to a temporary
  file renamed over the target only when ``pg_dump`` succeeded (a failed dump never replaces
  the last good one).
- A restore goes into an empty database only, in one transaction (``--single-transaction
  --exit-on-error``): it works or changes nothing. Roles are cluster-wide and not in a dump,
  so the restore first applies ``sql/00_bootstrap.sql`` (the maim roles and their
  memberships, as ``maimdb migrate`` does), then audits what it restored.
- ``reset`` drops and recreates the embedded server's database, never a ``MAIMDB_DSN`` one.

See docs/operations.md ("Backups") and docs/decisions.md.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .. import embedded
from ..connection import open_connection
from ..errors import ConfigurationError, ConflictError, InputError, MaimDBError
from ..schema.audit import Finding, audit
from ..schema.migrate import SQL_DIR
from ..settings import describe, settings

MAGIC: Final = b"PGDMP"  # the first bytes of a custom-format archive


class BackupError(MaimDBError):
    """pg_dump or pg_restore failed; the message is the tool's own reason."""


@dataclass(frozen=True)
class Target:
    """Where a dump comes from or a restore goes: the DSN, and the directory holding the
    tools that match it (None: the PATH's)."""

    dsn: str
    tools: Path | None

    @property
    def embedded(self) -> bool:
        return self.tools is not None


def target(dsn: str | None) -> Target:
    """``dsn`` (or ``MAIMDB_DSN``) with the PATH's tools, else the running embedded server
    with the wheel's."""
    chosen = dsn or settings().dsn
    if chosen:
        return Target(chosen, None)
    configured = settings()
    url = embedded.running(embedded.data_dir(configured.data_dir), configured.database)
    return Target(url, embedded.bin_dir())


@dataclass(frozen=True)
class Restored:
    database: str
    tables: int
    findings: list[Finding]


def _tool(name: str, where: Target) -> str:
    if where.tools is not None:
        return str(where.tools / name)
    found = shutil.which(name)
    if found is None:
        raise ConfigurationError(f"no {name} on PATH: install the PostgreSQL client tools "
                                 f"of the server's version or newer")
    return found


def _major(tool: str) -> int:
    ran = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=60)
    found = re.search(r"\(PostgreSQL\)\s+(\d+)", ran.stdout)
    if ran.returncode != 0 or found is None:
        raise ConfigurationError(f"{tool} --version did not say its version: "
                                 f"{(ran.stdout + ran.stderr).strip()[:200]!r}")
    return int(found.group(1))


def _server_major(dsn: str) -> int:
    with open_connection(dsn) as conn:
        return conn.info.server_version // 10000


def _env_and_dsn(dsn: str) -> tuple[dict[str, str], str]:
    """The DSN without its password (argv shows in `ps`) and an environment holding it."""
    params = {k: v for k, v in conninfo_to_dict(dsn).items() if v is not None}
    env = dict(os.environ)
    if params.get("password"):
        env["PGPASSWORD"] = str(params.pop("password"))
    return env, make_conninfo("", **params)


def _reason(stderr: str) -> str:
    """The tool's error line, without its name prefix and the lines that repeat it."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line or "FATAL" in line or "ERROR" in line]
    first = (errors or lines or ["(no message)"])[0]
    return re.sub(r"^(pg_dump|pg_restore):\s*(error:\s*)?", "", first)


def dump(path: Path, dsn: str | None = None) -> tuple[str, int]:
    """Dump the whole database to ``path`` (custom format, mode 0600); return what was
    dumped (for a person) and the file's size."""
    where = target(dsn)
    tool = _tool("pg_dump", where)
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory; name the dump file to write")
    if not path.parent.is_dir():
        raise InputError(f"{path}: its directory {path.parent} does not exist")
    major, server = _major(tool), _server_major(where.dsn)
    if major < server:
        raise ConfigurationError(
            f"pg_dump {major} cannot dump PostgreSQL {server} ({tool}): put pg_dump "
            f"{server} or newer first on PATH")
    env, conninfo = _env_and_dsn(where.dsn)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial",
                                     dir=path.parent)  # 0600, beside the target
    try:
        with os.fdopen(fd, "wb") as out:
            ran = subprocess.run([tool, "--format=custom", "--no-password",
                                  f"--dbname={conninfo}"], stdout=out, stderr=subprocess.PIPE,
                                 text=False, env=env)
            out.flush()
            os.fsync(out.fileno())
        if ran.returncode != 0:
            raise BackupError(f"pg_dump failed: {_reason(ran.stderr.decode(errors='replace'))}")
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return describe(where.dsn), path.stat().st_size


def _check_file(path: Path) -> None:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a dump file")
    with path.open("rb") as file:  # an unreadable file is an OSError naming it
        head = file.read(len(MAGIC))
    if head != MAGIC:
        raise InputError(f"{path}: not a pg_dump archive (custom format, as `maimdb db dump` "
                         "writes)")


def _dumped_from(tool: str, path: Path) -> tuple[int, int]:
    """(the dumped server's major version, the dumping pg_dump's), from the archive's
    header as ``pg_restore --list`` reads it."""
    ran = subprocess.run([tool, "--list", str(path)], capture_output=True, text=True)
    if ran.returncode != 0:
        newest = str(embedded.bin_dir() / "pg_restore")
        if "unsupported version" in ran.stderr and tool != newest:
            return _dumped_from(newest, path)  # an older pg_restore: the caller says so
        raise InputError(f"{path}: {tool} cannot read it: {_reason(ran.stderr)}")
    found = [re.search(rf"Dumped {what} version:\s*(\d+)", ran.stdout)
             for what in ("from database", "by pg_dump")]
    if found[0] is None or found[1] is None:
        raise InputError(f"{path}: not a pg_dump archive (its header names no versions)")
    return int(found[0].group(1)), int(found[1].group(1))


# (what makes a database not empty, the tables of public and of MaiBot 1.x's maibot1)
_OBJECTS = """
select (select count(*) from pg_catalog.pg_namespace
         where nspname not in ('public', 'information_schema') and nspname !~ '^pg_')
     + (select count(*) from pg_catalog.pg_class c
         join pg_catalog.pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public'),
       (select count(*) from pg_catalog.pg_class c
         join pg_catalog.pg_namespace n on n.oid = c.relnamespace
         where n.nspname in ('public', 'maibot1') and c.relkind in ('r', 'p'))
"""


def _roles(conn: psycopg.Connection[Any]) -> None:
    """The maim roles and their memberships (cluster-wide, not in a dump): the bootstrap
    ``maimdb migrate`` applies, whose schemas ``maim`` and ``maibot1`` are dropped again in
    the same transaction, as the archive creates them."""
    with conn.transaction():
        for file in sorted(SQL_DIR.glob("00_*.sql")):
            conn.execute(file.read_text(encoding="utf-8"))
        conn.execute("drop schema maim, maibot1")


# pg_restore 17 and later write `SET transaction_timeout = 0;` into every restore, and a
# server before 17 refuses that setting: the script goes through psql without that line.
_NEWER_ONLY: Final = "SET transaction_timeout = 0;"


def _through_psql(tool: str, path: Path, conninfo: str,
                  env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Restore ``path`` as pg_restore's SQL script, run by psql in one transaction."""
    script = subprocess.run([tool, "--file=-", str(path)], capture_output=True, text=True,
                            env=env)
    if script.returncode != 0:
        return script
    beside = Path(tool).with_name("psql")
    psql = str(beside) if beside.is_file() else shutil.which("psql", path=env.get("PATH"))
    if psql is None:
        raise ConfigurationError(f"restoring with pg_restore from PostgreSQL 17 or later into "
                                 f"an older server needs psql, which is not beside {tool} "
                                 "nor on PATH")
    body = "".join(line for line in script.stdout.splitlines(keepends=True)
                   if line.strip() != _NEWER_ONLY)
    return subprocess.run([psql, "--no-psqlrc", "--quiet", "--single-transaction",
                           "--set=ON_ERROR_STOP=1", "--no-password", f"--dbname={conninfo}"],
                          input=body, capture_output=True, text=True, env=env)


def restore(path: Path, dsn: str | None = None) -> Restored:
    """Restore a dump into an empty database: all of it in one transaction, or nothing."""
    path = Path(path)
    _check_file(path)
    where = target(dsn)
    tool = _tool("pg_restore", where)
    major, server = _major(tool), _server_major(where.dsn)
    dumped_from, dumped_by = _dumped_from(tool, path)
    if major < dumped_by:
        raise ConfigurationError(
            f"pg_restore {major} cannot restore PostgreSQL {dumped_by}'s pg_dump archive "
            f"{path} ({tool}): put pg_restore {dumped_by} or newer first on PATH")
    if dumped_from > server:
        raise ConfigurationError(
            f"{path} is a dump of PostgreSQL {dumped_from}; the server is PostgreSQL {server}: "
            f"restore it into a server of version {dumped_from} or newer")
    with open_connection(where.dsn) as conn:
        database = describe(where.dsn)
        row = conn.execute(_OBJECTS).fetchone()
        if row is not None and row[0]:
            raise ConflictError(
                f"{database} is not empty: a restore goes into an empty database (`maimdb db "
                "reset` empties the embedded one; for another server, create a new database)")
        try:
            _roles(conn)
        except psycopg.Error as err:
            raise BackupError(f"cannot create the maim roles before the restore: "
                              f"{str(err).strip()}") from err
    env, conninfo = _env_and_dsn(where.dsn)
    if major >= 17 > server:
        ran = _through_psql(tool, path, conninfo, env)
    else:
        ran = subprocess.run([tool, "--single-transaction", "--exit-on-error", "--no-password",
                              f"--dbname={conninfo}", str(path)], capture_output=True,
                             text=True, env=env)
    if ran.returncode != 0:
        raise BackupError(f"pg_restore failed, nothing was restored: {_reason(ran.stderr)}")
    with open_connection(where.dsn) as conn:
        row = conn.execute(_OBJECTS).fetchone()
        findings = audit(conn)
    return Restored(database, int(row[1]) if row else 0, findings)


def reset(data_dir: Path | None = None, database: str | None = None) -> str:
    """Drop the embedded server's database and create it empty; return its description.
    Refused when ``MAIMDB_DSN`` is set: that server's databases are its operator's."""
    configured = settings()
    if configured.dsn:
        raise ConfigurationError("`maimdb db reset` is for the embedded server and MAIMDB_DSN "
                                 "is set: drop and create that database with your server's "
                                 "tools (or unset MAIMDB_DSN)")
    where = embedded.data_dir(data_dir or configured.data_dir)
    name = database or configured.database
    url = embedded.running(where, name)
    params = {k: v for k, v in conninfo_to_dict(url).items() if v is not None}
    params["dbname"] = "postgres"
    try:
        with psycopg.connect(make_conninfo("", **params), autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(
                sql.Identifier(name)))
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    except psycopg.Error as err:
        raise BackupError(f"cannot reset {describe(url)}: {str(err).strip()}") from err
    return describe(url)
