"""The code stays `ruff` clean and `mypy --strict` clean, and the generated sync modules stay
`ruff format`ted (the hand-written code keeps its own layout: formatting the whole tree would
rewrite 134 files); CI fails otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_ruff() -> None:
    result = _run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_modules_are_ruff_formatted() -> None:
    result = _run("ruff", "format", "--check", "maim_db/connection.py", "maim_db/pool.py")
    assert result.returncode == 0, result.stdout + result.stderr
