"""The embedded default, driven the way an operator does: through `maimdb` with no DSN."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from maim_db import connect, ids
from maim_db.tables import Agent, Tenant

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


def test_migrate_starts_the_server_and_data_survives_a_restart(maimdb: Run) -> None:
    assert maimdb("db", "status").returncode == 1
    first = maimdb("migrate")
    assert first.returncode == 0, first.stderr
    assert "applied 0001_control_plane" in first.stdout
    assert "nothing to apply" in maimdb("migrate").stdout
    assert maimdb("status").returncode == 0

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
