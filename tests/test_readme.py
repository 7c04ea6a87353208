"""The README's examples, run as written (issue 14, item 10): its Python twice, as a service
would run it again, and its psql session through `maimdb db psql`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from maim_db import connect
from maim_db.tables import Agent, AgentActiveState, Tenant
from tests.databases import TestDB

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
AGENT = "agent_3f9a1c2b7d4e"  # the id the README's examples use


def _block(language: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", README, re.S)
    assert len(blocks) == 1, f"the README should hold one {language} example"
    return str(blocks[0])


def _readme_agent(db: TestDB) -> str:
    tenant = "tenant_3f9a1c2b7d4e"
    with connect(db.dsn("admin"), admin=True) as adm:
        adm.insert(Tenant(id=tenant, tenant_name="readme"))
        adm.insert(Agent(id=AGENT, tenant_id=tenant, name="readme bot"))
        adm.insert(Agent(id="agent_000000000000", tenant_id=tenant, name="another bot"))
    return tenant


@pytest.mark.fresh_db  # the README's fixed ids
def test_the_python_example_runs_and_runs_again(db: TestDB) -> None:
    _readme_agent(db)
    env = dict(os.environ, MAIMDB_DSN=db.dsn("app"))
    code = _block("python") + "\nassert [r.id for r in rows] == [me.id]\n"
    for _ in (1, 2):
        ran = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr
    with connect(db.dsn("app"), agent_id=AGENT) as app:
        assert [s.agent_id for s in app.find(AgentActiveState)] == [AGENT]


@pytest.mark.fresh_db  # the README's fixed ids
def test_the_psql_example_runs_under_rls(db: TestDB) -> None:
    _readme_agent(db)
    env = dict(os.environ, MAIMDB_DSN=db.dsn("app"))
    session = subprocess.run([sys.executable, "-m", "maim_db.cli", "db", "psql", "--as", "app",
                              "-v", "ON_ERROR_STOP=0"], input=_block("sql"), env=env,
                             capture_output=True, text=True, timeout=60)
    assert AGENT in session.stdout and "agent_000000000000" not in session.stdout
    assert session.stderr.count("ERROR:") == 1
    assert "maim.agent_id is not set" in session.stderr


def test_the_command_table_names_every_command() -> None:
    """Every top-level `maimdb` command and noun has a row in the README's table (it once
    left out `maimdb user` and `maimdb watch`)."""
    import typer.main

    from maim_db.cli.main import app

    table = README.split("## Commands", 1)[1].split("\n## ", 1)[0]
    first_cells = [line.split(" | ", 1)[0] for line in table.splitlines() if line.startswith("| `")]
    named = {n for cell in first_cells
             for n in re.findall(r"`maimdb ([\w-]+(?:\\\|[\w-]+)*)", cell)}
    listed = {word for row in named for word in row.split("\\|")}
    assert sorted(set(typer.main.get_command(app).commands) - listed) == []
