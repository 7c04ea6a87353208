"""Where the CLI writes: results to stdout, warnings and errors to stderr, one line each.

Everything printed may hold text from outside (a MaiBot file's table and column names, its
rows, names a user typed), so every helper here shows it inert: control characters (C0, DEL,
C1, which hold ESC and CSI) and bidirectional overrides as visible escapes, rich markup as
text. Print through these, never with a bare ``print`` of foreign text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from rich.cells import cell_len
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


NULL = "-"
"""How a table shows SQL null (``--json`` has ``null``)."""


def cell(value: object) -> Text:
    """A value as every table shows it (docs/conventions.md, "CLI output"): data literally,
    never read as markup; null as ``-``; a list comma-joined; true/false as yes/no; a
    timestamp to the second in UTC, one word; a mapping as compact JSON."""
    if isinstance(value, Text):
        return value
    return Text(visible(_shown(value)))


def _shown(value: object) -> str:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(_shown(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], *,
          title: str | None = None, pairs: bool = False) -> None:
    """Rows under ``headers``, readable at the console's width, piped or not: a table whose
    columns are at least as wide as their longest word (text wraps between words, never
    inside one); when even that is too wide, one record per block, as psql's ``\\x`` does
    (``pairs``: rows that are already one record's name/value pairs, shown as lines)."""
    heads = [Text(h) for h in headers]
    body = [[cell(v) for v in row] for row in rows]
    width = out.size.width
    columns = list(zip(heads, *body, strict=True)) if body else [(h,) for h in heads]
    shortest = [max(_longest_word(t) for t in col) for col in columns]
    natural = [max(cell_len(t.plain) for t in col) for col in columns]
    frame = 3 * len(heads) + 1  # "│ " before each column, " │" after the last
    if sum(shortest) + frame > width:
        _records(heads, body, width, title, pairs)
        return
    widths = list(shortest)
    spare = width - frame - sum(widths)
    while spare > 0:  # the room left goes, a column at a time, to who wraps most
        short = [n - w for n, w in zip(natural, widths, strict=True)]
        most = max(range(len(widths)), key=lambda i: short[i])
        if short[most] <= 0:
            break
        widths[most] += 1
        spare -= 1
    grid = Table(title=Text(visible(title)) if title else None)
    for head, w in zip(heads, widths, strict=True):
        grid.add_column(head, width=w, overflow="fold")
    for row in body:
        grid.add_row(*row)
    out.print(grid)


def _longest_word(text: Text) -> int:
    return max((cell_len(w) for w in text.plain.split()), default=0)


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` cells, broken between words only (a word wider
    than that is a line of its own)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and cell_len(line) + 1 + cell_len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line or not lines else lines


def _records(heads: list[Text], body: list[list[Text]], width: int, title: str | None,
             pairs: bool) -> None:
    """Each row as a block of ``column │ value`` lines, values wrapped between words."""
    if title:
        say(title)
    if pairs:
        heads, body = [r[0] for r in body], [[r[1] for r in body]] if body else []
    label = max((cell_len(h.plain) for h in heads), default=0)
    room = max(width - label - 3, 20)
    for n, row in enumerate(body, 1):
        if not pairs:
            say(f"-[ {n} ]" + "-" * max(width - 8 - len(str(n)), 0))
        for head, value in zip(heads, row, strict=True):
            name = head.plain + " " * (label - cell_len(head.plain))
            for i, part in enumerate(_wrap(value.plain, room)):
                line = Text(f"{name if i == 0 else ' ' * label} │ ")
                line.append(part, style=value.style)
                out.print(line, highlight=False, soft_wrap=True)


HIDDEN = {"key_hash", "hashed_password"}


def plain(value: Any) -> Any:
    """A row as JSON-ready data; a key's or a password's hash never leaves."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude=HIDDEN)
    return value


def fields(row: BaseModel) -> dict[str, Any]:
    """Every field of one row, for a table (typed: a timestamp stays one)."""
    return row.model_dump(exclude=HIDDEN)


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
    if isinstance(rows, dict):
        table(("key", "value"), list(rows.items()), pairs=True)
        return
    items: Sequence[BaseModel] = [rows] if isinstance(rows, BaseModel) else rows
    shown = [fields(r) for r in items]
    table(columns, [[d.get(c) for c in columns] for d in shown])
    if total is not None:
        say(f"{len(items)} of {total}")
