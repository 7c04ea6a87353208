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
need ``LOGIN``. ``start`` creates them without a password and gives Citus a client
certificate for them (``pg_dist_authinfo`` on every node, superuser-only); each node's
``pg_hba.conf`` admits those roles with that certificate alone, so neither an application
login that names ``maim_app`` nor a block that changes ``maim_plugin``'s password can log in
as one. A worker admits no one else but the superuser; the coordinator trusts the
application's logins (a test cluster).

This is for tests and local trials: a real cluster installs Citus from its platform's packages
(docs/scaling.md). Build dependencies are Debian's (``.ci/run`` installs them).
"""

from __future__ import annotations

import argparse
import hashlib
import os
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
BUILD_PACKAGES = ("postgresql-15", "postgresql-server-dev-15", "openssl", "libcurl4-openssl-dev",
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
    # the staged tree mirrors / (DESTDIR): copy it into the server's directories. A file that
    # is already there unchanged is left alone, and a changed one is replaced by a rename, not
    # written over: running servers have citus.so mapped, and overwriting it in place crashed
    # every cluster on the machine (a general protection fault in citus.so) when a second
    # checkout ran `build`
    for path in staged.rglob("*"):
        if path.is_file():
            target = Path("/") / path.relative_to(staged)
            if target.is_file() and target.read_bytes() == path.read_bytes():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            fresh = target.with_name(f".{target.name}.{os.getpid()}")
            shutil.copy2(path, fresh)
            os.replace(fresh, target)
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
    tls = _tls(directory)
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
                           "max_connections = 200\nfsync = off\n"
                           f"ssl = on\nssl_cert_file = '{tls / 'server.crt'}'\n"
                           f"ssl_key_file = '{tls / 'server.key'}'\n"
                           f"ssl_ca_file = '{tls / 'ca.crt'}'\n"
                           "citus.node_conninfo = 'sslmode=require'\n")
            fresh.append(name)
        (node / "data" / "pg_hba.conf").write_text(_hba(name))
        (node / "data" / "pg_ident.conf").write_text(IDENT)
        if not _running(node):
            _ctl(node, "start")
        else:
            _ctl(node, "reload")
    for name in fresh:
        port = PORTS[name]
        _psql(port, f"create database {DATABASE}", database="postgres")
        _psql(port, "create extension citus")
    if "coordinator" in fresh:
        coordinator = PORTS["coordinator"]
        _psql(coordinator, f"select citus_set_coordinator_host('localhost', {coordinator})")
        for name in ("worker1", "worker2"):
            _psql(coordinator, f"select citus_add_node('localhost', {PORTS[name]})")
        _node_roles(tls)
    return dsn()


# Who a node admits. The maim group roles log in only with Citus's client certificate (pg_hba
# `cert`, mapped by pg_ident): nothing a role can change about itself (ALTER ROLE … PASSWORD)
# is asked for, so a block that runs as maim_plugin cannot give itself a way in (issue 32.2).
# A worker admits nobody else but the operator's superuser: an application login has no
# business there, and one that had a session could replay what Citus sends its connections
# (issue 32.1). The coordinator admits the application's logins (trust: a test cluster).
GROUP_ROLES = ("maim_owner", "maim_app", "maim_tenant", "maim_admin", "maim_plugin")
CLIENT_CN = "maim-citus-node"
NETS = ("127.0.0.1/32", "::1/128")


def _hba(name: str) -> str:
    roles = ",".join(GROUP_ROLES)
    lines = [f"hostssl all {roles} {net} cert map=citus" for net in NETS]
    lines += [f"host all {roles} {net} reject" for net in NETS]  # not without the certificate
    lines += [f"host all postgres {net} trust" for net in NETS]  # the operator (tests)
    others = "trust" if name == "coordinator" else "reject"
    lines += [f"host all all {net} {others}" for net in NETS]
    return "\n".join(lines) + "\n"


IDENT = "".join(f"citus {CLIENT_CN} {role}\n" for role in GROUP_ROLES)


def _openssl(*args: str | Path) -> None:
    _run("openssl", *args)


def _tls(directory: Path) -> Path:
    """A CA, a server certificate for every node and the client certificate Citus presents,
    made once under ``directory/tls`` (readable by postgres alone)."""
    tls = directory / "tls"
    if (tls / "client.key").exists():
        return tls
    tls.mkdir(exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj",
             "/CN=maim-citus-ca", "-keyout", tls / "ca.key", "-out", tls / "ca.crt")
    for name, cn in (("server", "localhost"), ("client", CLIENT_CN)):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
                 "-keyout", tls / f"{name}.key", "-out", tls / f"{name}.csr")
        _openssl("x509", "-req", "-in", tls / f"{name}.csr", "-CA", tls / "ca.crt",
                 "-CAkey", tls / "ca.key", "-CAcreateserial", "-days", "3650",
                 "-out", tls / f"{name}.crt")
    for path in tls.iterdir():
        shutil.chown(path, "postgres", "postgres")
        path.chmod(0o600)
    shutil.chown(tls, "postgres", "postgres")
    tls.chmod(0o700)
    return tls


def _node_roles(tls: Path) -> None:
    """The group roles, without a password: Citus logs in as them with its client certificate
    (``pg_dist_authinfo`` on every node, superuser-only). `maimdb migrate` then finds them."""
    coordinator = PORTS["coordinator"]
    for role in GROUP_ROLES:  # top level: propagated to the workers
        _psql(coordinator, f"create role {role} login nobypassrls")
    authinfo = f"sslcert={tls / 'client.crt'} sslkey={tls / 'client.key'}"
    for port in PORTS.values():
        for role in GROUP_ROLES:
            _psql(port, "insert into pg_dist_authinfo (nodeid, rolename, authinfo) "
                        f"values (0, '{role}', '{authinfo}')")


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
