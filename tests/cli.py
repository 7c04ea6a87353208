"""`maimdb` as an operator runs it: the installed console script (the real entry point), in
its own process, stdin not a terminal unless given — and, where a process is not the point
(help and argument parsing), the same command in this process (:func:`in_process`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def _command() -> list[str]:
    script = Path(sys.executable).with_name("maimdb")
    found = str(script) if script.exists() else shutil.which("maimdb")
    return [found] if found else [sys.executable, "-m", "maim_db.cli"]


def maimdb(*args: str, dsn: str | None = None, stdin: str | None = None,
           env: dict[str, str] | None = None, cwd: Path | None = None,
           columns: int | None = None) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ if env is None else env)
    if dsn is not None:
        environment["MAIMDB_DSN"] = dsn
    if columns is not None:
        environment["COLUMNS"] = str(columns)
    return subprocess.run([*_command(), *args], env=environment, input=stdin,
                          stdin=None if stdin is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=180, cwd=cwd)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The stderr of a command that failed as the CLI should: exit 1, one line, no trace."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr.strip()


def in_process(*args: str, columns: int | None = None) -> subprocess.CompletedProcess[str]:
    """The command's help and parsing through typer's in-process runner: a process costs
    ~0.6 s of imports, this ~0.05 s. Not for what the console script adds (its one-line error
    boundary, stdin, the exit status of a real process): :func:`maimdb` tests those."""
    from typer.testing import CliRunner

    from maim_db.cli.main import app

    env = {"COLUMNS": str(columns)} if columns is not None else None
    result = CliRunner().invoke(app, list(args), env=env, prog_name="maimdb")
    return subprocess.CompletedProcess(["maimdb", *args], result.exit_code, result.stdout,
                                       result.stderr)
