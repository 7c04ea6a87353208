"""Secrets that stay with their agent (issue 11, items 1-4): authenticated exports, a base_url
that cannot be moved without its key, sealed auth tokens, key ids and rotation.

Each test plays the attacker or the careless operator first, then checks the honest path
still works. Everything runs as the real logins; the superuser only writes what an attacker
with raw SQL (or a dump) would, and reads what a dump would show."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest

from maim_db import (
    ConfigurationError,
    ConflictError,
    InputError,
    MigrationError,
    connect,
    crypto,
)
from maim_db.control import config as cd
from maim_db.control import sealed
from maim_db.schema import migrate
from maim_db.tables import business
from maim_db.transfer.archive import MANIFEST, agent_counts, export_agent, import_export
from tests.cli import maimdb
from tests.databases import TestDB, World

pytestmark = pytest.mark.usefixtures("secret_key")

PROVIDER = {"name": "sf", "api_key": "sk-秘密-B1", "base_url": "https://api.example.cn/v1"}


def _update(db: TestDB, agent: str, patch: dict[str, Any]) -> dict[str, Any]:
    with connect(db.dsn("app"), agent_id=agent) as s:
        return cd.update(s, patch)


def _providers(db: TestDB, agent: str, *, reveal: bool = True) -> list[dict[str, Any]]:
    with connect(db.dsn("app"), agent_id=agent) as s:
        return list(cd.read(s, reveal=reveal)["config_overrides"]["model"]["api_providers"])


def _tokens(db: TestDB, agent: str, *, reveal: bool = True) -> list[str]:
    with connect(db.dsn("app"), agent_id=agent) as s:
        return list(cd.read(s, reveal=reveal)["config_overrides"]["maim_message"]["auth_token"])


def _stored(db: TestDB, agent: str) -> tuple[Any, ...]:
    """What a dump of the agent's secret columns shows."""
    with psycopg.connect(db.superuser) as conn:
        provider = conn.execute("select api_key, base_url from api_provider_configs "
                                "where agent_id = %s order by name", [agent]).fetchall()
        tokens = conn.execute("select auth_token from maim_message_configs where agent_id = %s",
                              [agent]).fetchall()
    return tuple(provider), tuple(tokens)


def _set_providers(db: TestDB, agent: str, *providers: dict[str, Any]) -> None:
    _update(db, agent, {"config_overrides": {"model": {"api_providers": list(providers)}}})


def _empty(db: TestDB, agent: str) -> bool:
    from maim_db.transfer.archive import DATA_ROWS

    with connect(db.dsn("app"), agent_id=agent) as s:
        return not any(agent_counts(s, DATA_ROWS).values())


# -- 1. a restore re-seals only what a genuine export of the same tenant holds -----------------

def test_a_hand_made_file_set_cannot_open_another_agents_secret(
        db: TestDB, world: World, tmp_path: Path) -> None:
    """The issue's attack: B1's sealed provider row (from any exposure) beside a manifest
    naming B1, restored into an agent of another tenant, revealed B1's key in plaintext."""
    a1, a2, b1 = world.agent_id("A1"), world.agent_id("A2"), world.agent_id("B1")
    _set_providers(db, b1, PROVIDER)
    leaked = export_agent(b1, tmp_path / "b1", dsn=db.dsn("app"))  # e.g. another tenant's
    assert leaked["api_provider_configs"] == 1
    _update(db, a1, {"persona": {"personality": "mine"}})
    forged = tmp_path / "forged"
    export_agent(a1, forged, dsn=db.dsn("app"))  # a genuine export of the attacker's own
    (forged / "api_provider_configs.jsonl").write_bytes(
        (tmp_path / "b1" / "api_provider_configs.jsonl").read_bytes())
    manifest = json.loads((forged / MANIFEST).read_text(encoding="utf-8"))
    manifest["agent_id"] = b1
    manifest["tables"]["api_provider_configs"] = 1
    (forged / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(InputError, match="authentication tag does not match"):
        import_export(forged, a2, dsn=db.dsn("app"))
    # the same set without a tag, or in the format before tags, is refused just as well
    untagged = {k: v for k, v in manifest.items() if k not in ("tag", "key_id")}
    for attempt, message in ((untagged, "carries no authentication tag"),
                             ({**untagged, "format_version": 1}, "export the agent again")):
        (forged / MANIFEST).write_text(json.dumps(attempt), encoding="utf-8")
        with pytest.raises(InputError, match=message):
            import_export(forged, a2, dsn=db.dsn("app"))
    # a file swapped under a genuine manifest is refused by its digest
    genuine = tmp_path / "genuine"
    export_agent(a1, genuine, dsn=db.dsn("app"))
    (genuine / "api_provider_configs.jsonl").write_bytes(
        (tmp_path / "b1" / "api_provider_configs.jsonl").read_bytes())
    with pytest.raises(InputError, match=r"api_provider_configs\.jsonl is not the file"):
        import_export(genuine, a2, dsn=db.dsn("app"))
    assert _empty(db, a2) and _providers(db, a2) == []


def test_secrets_do_not_cross_tenants(db: TestDB, world: World, tmp_path: Path) -> None:
    """A genuine export of B1 (tenant T2) into A2 (tenant T1): refused, changing nothing,
    unless the operator drops the secrets; within T2 they follow the data."""
    a2, b1 = world.agent_id("A2"), world.agent_id("B1")
    _set_providers(db, b1, PROVIDER)
    _update(db, b1, {"config_overrides": {"maim_message": {"auth_token": ["tok-B1"]}}})
    with connect(db.dsn("app"), agent_id=b1) as s:
        s.insert(business.ChatHistory(session_id="s", user_message="u", assistant_message="a",
                                      user_id="u1"))
    export_agent(b1, tmp_path / "b1", dsn=db.dsn("app"))
    with pytest.raises(ConflictError, match=r"its 3 sealed secrets .* do not cross tenants"):
        import_export(tmp_path / "b1", a2, dsn=db.dsn("app"))
    assert _empty(db, a2)
    restored = import_export(tmp_path / "b1", a2, drop_secrets=True, dsn=db.dsn("app"))
    assert restored["chat_history"] == 1 and restored["api_provider_configs"] == 1
    assert [(p["name"], p["api_key"], p["base_url"]) for p in _providers(db, a2)] == [
        ("sf", None, None)]
    assert _tokens(db, a2) == []
    assert _stored(db, a2) == (((None, None),), (([],),))
    # the same tenant: a new agent of T2 gets them, re-sealed for itself
    with connect(db.dsn("admin"), admin=True) as adm:
        from maim_db.control import tenancy

        b2 = tenancy.create_agent(adm, "b2", tenant_id=world.tenant_id("T2")).id
    import_export(tmp_path / "b1", b2, dsn=db.dsn("app"))
    assert [(p["api_key"], p["base_url"]) for p in _providers(db, b2)] == [
        (PROVIDER["api_key"], PROVIDER["base_url"])]
    assert _tokens(db, b2) == ["tok-B1"]


def test_a_manifest_that_cannot_be_canonicalised_is_refused(db: TestDB, world: World,
                                                             tmp_path: Path) -> None:
    a1, a2 = world.agent_id("A1"), world.agent_id("A2")
    export_agent(a1, tmp_path / "out", dsn=db.dsn("app"))
    text = (tmp_path / "out" / MANIFEST).read_text(encoding="utf-8")
    (tmp_path / "out" / MANIFEST).write_text(
        text.replace('"agent_id": "', '"agent_id": "\\ud800', 1), encoding="utf-8")
    with pytest.raises(InputError, match="authentication tag does not match"):
        import_export(tmp_path / "out", a2, dsn=db.dsn("app"))


def test_export_files_are_private(db: TestDB, world: World, tmp_path: Path) -> None:
    a1 = world.agent_id("A1")
    _set_providers(db, a1, PROVIDER)
    export_agent(a1, tmp_path / "out", dsn=db.dsn("app"))
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "out").iterdir()}
    assert modes and set(modes.values()) == {0o600}, modes
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o700
    result = _cli(db, "config", "export-toml", a1, "--out", str(tmp_path / "toml"), "--reveal")
    assert result.returncode == 0, result.stderr
    toml = tmp_path / "toml" / "model_config.toml"
    assert PROVIDER["api_key"] in toml.read_text(encoding="utf-8")
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "toml").iterdir()} == {0o600}


def test_an_export_needs_the_key(db: TestDB, world: World, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    a1 = world.agent_id("A1")
    monkeypatch.delenv(crypto.ENV)
    with pytest.raises(ConfigurationError, match="an export is signed with MAIMDB_SECRET_KEY"):
        export_agent(a1, tmp_path / "out", dsn=db.dsn("app"))
    assert not (tmp_path / "out").exists()


# -- 2. a new base_url needs its api_key -------------------------------------------------------

def test_a_new_base_url_needs_the_api_key(db: TestDB, world: World) -> None:
    a1 = world.agent_id("A1")
    _set_providers(db, a1, PROVIDER)
    before = _stored(db, a1)
    evil = {"name": "sf", "base_url": "https://collector.evil.example"}
    for attempt in (evil, {**evil, "api_key": cd.MASK}):
        with pytest.raises(InputError, match="a new base_url needs the api_key sent with it"):
            _set_providers(db, a1, attempt)
    assert _stored(db, a1) == before  # nothing changed
    # the same base_url sent back, masked or in the clear, is no change
    _set_providers(db, a1, {"name": "sf", "base_url": cd.MASK, "client_type": "openai"})
    _set_providers(db, a1, {"name": "sf", "base_url": PROVIDER["base_url"]})
    assert _providers(db, a1)[0]["api_key"] == PROVIDER["api_key"]
    # with the key again, or dropping it, the URL may move
    _set_providers(db, a1, {**evil, "api_key": "sk-new"})
    assert (_providers(db, a1)[0]["api_key"], _providers(db, a1)[0]["base_url"]) == (
        "sk-new", evil["base_url"])
    _set_providers(db, a1, {"name": "sf", "base_url": "https://other.example", "api_key": None})
    assert (_providers(db, a1)[0]["api_key"], _providers(db, a1)[0]["base_url"]) == (
        None, "https://other.example")


def test_raw_sql_cannot_pair_a_stored_key_with_another_url(db: TestDB, world: World) -> None:
    """What a plugin (raw SQL on its own agent's rows) tried in review: park the key's
    ciphertext, move the URL through the document (no key stored, so no rule applies), put
    the key back. The key is sealed bound to its URL, so it no longer opens at all."""
    a1 = world.agent_id("A1")
    _set_providers(db, a1, PROVIDER)
    with connect(db.dsn("app"), agent_id=a1) as s:
        (parked,) = s.rows("select api_key from api_provider_configs where name = 'sf'")[0]
        s.execute("update api_provider_configs set api_key = null where name = 'sf'")
        cd.update(s, {"config_overrides": {"model": {"api_providers": [
            {"name": "sf", "base_url": "https://collector.evil.example"}]}}})
        s.execute("update api_provider_configs set api_key = %s where name = 'sf'", [parked])
    with pytest.raises(InputError, match=r"api_key@.* does not open"):
        _providers(db, a1)
    # nor does replaying an older sealed URL beside a newer key
    _set_providers(db, a1, {**PROVIDER, "api_key": "sk-for-good"})
    with connect(db.dsn("app"), agent_id=a1) as s:
        (good_url,) = s.rows("select base_url from api_provider_configs where name = 'sf'")[0]
    _set_providers(db, a1, {"name": "sf", "base_url": "https://collector.evil.example",
                            "api_key": "sk-decoy"})
    with connect(db.dsn("app"), agent_id=a1) as s:
        s.execute("update api_provider_configs set base_url = %s where name = 'sf'", [good_url])
    with pytest.raises(InputError, match="does not open"):
        _providers(db, a1)


# -- 3. auth tokens are sealed -----------------------------------------------------------------

def test_auth_tokens_are_sealed_at_rest(db: TestDB, world: World, tmp_path: Path) -> None:
    a1 = world.agent_id("A1")
    _update(db, a1, {"config_overrides": {"maim_message": {"auth_token": ["tok-一", "tok-二"]}}})
    (_, ((stored,),)) = _stored(db, a1)
    assert len(stored) == 2 and all(t.startswith(crypto.V2) for t in stored)
    assert "tok-一" not in json.dumps(stored, ensure_ascii=False)
    with connect(db.dsn("tenant"), tenant_id=world.tenant_id("T1")) as t:  # a tenant read
        seen = t.rows("select auth_token::text from maim_message_configs")
    assert seen and not any("tok-" in text for (text,) in seen)
    export_agent(a1, tmp_path / "out", dsn=db.dsn("app"))
    assert "tok-" not in (tmp_path / "out" / "maim_message_configs.jsonl").read_text("utf-8")
    assert _tokens(db, a1) == ["tok-一", "tok-二"]
    assert _tokens(db, a1, reveal=False) == [cd.MASK, cd.MASK]
    # a token sealed for A1 and copied into A2's row does not open there
    a2 = world.agent_id("A2")
    with psycopg.connect(db.superuser) as conn:
        conn.execute("insert into maim_message_configs (agent_id, auth_token) values (%s, %s)",
                     [a2, json.dumps(stored)])
    with pytest.raises(InputError, match="does not open"):
        _tokens(db, a2)


@pytest.mark.fresh_db  # rolls back
def test_the_migration_seals_stored_tokens_and_refuses_without_the_key(
        db: TestDB, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    a1, b1 = world.agent_id("A1"), world.agent_id("B1")
    ids_ = [m.id for m in migrate.load()]
    since = ids_[ids_.index("0014_seal_auth_tokens"):]
    migrate.rollback(db.superuser, steps=len(since))  # to before 0014: tokens in plaintext
    with psycopg.connect(db.superuser) as conn:
        for agent, tokens in ((a1, ["plain-A1", "plain-A1b"]), (b1, ["plain-B1"])):
            conn.execute("insert into maim_message_configs (agent_id, auth_token) "
                         "values (%s, %s)", [agent, json.dumps(tokens)])
        conn.execute("analyze maim_message_configs")
    assert "plain-" in _statistics(db)  # what a reader of pg_statistic saw
    key = os.environ[crypto.ENV]
    monkeypatch.delenv(crypto.ENV)
    with pytest.raises(MigrationError, match=r"2 agents hold 3 maim_message auth tokens in "
                                             r"plaintext.*set it .*Nothing was changed"):
        migrate.migrate(db.superuser)
    assert [m.id for m in migrate.status(db.superuser).pending] == since
    assert _forced(db)  # the migration's own window closed with its transaction
    assert _stored(db, a1)[1] == ((["plain-A1", "plain-A1b"],),)
    monkeypatch.setenv(crypto.ENV, key)
    assert [m.id for m in migrate.migrate(db.superuser)] == since
    assert all(t.startswith(crypto.V2) for t in _stored(db, a1)[1][0][0])
    assert _tokens(db, a1) == ["plain-A1", "plain-A1b"] and _tokens(db, b1) == ["plain-B1"]
    assert "plain-" not in _statistics(db)  # the planner's samples were replaced too
    assert _forced(db)


def _forced(db: TestDB) -> bool:
    with psycopg.connect(db.superuser) as conn:
        row = conn.execute("select relforcerowsecurity from pg_class "
                           "where oid = 'maim_message_configs'::regclass").fetchone()
    return bool(row and row[0])


def _statistics(db: TestDB) -> str:
    with psycopg.connect(db.superuser) as conn:
        row = conn.execute("select coalesce(string_agg(concat(most_common_vals::text, "
                           "histogram_bounds::text), ''), '') from pg_stats "
                           "where tablename = 'maim_message_configs'").fetchone()
    assert row is not None
    return str(row[0])


# -- 4. key ids, rotation, wrong keys, unsealed values, lengths --------------------------------

@pytest.mark.fresh_db  # re-seals every value in the database
def test_rotation_moves_every_value_to_the_new_key(
        db: TestDB, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    a1, a2, b1 = world.agent_id("A1"), world.agent_id("A2"), world.agent_id("B1")
    old = os.environ[crypto.ENV]
    old_id = crypto.current().id
    for agent in (a1, a2, b1):
        _set_providers(db, agent, PROVIDER, {"name": "second", "api_key": "sk-2"})
        _update(db, agent, {"config_overrides": {"maim_message": {"auth_token": ["t1", "t2"]}}})
    assert {v.split(":")[2] for v in _stored(db, a1)[0][0] if v} == {old_id}
    new = crypto.new_key()
    monkeypatch.setenv(crypto.ENV, new)
    with pytest.raises(ConfigurationError, match=f"sealed under key {old_id}, which is not "
                                                 "configured"):
        _providers(db, a1)
    monkeypatch.setenv(crypto.FALLBACKS_ENV, old)  # the old key keeps opening meanwhile
    new_id = crypto.current().id
    assert [p["api_key"] for p in _providers(db, a1)] == ["sk-2", PROVIDER["api_key"]]
    _set_providers(db, a2, {"name": "sf", "api_key": "sk-rotated-by-a-write"})  # mid-way
    counted = sealed.rotate(db.dsn("admin"), dry_run=True)
    assert (counted["api_provider_configs"].resealed, counted["api_provider_configs"].current,
            counted["maim_message_configs"].resealed) == (7, 2, 6)
    assert all(v.split(":")[2] == old_id for v in _stored(db, a1)[0][0] if v)  # a dry run
    done = sealed.rotate(db.dsn("admin"), batch_size=1)
    assert (done["api_provider_configs"].resealed, done["api_provider_configs"].current) == (7, 2)
    assert done["maim_message_configs"].resealed == 6
    assert all(t.done for t in done.values())
    again = sealed.rotate(db.dsn("admin"), batch_size=2)  # a rerun has nothing left to do
    assert (again["api_provider_configs"].resealed, again["api_provider_configs"].current) == (
        0, 9)
    monkeypatch.delenv(crypto.FALLBACKS_ENV)  # rotation finished: the old key can go
    for agent in (a1, b1):
        assert [p["api_key"] for p in _providers(db, agent)] == ["sk-2", PROVIDER["api_key"]]
        assert _tokens(db, agent) == ["t1", "t2"]
    assert {v.split(":")[2] for v in _stored(db, b1)[0][0] if v} == {new_id}
    result = _cli(db, "secrets", "rotate", "--json", dsn=db.dsn("admin"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["complete"] is True


def test_rotation_reports_what_no_key_opens(db: TestDB, world: World,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    a1 = world.agent_id("A1")
    _set_providers(db, a1, PROVIDER)
    monkeypatch.setenv(crypto.ENV, crypto.new_key())  # the old key is lost
    result = _cli(db, "secrets", "rotate", dsn=db.dsn("admin"))
    assert result.returncode == 1
    assert f"no configured key opens: {a1} provider sf" in result.stderr
    assert "rotation not complete" in result.stdout


def test_a_write_with_the_wrong_key_changes_nothing(db: TestDB, world: World,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: api_key sealed under the wrong key beside base_url under the right one, and
    the right key could no longer read the row."""
    a1 = world.agent_id("A1")
    _set_providers(db, a1, PROVIDER)
    _update(db, a1, {"config_overrides": {"maim_message": {"auth_token": ["kept"]}}})
    right = os.environ[crypto.ENV]
    before = _stored(db, a1)
    monkeypatch.setenv(crypto.ENV, crypto.new_key())
    with pytest.raises(InputError, match=r"api_providers\[0\].*which is not configured"):
        _set_providers(db, a1, {"name": "sf", "api_key": "sk-typed-with-the-wrong-key"})
    with pytest.raises(InputError, match=r"auth_token\[0\]: .*which is not configured"):
        _update(db, a1, {"config_overrides": {"maim_message": {"auth_token": [cd.MASK, "new"]}}})
    assert _stored(db, a1) == before
    monkeypatch.setenv(crypto.ENV, right)
    assert _providers(db, a1)[0]["api_key"] == PROVIDER["api_key"]
    assert _tokens(db, a1) == ["kept"]


def test_plaintext_written_around_maim_db_is_not_revealed(db: TestDB, world: World) -> None:
    a1 = world.agent_id("A1")
    with psycopg.connect(db.superuser) as conn:
        conn.execute("insert into api_provider_configs (agent_id, name, api_key) "
                     "values (%s, 'raw', 'sk-plaintext')", [a1])
        conn.execute("insert into maim_message_configs (agent_id, auth_token) "
                     "values (%s, '[\"tok-plaintext\"]')", [a1])
    with pytest.raises(InputError, match=r"stored unsealed .* not revealed"):
        _providers(db, a1)
    assert _providers(db, a1, reveal=False)[0]["api_key"] == cd.MASK
    _set_providers(db, a1, {"name": "raw", "api_key": None})
    with pytest.raises(InputError, match="stored unsealed"):
        _tokens(db, a1)
    result = _cli(db, "config", "show", a1, "--reveal", dsn=db.dsn("admin"))
    assert result.returncode == 1 and "tok-plaintext" not in result.stdout + result.stderr
    assert "stored unsealed" in result.stderr and len(result.stderr.splitlines()) == 1


def test_secrets_up_to_the_documented_length(db: TestDB, world: World) -> None:
    a1 = world.agent_id("A1")
    longest = "密" * crypto.MAX_CHARS  # 1,500 bytes of UTF-8
    _set_providers(db, a1, {"name": "long", "api_key": longest, "base_url": "u" * 500})
    assert _providers(db, a1)[0]["api_key"] == longest
    with pytest.raises(InputError, match="at most 500 characters, got 501"):
        _set_providers(db, a1, {"name": "long", "api_key": longest + "x"})
    assert _providers(db, a1)[0]["api_key"] == longest


def _cli(db: TestDB, *args: str, dsn: str | None = None) -> subprocess.CompletedProcess[str]:
    return maimdb(*args, dsn=dsn or db.dsn("admin"))


def test_values_sealed_before_key_ids_still_open_and_rotate(db: TestDB, world: World) -> None:
    """``enc:v1:`` (no key id), as maim_db wrote before 0013: opened by trying each key."""
    import base64

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    a1 = world.agent_id("A1")
    raw = base64.urlsafe_b64decode(os.environ[crypto.ENV])
    nonce = os.urandom(12)
    context = sealed.provider_context(a1, "old", "api_key")
    v1 = crypto.V1 + base64.urlsafe_b64encode(
        nonce + AESGCM(raw).encrypt(nonce, b"sk-v1", context.encode())).decode()
    with psycopg.connect(db.superuser) as conn:
        conn.execute("insert into api_provider_configs (agent_id, name, api_key) "
                     "values (%s, 'old', %s)", [a1, v1])
    assert _providers(db, a1)[0]["api_key"] == "sk-v1"
    assert sealed.rotate(db.dsn("admin"))["api_provider_configs"].resealed == 1
    assert _stored(db, a1)[0][0][0].startswith(f"{crypto.V2}{crypto.current().id}:")
    assert _providers(db, a1)[0]["api_key"] == "sk-v1"
