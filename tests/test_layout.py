"""The layout holds: the layers import only downwards, nothing imports in a cycle, and the
sync modules are what their async sources generate (tools/async_to_sync.py)."""

from __future__ import annotations

import ast
import importlib.util
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "maim_db"
LAYERS = ("maim_db.schema", "maim_db.control", "maim_db.transfer", "maim_db.peewee",
          "maim_db.sqlalchemy", "maim_db.cli")


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
        "from collections.abc import Iterable, Iterator\n"
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
    sync = gen.to_sync("from x import AsyncIterator, item10, _Private, item2, MAX\n", "x.py")
    assert sync.endswith("from x import MAX, Iterator, _Private, item2, item10\n")  # as ruff


# -- imports between layers ------------------------------------------------------------------

def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """Every maim_db module ``name`` imports, wherever the import stands (a lazy import in a
    function is still a dependency)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] == "maim_db")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "maim_db":
                continue
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known]
            if len(subs) < len(node.names):
                yield target
            yield from subs


def _ancestors(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _graph() -> dict[str, set[str]]:
    """module -> what importing it runs first: each module it imports, and each package
    around one that is not already around the importer (importing ``pkg.sub`` runs
    ``pkg/__init__.py`` too)."""
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        named = set(_imports(name, path, known)) - {name}
        # the packages around the importer are initialised before it runs
        implied = {a for t in named for a in _ancestors(t) if a not in _ancestors(name)}
        graph[name] = named | (implied & known)
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _layer(module: str) -> str:
    return next((layer for layer in LAYERS if module == layer or module.startswith(layer + ".")),
                "core")


def test_the_layers_import_only_downwards() -> None:
    # core <- schema <- control, transfer <- cli; control <- peewee; core <- sqlalchemy;
    # migrations: the core
    allowed = {
        "core": {"core"},
        "maim_db.schema": {"core", "maim_db.schema"},
        "maim_db.control": {"core", "maim_db.control"},
        "maim_db.transfer": {"core", "maim_db.schema", "maim_db.control", "maim_db.transfer"},
        "maim_db.peewee": {"core", "maim_db.control", "maim_db.peewee"},
        "maim_db.sqlalchemy": {"core", "maim_db.sqlalchemy"},
        "maim_db.cli": {"core", *LAYERS},
    }
    wrong = sorted(f"{module} imports {target}"
                   for module, targets in _graph().items() for target in targets
                   if _layer(target) not in allowed[_layer(module)])
    assert wrong == []


def test_the_scope_needs_no_row_models() -> None:
    graph = _graph()
    for core in ("maim_db.scope", "maim_db.context"):
        loaded = _reachable(graph, core)
        assert not [t for t in loaded if t.startswith("maim_db.tables")], (core, loaded)


def test_no_module_imports_itself_through_others() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert cycles == []


def test_migrations_import_only_the_core() -> None:
    known = set(_modules())
    for path in sorted((ROOT / "migrations").glob("*.py")):
        outside = [t for t in _imports("migrations.x", path, known) if _layer(t) != "core"]
        # a migration is append-only: what it imports must keep its name for good
        assert outside == [], path.name


@pytest.mark.parametrize("path", sorted((ROOT / "tests").glob("*.py")), ids=lambda p: p.name)
def test_tests_take_fixtures_from_pytest_not_by_import(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and (node.module or "").split(".")[-1] == "conftest"]
    assert imported == []
