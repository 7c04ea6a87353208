"""The parts of psycopg that are not its public API and that maim_db's hot path uses, in one
place. ``pyproject.toml`` bounds psycopg to the minor versions CI runs (the floor in
``.ci/floors.txt`` and the newest); a new psycopg minor is admitted only after the suite
passes on it, since any of these may move between minors.

- ``PostgresQuery``: psycopg's own ``%s`` parser and parameter dumper, so a pipelined
  statement is converted exactly as a cursor would convert it (maim_db/pipeline.py); its
  ``_want_formats`` and ``_order`` (what ``dump()`` reads) let ``Session.call`` dump a
  positional sequence with the ``Transformer`` directly.
- ``generators.send`` / ``generators.fetch``: the non-blocking send and receive steps that a
  connection's ``wait()`` drives, so a scope statement and its query share one round trip.
- ``BaseCursor``: the type a row factory receives (maim_db/row.py).
- ``Cursor._reset`` / ``_tx`` / ``_set_results`` / ``_execmany_returning`` / ``_rowcount``
  (used in maim_db/sqlalchemy/__init__.py, not imported here): hand a block's results to a psycopg
  cursor as its own ``execute()``/``executemany()`` would, for SQLAlchemy to read.
- ``Connection.wait`` / ``AsyncConnection.wait`` (methods, not imported here): run a
  generator above on the connection's socket, with psycopg's own interrupt handling.
"""

from psycopg import generators
from psycopg._cursor_base import BaseCursor
from psycopg._queries import PostgresQuery

__all__ = ["BaseCursor", "PostgresQuery", "generators"]
