"""This release's version: the one source (PEP 440). ``pyproject.toml`` reads it, ``maimdb
--version`` prints it, and every change that lands raises it (docs/conventions.md#releases)."""

__version__ = "0.10.1"
