"""docs/porting-services.md, run as written (issue 34, item 5): its Python blocks in order,
as one script, against a fresh test database, as the control plane's, the web back end's and
a plugin's logins — the FastAPI example through FastAPI's TestClient."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.databases import TestDB

GUIDE = (Path(__file__).resolve().parent.parent / "docs" / "porting-services.md").read_text(
    encoding="utf-8")
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", GUIDE, re.S)


def test_every_block_is_python() -> None:
    assert [lang for lang, _ in BLOCKS] == ["python"] * 3


def test_the_call_site_tables_name_only_what_exists() -> None:
    """Every maim_db function the tables name is one the package has."""
    from maim_db.control import activity, config, keys, plugins, tenancy

    modules = {"tenancy": tenancy, "keys": keys, "config": config, "plugins": plugins,
               "activity": activity}
    named = re.findall(r"`(tenancy|keys|config|plugins|activity)\.(\w+)", GUIDE)
    assert len(named) > 30
    missing = [f"{m}.{f}" for m, f in named if not hasattr(modules[m], f)]
    assert missing == []


def test_the_blocks_run_in_order(db: TestDB, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CONTROL_DSN", db.dsn("admin"))
    monkeypatch.setenv("WEB_DSN", db.dsn("tenant"))
    monkeypatch.setenv("PLUGIN_DSN", db.dsn("plugin"))
    namespace: dict[str, Any] = {"__name__": "porting_services"}
    try:
        for _, code in BLOCKS:
            exec(compile(code, "docs/porting-services.md", "exec"), namespace)
    finally:
        import asyncio

        for engine in ("control", "dashboard", "by_key"):
            if engine in namespace:
                asyncio.run(namespace[engine].dispose())
    assert "answered as each key's agent" in capsys.readouterr().out
