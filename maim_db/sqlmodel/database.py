"""MaiBot 1.2.1's ``src/common/database/database.py`` on maim_db: what its runtime imports
from there, with 1.2.1's semantics, and every transaction in the ambient maim_db scope.

A port replaces that file with one line, ``from maim_db.sqlmodel.database import *``
(docs/porting-maibot.md). What changes, and why:

- ``engine`` is a :func:`maim_db.sqlalchemy.create_engine` engine (``MAIMDB_DSN``, else the
  embedded server), made on first use; every transaction runs in the scope around it
  (``agent_scope()``), else fails with :class:`~maim_db.ScopeError` before any SQL.
- Each transaction of ``engine`` (a session's, ``engine.connect()``'s) first sets,
  transaction-locally and in the round trip that opens its scope, ``search_path`` to
  ``maibot1, public`` — so 1.x's raw SQL (``text("... FROM llm_usage")``) means 1.x's
  tables, never the 0.x ones of the same name — and ``TimeZone`` to ``MAIMDB_TIMEZONE``, so
  naive datetimes in raw SQL, ``date_trunc`` and casts mean 1.x's local times. Every
  ``timestamptz`` read comes back naive in that zone.
- ``initialize_database()`` and ``ensure_runtime_performance_indexes()`` do nothing: no
  PRAGMA, no migration manager, no ``create_all`` — ``maimdb migrate`` owns the schema.
- ``ROOT_PATH`` is the directory MaiBot was started in (1.2.1 derives it from its own file's
  place; MaiBot starts in its root). ``DATABASE_URL`` is the engine's URL, password hidden.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, LiteralString

from psycopg import sql
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from ..pipeline import Query
from ..sqlalchemy import create_engine
from .types import register_naive_loaders, zone_name

__all__ = [
    "DATABASE_URL",
    "ROOT_PATH",
    "SessionLocal",
    "engine",
    "ensure_runtime_performance_indexes",
    "get_db",
    "get_db_session",
    "get_db_session_manual",
    "initialize_database",
]

# Made on first use (module __getattr__); declared for type checkers and star imports.
#: The engine every session here uses.
engine: Engine
#: 1.2.1's session factory (:func:`make_sessionmaker`).
SessionLocal: sessionmaker[Session]
#: The engine's URL, its password hidden (1.2.1 keeps it as metadata of vector indexes).
DATABASE_URL: str

#: The directory MaiBot runs in (1.2.1: its checkout's root).
ROOT_PATH = Path.cwd().resolve()

#: What each transaction of the engine starts with (module docstring): ``SET LOCAL``, which
#: Citus passes on to the workers (``set_config()`` it does not), so a shard's ``date_trunc``
#: and casts see the zone too.
SEARCH_PATH: LiteralString = "set local search_path = maibot1, public, pg_temp"

_lock = threading.Lock()
_made: dict[str, Any] = {}


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """A maim_db engine (ambient scope) for 1.x code: each transaction starts with
    :func:`_setup`'s statements (in the round trip that opens its scope), and its
    connections read ``timestamptz`` as naive local times. ``kwargs`` are SQLAlchemy's."""
    made = create_engine(url, pool_pre_ping=True, maim_setup=_setup, **kwargs)

    @event.listens_for(made, "connect")
    def _naive_times(dbapi_connection: Any, record: Any) -> None:
        register_naive_loaders(dbapi_connection)

    return made


def _setup() -> list[tuple[Query, None]]:
    """The statements of :data:`SEARCH_PATH` and the session's ``TimeZone`` (a zone without
    an IANA name cannot be one: the server's stays, the ORM still converts)."""
    name = zone_name()
    if name is None:
        return [(SEARCH_PATH, None)]
    return [(SEARCH_PATH, None),
            (sql.SQL("set local timezone = {}").format(sql.Literal(name)), None)]


def make_sessionmaker(bind: Engine) -> sessionmaker[Session]:
    """1.2.1's ``SessionLocal``: SQLModel sessions, no autoflush, ``expire_on_commit=False``
    (rows stay readable after the ``with`` block commits)."""
    return sessionmaker(bind=bind, class_=Session, autoflush=False, expire_on_commit=False)


def _get(name: str) -> Any:
    """``engine``, ``SessionLocal`` or ``DATABASE_URL``, made once, on first use (importing
    this module connects to nothing and needs no ``MAIMDB_DSN`` yet). A value set on the
    module (a test's, a service's own engine) wins, and what is made from it follows it."""
    found = globals().get(name)
    if found is not None:
        return found
    if name == "engine":
        with _lock:
            if "engine" not in _made:
                _made["engine"] = make_engine()
    elif name == "SessionLocal":
        bind = _get("engine")
        with _lock:
            if _made.get("bound") is not bind:
                _made.update(bound=bind, SessionLocal=make_sessionmaker(bind))
    else:
        return _get("engine").url.render_as_string(hide_password=True)
    return _made[name]


def __getattr__(name: str) -> Any:
    if name in ("engine", "SessionLocal", "DATABASE_URL"):
        return _get(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def initialize_database() -> None:
    """Nothing to do: ``maimdb migrate`` made the schema (1.2.1 ran PRAGMAs, its migration
    manager and ``create_all`` here)."""


def ensure_runtime_performance_indexes() -> None:
    """Nothing to do: the indexes 1.2.1 adds at run time are migration 0020's."""


@contextmanager
def get_db_session(auto_commit: bool = True) -> Iterator[Session]:
    """A session for one ``with`` block, as 1.2.1's: committed when the block ends without an
    error if ``auto_commit`` (else the block commits itself), rolled back on an error, closed
    in any case. Its transactions run in the ambient maim_db scope."""
    session: Session = _get("SessionLocal")()
    try:
        yield session
        if auto_commit:
            session.commit()
    except Exception:
        session.rollback()
        raise
    finally:
        session.close()


def get_db_session_manual() -> AbstractContextManager[Session]:
    """:func:`get_db_session` without the commit at the end: the block commits."""
    return get_db_session(auto_commit=False)


def get_db() -> Generator[Session, None, None]:
    """A session for a FastAPI dependency (``Depends(get_db)``): closed after the request,
    never committed here."""
    session: Session = _get("SessionLocal")()
    try:
        yield session
    finally:
        session.close()
