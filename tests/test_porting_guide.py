"""docs/porting-maibot.md, run as written (issue 15): every Python block, in its own process,
against a test database with two agents — the acceptance script first. The 1.x part (issue
35): its blocks too, but the ported statistics, which tests/test_sqlmodel.py runs inside 1.2.1's
own statistics service."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from maim_db import agent_scope, connect
from maim_db.control import config as cd
from maim_db.control import keys
from maim_db.peewee import MODELS, LLMUsage, Messages, PersonInfo, ScopedDatabase
from tests.databases import TestDB, World

GUIDE = (Path(__file__).resolve().parent.parent / "docs" / "porting-maibot.md").read_text(
    encoding="utf-8")
#: Where the 1.x part (maim_db.sqlmodel) begins.
PART_1X = "\n# MaiBot 1.x (SQLModel) on maim_db\n"
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", GUIDE.split(PART_1X)[0], re.S)
#: The 1.x part's blocks, dedented (two of them sit in a list item).
BLOCKS_1X = [(lang, textwrap.dedent(code)) for lang, code in
             re.findall(r"```(\w*)\n(.*?)```", GUIDE.split(PART_1X)[1], re.S)]


def _env(db: TestDB, world: World) -> dict[str, str]:
    with connect(db.dsn("admin"), admin=True) as adm:
        secret = keys.issue(adm, agent_id=world.agent_id("B1"), name="guide plugin",
                            permissions=["chat"]).secret
    return dict(os.environ, MAIMDB_DSN=db.dsn("app"), SCHEDULER_DSN=db.dsn("admin"),
                PLUGIN_DSN=db.dsn("plugin"), PLUGIN_API_KEY=secret,
                MAIBOT_AGENT_A=world.agent_id("A1"), MAIBOT_AGENT_B=world.agent_id("B1"),
                TZ="Asia/Shanghai")  # the bot's clock is local; the server's TimeZone is not


def _run(code: str, env: dict[str, str]) -> str:
    ran = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


def test_every_block_is_python() -> None:
    assert [lang for lang, _ in BLOCKS] == ["python"] * len(BLOCKS) and len(BLOCKS) == 5


def test_the_acceptance_script_runs_for_two_agents(db: TestDB, world: World) -> None:
    env = _env(db, world)
    out = _run(BLOCKS[0][1], env)
    assert "two agents, each with only its own data: (2, 1000) (2, 600)" in out
    bridge = ScopedDatabase(db.dsn("app"))
    with bridge.bind_ctx(MODELS):  # and from outside: the rows are where they should be
        for agent, messages in (("A1", 5), ("B1", 3)):
            with agent_scope(world.agent_id(agent)):
                assert Messages.select().count() == messages
                assert PersonInfo.select().count() == 1 and LLMUsage.select().count() == 3
        with agent_scope(world.agent_id("A2")):
            assert Messages.select().count() == 0
    bridge.pool().close()


@pytest.mark.parametrize("index", [1, 2, 3, 4])
def test_the_other_blocks_run(db: TestDB, world: World, index: int) -> None:
    env = _env(db, world)
    a1 = world.agent_id("A1")
    with connect(db.dsn("app"), agent_id=a1) as s:
        cd.update(s, {"persona": {"personality": "活泼开朗"},
                      "config_overrides": {"chat": {"talk_value": 0.7}}})
    from tests.samples import message

    for agent, n in (("A1", 5), ("B1", 2)):
        with connect(db.dsn("app"), agent_id=world.agent_id(agent)) as s:
            s.insert_many([message(i) for i in range(n)])
    out = _run(BLOCKS[index][1], env)
    if index == 1:  # every agent of the world touched its state when it was made
        line = next(x for x in out.splitlines() if x.startswith("active: "))
        assert all(a.id in line for a in world.agents.values()), line
    elif index == 2:
        assert "personality: 活泼开朗" in out and "talk_value: 0.7" in out
        assert "parsed: ['a', 'b'] []" in out
    elif index == 4:
        assert "messages this plugin's agent holds: 2" in out  # B1's key: B1's two


# -- the 1.x part ------------------------------------------------------------------------------

def test_every_1x_block_is_python() -> None:
    assert [lang for lang, _ in BLOCKS_1X] == ["python"] * 3
    assert BLOCKS_1X[2][1].startswith("# ported: statistics_aggregation_service")


def test_the_1x_bot_runs_for_two_agents(db: TestDB, world: World) -> None:
    out = _run(BLOCKS_1X[0][1], _env(db, world))
    assert "two agents: (1, 'group of A', 300) (1, 'group of B', 21)" in out


def test_run_in_executor_loses_the_scope_to_thread_keeps_it(db: TestDB, world: World) -> None:
    out = _run(BLOCKS_1X[1][1], _env(db, world))
    assert "to_thread: 0" in out and "run_in_executor: ScopeError" in out


def test_the_ported_statistics_define_what_1x_calls(db: TestDB, world: World) -> None:
    _run(BLOCKS_1X[2][1], _env(db, world))  # defines them; tests/test_sqlmodel.py runs them
