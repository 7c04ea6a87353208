"""Upgrading a deployment an older release made (issue 31): the steps docs/upgrading.md gives,
run as an operator runs them, on a database built as release 737bdb2 left it.

737bdb2 had migrations 0001-0011, byte-identical to today's (append-only; checked with
``git diff 737bdb2 HEAD -- migrations/`` when this test was written). It sealed provider
``api_key`` and ``base_url`` as ``enc:v1:`` (no key id, the key bound without the URL) and
stored maim_message ``auth_token`` in plaintext (0014 seals those).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg.types.json import Jsonb

from maim_db import MigrationError, crypto, ids
from maim_db.schema import migrate
from maim_db.schema.migrate import MIGRATIONS_DIR
from tests.cli import maimdb, one_line_error
from tests.databases import TestDB

pytestmark = pytest.mark.fresh_db  # each test migrates or rolls back

OLD_RELEASE_MIGRATIONS = 11  # 0001..0011 at 737bdb2
UPGRADING = Path(__file__).resolve().parent.parent / "docs" / "upgrading.md"


def _seal_v1(key: str, plaintext: str, context: str) -> str:
    """What 737bdb2's maim_db.crypto.encrypt wrote: ``enc:v1:`` + nonce ‖ AES-GCM."""
    nonce = os.urandom(12)
    sealed = AESGCM(base64.urlsafe_b64decode(key)).encrypt(nonce, plaintext.encode(),
                                                           context.encode())
    return "enc:v1:" + base64.urlsafe_b64encode(nonce + sealed).decode()


@dataclass
class Old:
    """The deployment as 737bdb2 left it, and what it held."""

    key: str
    agents: list[str]
    providers: dict[str, tuple[str, str]]  # agent → (api_key, base_url)
    tokens: dict[str, list[str]]
    messages: int


def _old_deployment(db: TestDB, tmp_path: Path) -> Old:
    old = tmp_path / "migrations-737bdb2"
    old.mkdir()
    for path in MIGRATIONS_DIR.iterdir():
        if path.name[:4].isdigit() and int(path.name[:4]) <= OLD_RELEASE_MIGRATIONS:
            shutil.copy(path, old)
    try:
        migrate.migrate(db.superuser, migrations_dir=old)
    except MigrationError as err:  # today's audit asks more than 737bdb2's did
        assert "schema audit failed" in str(err)
    assert len(migrate.status(db.superuser, migrations_dir=old).applied) == 11
    key = crypto.new_key()
    user, tenant = ids.new_user_id(), ids.new_tenant_id()
    agents = [ids.new_agent_id() for _ in range(2)]
    providers = {a: (f"sk-{a[-6:]}", f"https://llm.example/{a[-4:]}") for a in agents}
    tokens = {a: [f"token-{a[-5:]}-1", f"token-{a[-5:]}-2"] for a in agents}
    with psycopg.connect(db.superuser) as conn:  # the old release's rows, written as it did
        conn.execute("insert into users (id, username, hashed_password) values (%s, %s, 'x')",
                     [user, f"old-{user}"])
        conn.execute("insert into tenants (id, tenant_name, owner_id) values (%s, 'old', %s)",
                     [tenant, user])
        for agent in agents:
            api_key, base_url = providers[agent]
            context = f"{agent}/api_provider_configs/openai/"
            conn.execute("insert into agents (id, tenant_id, name) values (%s, %s, %s)",
                         [agent, tenant, f"bot {agent[-4:]}"])
            conn.execute("insert into api_provider_configs (agent_id, name, api_key, base_url) "
                         "values (%s, 'openai', %s, %s)",
                         [agent, _seal_v1(key, api_key, context + "api_key"),
                          _seal_v1(key, base_url, context + "base_url")])
            conn.execute("insert into maim_message_configs (agent_id, auth_token) "
                         "values (%s, %s)", [agent, Jsonb(tokens[agent])])
            for n in range(5):
                conn.execute(
                    "insert into messages (agent_id, message_id, time, chat_id, "
                    "chat_info_stream_id, chat_info_platform, chat_info_user_platform, "
                    "chat_info_user_id, chat_info_user_nickname, chat_info_create_time, "
                    "chat_info_last_active_time, processed_plain_text) "
                    "values (%s, %s, %s, 'c', 's', 'qq', 'qq', 'u', 'nick', 0, 0, 'hello')",
                    [agent, f"m{n}", float(n)])
    return Old(key, agents, providers, tokens, messages=10)


def _without_key() -> dict[str, str]:
    env = dict(os.environ)
    env.pop(crypto.ENV, None)
    env.pop(crypto.FALLBACKS_ENV, None)
    return env


def _with_key(key: str) -> dict[str, str]:
    return {**_without_key(), crypto.ENV: key}


def _applied(db: TestDB) -> list[str]:
    return [m.id for m in migrate.status(db.superuser).applied]


def test_without_the_key_dry_run_names_0014_and_migrate_changes_nothing(
        empty_db: TestDB, template: str, tmp_path: Path) -> None:
    """Issue 31: the dry run said "would apply 0012…0017" and nothing else; the migrate then
    failed in 0014 with 0012 and 0013 applied, never printed."""
    old = _old_deployment(empty_db, tmp_path)
    before = _applied(empty_db)
    pending = [m.id for m in migrate.load()][OLD_RELEASE_MIGRATIONS:]

    dry = maimdb("migrate", "--dry-run", dsn=empty_db.superuser, env=_without_key())
    error = one_line_error(dry)
    assert "0014_seal_auth_tokens" in error and crypto.ENV in error, error
    assert "2 agents hold 4 maim_message auth tokens in plaintext" in error
    assert "would apply 0012_unforgeable_scope" in dry.stdout  # the list is still shown
    assert _applied(empty_db) == before

    real = maimdb("migrate", dsn=empty_db.superuser, env=_without_key())
    error = one_line_error(real)
    assert "0014_seal_auth_tokens" in error and crypto.ENV in error, error
    assert "Nothing was changed" in error
    assert _applied(empty_db) == before  # refused before the first pending migration ran
    as_json = maimdb("migrate", "--dry-run", "--json", dsn=empty_db.superuser,
                     env=_without_key())
    assert as_json.returncode == 1
    shown = json.loads(as_json.stdout)
    assert shown["migrations"] == pending and shown["applied"] == []
    assert shown["unmet"] == [{"migration": "0014_seal_auth_tokens",
                               "needs": shown["unmet"][0]["needs"]}]
    assert crypto.ENV in shown["unmet"][0]["needs"]

    # with the key the same dry run is clean, and the migrate applies everything
    ok = maimdb("migrate", "--dry-run", dsn=empty_db.superuser, env=_with_key(old.key))
    assert ok.returncode == 0, ok.stderr
    done = maimdb("migrate", dsn=empty_db.superuser, env=_with_key(old.key))
    assert done.returncode == 0, done.stderr
    assert all(f"applied {m}" in done.stdout for m in pending)


def test_a_migration_failing_part_way_reports_what_was_and_was_not_applied(
        empty_db: TestDB, tmp_path: Path) -> None:
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copy)
    (copy / "9997_fine.sql").write_text("-- fine\ncreate function maim.x9997() returns int "
                                        "language sql immutable return 1;\n")
    (copy / "9997_fine.rollback.sql").write_text("drop function maim.x9997();\n")
    (copy / "9998_breaks.sql").write_text("-- breaks\nselect 1/0;\n")
    (copy / "9998_breaks.rollback.sql").write_text("select 1;\n")
    (copy / "9999_after.sql").write_text("-- never reached\nselect 1;\n")
    (copy / "9999_after.rollback.sql").write_text("select 1;\n")
    with pytest.raises(MigrationError) as caught:
        migrate.migrate(empty_db.superuser, migrations_dir=copy)
    message = str(caught.value)
    everything = [m.id for m in migrate.load(copy)]
    applied_now = everything[:-2]
    assert "migration 9998_breaks failed: division by zero" in message
    assert re.search(r"applied in this run: 0001_control_plane, .*, 9997_fine;", message)
    assert "not applied: 9998_breaks, 9999_after" in message
    assert caught.value.applied == applied_now
    assert caught.value.remaining == ["9998_breaks", "9999_after"]
    assert [m.id for m in migrate.status(empty_db.superuser, migrations_dir=copy).applied] \
        == applied_now


def test_upgrade_from_737bdb2_by_the_documented_steps(empty_db: TestDB, template: str,
                                                      tmp_path: Path) -> None:
    """docs/upgrading.md, step by step: nothing is lost and every secret opens."""
    old = _old_deployment(empty_db, tmp_path)
    page = UPGRADING.read_text()
    steps = ["export MAIMDB_SECRET_KEY=", "maimdb migrate --dry-run", "maimdb migrate",
             "VACUUM maim_message_configs", "maimdb secrets rotate --dry-run",
             "maimdb secrets rotate", "maimdb status"]
    at = 0
    for step in steps:  # the page gives these steps, in this order
        found = page.find(step, at)
        assert found >= 0, f"docs/upgrading.md does not give {step!r} after the step before"
        at = found + len(step)

    su, admin, env = empty_db.superuser, empty_db.dsn("admin"), _with_key(old.key)
    dry = maimdb("migrate", "--dry-run", dsn=su, env=env)
    assert dry.returncode == 0, dry.stderr
    done = maimdb("migrate", dsn=su, env=env)
    assert done.returncode == 0, done.stderr
    with psycopg.connect(su, autocommit=True) as conn:
        conn.execute("vacuum maim_message_configs")
    counted = json.loads(maimdb("secrets", "rotate", "--dry-run", "--json", dsn=admin,
                                env=env).stdout)
    assert counted["tables"]["api_provider_configs"]["resealed"] == 4  # the enc:v1 values
    rotated = maimdb("secrets", "rotate", dsn=admin, env=env)
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert maimdb("status", dsn=su, env=env).returncode == 0

    with psycopg.connect(su) as conn:
        assert conn.execute("select count(*) from messages").fetchone() == (old.messages,)
        stored = conn.execute("select api_key, base_url from api_provider_configs "
                              "union all select t, null from maim_message_configs, "
                              "jsonb_array_elements_text(auth_token) t").fetchall()
        assert conn.execute("select maim.release_floor()").fetchone() == ("0.2.0",)
    assert len(stored) == 6
    assert all(v is None or v.startswith("enc:v2:") for row in stored for v in row), stored
    for agent in old.agents:
        shown = maimdb("config", "show", agent, "--reveal", dsn=admin, env=env)
        assert shown.returncode == 0, shown.stderr
        doc = json.loads(shown.stdout)
        overrides = doc["config_overrides"]
        provider = overrides["model"]["api_providers"][0]
        assert (provider["api_key"], provider["base_url"]) == old.providers[agent]
        assert overrides["maim_message"]["auth_token"] == old.tokens[agent]
