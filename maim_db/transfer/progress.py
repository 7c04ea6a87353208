"""How far a long transfer (an import, an export) has got, per table: the CLI draws it as
bars or lines; the library default says nothing."""

from __future__ import annotations


class Progress:
    """Told as each table starts, moves and ends; override what you draw."""

    def start(self, table: str, total: int) -> None:
        """``table`` begins, with ``total`` rows to go."""

    def advance(self, table: str, rows: int) -> None:
        """``rows`` more rows of ``table`` are done (for an import: read and committed)."""

    def finish(self, table: str, rows: int) -> None:
        """``table`` is done, ``rows`` written."""
