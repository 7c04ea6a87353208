"""The documented agent backup, run as written (issue 31, item 6): the export blocks of
docs/import-export.md and docs/quickstart.zh.md, in bash, against a real server. They once
made a new MAIMDB_SECRET_KEY in the middle (the restore then could not open the secrets
sealed under the deployment's key) and erased the source agent even when the restore failed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from maim_db import connect
from maim_db.control import config as cd
from maim_db.tables import Agent, Tenant
from maim_db.tables.runtime import Message
from tests import maibot_files as mf
from tests.databases import TestDB
from tests.samples import message

DOCS = Path(__file__).resolve().parent.parent / "docs"
SOURCE, TARGET = "agent_3f9a1c2b7d4e", "agent_9c1d2e3f4a5b"  # the ids the blocks use


def _block(doc: str) -> str:
    text = (DOCS / doc).read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```(?:sh|bash)\n(.*?)```", text, re.S)
              if "maimdb export --agent" in b]
    assert len(blocks) == 1, f"{doc} should hold one export example"
    return str(blocks[0])


def _provider(db: TestDB, agent: str) -> list[tuple[str, str | None, str | None]]:
    with connect(db.dsn("app"), agent_id=agent) as s:
        overrides = cd.read(s, reveal=True).get("config_overrides") or {}
    return [(p["name"], p.get("api_key"), p.get("base_url"))
            for p in (overrides.get("model") or {}).get("api_providers") or []]


def _messages(db: TestDB, agent: str) -> int:
    with connect(db.dsn("app"), agent_id=agent) as s:
        return len(s.fetch(Message, "select * from messages"))


@pytest.mark.fresh_db  # dumps and restores the whole database
@pytest.mark.parametrize("doc", ["import-export.md", "quickstart.zh.md"])
def test_the_backup_block_keeps_the_key_and_never_erases_before_a_restore(
        db: TestDB, tmp_path: Path, secret_key: str, doc: str) -> None:
    tenant = "tenant_3f9a1c2b7d4e"
    with connect(db.dsn("admin"), admin=True) as adm:
        adm.insert(Tenant(id=tenant, tenant_name="docs"))
        adm.insert(Agent(id=SOURCE, tenant_id=tenant, name="old bot"))
        adm.insert(Agent(id=TARGET, tenant_id=tenant, name="new bot"))
    providers = [("sf", "sk-秘密", "https://api.example.cn")]
    with connect(db.dsn("app"), agent_id=SOURCE) as s:  # sealed under the deployment's key
        cd.update(s, {"config_overrides": {"model": {"api_providers": [
            dict(zip(("name", "api_key", "base_url"), providers[0], strict=True))]}}})
        s.insert_many([message(i) for i in range(3)])
    (tmp_path / "data").mkdir()
    mf.build(tmp_path / "data" / "MaiBot.db", "0.12")
    block = _block(doc)
    env = dict(os.environ, MAIMDB_DSN=db.dsn("app"),
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")

    def run(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", block], cwd=tmp_path, env=environment,
                              capture_output=True, text=True, timeout=300)

    # Without the deployment's key the block stops before it exports, erases or restores.
    keyless = run({k: v for k, v in env.items() if k != "MAIMDB_SECRET_KEY"})
    assert keyless.returncode != 0
    assert not (tmp_path / "backup").exists()
    assert _messages(db, TARGET) == 0 and _provider(db, SOURCE) == providers

    ran = run(env)
    assert ran.returncode == 0, ran.stderr
    held = 3 + (len(mf.canonical()["messages"]) if "import-sqlite" in block else 0)
    assert _messages(db, TARGET) == held and _provider(db, TARGET) == providers
    assert _messages(db, SOURCE) == 0  # erased only after the restore succeeded
    assert os.environ["MAIMDB_SECRET_KEY"] == secret_key
