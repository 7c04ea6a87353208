"""The ``maimdb`` command (``python -m maim_db.cli``).

One module per noun — ``schema`` (migrate, rollback, status, audit, snapshot), ``server``
(``db``), ``tenant``, ``agent``, ``key``, ``config``, ``secrets``, ``transfer`` (import-sqlite,
export, import-export, erase) — assembled in ``main``, which also holds the one error boundary.
Options shared by several commands are defined once, in ``options``; every print goes through
``output``, which shows foreign text inert.
"""
