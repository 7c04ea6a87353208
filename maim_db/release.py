"""The oldest release that may use a database, and whether this one is as new.

Migration 0018 made ``maim.release_floor()``: the oldest maim_db that reads and writes the
schema correctly. A migration that changes what older code would misread (0014's sealed
tokens, ``enc:v2`` values) raises it; one that only adds leaves it. Each connection reads it
once, before its first block (:mod:`maim_db.connection_async`), and code older than the
floor refuses with :class:`~maim_db.errors.OutdatedReleaseError` — so a database newer than
the code serves it as long as the floor allows (a rolling upgrade), and never silently
otherwise.

Versions compare as PEP 440 says, without the ``packaging`` dependency: the floor is always a
plain release (``0.2.0``, checked here), and against a plain release a code version orders by
its release numbers, then pre-release and dev builds before the release, post-releases after
it (a local ``+label`` and the epoch as PEP 440 orders them).
"""

from __future__ import annotations

import re
from typing import Final

from .errors import OutdatedReleaseError
from .version import __version__

#: The statement that reads the floor (qualified: no search_path changes what it calls).
READ_FLOOR: Final = b"select maim.release_floor()"

_RELEASE = re.compile(r"^\d+(\.\d+)*$")
_VERSION = re.compile(
    r"^\s*v?(?:(?P<epoch>\d+)!)?(?P<release>\d+(?:\.\d+)*)"
    r"(?P<pre>[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?\d*)?"
    r"(?P<post>(?:-\d+)|(?:[-_.]?(?:post|rev|r)[-_.]?\d*))?"
    r"(?P<dev>[-_.]?dev[-_.]?\d*)?(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?\s*$", re.I)


def _numbers(release: str) -> tuple[int, ...]:
    parts = [int(p) for p in release.split(".")]
    while len(parts) > 1 and parts[-1] == 0:  # 0.2 == 0.2.0
        parts.pop()
    return tuple(parts)


def at_least(version: str, floor: str) -> bool:
    """Whether ``version`` (any PEP 440 version) is ``floor`` (a plain release) or newer."""
    if not _RELEASE.match(floor):
        raise ValueError(f"a release floor is a plain release such as 0.2.0, not {floor!r}")
    m = _VERSION.match(version)
    if m is None:
        raise ValueError(f"{version!r} is not a PEP 440 version")
    if int(m["epoch"] or 0) > 0:
        return True  # any epoch orders after every release without one
    mine, needed = _numbers(m["release"]), _numbers(floor)
    if mine != needed:
        return mine > needed
    # The same release numbers: a pre-release or a dev build of it comes before it (a
    # post-release of a pre-release too); the release, its post-releases and local
    # builds do not.
    return not (m["pre"] or (m["dev"] and not m["post"]))


def check(floor: str | None, version: str = __version__) -> None:
    """Refuse a database whose floor is above ``version``; None (no floor recorded: a
    schema from before 0018) is served as before."""
    if floor is not None and not at_least(version, floor):
        raise OutdatedReleaseError(
            f"this database needs maim_db {floor} or newer (migrated by a newer release); "
            f"this is maim_db {version}: upgrade this service")
