"""Record the schema a MaiBot 1.x release creates, as a fixture of facts (not code).

Given a MaiBot checkout or bare mirror and a tag, this extracts that tag's ``src/`` into a
throwaway directory, replaces only its logger (which needs structlog and writes log files)
with a stdlib one, and runs the release's own ``initialize_database()`` — its SQLModel models,
its migration manager, its ``create_all`` and its ``user_version`` bookkeeping — in a
separate interpreter that has the release's data-layer dependencies (sqlmodel, msgpack,
rich: ``--python``, a throwaway venv). It writes ``tests/maibot1/<tag>.json``: the file's
``PRAGMA user_version`` and every table's and index's DDL from ``sqlite_master``.

``--upgrade FILE`` instead hands the release an existing (0.x) ``MaiBot.db`` to upgrade, as a
bot does at its first 1.x start, and records the upgraded file's DDL *and rows* (blobs as
base64): the legacy v1→v2 path, as 1.x itself runs it.

Nothing of MaiBot's code is copied into this repository: the JSON holds table and column
names, types and values only. Run it again when a new 1.x release appears::

    python -m venv /tmp/maibot-venv && /tmp/maibot-venv/bin/pip install sqlmodel msgpack rich
    python tools/maibot1_ddl.py /work/.mirror/Mai-with-u+MaiBot/repo 1.2.1 \\
        --python /tmp/maibot-venv/bin/python
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import textwrap
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "tests" / "maibot1"

LOGGER = "import logging\n\n\ndef get_logger(name):\n    return logging.getLogger(name)\n"

# Runs inside the extracted release: its own database module on its own data/MaiBot.db.
RUNNER = """
import sys
sys.path.insert(0, sys.argv[1])
from src.common.database import database
database.initialize_database()
database.engine.dispose()
"""


def extract(repo: Path, tag: str, into: Path) -> None:
    """``src/`` of ``tag`` into ``into`` (works on a bare mirror: git archive)."""
    archive = subprocess.run(["git", "-C", str(repo), "archive", tag, "src"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    (into / "src" / "common" / "logger.py").write_text(LOGGER)


def dump(path: Path, *, rows: bool) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    try:
        conn.execute("pragma wal_checkpoint(truncate)")
        out: dict[str, Any] = {
            "user_version": conn.execute("pragma user_version").fetchone()[0],
            "tables": {n: s for n, s in conn.execute(
                "select name, sql from sqlite_master where type = 'table' "
                "and name not like 'sqlite_%' order by name")},
            "indexes": {n: s for n, s in conn.execute(
                "select name, sql from sqlite_master where type = 'index' and sql is not null "
                "order by name")},
        }
        if rows:
            out["rows"] = {t: [[_cell(v) for v in r] for r in conn.execute(
                f'select * from "{t}" order by rowid')] for t in out["tables"]}
            out["columns"] = {t: [c[1] for c in conn.execute(f'pragma table_info("{t}")')]
                              for t in out["tables"]}
        return out
    finally:
        conn.close()


def _cell(v: Any) -> Any:
    return {"base64": base64.b64encode(v).decode()} if isinstance(v, bytes) else v


def columns(facts: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Each table's columns in order, as SQLite reads the recorded DDL."""
    conn = sqlite3.connect(":memory:")
    try:
        for ddl in facts["tables"].values():
            conn.execute(ddl)
        return {t: tuple(r[1] for r in conn.execute(f'pragma table_info("{t}")'))
                for t in sorted(facts["tables"])}
    finally:
        conn.close()


KNOWN = Path(__file__).resolve().parent.parent / "maim_db" / "transfer" / "maibot" / "known1.py"


def known_source(fixtures: Path = OUT) -> str:
    """The text of maim_db/transfer/maibot/known1.py's ``SCHEMAS``, from the fixtures."""
    by_version: dict[int, tuple[list[str], dict[str, tuple[str, ...]]]] = {}
    for f in sorted(fixtures.glob("1.*.json")):
        facts = json.loads(f.read_text())
        releases, cols = by_version.setdefault(facts["user_version"], ([], columns(facts)))
        if cols != columns(facts):
            raise SystemExit(f"{f}: schema version {facts['user_version']} with other columns")
        releases.append(facts["release"])
    lines = ["SCHEMAS: Final[dict[int, Schema1]] = {"]
    for version, (releases, cols) in sorted(by_version.items()):
        lines.append(f"    {version}: Schema1({version}, {tuple(sorted(releases, key=_rel))!r}, {{")
        for table, names in cols.items():
            lines.extend(textwrap.wrap(f"{table!r}: ({', '.join(map(repr, names))},),",
                                       width=99, initial_indent=" " * 8,
                                       subsequent_indent=" " * 12, break_long_words=False,
                                       break_on_hyphens=False))
        lines.append("    }),")
    lines.append("}")
    return "\n".join(lines) + "\n"


BEGIN = "# --- generated by tools/maibot1_ddl.py --known: do not edit ---"
END = "# --- end of generated ---"


def _rel(tag: str) -> tuple[int, ...]:
    return tuple(int(p) for p in tag.split("."))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("repo", type=Path, help="a MaiBot checkout or bare mirror")
    ap.add_argument("tag")
    ap.add_argument("--python", default="python3",
                    help="an interpreter with sqlmodel, msgpack and rich installed")
    ap.add_argument("--upgrade", type=Path, help="a MaiBot.db for the release to upgrade")
    ap.add_argument("--out", type=Path, help="the JSON file to write")
    ap.add_argument("--known", type=Path, metavar="DIR",
                    help="instead: rewrite maim_db/transfer/maibot/known1.py's SCHEMAS from the "
                         "fixtures in DIR (tests/maibot1, or a directory of every release's)")
    ap.add_argument("--tz", default="Asia/Shanghai",
                    help="the bot machine's local time zone (1.x writes naive local times)")
    args = ap.parse_args()
    if args.known:
        text = KNOWN.read_text()
        head, rest = text.split(BEGIN, 1)
        KNOWN.write_text(head + BEGIN + "\n" + known_source(args.known) + END
                         + rest.split(END, 1)[1])
        print(f"{KNOWN}: rewritten from {args.known}")
        return
    with tempfile.TemporaryDirectory(prefix="maibot1-") as tmp:
        root = Path(tmp)
        extract(args.repo, args.tag, root)
        db = root / "data" / "MaiBot.db"
        if args.upgrade:
            db.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(args.upgrade, db)
        subprocess.run([args.python, "-c", RUNNER, str(root)], cwd=root, check=True,
                       env={**os.environ, "TZ": args.tz})
        facts = {"release": args.tag, "timezone": args.tz, **dump(db, rows=bool(args.upgrade))}
    out = args.out or OUT / f"{args.tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(facts, ensure_ascii=False, indent=1) + "\n")
    print(f"{out}: user_version {facts['user_version']}, {len(facts['tables'])} tables")


if __name__ == "__main__":
    main()
