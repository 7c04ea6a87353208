"""Issue 31, item 8: list tables for people and pipes. At 80 columns, piped, a row stays
readable: no word split across lines, no Python repr beside JSON's null, and ``--json`` holds
the same rows (docs/conventions.md, "CLI output")."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from maim_db import connect
from maim_db.control import keys, tenancy
from tests.cli import maimdb
from tests.databases import TestDB, World

# what separates words in a table: spaces and the box drawing rich uses
_SEPARATORS = re.compile(r"[\s\u2500-\u257f,]+")
_REPRS = ("None", "['", "[]", "True", "False", "{'")


def _words(value: Any) -> list[str]:
    if isinstance(value, list):
        return [w for v in value for w in _words(v)]
    if value is None or isinstance(value, bool):
        return []
    return [w for w in _SEPARATORS.split(str(value)) if w]


def _readable(text: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Every line fits 80 columns, every header and every word of every value shown appears
    whole on one line, and nothing reads as Python."""
    assert all(len(line) <= 80 for line in text.splitlines()), text
    seen = set(_SEPARATORS.split(text))
    for column in columns:
        assert column in seen, (column, text)
    for row in rows:
        for column in columns:
            for word in _words(row[column]):
                if column.endswith("_at"):
                    continue  # a timestamp is shown to the second, below
                assert word in seen, (column, word, text)
    for bad in _REPRS:
        assert bad not in text, (bad, text)


def _listed(*args: str, dsn: str) -> tuple[str, list[dict[str, Any]]]:
    shown = maimdb(*args, dsn=dsn, columns=80)
    assert shown.returncode == 0, shown.stderr
    as_json = maimdb(*args, "--json", dsn=dsn, columns=80)
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)["items"]
    # the same rows, in the same order
    ids = [r["id"] for r in rows]
    found = [i for i in re.findall(r"\b(?:user|tenant|agent|key)_[0-9a-z]{12}\b", shown.stdout)
             if i in ids]
    assert list(dict.fromkeys(found)) == ids, (found, ids)
    return shown.stdout, rows


def test_list_tables_read_whole_at_80_columns_piped(db: TestDB, world: World) -> None:
    admin = db.dsn("admin")
    with connect(admin, admin=True) as adm:
        owner = tenancy.create_user(adm, "a-rather-long-username-for-an-operator",
                                    email="someone.with.a.long.address@example.com")
        tenant = tenancy.create_tenant(adm, "Customer support bots of the spring campaign",
                                       owner_id=owner.id, tenant_type="enterprise")
        agent = tenancy.create_agent(adm, "A helpful assistant with a descriptive name",
                                     tenant_id=tenant.id)
        keys.issue(adm, agent_id=agent.id, name="runtime key for the production cluster",
                   permissions=["chat", "config_read", "config_write", "analytics"],
                   expires_at=datetime.now(UTC) + timedelta(days=30))
    for args, columns in [
        (("user", "list"), ["id", "username", "email", "is_active", "created_at"]),
        (("tenant", "list"), ["id", "tenant_name", "tenant_type", "status", "owner_id",
                              "created_at"]),
        (("agent", "list"), ["id", "name", "tenant_id", "status", "created_at"]),
        (("key", "list"), ["id", "name", "agent_id", "key_prefix", "permissions", "status",
                           "expires_at", "last_used_at", "usage_count"]),
    ]:
        text, rows = _listed(*args, dsn=admin)
        _readable(text, rows, columns)
        for row in rows:  # a timestamp to the second, in UTC, whole
            for column in columns:
                if column.endswith("_at") and row[column] is not None:
                    when = datetime.fromisoformat(row[column]).astimezone(UTC)
                    assert when.strftime("%Y-%m-%d %H:%M:%S") in text.replace("\n", " ") \
                        or when.strftime("%Y-%m-%dT%H:%M:%SZ") in text, (column, text)
    key_text, _ = _listed("key", "list", "--agent", agent.id, dsn=admin)
    assert "chat, config_read, config_write, analytics" in " ".join(key_text.split()) \
        or "chat, config_read" in key_text


def test_one_record_and_rotation_read_whole(db: TestDB, world: World,
                                            secret_key: str) -> None:
    admin = db.dsn("admin")
    shown = maimdb("agent", "show", world.agent_id("A1"), dsn=admin, columns=80)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(maimdb("agent", "show", world.agent_id("A1"), "--json",
                               dsn=admin).stdout)
    _readable(shown.stdout, [record], list(record))
    rotated = maimdb("secrets", "rotate", "--dry-run", dsn=admin, columns=80)
    assert rotated.returncode == 0, rotated.stderr
    tables = json.loads(maimdb("secrets", "rotate", "--dry-run", "--json",
                               dsn=admin).stdout)["tables"]
    assert "…" not in rotated.stdout
    _readable(rotated.stdout, [{"table": t} for t in tables], ["table"])
