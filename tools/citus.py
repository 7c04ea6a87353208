"""A Citus cluster on this machine, for the tests and for trying it: ``python tools/citus.py
build | start DIR | stop DIR | dsn | packages``.

``build`` compiles Citus 13.2.2 from the vendored source (``../shared/vendor``, or
``MAIMDB_CITUS_SOURCE``) against Debian's PostgreSQL 15 and installs it into that server's
directories. The compiled files are kept under ``~/.cache/maimdb`` (``MAIMDB_CITUS_CACHE``),
keyed by the source's SHA-256 and the server's version, so a second build on the same machine
only copies them. ``start`` makes (or restarts) one coordinator and two workers under DIR,
each with ``citus`` preloaded and created, the workers added; ``stop`` stops them; ``dsn``
prints the coordinator's superuser DSN; ``packages`` the Debian packages the build needs.

Citus opens its node connections as the current role, so on a cluster the maim group roles
need ``LOGIN``. ``start`` creates them with a random password that only Citus is given
(``pg_dist_authinfo`` on every node, superuser-only), and each node's ``pg_hba.conf`` asks
those roles for it (everyone else: trust, a test cluster): an application login that names
``maim_app`` cannot log in as it.

This is for tests and local trials: a real cluster installs Citus from its platform's packages
(docs/scaling.md). Build dependencies are Debian's (``.ci/run`` installs them).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "13.2.2"
PG = Path("/usr/lib/postgresql/15/bin")
PORTS = {"coordinator": 57630, "worker1": 57631, "worker2": 57632}
DATABASE = "maim"
BUILD_PACKAGES = ("postgresql-15", "postgresql-server-dev-15", "libcurl4-openssl-dev",
                  "liblz4-dev", "libzstd-dev", "libkrb5-dev", "libssl-dev", "libselinux1-dev",
                  "libxslt1-dev", "libpam0g-dev", "autoconf", "flex", "bison", "make", "gcc")


def _source() -> Path:
    given = os.environ.get("MAIMDB_CITUS_SOURCE")
    here = Path(__file__).resolve().parent.parent
    for candidate in ([Path(given)] if given else
                      [here.parent / "shared" / "vendor", Path("/work/shared/vendor")]):
        if (candidate / f"citus-{VERSION}.tar.gz").exists():
            return candidate
    raise SystemExit(f"citus-{VERSION}.tar.gz not found (set MAIMDB_CITUS_SOURCE to its "
                     "directory)")


def _run(*args: str | Path, cwd: Path | None = None, quiet: bool = True) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, text=True, capture_output=quiet)
    if done.returncode != 0:
        sys.stderr.write((done.stdout or "") + (done.stderr or ""))
        raise SystemExit(f"failed ({done.returncode}): {' '.join(map(str, args))}")
    return done.stdout or ""


def _pg_version() -> str:
    return _run(PG / "pg_config", "--version").strip()


def build() -> Path:
    """Compile (or reuse) and install Citus; the cache directory of the staged files."""
    source = _source()
    tarball = source / f"citus-{VERSION}.tar.gz"
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()[:16]
    key = hashlib.sha256(f"{digest} {_pg_version()}".encode()).hexdigest()[:16]
    cache = Path(os.environ.get("MAIMDB_CITUS_CACHE",
                                Path.home() / ".cache" / "maimdb")) / f"citus-{VERSION}-{key}"
    staged = cache / "install"
    if not (cache / "ok").exists():
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        with tempfile.TemporaryDirectory() as tmp:
            with tarfile.open(tarball) as tar:
                tar.extractall(tmp, filter="data")
            tree = next(Path(tmp).iterdir())
            for patch in sorted(source.glob(f"citus-{VERSION}-pg15*.patch")):
                _run("patch", "-p1", "-i", patch, cwd=tree)
            _run("./configure", f"PG_CONFIG={PG / 'pg_config'}", "--without-libcurl", cwd=tree)
            jobs = str(os.cpu_count() or 2)
            _run("make", f"-j{jobs}", "with_llvm=no", cwd=tree)
            _run("make", "install", "with_llvm=no", f"DESTDIR={staged}", cwd=tree)
        (cache / "ok").write_text(f"{tarball.name} {_pg_version()}\n")
    # the staged tree mirrors / (DESTDIR): copy it into the server's directories
    for path in staged.rglob("*"):
        if path.is_file():
            target = Path("/") / path.relative_to(staged)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    return cache


def _ctl(node: Path, *args: str) -> None:
    _run("runuser", "-u", "postgres", "--", PG / "pg_ctl", "-w", "-D", node / "data",
         "-l", node / "log", *args)


def _running(node: Path) -> bool:
    # pg_ctl status, not the pid file: a server that died leaves its pid file behind
    return subprocess.run(["runuser", "-u", "postgres", "--", str(PG / "pg_ctl"), "status",
                           "-D", str(node / "data")], capture_output=True).returncode == 0


def _psql(port: int, sql: str, database: str = DATABASE) -> str:
    return _run(PG / "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "localhost",
                "-p", str(port), "-U", "postgres", "-d", database, "-c", sql)


def start(directory: Path) -> str:
    """Start the three nodes under ``directory`` (made the first time); the coordinator's
    superuser DSN."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.chown(directory, "postgres", "postgres")
    fresh = []
    for name, port in PORTS.items():
        node = directory / name
        if not (node / "data" / "PG_VERSION").exists():
            node.mkdir(exist_ok=True)
            shutil.chown(node, "postgres", "postgres")
            _run("runuser", "-u", "postgres", "--", PG / "initdb", "--no-sync", "-D",
                 node / "data", "-A", "trust", "-U", "postgres", "-E", "UTF8")
            with open(node / "data" / "postgresql.conf", "a", encoding="utf-8") as conf:
                conf.write(f"\nshared_preload_libraries = 'citus'\nport = {port}\n"
                           "listen_addresses = 'localhost'\nunix_socket_directories = ''\n"
                           "max_connections = 200\nfsync = off\n")
            (node / "data" / "pg_hba.conf").write_text(HBA)
            fresh.append(name)
        if not _running(node):
            _ctl(node, "start")
    for name in fresh:
        port = PORTS[name]
        _psql(port, f"create database {DATABASE}", database="postgres")
        _psql(port, "create extension citus")
    if "coordinator" in fresh:
        coordinator = PORTS["coordinator"]
        _psql(coordinator, f"select citus_set_coordinator_host('localhost', {coordinator})")
        for name in ("worker1", "worker2"):
            _psql(coordinator, f"select citus_add_node('localhost', {PORTS[name]})")
        _node_roles()
    return dsn()


# The maim group roles log in only with a password (Citus opens its node connections as the
# current role, so they need LOGIN on a cluster); everyone else, trust: a test cluster.
GROUP_ROLES = ("maim_owner", "maim_app", "maim_tenant", "maim_admin", "maim_plugin")
HBA = "".join(f"host all {','.join(GROUP_ROLES)} {net} scram-sha-256\n"
              f"host all all {net} trust\n" for net in ("127.0.0.1/32", "::1/128"))


def _node_roles() -> None:
    """The group roles with a password no application is given: Citus reads it from
    ``pg_dist_authinfo`` (superuser-only) on every node, so its own connections log in and a
    login that only knows the role's name does not. `maimdb migrate` then finds the roles."""
    password = secrets.token_urlsafe(24)
    coordinator = PORTS["coordinator"]
    for role in GROUP_ROLES:  # top level: propagated to the workers
        _psql(coordinator, f"create role {role} login nobypassrls password '{password}'")
    for port in PORTS.values():
        for role in GROUP_ROLES:
            _psql(port, "insert into pg_dist_authinfo (nodeid, rolename, authinfo) "
                        f"values (0, '{role}', 'password={password}')")


def stop(directory: Path) -> None:
    for name in PORTS:
        node = directory / name
        if _running(node):
            _ctl(node, "-m", "fast", "stop")


def dsn() -> str:
    return f"host=localhost port={PORTS['coordinator']} user=postgres dbname={DATABASE}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python tools/citus.py", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="compile (or reuse) and install Citus")
    for name in ("start", "stop"):
        sub.add_parser(name).add_argument("directory", type=Path)
    sub.add_parser("dsn", help="the coordinator's superuser DSN")
    sub.add_parser("packages", help="the Debian packages the build needs")
    args = parser.parse_args()
    if args.command == "build":
        print(f"citus {VERSION}: {build()}")
    elif args.command == "start":
        print(start(args.directory))
    elif args.command == "stop":
        stop(args.directory)
    elif args.command == "packages":
        print(" ".join(BUILD_PACKAGES))
    else:
        print(dsn())


if __name__ == "__main__":
    main()
