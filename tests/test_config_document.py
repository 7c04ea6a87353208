"""Agent configuration documents: read, partial update, validation with paths, secrets
masked and encrypted, MaiBot TOML in and out."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import psycopg
import pytest

from maim_db import (
    AuthenticationError,
    ConfigurationError,
    InputError,
    IsolationError,
    NotFoundError,
    ScopeError,
    connect,
    crypto,
)
from maim_db.control import config as cd
from maim_db.control import keys
from tests.cli import maimdb, one_line_error
from tests.databases import TestDB, World


def _read(db: TestDB, world: World, agent: str = "A1", **kw: Any) -> dict[str, Any]:
    with connect(db.dsn("app"), agent_id=world.agent_id(agent)) as scope:
        return cd.read(scope, **kw)


def _update(db: TestDB, world: World, patch: dict[str, Any], agent: str = "A1") -> dict[str, Any]:
    with connect(db.dsn("app"), agent_id=world.agent_id(agent)) as scope:
        return cd.update(scope, patch)


def test_a_new_agent_reads_the_defaults(db: TestDB, world: World) -> None:
    doc = _read(db, world)
    assert set(doc) == {"persona", "bot_overrides", "config_overrides"}
    assert doc["config_overrides"]["chat"]["max_context_size"] == 18
    assert doc["config_overrides"]["emoji"]["emoji_chance"] == 0.6
    assert doc["config_overrides"]["maim_message"]["auth_token"] == []
    assert doc["config_overrides"]["model"] == {"api_providers": [], "models": [],
                                                "model_task_config": {}}
    assert set(doc["config_overrides"]) == {*cd.SECTIONS, "model"}


def test_update_changes_only_the_fields_sent(db: TestDB, world: World) -> None:
    _update(db, world, {"persona": {"personality": "一个温柔的猫娘", "states": ["开心"]},
                        "config_overrides": {"chat": {"max_context_size": 30,
                                                      "talk_value": 0.8}}})
    doc = _update(db, world, {"config_overrides": {"chat": {"talk_value": 0.5}}})
    assert doc["persona"]["personality"] == "一个温柔的猫娘"
    assert doc["persona"]["states"] == ["开心"]
    assert doc["config_overrides"]["chat"]["max_context_size"] == 30  # not reset
    assert doc["config_overrides"]["chat"]["talk_value"] == 0.5
    assert doc["config_overrides"]["chat"]["planner_size"] == 1.5  # default kept
    # and another agent is untouched
    assert _read(db, world, "A2")["config_overrides"]["chat"]["max_context_size"] == 18


def test_bad_documents_name_every_path_and_change_nothing(db: TestDB, world: World) -> None:
    _update(db, world, {"config_overrides": {"chat": {"max_context_size": 25}}})
    bad = {"persona": {"personality": 3},
           "config_overrides": {"chat": {"max_context_siz": 1, "talk_value": "loud"},
                                "emoj": {}, "memory": {"max_memory_number": 5},
                                "model": {"api_providers": [{"client_type": "openai"}]}},
           "extra": 1}
    with pytest.raises(InputError) as info:
        _update(db, world, bad)
    text = str(info.value)
    for path in ("persona.personality", "config_overrides.chat.max_context_siz",
                 "config_overrides.chat.talk_value", "config_overrides.emoj",
                 "config_overrides.model.api_providers[0].name", "extra"):
        assert path in text, path
    doc = _read(db, world)
    assert doc["config_overrides"]["chat"]["max_context_size"] == 25
    assert doc["config_overrides"]["memory"]["max_memory_number"] == 100


def test_database_checks_report_the_section_and_roll_back(db: TestDB, world: World) -> None:
    with pytest.raises(InputError, match=r"config_overrides\.emoji.*emoji_chance"):
        _update(db, world, {"config_overrides": {"chat": {"max_context_size": 40},
                                                 "emoji": {"emoji_chance": 1.5}}})
    assert _read(db, world)["config_overrides"]["chat"]["max_context_size"] == 18


@pytest.mark.parametrize("field", ["talk_value", "at_bot_inevitable_reply"])
def test_chat_fractions_are_bounded_by_one(db: TestDB, world: World, field: str) -> None:
    """MaiBot documents both as fractions (0010): 1 is accepted, anything above is not."""
    assert _update(db, world, {"config_overrides": {"chat": {field: 1}}})[
        "config_overrides"]["chat"][field] == 1
    assert _update(db, world, {"config_overrides": {"chat": {field: 0.25}}})[
        "config_overrides"]["chat"][field] == 0.25
    for bad in (1.5, -0.1):
        with pytest.raises(InputError, match=rf"config_overrides\.chat.*{field}"):
            _update(db, world, {"config_overrides": {"chat": {field: bad}}})
    assert _read(db, world)["config_overrides"]["chat"][field] == 0.25


def test_provider_secrets_are_masked_encrypted_and_kept(db: TestDB, world: World,
                                                       secret_key: str) -> None:
    providers = [{"name": "siliconflow", "base_url": "https://api.example.cn/v1",
                  "api_key": "sk-live-秘密", "client_type": "openai"}]
    doc = _update(db, world, {"config_overrides": {"model": {
        "api_providers": providers,
        "models": [{"name": "ds-v3", "model_identifier": "deepseek-v3",
                    "api_provider": "siliconflow", "price_in": 2.0}],
        "model_task_config": {"replyer": {"model_list": ["ds-v3"]}}}}})
    model = doc["config_overrides"]["model"]
    assert model["api_providers"][0]["api_key"] == cd.MASK
    assert model["api_providers"][0]["base_url"] == cd.MASK
    assert model["models"][0]["api_provider"] == "siliconflow"
    with psycopg.connect(db.superuser) as conn:
        stored = conn.execute("select api_key, base_url from api_provider_configs").fetchone()
    assert stored is not None and all(v.startswith(crypto.PREFIX) for v in stored)
    assert "sk-live" not in str(stored)
    # sending the masked value back keeps the secret; other fields change
    _update(db, world, {"config_overrides": {"model": {"api_providers": [
        {"name": "siliconflow", "api_key": cd.MASK, "base_url": cd.MASK,
         "client_type": "gemini"}]}}})
    revealed = _read(db, world, reveal=True)["config_overrides"]["model"]["api_providers"][0]
    assert revealed["api_key"] == "sk-live-秘密"
    assert revealed["base_url"] == "https://api.example.cn/v1"
    assert revealed["client_type"] == "gemini"


def test_a_masked_document_saved_back_keeps_every_secret(db: TestDB, world: World,
                                                         secret_key: str) -> None:
    """What a dashboard does: read (masked), change one field, save the whole thing."""
    fresh = _read(db, world, "A2")  # nothing set yet: persona.personality is null
    assert fresh["persona"]["personality"] is None
    assert _update(db, world, fresh, "A2") == fresh
    _update(db, world, {"persona": {"personality": "活泼"}, "config_overrides": {
        "maim_message": {"auth_token": ["tok-一", "tok-二"]},
        "model": {"api_providers": [{"name": "p", "api_key": "sk-1", "base_url": "https://x"}]},
    }})
    doc = _read(db, world)
    assert doc["config_overrides"]["maim_message"]["auth_token"] == [cd.MASK, cd.MASK]
    doc["config_overrides"]["chat"]["talk_value"] = 0.3
    _update(db, world, doc)
    revealed = _read(db, world, reveal=True)["config_overrides"]
    assert revealed["maim_message"]["auth_token"] == ["tok-一", "tok-二"]
    assert revealed["model"]["api_providers"][0]["api_key"] == "sk-1"
    assert revealed["chat"]["talk_value"] == 0.3
    # a new token beside a kept one; a mask with nothing stored behind it is refused
    _update(db, world, {"config_overrides": {"maim_message": {
        "auth_token": [cd.MASK, "tok-new"]}}})
    assert _read(db, world, reveal=True)["config_overrides"]["maim_message"][
        "auth_token"] == ["tok-一", "tok-new"]
    with pytest.raises(InputError, match=r"auth_token\[2\]: masked"):
        _update(db, world, {"config_overrides": {"maim_message": {
            "auth_token": [cd.MASK, cd.MASK, cd.MASK]}}})


def test_a_key_scope_addresses_only_its_own_agent(db: TestDB, world: World) -> None:
    with connect(db.dsn("admin"), admin=True) as adm:
        key = keys.issue(adm, agent_id=world.agent_id("A1"), name="dash",
                         permissions=["config_write"])
    before = _read(db, world, "A2")
    for call in (lambda s: cd.read(s, world.agent_id("A2")),
                 lambda s: cd.update(s, {"config_overrides": {"chat": {"talk_value": 0.9}}},
                                     world.agent_id("A2"))):
        with pytest.raises(ScopeError, match="cannot address agent"), \
                connect(db.dsn("plugin"), api_key=key.secret) as scoped:
            call(scoped)
    assert _read(db, world, "A2") == before == _read(db, world, "A1")
    with connect(db.dsn("plugin"), api_key=key.secret) as scoped:
        assert cd.read(scoped)["config_overrides"]["chat"]["talk_value"] == before[
            "config_overrides"]["chat"]["talk_value"]


def test_a_key_reads_and_writes_the_document_only_with_its_permissions(
        db: TestDB, world: World) -> None:
    """config_read reads, config_write writes (and reads: an update returns the document);
    a chat key does neither. Checked before anything is read or written."""
    with connect(db.dsn("admin"), admin=True) as adm:
        chat, reader, writer = (
            keys.issue(adm, agent_id=world.agent_id("A1"), name=name, permissions=perms)
            for name, perms in (("chat", ["chat"]), ("reader", ["config_read"]),
                                ("writer", ["config_write", "chat"])))
    patch = {"config_overrides": {"chat": {"talk_value": 0.4}}}
    for key, can_read, can_write in ((chat, False, False), (reader, True, False),
                                     (writer, True, True)):
        with connect(db.dsn("plugin"), api_key=key.secret) as scoped:
            if can_read:
                assert cd.read(scoped)["config_overrides"]["chat"]["talk_value"] == 1
            else:
                with pytest.raises(AuthenticationError, match="lacks the 'config_read'"):
                    cd.read(scoped)
            assert scoped.scope.permissions == tuple(key.record.permissions)
        with connect(db.dsn("plugin"), api_key=key.secret) as scoped:
            if can_write:
                assert cd.update(scoped, patch)["config_overrides"]["chat"]["talk_value"] == 0.4
            else:
                with pytest.raises(AuthenticationError, match="lacks the 'config_write'"):
                    cd.update(scoped, patch)
    with connect(db.dsn("app"), agent_id=world.agent_id("A1")) as trusted:  # not limited
        trusted.require("config_write")
        assert trusted.scope.permissions is None
        with pytest.raises(InputError, match="unknown permission"):
            trusted.require("root")


def test_ciphertext_as_input_is_refused(db: TestDB, world: World, secret_key: str) -> None:
    for value in ("enc:v1:garbage", "enc:v1:"):
        with pytest.raises(InputError, match="looks like a stored ciphertext"):
            _update(db, world, {"config_overrides": {"model": {"api_providers": [
                {"name": "p", "api_key": value}]}}})
    with psycopg.connect(db.superuser) as conn:  # written around the library: still typed
        conn.execute("insert into api_provider_configs (agent_id, name, api_key) "
                     "values (%s, 'raw', 'enc:v1:!!')", [world.agent_id("A1")])
    with pytest.raises(InputError, match="does not open"):
        _read(db, world, reveal=True)


def test_a_copied_ciphertext_does_not_decrypt_elsewhere(db: TestDB, world: World,
                                                        secret_key: str) -> None:
    for agent in ("A1", "A2"):
        _update(db, world, {"config_overrides": {"model": {"api_providers": [
            {"name": "p", "api_key": f"key-of-{agent}"}]}}}, agent)
    with psycopg.connect(db.superuser) as conn:  # an attacker with table access swaps them
        conn.execute("update api_provider_configs set api_key = (select api_key from "
                     "api_provider_configs where agent_id = %s) where agent_id = %s",
                     [world.agent_id("A1"), world.agent_id("A2")])
    with pytest.raises(InputError, match="does not open"):
        _read(db, world, "A2", reveal=True)


def test_storing_a_secret_without_a_key_is_refused(db: TestDB, world: World,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(crypto.ENV, raising=False)
    with pytest.raises(InputError, match="MAIMDB_SECRET_KEY is not set"):
        _update(db, world, {"config_overrides": {"model": {"api_providers": [
            {"name": "p", "api_key": "sk-1"}]}}})
    assert _read(db, world)["config_overrides"]["model"]["api_providers"] == []
    monkeypatch.setenv(crypto.ENV, "too-short")
    with pytest.raises(ConfigurationError):
        crypto.encrypt("x", "ctx")


def test_tenant_reads_but_cannot_write(db: TestDB, world: World) -> None:
    _update(db, world, {"config_overrides": {"chat": {"max_context_size": 33}}})
    with connect(db.dsn("tenant"), tenant_id=world.tenant_id("T1")) as t1:
        doc = cd.read(t1, world.agent_id("A1"))
    assert doc["config_overrides"]["chat"]["max_context_size"] == 33
    # another tenant's agent has no document there — not a document of defaults
    with pytest.raises(NotFoundError, match="no such agent agent_"), \
            connect(db.dsn("tenant"), tenant_id=world.tenant_id("T2")) as t2:
        cd.read(t2, world.agent_id("A1"))
    with pytest.raises(IsolationError), connect(db.dsn("tenant"),
                                                tenant_id=world.tenant_id("T1")) as t1:
        cd.update(t1, {"config_overrides": {"chat": {"talk_value": 0.1}}}, world.agent_id("A1"))


def test_admin_updates_any_agent(db: TestDB, world: World) -> None:
    with connect(db.dsn("admin"), admin=True) as adm:
        for call in (lambda: cd.read(adm, "agent_nobody"),
                     lambda: cd.update(adm, {"persona": {"personality": "x"}}, "agent_nobody")):
            with pytest.raises(NotFoundError, match="no such agent agent_nobody"):
                call()
        cd.update(adm, {"bot_overrides": {"nickname": "麦麦", "alias_names": ["小麦"]}},
                  world.agent_id("B1"))
    assert _read(db, world, "B1")["bot_overrides"]["nickname"] == "麦麦"


BOT_TOML = """
[inner]
version = "7.0.0"

[bot]
platform = "qq"
qq_account = "1145141919"
nickname = "麦麦"
alias_names = ["麦叠", "牢麦"]

[personality]
personality = "是一个女大学生 现在在读大二"
reply_style = "回复可以简短一些"

[chat]
max_context_size = 24
talk_value = 0.7
include_planner_reasoning = false

[emoji]
emoji_chance = 0.4

[log]
date_style = "m-d H:i:s"
"""

MODEL_TOML = """
[inner]
version = "1.8.2"

[[api_providers]]
name = "DeepSeek"
base_url = "https://api.deepseek.com/v1"
api_key = "sk-deepseek"
client_type = "openai"
max_retry = 2

[[models]]
model_identifier = "deepseek-chat"
name = "deepseek-v3"
api_provider = "DeepSeek"
price_in = 2.0
price_out = 8.0

[model_task_config.replyer]
model_list = ["deepseek-v3"]
temperature = 0.3
"""


def test_toml_import_and_export_round_trip(db: TestDB, world: World, secret_key: str) -> None:
    patch, skipped = cd.from_toml(BOT_TOML, MODEL_TOML)
    # [inner] is MaiBot's file-format version, read past (and written on export)
    assert set(skipped) == {"log", "chat.include_planner_reasoning", "api_providers[0].max_retry"}
    assert len(skipped) == len(set(skipped))
    doc = _update(db, world, patch)
    assert doc["bot_overrides"]["nickname"] == "麦麦"
    assert doc["persona"]["personality"].startswith("是一个女大学生")
    assert doc["config_overrides"]["chat"]["max_context_size"] == 24
    assert doc["config_overrides"]["model"]["model_task_config"]["replyer"]["temperature"] == 0.3
    bot_text, model_text = cd.to_toml(_read(db, world, reveal=True))
    again, skipped_again = cd.from_toml(bot_text, model_text)
    assert skipped_again == []
    assert _update(db, world, again, "A2") == _read(db, world)


# Issue 14, items 5 and 6: the TOML round trip as an operator walks it.

def test_maibots_integer_qq_account_is_accepted(db: TestDB, world: World) -> None:
    patch, _ = cd.from_toml(BOT_TOML.replace('qq_account = "1145141919"',
                                             "qq_account = 1145141919810"))
    assert _update(db, world, patch)["bot_overrides"]["qq_account"] == "1145141919810"


def test_an_export_is_a_file_maibot_reads(db: TestDB, world: World, secret_key: str) -> None:
    _update(db, world, cd.from_toml(BOT_TOML, MODEL_TOML)[0])
    bot_text, model_text = cd.to_toml(_read(db, world, reveal=True))
    assert tomllib.loads(bot_text)["inner"]["version"] == cd.toml.BOT_CONFIG_VERSION
    assert tomllib.loads(model_text)["inner"]["version"] == cd.toml.MODEL_CONFIG_VERSION


def test_masked_secrets_are_refused_on_import(db: TestDB, world: World, secret_key: str,
                                              tmp_path: Path) -> None:
    _update(db, world, cd.from_toml(BOT_TOML, MODEL_TOML)[0])
    a1, a2 = world.agent_id("A1"), world.agent_id("A2")
    out = tmp_path / "toml"
    assert maimdb("config", "export-toml", a1, "--out", str(out),
                  dsn=db.dsn("admin")).returncode == 0
    assert cd.MASK in (out / "model_config.toml").read_text()
    before = _read(db, world, "A2")
    line = one_line_error(maimdb("config", "import-toml", a2, str(out / "bot_config.toml"),
                                 "--models", str(out / "model_config.toml"),
                                 dsn=db.dsn("admin")))
    assert "model_config.toml: api_providers[0].api_key" in line and "--reveal" in line
    assert "nothing was imported" in line
    assert _read(db, world, "A2") == before

    again = one_line_error(maimdb("config", "export-toml", a1, "--out", str(out),
                                  dsn=db.dsn("admin")))
    assert "bot_config.toml exists: pass --force" in again
    forced = maimdb("config", "export-toml", a1, "--out", str(out), "--reveal", "--force",
                    dsn=db.dsn("admin"))
    assert forced.returncode == 0, forced.stderr
    assert cd.MASK not in (out / "model_config.toml").read_text()
    imported = maimdb("config", "import-toml", a2, str(out / "bot_config.toml"), "--models",
                      str(out / "model_config.toml"), "--json", dsn=db.dsn("admin"))
    assert imported.returncode == 0, imported.stderr
    report = json.loads(imported.stdout)
    assert report["agent_id"] == a2 and "config_overrides" in report["fields"]
    assert report["skipped"] == cd.from_toml((out / "bot_config.toml").read_text(),
                                             (out / "model_config.toml").read_text())[1]
    assert _read(db, world, "A2", reveal=True)["config_overrides"]["model"]["api_providers"][0][
        "api_key"] == "sk-deepseek"
