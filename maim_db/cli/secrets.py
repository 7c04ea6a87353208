"""``maimdb secrets new-key|rotate``: the keys that seal provider secrets and auth tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import crypto
from ..control import sealed
from .options import App, Dsn, Json
from .output import cell, dumps, err, say, table

app = App(help="Keys for sealed secrets (MAIMDB_SECRET_KEY).",
                          no_args_is_help=True)


@app.command("new-key")
def new_key() -> None:
    """Print a fresh key for MAIMDB_SECRET_KEY (every service needs the same one).

    Example: export MAIMDB_SECRET_KEY=$(maimdb secrets new-key)
    """
    print(crypto.new_key())


@app.command("rotate")
def rotate(dsn: Dsn = None, as_json: Json = False,
           batch_size: Annotated[int, typer.Option(min=1, max=100_000,
                                                   help="Rows per transaction.")] = 500,
           dry_run: Annotated[bool, typer.Option("--dry-run",
                                                 help="Count, change nothing.")] = False,
           ) -> None:
    """Re-seal every secret under MAIMDB_SECRET_KEY; resumable, in batches.

    Set MAIMDB_SECRET_KEY to the new key and MAIMDB_SECRET_KEY_FALLBACKS to the old one on
    every service first, then run this; when it reports complete, drop the fallback.

    Example: maimdb secrets rotate --dry-run
    """
    tallies = sealed.rotate(dsn, batch_size=batch_size, dry_run=dry_run)
    key = crypto.current().id
    done = all(t.done for t in tallies.values())
    if as_json:
        print(dumps({"key_id": key, "dry_run": dry_run, "complete": done,
                     "tables": {name: {"current": t.current, "resealed": t.resealed,
                                       "unsealed": t.unsealed, "retried": t.retried,
                                       "unreadable": t.unreadable, "remaining": t.remaining}
                                for name, t in tallies.items()}}))
    else:
        table(("table", "already current", "would reseal" if dry_run else "resealed",
               "unsealed", "unreadable", "changed meanwhile", "left under another key"),
              [(name, t.current, t.resealed, t.unsealed, len(t.unreadable), t.retried,
                t.remaining) for name, t in tallies.items()])
        for t in tallies.values():
            for where in t.unreadable:
                err.print(cell(f"no configured key opens: {where}"))
        if dry_run:
            say(f"dry run: nothing changed; the current key is {key}")
        elif done:
            say(f"rotation complete: every sealed value is under key {key}; "
                f"{crypto.FALLBACKS_ENV} may now be dropped")
        else:
            say("rotation not complete: values are left under another key; add the keys "
                f"that open those listed to {crypto.FALLBACKS_ENV}, and rerun")
    if not done and not dry_run:
        raise typer.Exit(1)

