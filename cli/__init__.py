"""The ``maimdb`` command (installed as ``maim_db_cli``)."""
