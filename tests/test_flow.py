"""The control-plane flow a new user walks through, from the CLI and from Python: create a
tenant, an agent and a key; resolve the key; write messages in the key's scope; read and
patch the configuration; suspend the agent and watch the key stop working; delete the agent
and see its rows gone."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from maim_db import AuthenticationError, connect
from maim_db.control import activity, keys, plugins, tenancy
from maim_db.control import config as cd
from maim_db.tables import PluginSetting
from tests.cli import maimdb, one_line_error
from tests.databases import TestDB
from tests.samples import message


def _cli(db: TestDB, *args: str, stdin: str | None = None) -> Any:
    result = maimdb(*args, "--json", dsn=db.dsn("admin"), stdin=stdin)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _cli_fails(db: TestDB, *args: str) -> str:
    return one_line_error(maimdb(*args, dsn=db.dsn("admin")))


def _unique(name: str) -> str:
    """Names are unique per database, and on the Citus cluster every test shares one."""
    return f"{name} {uuid.uuid4().hex[:8]}"


def test_the_flow_from_the_cli(db: TestDB) -> None:
    tenant = _cli(db, "tenant", "create", _unique("Alice's bots"))
    agent = _cli(db, "agent", "create", "麦麦", "--tenant", tenant["id"])
    key = _cli(db, "key", "create", "runtime", "--agent", agent["id"], "-p", "chat")
    assert key["secret"].startswith("mmc_") and "key_hash" not in key

    resolved = keys.resolve(key["secret"], db.dsn("app"))
    assert resolved.agent_id == agent["id"]
    with connect(db.dsn("plugin"), api_key=key["secret"]) as scope:
        assert scope.insert_many([message(i) for i in range(5)]) == 5

    patched = maimdb("config", "set", agent["id"], "-", dsn=db.dsn("admin"),
                     stdin='{"config_overrides": {"chat": {"talk_value": 0.25}}}')
    assert patched.returncode == 0, patched.stderr
    doc = json.loads(patched.stdout)
    assert doc["config_overrides"]["chat"]["talk_value"] == 0.25

    listed = _cli(db, "agent", "list", "--tenant", tenant["id"])
    assert listed["total"] == 1 and listed["items"][0]["id"] == agent["id"]
    assert _cli(db, "key", "list", "--agent", agent["id"])["items"][0]["usage_count"] == 2

    assert _cli(db, "agent", "suspend", agent["id"])["status"] == "suspended"
    with pytest.raises(AuthenticationError):
        keys.resolve(key["secret"], db.dsn("app"))
    assert "invalid API key" in _cli_fails(db, "key", "check", "--secret", key["secret"])

    removed = _cli(db, "agent", "delete", agent["id"], "--yes")
    assert removed["agents"] == 1 and removed["messages"] == 5 and removed["api_keys"] == 1
    assert removed["chat_config_overrides"] == 1
    with connect(db.dsn("admin"), admin=True) as adm:
        assert adm.scalar("select count(*) from messages where agent_id = %s",
                          [agent["id"]]) == 0
    assert f"no such agent {agent['id']}" in _cli_fails(db, "agent", "show", agent["id"])


def test_the_flow_from_python(db: TestDB) -> None:
    with connect(db.dsn("admin"), admin=True) as adm:
        tenant = tenancy.create_tenant(adm, _unique("Bob's bots"))
        agent = tenancy.create_agent(adm, "小麦", tenant_id=tenant.id)
        issued = keys.issue(adm, agent_id=agent.id, name="runtime", permissions=["chat"])
        plugins.configure(adm, tenant_id=tenant.id, plugin_name="emoji", enabled=True)
        plugins.configure(adm, tenant_id=tenant.id, agent_id=agent.id, plugin_name="emoji",
                          enabled=False, config={"chance": 0.1})
        plugins.configure(adm, tenant_id=tenant.id, plugin_name="tts", enabled=True)

    resolved = keys.resolve(issued.secret, db.dsn("app"))
    resolved.require("chat")
    with connect(db.dsn("app"), agent_id=resolved.agent_id) as scope:
        activity.touch(scope, ttl_seconds=60)
        scope.insert_many([message(i) for i in range(3)])
        doc = cd.update(scope, {"persona": {"personality": "活泼"}})
        effective = {p.plugin_name: p for p in plugins.effective(scope)}
    assert doc["persona"]["personality"] == "活泼"
    assert {k: (v.enabled, v.agent_id) for k, v in effective.items()} == {
        "emoji": (False, agent.id), "tts": (True, None)}
    assert isinstance(effective["emoji"], PluginSetting)

    with connect(db.dsn("tenant"), tenant_id=tenant.id) as ten:
        assert [s.agent_id for s in activity.list_active(ten)] == [agent.id]
    with connect(db.dsn("admin"), admin=True) as adm:
        tenancy.set_tenant_status(adm, tenant.id, "suspended")
    with pytest.raises(AuthenticationError):
        keys.resolve(issued.secret, db.dsn("app"))

    with connect(db.dsn("admin"), admin=True) as adm:
        removed = tenancy.delete_tenant(adm, tenant.id)
    assert removed["tenants"] == 1 and removed["agents"] == 1 and removed["messages"] == 3
    assert removed["plugin_settings"] == 3


def test_cli_refusals_are_one_line_and_write_nothing(db: TestDB, tmp_path: Any) -> None:
    tenants = _cli(db, "tenant", "list")["total"]
    tenant = _cli(db, "tenant", "create", _unique("T"))
    agent = _cli(db, "agent", "create", "A", "--tenant", tenant["id"])
    assert "tenant_type" in _cli_fails(db, "tenant", "create", "x", "--type", "bogus")
    for kind in ("tenant", "agent", "key"):
        assert "status must be one of" in _cli_fails(db, kind, "list", "--status", "bogus")
    assert "no such agent agent_nobody" in _cli_fails(db, "config", "show", "agent_nobody")
    assert "no such agent agent_nobody" in _cli_fails(db, "config", "export-toml", "agent_nobody",
                                     "--out", str(tmp_path / "toml"))
    assert not (tmp_path / "toml").exists()
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    assert "error:" in _cli_fails(db, "config", "export-toml", agent["id"],
                                  "--out", str(blocker / "toml"))
    assert "error:" in _cli_fails(db, "snapshot", "--write", str(blocker / "schema"))
    key = _cli(db, "key", "create", "k", "--agent", agent["id"])
    for option, value in (("--grace-hours", "inf"), ("--grace-hours", "nan"),
                          ("--expires-in-days", "100000000")):
        command = ["rotate", key["id"]] if option == "--grace-hours" else [
            "create", "k2", "--agent", agent["id"]]
        usage = maimdb("key", *command, option, value, dsn=db.dsn("admin"))
        assert usage.returncode == 2 and "Traceback" not in usage.stderr, usage.stderr
        assert option in usage.stderr
    assert len(_cli(db, "key", "list", "--agent", agent["id"])["items"]) == 1
    assert _cli(db, "tenant", "list")["total"] == tenants + 1


def test_cli_shows_names_literally(db: TestDB) -> None:
    """A name is data: rich markup in it must be printed as is, not parsed (a stray ``[/x]``
    once made every later listing fail)."""
    created = _cli(db, "tenant", "create", _unique("[/x] [bold]麦麦[/bold]"))
    listed = maimdb("tenant", "list", dsn=db.dsn("admin"), columns=200)
    assert listed.returncode == 0, listed.stderr
    assert "[/x] [bold]麦麦[/bold]" in listed.stdout and created["id"] in listed.stdout
    assert "[bold]agent_x[/]" in _cli_fails(db, "agent", "show", "[bold]agent_x[/]")
