"""The oldest release that may use a database, and whether this one is as new.

Migration 0018 made ``maim.release_floor()``: the oldest maim_db that reads and writes the
schema correctly. A migration that changes what older code would misread (0014's sealed
tokens, ``enc:v2`` values) raises it; one that only adds leaves it. Each connection reads it
once, before its first block (:mod:`maim_db.connection_async`), and code older than the
floor refuses with :class:`~maim_db.errors.OutdatedReleaseError` — so a database newer than
the code serves it as long as the floor allows (a rolling upgrade), and never silently
otherwise.

Versions compare as PEP 440 says, by ``packaging`` (pip's own version rules).
"""

from __future__ import annotations

from typing import Final

from packaging.version import InvalidVersion, Version

from .errors import OutdatedReleaseError
from .version import __version__

#: The statement that reads the floor (qualified: no search_path changes what it calls).
READ_FLOOR: Final = b"select maim.release_floor()"


def at_least(version: str, floor: str) -> bool:
    """Whether ``version`` is ``floor`` or newer (PEP 440: a pre-release or dev build of the
    floor's release comes before it)."""
    try:
        return Version(version) >= Version(floor)
    except InvalidVersion as err:
        raise ValueError(f"not a PEP 440 version: {err}") from err


def check(floor: str | None, version: str = __version__) -> None:
    """Refuse a database whose floor is above ``version``; None (no floor recorded: a
    schema from before 0018) is served as before."""
    if floor is not None and not at_least(version, floor):
        raise OutdatedReleaseError(
            f"this database needs maim_db {floor} or newer (migrated by a newer release); "
            f"this is maim_db {version}: upgrade this service")
