"""Where the CLI writes: results to stdout, warnings and errors to stderr, one line each.

Everything printed may hold text from outside (a MaiBot file's table and column names, its
rows, names a user typed), so every helper here shows it inert: control characters (C0, DEL,
C1, which hold ESC and CSI) and bidirectional overrides as visible escapes, rich markup as
text. Print through these, never with a bare ``print`` of foreign text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

out = Console()
err = Console(stderr=True, soft_wrap=True)

# C0 (newline and tab too: one value, one line), DEL, C1, and the bidi controls that make a
# terminal show text in another order than it is ("Trojan Source").
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_UNSAFE_IN_JSON = re.compile(f"[\x7f-\x9f{_BIDI}]")  # json.dumps escapes C0 itself


def visible(text: str) -> str:
    """``text`` with every character a terminal would act on shown as an escape."""
    return _UNSAFE.sub(lambda m: (f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                                  else f"\\u{ord(m.group()):04x}"), text)


def dumps(data: Any) -> str:
    """JSON for stdout: readable UTF-8, but C1 and bidi controls (which JSON leaves raw)
    escaped as ``\\uXXXX``, still valid JSON."""
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}",
                               json.dumps(data, ensure_ascii=False, indent=2))


def report(error: Exception) -> None:
    """``error`` as one line on stderr (a multi-line message is joined with ``; ``, or a
    space after a line that ends in ``:``)."""
    text = ""
    for line in filter(None, (line.strip() for line in str(error).splitlines())):
        text += ("" if not text else " " if text.endswith(":") else "; ") + line
    err.print(f"[bold red]error:[/] {escape(visible(text))}", highlight=False)


def say(line: str) -> None:
    """One line on stdout, literally: it may hold data, and data may hold rich markup."""
    out.print(Text(visible(line)), highlight=False, soft_wrap=True)  # never broken mid-path


def cell(value: object) -> Text:
    """A table cell holding data: shown literally, never read as markup."""
    return Text(visible(str(value)))


def plain(value: Any) -> Any:
    """A row as JSON-ready data; a key's or a password's hash never leaves."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude={"key_hash", "hashed_password"})
    return value


def emit(rows: BaseModel | Sequence[BaseModel] | dict[str, Any], as_json: bool,
         columns: Sequence[str] = (), total: int | None = None) -> None:
    """Rows as a table of ``columns`` (a dict as key/value pairs), or as JSON; with ``total``,
    one page of that many."""
    if as_json:
        data: Any = ([plain(r) for r in rows] if isinstance(rows, list | tuple)
                     else plain(rows))
        if total is not None:
            data = {"items": data, "total": total}
        print(dumps(data))
        return
    items = rows if isinstance(rows, list | tuple) else [rows]
    if isinstance(rows, dict):
        table = Table("key", "value")
        for k, v in rows.items():
            table.add_row(cell(k), cell(json.dumps(v, ensure_ascii=False)
                                        if not isinstance(v, str) else v))
    else:
        dumps_ = [plain(r) for r in items]
        table = Table()
        for c in columns:
            if c == "id" or c.endswith("_id"):
                # an id is what the next command needs: never cut, never wrapped; the other
                # columns give way (they fold onto more lines instead)
                width = max([len(c), *(len(str(d.get(c, ""))) for d in dumps_)])
                table.add_column(c, no_wrap=True, min_width=width)
            else:
                table.add_column(c, overflow="fold")
        for dumped in dumps_:
            table.add_row(*(cell(dumped.get(c, "")) for c in columns))
    out.print(table)
    if total is not None:
        say(f"{len(items)} of {total}")
