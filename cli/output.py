"""Where the CLI writes: results to stdout, warnings and errors to stderr, one line each."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

out = Console()
err = Console(stderr=True, soft_wrap=True)


def report(error: Exception) -> None:
    """``error`` as one line on stderr (a multi-line message is joined with ``; ``, or a
    space after a line that ends in ``:``)."""
    text = ""
    for line in filter(None, (line.strip() for line in str(error).splitlines())):
        text += ("" if not text else " " if text.endswith(":") else "; ") + line
    err.print(f"[bold red]error:[/] {escape(text)}", highlight=False)


def fail(error: Exception) -> NoReturn:
    """Print ``error`` as one line on stderr and exit 1."""
    report(error)
    raise typer.Exit(1)


def say(line: str) -> None:
    """One line on stdout, as is: it may hold data, and data may hold rich markup."""
    out.print(Text(line), highlight=False)


def cell(value: object) -> Text:
    """A table cell holding data: shown literally, never read as markup."""
    return Text(str(value))
