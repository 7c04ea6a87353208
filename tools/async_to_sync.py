"""Generate maim_db's sync modules from their async sources, as psycopg does.

The async code is the one written by hand; the sync twin is this script's output, so the two
cannot drift. ``python tools/async_to_sync.py`` rewrites the generated files;
``--check`` only reports the stale ones (tests/test_layout.py checks the same).

The translation is textual and small on purpose (names, ``async``/``await``), so a reader can
predict it. Two markers cover what differs beyond that:

- ``# sync: <code>`` at the end of a line: in the sync module the line's code is ``<code>``;
- ``# async only`` at the end of a line: the line is left out of the sync module.

Renaming leaves imports out of order and continuation lines misaligned, so the output goes
through ruff (its import sorting, then ``ruff format``) with the project's settings.

A module-level ``async def aNAME`` (or ``_aNAME``) is ``NAME`` (``_NAME``) in the sync
module, wherever it is named in any source: the control plane's ``acreate_agent`` is
``create_agent``, as ``aconnect`` is ``connect``. So an async function at module level whose
name starts with ``a`` for another reason must be named otherwise.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: async source -> generated sync module
MODULES: dict[str, str] = {
    "maim_db/connection_async.py": "maim_db/connection.py",
    "maim_db/pool_async.py": "maim_db/pool.py",
    "maim_db/control/tenancy_async.py": "maim_db/control/tenancy.py",
    "maim_db/control/keys_async.py": "maim_db/control/keys.py",
    "maim_db/control/activity_async.py": "maim_db/control/activity.py",
    "maim_db/control/plugins_async.py": "maim_db/control/plugins.py",
    "maim_db/control/config/document_async.py": "maim_db/control/config/document.py",
}

#: async name -> sync name, whole words only
NAMES: dict[str, str] = {
    "AbstractAsyncContextManager": "AbstractContextManager",
    "AsyncConnectionPool": "ConnectionPool",
    "AsyncConnection": "Connection",
    "AsyncCursor": "Cursor",
    "AsyncBlock": "Block",
    "AsyncDatabase": "Database",
    "AsyncIterator": "Iterator",
    "AsyncPool": "Pool",
    "asynccontextmanager": "contextmanager",
    "aconnect": "connect",
    "aopen_connection": "open_connection",
    "arun_scoped": "run_scoped",
    "ascoped": "scoped",
    "connection_async": "connection",
    "pool_async": "pool",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
}

_DEFINED = re.compile(r"^async def (?P<private>_?)a(?P<name>\w+)", re.MULTILINE)
_KEYWORDS = [
    (re.compile(r"\basync (def|with|for)\b"), r"\1"),
    (re.compile(r"\bawait "), ""),
]
_SYNC = re.compile(r"^(?P<indent>\s*)(?P<code>.*?)\s*# sync: (?P<sync>.*)$")
_ASYNC_ONLY = re.compile(r"#\s*async only\s*$")
# What would survive the translation still async: a name missing from NAMES (say
# asyncio.sleep, which without its await would never run) must stop the script, not slip by.
_LEFT_ASYNC = re.compile(r"\b(?:async|await|asyncio|Async\w+|a(?:close|iter|next)|__a\w+__)\b")


def header(source: str) -> str:
    return (f"# WARNING: generated from {source} by tools/async_to_sync.py;\n"
            "# do not edit: change the async source and run `python tools/async_to_sync.py`.\n\n")


def defined_names(*texts: str) -> dict[str, str]:
    """async name -> sync name for the module-level ``async def a…`` of ``texts``."""
    return {f"{m['private']}a{m['name']}": f"{m['private']}{m['name']}"
            for text in texts for m in _DEFINED.finditer(text)}


def _pattern(names: dict[str, str]) -> re.Pattern[str]:
    return re.compile(r"\b(" + "|".join(sorted(names, key=len, reverse=True)) + r")\b")


def to_sync(text: str, source: str, defined: dict[str, str] | None = None) -> str:
    """The sync module for the async ``text``; ``defined``: the ``async def a…`` names of
    every source (by default, of ``text`` alone)."""
    names = {**(defined if defined is not None else defined_names(text)), **NAMES}
    renames = _pattern(names)
    lines: list[str] = []
    dropped = False
    for line in text.splitlines():
        if _ASYNC_ONLY.search(line):
            dropped = True
            continue
        if dropped and not line.strip() and lines and not lines[-1].strip():
            continue  # no gap left where the line was
        dropped = False
        marked = _SYNC.match(line)
        if marked:
            # the replacement is taken as written: names in it are already the sync ones
            lines.append(marked["indent"] + marked["sync"])
            continue
        line = renames.sub(lambda m: names[m[1]], line)
        for keyword, replacement in _KEYWORDS:
            line = keyword.sub(replacement, line)
        leftover = _LEFT_ASYNC.search(line)
        if leftover:
            raise ValueError(f"{source}: no sync translation for {leftover[0]!r} in "
                             f"{line.strip()!r}; add it to NAMES, or mark the line "
                             "(# sync: …, # async only)")
        lines.append(line)
    return header(source) + "\n".join(lines) + "\n"


def _ruff(args: list[str], text: str, target: str) -> str:
    ran = subprocess.run([sys.executable, "-m", "ruff", *args, "--stdin-filename", target, "-"],
                         input=text, capture_output=True, text=True, cwd=ROOT, check=False)
    if ran.returncode != 0:
        raise RuntimeError(f"ruff {args[0]} failed on the generated {target}: {ran.stderr}")
    return ran.stdout


def formatted(text: str, target: str) -> str:
    """``text`` as the module ``target``: imports sorted and code formatted by ruff, with the
    project's settings (pyproject.toml)."""
    text = _ruff(["check", "--select", "I", "--fix", "--quiet"], text, target)
    return _ruff(["format", "--quiet"], text, target)


def generated(root: Path = ROOT) -> dict[str, str]:
    """Each generated module's path and the text its source generates now."""
    texts = {source: (root / source).read_text() for source in MODULES}
    defined = defined_names(*texts.values())
    return {target: formatted(to_sync(texts[source], source, defined), target)
            for source, target in MODULES.items()}


def stale(root: Path = ROOT) -> list[str]:
    """The generated modules that differ from what their sources generate now."""
    return [target for target, text in generated(root).items()
            if not (root / target).exists() or (root / target).read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a generated module is stale")
    args = parser.parse_args(argv)
    if args.check:
        old = stale()
        for target in old:
            print(f"{target} is stale: run python tools/async_to_sync.py", file=sys.stderr)
        return 1 if old else 0
    for target, text in generated().items():
        (ROOT / target).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
