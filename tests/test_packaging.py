"""maim_db as a service installs it: a wheel, in a fresh virtualenv outside the checkout,
with every extra. It carries every module, every migration and every ``sql/`` file byte for
byte; it migrates from another directory; the porting guide's first example runs on it."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from maim_db.schema.migrate import load
from maim_db.version import __version__
from tests.databases import TestDB, build_world
from tests.test_porting_guide import BLOCKS, _env

ROOT = Path(__file__).resolve().parent.parent


def _modules() -> set[str]:
    """Every module of the checkout's package, by dotted name."""
    found = set()
    for path in (ROOT / "maim_db").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                            str(out), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    (found,) = out.glob(f"maim_db-{__version__}-*.whl")
    return found


@pytest.mark.slow
def test_the_wheel_carries_every_module_and_the_schema(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        packed = {name: z.read(name) for name in names
                  if name.startswith(("maim_db/migrations/", "maim_db/sql/"))}
    expected = {f"maim_db/{path.parent.name}/{path.name}": path.read_bytes()
                for folder in ("migrations", "sql") for path in (ROOT / folder).iterdir()
                if path.is_file()}
    assert sorted(packed) == sorted(expected)
    assert packed == expected
    modules = {n[:-3].replace("/", ".").removesuffix(".__init__") for n in names
               if n.endswith(".py") and n not in packed}
    assert modules == _modules()  # maim_db.peewee was left out once
    assert "maim_db/py.typed" in names


@pytest.mark.slow
def test_the_installed_wheel_migrates_from_elsewhere_and_runs_the_bridge(
        wheel: Path, template: str, empty_db: TestDB, tmp_path: Path) -> None:
    del template  # its logins (maim_test_*): roles are the server's, not a database's
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python, maimdb = env_dir / "bin" / "python", env_dir / "bin" / "maimdb"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"{wheel}[test,bench,peewee]"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Nothing of the checkout on the path: the installed package alone.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MAIMDB_DSN")}

    every = (f"import importlib; names = {sorted(_modules() - {'maim_db.cli.__main__'})!r}; "
             "mods = [importlib.import_module(n) for n in names]; print(mods[0].__file__)")
    ran = subprocess.run([str(python), "-c", every], capture_output=True, text=True,
                         timeout=120, cwd=elsewhere, env=env)
    assert ran.returncode == 0, ran.stderr
    assert Path(ran.stdout.strip()).is_relative_to(env_dir)

    version = subprocess.run([str(maimdb), "--version"], capture_output=True, text=True,
                             timeout=60, cwd=elsewhere, env=env)
    assert version.stdout.strip() == f"maimdb {__version__} (schema {load()[-1].id})"

    migrated = subprocess.run([str(maimdb), "migrate"], capture_output=True, text=True,
                              timeout=600, cwd=elsewhere,
                              env=dict(env, MAIMDB_DSN=empty_db.superuser))
    assert migrated.returncode == 0, migrated.stderr
    world = build_world(empty_db)
    guide = subprocess.run([str(python), "-c", BLOCKS[0][1]], capture_output=True, text=True,
                           timeout=300, cwd=elsewhere,
                           env={**_env(empty_db, world), "PYTHONPATH": ""})
    assert guide.returncode == 0, guide.stderr
    assert "two agents, each with only its own data: (2, 1000) (2, 600)" in guide.stdout
