"""Real MaiBot 1.2.1 code, read from its source at test time (never copied into this repo),
run on maim_db.sqlmodel as a port would run it.

Where the source is: ``MAIMDB_MAIBOT_SOURCE``, a MaiBot 1.2.1 checkout; else a git
repository of MaiBot holding the tag 1.2.1 (``MAIMDB_MAIBOT_GIT``, default the bare mirror
this project's machines keep). Neither: the test skips, unless ``MAIMDB_REQUIRE_MAIBOT=1``
(CI), where it fails.

:func:`port` installs what a port's ``src/common/database/database.py`` and
``database_model.py`` become — a re-export line each — as modules under their 1.x names;
:func:`load` executes a function or class of a 1.x module from its own source with the
module's imports of ``src.common.database`` (and of the standard library, SQLAlchemy and
SQLModel) and the names a test gives for the rest.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

TAG = "1.2.1"
MIRROR = "/work/.mirror/Mai-with-u+MaiBot/repo"
#: What a port's two data-layer files hold, each in full.
PORTED = {
    "src.common.database.database": "from maim_db.sqlmodel.database import *  # noqa: F403\n",
    "src.common.database.database_model": "from maim_db.sqlmodel.models import *  # noqa: F403\n",
}
#: The imports of a 1.x module that run as they are: the standard library's, SQLAlchemy's,
#: SQLModel's and the ported data layer's (every other name comes from the test).
_IMPORTABLE = ("sqlalchemy", "sqlmodel", *PORTED)


def _missing(why: str) -> None:
    if os.environ.get("MAIMDB_REQUIRE_MAIBOT") == "1":
        pytest.fail(f"MaiBot {TAG}'s source is required (MAIMDB_REQUIRE_MAIBOT=1): {why}")
    pytest.skip(f"no MaiBot {TAG} source ({why}): set MAIMDB_MAIBOT_SOURCE or MAIMDB_MAIBOT_GIT")


def source(path: str) -> str:
    """The text of ``path`` (``src/...``) in MaiBot 1.2.1."""
    checkout = os.environ.get("MAIMDB_MAIBOT_SOURCE")
    if checkout:
        file = Path(checkout) / path
        if not file.is_file():
            _missing(f"{file} does not exist")
        return file.read_text(encoding="utf-8")
    git_dir = os.environ.get("MAIMDB_MAIBOT_GIT", MIRROR)
    if not Path(git_dir).exists():
        _missing(f"no repository at {git_dir}")
    shown = subprocess.run(["git", "--git-dir", git_dir, "show", f"{TAG}:{path}"],
                           capture_output=True, text=True, check=False)
    if shown.returncode != 0:
        _missing(shown.stderr.strip() or f"git show {TAG}:{path} failed")
    return shown.stdout


@contextmanager
def port() -> Iterator[None]:
    """``src.common.database.database`` and ``…database_model`` as a port has them (two
    re-export lines), importable for the duration; what was there before comes back.
    ``sys.modules`` is the process's: enter it once, around every thread that imports."""
    names = ["src", "src.common", "src.common.database", *PORTED]
    saved = {name: sys.modules.get(name) for name in names}
    try:
        for name in names:
            module = ModuleType(name)
            module.__path__ = []  # a package, so the submodules import
            exec(PORTED.get(name, ""), module.__dict__)
            sys.modules[name] = module
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _runs(module: str) -> bool:
    return (module.partition(".")[0] in sys.stdlib_module_names
            or any(module == m or module.startswith(m + ".") for m in _IMPORTABLE))


def _importable(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level == 0 and _runs(node.module or "")
    if isinstance(node, ast.Import):
        return all(_runs(a.name) for a in node.names)
    return False


def load(path: str, *names: str, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """The functions or classes ``names`` of 1.2.1's module ``path``, from its own source:
    its imports of the standard library, SQLAlchemy, SQLModel and the ported data layer run
    (inside :func:`port`), every other name the code needs comes from ``given``. A name
    ``"Class.method"`` is a method taken out of its class, as a plain function. Decorators
    (``@staticmethod``, ``@classmethod``) are dropped: the test calls what it loaded."""
    tree = ast.parse(source(path), filename=f"{TAG}:{path}")
    body: list[ast.stmt] = [n for n in tree.body if _importable(n)]
    for name in names:
        owner, _, member = name.rpartition(".")
        scope = tree.body
        if owner:
            (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == owner]
            scope = cls.body
        found = [n for n in scope if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef |
                                                ast.ClassDef) and n.name == member]
        if not found:
            raise LookupError(f"{TAG}:{path} has no {name}")
        node = found[0]
        if not isinstance(node, ast.ClassDef):
            node.decorator_list = []
        body.append(node)
    module = ast.Module(body=body, type_ignores=[])
    namespace: dict[str, Any] = {"__name__": f"maibot_{TAG}_{Path(path).stem}",
                                 **(given or {})}
    with port():
        exec(compile(module, f"{TAG}:{path}", "exec"), namespace)
    return namespace
