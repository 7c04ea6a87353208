"""Where the CLI writes: results to stdout, warnings and errors to stderr, one line each."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True, soft_wrap=True)


def fail(error: Exception) -> NoReturn:
    """Print ``error`` as one line on stderr and exit 1."""
    err.print(f"[bold red]error:[/] {error}", highlight=False)
    raise typer.Exit(1)
