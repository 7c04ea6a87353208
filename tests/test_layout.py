"""The layout holds: the layers import only downwards, nothing imports in a cycle, and the
sync modules are what their async sources generate (tools/async_to_sync.py)."""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = ("import sys\nfrom importlinter.cli import lint_imports\n"
                "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("async_to_sync", ROOT / "tools/async_to_sync.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("async_to_sync", module)
    spec.loader.exec_module(module)
    return module


# -- generated sync code ---------------------------------------------------------------------

def test_generated_sync_modules_are_current() -> None:
    assert _generator().stale() == [], "run: python tools/async_to_sync.py"


def test_a_hand_edit_of_a_generated_module_is_caught(tmp_path: Path) -> None:
    gen = _generator()
    for source, target in gen.MODULES.items():
        for name in (source, target):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, tmp_path / name)
    target = next(iter(gen.MODULES.values()))
    edited = (tmp_path / target).read_text().replace("def fetch(", "def fetch_all(", 1)
    (tmp_path / target).write_text(edited)
    assert gen.stale(tmp_path) == [target]


def test_the_translation_of_async_code() -> None:
    source = (
        "from collections.abc import AsyncIterator, Iterable\n"
        "class AsyncPool:\n"
        "    async def fetch(self) -> AsyncIterator[int]:\n"
        "        async with aconnect() as db:\n"
        "            return await db.fetch()\n"
        "    x = open=False  # sync: x = open=True\n"
        "    note = 1  # async only\n"
    )
    sync = _generator().to_sync(source, "x_async.py").split("\n", 3)[3]
    assert sync == (
        "from collections.abc import Iterator, Iterable\n"  # sorted by ruff, below
        "class Pool:\n"
        "    def fetch(self) -> Iterator[int]:\n"
        "        with connect() as db:\n"
        "            return db.fetch()\n"
        "    x = open=True\n"
    )


def test_an_async_function_named_a_something_is_something_in_sync() -> None:
    """The control plane is written once, async (``acreate_agent``), and generated."""
    gen = _generator()
    other = "async def _apage(db: AsyncDatabase) -> int:\n    return 1\n"
    source = ("from .x_async import _apage\n"
              "async def acreate_agent(db: AsyncDatabase) -> int:\n"
              "    n = await _apage(db)\n"
              "    return await db.scalar('select %s', [n])\n"
              "# sync: from .x_async import acreate_agent as acreate_agent\n")
    defined = gen.defined_names(source, other)
    assert defined == {"acreate_agent": "create_agent", "_apage": "_page"}
    sync = gen.to_sync(source, "y_async.py", defined).split("\n", 3)[3]
    assert sync == ("from .x_async import _page\n"
                    "def create_agent(db: Database) -> int:\n"
                    "    n = _page(db)\n"
                    "    return db.scalar('select %s', [n])\n"
                    "from .x_async import acreate_agent as acreate_agent\n")
    # a method or a nested function keeps its name
    assert gen.defined_names("class A:\n    async def aclose_all(self) -> None: ...\n") == {}


def test_what_the_translation_cannot_handle_stops_it() -> None:
    gen = _generator()
    with pytest.raises(ValueError, match="'asyncio'"):
        gen.to_sync("async def f() -> None:\n    await asyncio.sleep(1)\n", "x_async.py")
    with pytest.raises(ValueError, match="'aclose'"):
        gen.to_sync("await conn.aclose()\n", "x_async.py")



def test_the_generated_module_is_sorted_and_formatted_by_ruff() -> None:
    """Renaming moves names out of order and misaligns continuation lines; ruff puts both
    right with the project's settings."""
    gen = _generator()
    sync = gen.formatted(gen.to_sync(
        "from x import AsyncIterator, item10, _Private, item2, MAX\n"
        "async def f(a: int,\n"
        "            b: int) -> AsyncIterator[int]: ...\n", "x_async.py"), "maim_db/x.py")
    assert "from x import MAX, Iterator, _Private, item2, item10\n" in sync
    assert "def f(a: int, b: int) -> Iterator[int]: ...\n" in sync


# -- imports between layers ------------------------------------------------------------------

def _core() -> set[str]:
    """The core's modules, as the layers contract (pyproject.toml) names them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    return {f"maim_db.{name.strip()}" for name in layers[-1].split(":")}


def test_the_import_contracts_hold() -> None:
    """The layers import only downwards, the scope needs no row models, no module imports
    itself through others: import-linter's contracts in pyproject.toml. In a process of its
    own: lint_imports() reconfigures logging (dictConfig disables every logger that exists,
    maim_db's among them) for the rest of the process."""
    ran = subprocess.run([sys.executable, "-c", LINT_IMPORTS, str(ROOT / "pyproject.toml")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_migrations_import_only_the_core() -> None:
    core = _core()
    for path in sorted((ROOT / "migrations").glob("*.py")):
        imported: list[str] = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module == "maim_db":
                imported += [f"maim_db.{a.name}" for a in node.names]  # from maim_db import x
            elif isinstance(node, ast.ImportFrom):
                imported.append(node.module or "")
        outside = [name for name in imported if name.split(".")[0] == "maim_db"
                   and ".".join(name.split(".")[:2]) not in core]
        # a migration is append-only: what it imports must keep its name for good
        assert outside == [], path.name


@pytest.mark.parametrize("path", sorted((ROOT / "tests").glob("*.py")), ids=lambda p: p.name)
def test_tests_take_fixtures_from_pytest_not_by_import(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and (node.module or "").split(".")[-1] == "conftest"]
    assert imported == []
