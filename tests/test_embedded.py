"""The embedded default, driven the way an operator does: through `maimdb` with no DSN."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from maim_db import MigrationError, connect, ids
from maim_db.tables import Agent, Tenant
from tests.databases import TestDB

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def maimdb(tmp_path: Path) -> Iterator[Run]:
    env = {k: v for k, v in os.environ.items() if k != "MAIMDB_DSN"}
    env["MAIMDB_DATA_DIR"] = str(tmp_path / "data" / "postgres")

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "maim_db.cli", *args], env=env,
                              input=stdin, capture_output=True, text=True, timeout=180,
                              cwd=tmp_path)

    yield run
    run("db", "stop")


def test_migrate_starts_the_server_and_data_survives_a_restart(maimdb: Run,
                                                              tmp_path: Path) -> None:
    assert maimdb("db", "status").returncode == 1
    stopped = maimdb("db", "status", "--json")
    assert stopped.returncode == 1 and json.loads(stopped.stdout) == {
        "data_dir": str(tmp_path / "data" / "postgres"), "initialized": False,
        "running": False, "pid": None}
    first = maimdb("migrate")
    assert first.returncode == 0, first.stderr
    assert "applied 0001_control_plane" in first.stdout
    assert "nothing to apply" in maimdb("migrate").stdout
    assert maimdb("status").returncode == 0
    running = json.loads(maimdb("db", "status", "--json").stdout)
    assert running["running"] is True and running["initialized"] is True
    assert isinstance(running["pid"], int) and running["pid"] > 0

    url = maimdb("db", "url").stdout.strip()
    tenant = ids.new_tenant_id()
    with connect(url, admin=True) as adm:
        adm.insert(Tenant(id=tenant, tenant_name="survivor"))

    assert maimdb("db", "stop").stdout.strip() == "stopped"
    assert maimdb("db", "status").returncode == 1
    assert maimdb("db", "url").returncode == 1
    assert maimdb("db", "start").returncode == 0
    assert "running:     yes" in maimdb("db", "status").stdout
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


def test_migrate_names_its_server_and_stop_means_stopped(maimdb: Run, tmp_path: Path) -> None:
    first = maimdb("migrate")
    assert first.returncode == 0, first.stderr
    assert (f"server: the embedded PostgreSQL in {tmp_path / 'data' / 'postgres'} "
            "(it keeps running") in first.stdout
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
    listed = subprocess.run([sys.executable, "-m", "maim_db.cli", "agent", "list"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 1 and listed.stderr.count("\n") == 1
    assert "has no maim_db schema: run `maimdb migrate`" in listed.stderr


def test_a_server_that_will_not_start_is_one_line_and_a_log(tmp_path: Path) -> None:
    """Issue 14, item 4: the wheel printed 45 lines with the cause buried."""
    data = tmp_path / "pg"
    data.mkdir()
    (data / "PG_VERSION").write_text("99\n")  # a data directory no server can start from
    env = {k: v for k, v in os.environ.items() if k != "MAIMDB_DSN"}
    env["MAIMDB_DATA_DIR"] = str(data)
    result = subprocess.run([sys.executable, "-m", "maim_db.cli", "db", "start"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"the embedded PostgreSQL in {data} did not start: could not open file" \
           in result.stderr
    log = tmp_path / "pg.start-failure.log"
    assert f"the full log is in {log}" in result.stderr
    assert "pg_ctl" in log.read_text() and len(log.read_text().splitlines()) > 5
