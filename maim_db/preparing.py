"""The statements maim_db keeps prepared on one connection: which query texts are, under what
names, and which must be closed (the role psycopg's ``_preparing.PrepareManager`` plays for its
cursors, which maim_db switches off).

A query is prepared from its second use on, as psycopg's threshold does, so a statement run
once is not kept; at most :data:`MAX_PREPARED` stay prepared, the least recently used one
closed beyond. Names are never reused, so the guard (:mod:`maim_db.pipeline`) can check the
server holds exactly as many of ours as :meth:`StatementCache.count` says (docs/concepts.md,
"the guard").
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from typing import Any, Final, TypeAlias

from psycopg.rows import RowMaker

#: Statements kept prepared per connection; the least recently used one is closed beyond.
MAX_PREPARED: Final = 200
#: Every name maim_db prepares starts with it (the guard counts ours by it).
PREFIX: Final = "maim_"

#: A query text and its parameter types: what one prepared statement is for.
Key: TypeAlias = tuple[bytes, Any]


class Prepared:
    """One server-side prepared statement of ours: its name, whether the server has it yet,
    and the row builders made for its result's fixed shape."""

    __slots__ = ("makers", "name", "ready")

    def __init__(self, name: bytes) -> None:
        self.name = name
        # The server answered its Parse: later calls run it by name without parsing.
        self.ready = False
        # The result's shape is fixed for a prepared statement: one row builder per model.
        self.makers: dict[type[Any], RowMaker[Any]] = {}


class StatementCache:
    """The prepared statements of one connection, least recently used first."""

    def __init__(self) -> None:
        self._prepared: OrderedDict[Key, Prepared] = OrderedDict()
        # Keys seen once: the second use prepares them.
        self._seen: dict[Key, None] = {}
        # Names of ours evicted or invalidated, to close with the next pipeline.
        self._closing: list[bytes] = []
        # Names differ between connections (a pooler in front that mixes clients makes a
        # clear "does not exist", not another client's statement).
        self._prefix = f"{PREFIX}{secrets.token_hex(4)}_"
        self._counter = 0

    def get(self, key: Key) -> Prepared | None:
        """The statement ``key`` runs under: None on its first use (sent unnamed), a new
        one (not ready) on its second, the kept one after."""
        found = self._prepared.get(key)
        if found is not None:
            self._prepared.move_to_end(key)
            return found
        if key in self._seen:
            del self._seen[key]
            found = self._prepared[key] = Prepared(f"{self._prefix}{self._counter}".encode())
            self._counter += 1
            self._evict()
            return found
        if len(self._seen) >= 4 * MAX_PREPARED:
            self._seen.clear()
        self._seen[key] = None
        return None

    def _evict(self) -> None:
        while len(self._prepared) > MAX_PREPARED:
            _, old = self._prepared.popitem(last=False)
            if old.ready:
                self._closing.append(old.name)

    def invalidate(self, key: Key, prepared: Prepared) -> None:
        """``prepared`` no longer fits its query (a table changed under it): prepare the query
        anew, and close the old one."""
        if self._prepared.get(key) is prepared:
            del self._prepared[key]
        self._closing.append(prepared.name)

    def closes(self) -> list[bytes]:
        """The names to close, taken: the caller sends them."""
        closing, self._closing = self._closing, []
        return closing

    def count(self) -> int:
        """How many of ours the server holds (what the guard expects)."""
        return sum(p.ready for p in self._prepared.values())

    def names(self) -> list[bytes]:
        """The names kept, least recently used first."""
        return [p.name for p in self._prepared.values()]

    def clear(self) -> None:
        """The server holds none of ours any more (after ``DISCARD ALL``, or a statement found
        missing)."""
        for prepared in self._prepared.values():
            prepared.ready = False
        self._prepared.clear()
        self._closing.clear()
