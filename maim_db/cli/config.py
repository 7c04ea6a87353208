"""``maimdb config``: an agent's configuration document, as JSON or MaiBot's TOML files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..control import config as cd
from ..errors import InputError
from ..transfer import archive
from .options import App, Dsn, Json, admin
from .output import dumps, say

app = App(help="Agent configuration documents.", no_args_is_help=True)


@app.command("show")
def config_show(agent_id: str, dsn: Dsn = None,
                reveal: Annotated[bool, typer.Option(
                    help="Decrypt provider secrets (needs MAIMDB_SECRET_KEY).")] = False) -> None:
    """Print an agent's configuration document as JSON (secrets masked).

    Example: maimdb config show agent_1a2b3c4d5e6f > config.json
    """
    with admin(dsn) as db:
        doc = cd.read(db, agent_id, reveal=reveal)
    print(dumps(doc))


@app.command("set")
def config_set(agent_id: str,
               file: Annotated[Path, typer.Argument(help="A (partial) JSON document; - for "
                                                         "stdin.")],
               dsn: Dsn = None) -> None:
    """Apply a partial configuration document; only the fields sent change.

    Example: echo '{"config_overrides":{"chat":{"talk_value":0.5}}}' |
    maimdb config set agent_1a2b3c4d5e6f -
    """
    text = sys.stdin.read() if str(file) == "-" else _read_text(file)
    try:
        patch = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON: {e}") from None
    with admin(dsn) as db:
        doc = cd.update(db, patch, agent_id)
    print(dumps(doc))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None


@app.command("import-toml")
def config_import_toml(agent_id: str,
                       bot_config: Annotated[Path, typer.Argument(help="bot_config.toml")],
                       models: Annotated[Path | None, typer.Option(
                           "--models", help="model_config.toml")] = None,
                       dsn: Dsn = None, as_json: Json = False) -> None:
    """Load a single-user MaiBot's bot_config.toml (and model_config.toml) into an agent.

    Example: maimdb config import-toml agent_1a2b3c4d5e6f bot_config.toml
    --models model_config.toml
    """
    patch, skipped = cd.from_toml(_read_text(bot_config), _read_text(models) if models else None)
    with admin(dsn) as db:
        cd.update(db, patch, agent_id)
    if as_json:
        print(dumps({"agent_id": agent_id, "fields": sorted(patch), "skipped": skipped}))
        return
    say(f"imported into {agent_id}")
    if skipped:
        say("skipped (no column for these MaiBot settings): " + ", ".join(skipped))


@app.command("export-toml")
def config_export_toml(agent_id: str,
                       out_dir: Annotated[Path, typer.Option("--out", help="Directory.")],
                       dsn: Dsn = None,
                       reveal: Annotated[bool, typer.Option(
                           help="Write real provider secrets (needs MAIMDB_SECRET_KEY).")
                       ] = False,
                       force: Annotated[bool, typer.Option(
                           "--force", help="Overwrite files already there.")] = False) -> None:
    """Write bot_config.toml and model_config.toml in MaiBot's layout. Without --reveal,
    secrets are written as ******** (an import refuses them).

    Example: maimdb config export-toml agent_1a2b3c4d5e6f --out ./exported
    """
    there = [out_dir / n for n in ("bot_config.toml", "model_config.toml")
             if (out_dir / n).exists()]
    if there and not force:
        raise InputError(f"{there[0]} exists: pass --force to overwrite it; nothing was "
                         "written")
    with admin(dsn) as db:
        doc = cd.read(db, agent_id, reveal=reveal)
    bot, model = cd.to_toml(doc)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("bot_config.toml", bot), ("model_config.toml", model)):
        with archive.private_file(out_dir / name, replace=True) as f:  # may hold secrets
            f.write(text.encode())
    say(f"wrote {out_dir / 'bot_config.toml'} and {out_dir / 'model_config.toml'}")
