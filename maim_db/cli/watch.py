"""``maimdb watch``: end plugin sessions that stall everyone else (:mod:`maim_db.watch`)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType
from typing import Annotated, Any

import typer

from .. import watch as watcher
from .options import Dsn, finite
from .output import say


def _seconds(flag: str, what: str) -> Any:
    return typer.Option(flag, min=0, max=86400, callback=finite,
                        help=f"Seconds a plugin's session may {what}; 0: no limit.")


def watch(
    dsn: Dsn = None,
    block_after: Annotated[float, _seconds(
        "--block-after", "block another session's lock request")] = 2.0,
    idle_after: Annotated[float, _seconds(
        "--idle-after", "sit idle in a transaction")] = 10.0,
    transaction_after: Annotated[float, _seconds(
        "--transaction-after", "stay in one transaction (or statement)")] = 30.0,
    prepared_after: Annotated[float, _seconds(
        "--prepared-after", "keep a prepared transaction (PREPARE TRANSACTION)")] = 2.0,
    interval: Annotated[float, typer.Option(
        "--interval", min=0.05, max=60, callback=finite,
        help="Seconds between looks at the server.")] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Look once, then exit.")] = False,
) -> None:
    """Terminate plugin logins' sessions that block others, idle in a transaction or run too
    long, and roll back their prepared transactions, until stopped (SIGTERM or Ctrl-C).

    Run it as a login holding pg_signal_backend and pg_read_all_stats (docs/operations.md),
    or as a superuser where max_prepared_transactions > 0 (Citus): only a superuser may roll
    back another login's prepared transaction. `maimdb migrate` and `maimdb db start` run one
    for the embedded server. One query per interval; each termination is one line on stderr.

    Example: maimdb watch --dsn postgresql://maim_watcher@db.internal/maim
    """
    limits = watcher.Limits(block=block_after or None, idle=idle_after or None,
                            transaction=transaction_after or None,
                            prepared=prepared_after or None, interval=interval)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(message)s")
    if once:
        with watcher.connect(dsn) as conn:
            ended = watcher.tick(conn, limits)
        for e in ended:
            say(str(e))
        return
    stop = threading.Event()

    def stopping(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    watcher.run(dsn, limits, stop=stop)


def register(app: typer.Typer) -> None:
    app.command()(watch)
