"""The watcher: ends a plugin's session that stalls everyone else (issue 32.3).

A plugin login has UPDATE and DELETE on the shared tables, so it may ``LOCK TABLE messages IN
ACCESS EXCLUSIVE MODE``; it can leave a transaction open (vacuum and migrations wait) or run
one query for ever; and every timeout PostgreSQL has (``statement_timeout``,
``lock_timeout``, ``idle_in_transaction_session_timeout``, ``transaction_timeout``) is a
setting its own session can lift. So the bound is kept from outside: a loop, ``maimdb
watch``, asks the server once per tick which *plugin* backends

- block another backend that has waited for a lock longer than ``block`` seconds
  (``pg_blocking_pids``, ``pg_locks.waitstart``),
- sit idle in a transaction longer than ``idle`` seconds, or
- are in one transaction (or statement) longer than ``transaction`` seconds,

and terminates them in the same statement (``pg_terminate_backend``). Where the server allows
prepared transactions (``max_prepared_transactions > 0``, which Citus needs), it also rolls
back a plugin's prepared transaction older than ``prepared`` seconds: ``PREPARE TRANSACTION``
keeps the transaction's locks with no session left to terminate. A plugin backend is a
client backend whose login is a member of ``maim_plugin`` and of none of the trusted roles
(``maim_app``, ``maim_tenant``, ``maim_admin``, ``maim_owner``): the runtime's login is a
member of ``maim_plugin`` through ``maim_app`` and is never touched, nor is a superuser's
(PostgreSQL counts a superuser a member of every role).

It runs as a login holding ``pg_signal_backend`` (to terminate others' backends) and
``pg_read_all_stats`` (to see their state and times), neither a superuser nor a maim role;
a plugin's login holds neither, so it cannot signal the watcher (docs/operations.md). The
embedded server's watcher is started by ``maimdb migrate``/``maimdb db start`` and stopped by
``maimdb db stop`` (:func:`maim_db.embedded.spawn_watcher`).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg import sql

from .errors import ConfigurationError, ConnectError, MaimDBError, connect_error
from .settings import resolve_dsn

log = logging.getLogger("maim_db.watch")


@dataclass(frozen=True)
class Limits:
    """Seconds a plugin backend may block another, idle in a transaction, or stay in one
    transaction, and a plugin's prepared transaction may live; ``None`` switches that rule
    off. ``interval``: seconds between ticks."""

    block: float | None = 2.0
    idle: float | None = 10.0
    transaction: float | None = 30.0
    prepared: float | None = 2.0
    interval: float = 1.0

    def __post_init__(self) -> None:
        for name in ("block", "idle", "transaction", "prepared", "interval"):
            value = getattr(self, name)
            if value is not None and not (0 < value <= 86400):  # also refuses nan
                raise ConfigurationError(f"watch limit {name} must be more than 0 and at most "
                                         f"86400 seconds, got {value}")


@dataclass(frozen=True)
class Ended:
    """A backend the watcher terminated: its pid, login and why; or a prepared transaction
    it rolled back (``gid``, ``pid`` 0, ``login`` its owner)."""

    pid: int
    login: str
    reason: str
    gid: str | None = None

    def __str__(self) -> str:
        if self.gid is not None:
            return f"rolled back prepared transaction {self.gid!r} (login {self.login}): " \
                   f"{self.reason}"
        return f"terminated pid {self.pid} (login {self.login}): {self.reason}"


# One statement per tick: the backends to end, and ending them. pg_locks (a copy of the lock
# table) is read only for a backend that waits on a lock, pg_blocking_pids likewise; with no
# one waiting the statement reads pg_stat_activity and the role memberships of its logins.
TICK: Final = """
with activity as materialized (
    select a.pid, a.usesysid, a.usename, a.backend_type, a.state, a.xact_start,
           a.state_change, a.wait_event_type
    from pg_catalog.pg_stat_activity a
    where a.pid operator(pg_catalog.<>) pg_catalog.pg_backend_pid()
), plugin as (
    select a.* from activity a
    where a.backend_type operator(pg_catalog.=) 'client backend'
      and pg_catalog.pg_has_role(a.usesysid, 'maim_plugin', 'MEMBER')
      and not pg_catalog.pg_has_role(a.usesysid, 'maim_app', 'MEMBER')
      and not pg_catalog.pg_has_role(a.usesysid, 'maim_tenant', 'MEMBER')
      and not pg_catalog.pg_has_role(a.usesysid, 'maim_admin', 'MEMBER')
      and not pg_catalog.pg_has_role(a.usesysid, 'maim_owner', 'MEMBER')
), blocking as (
    select b.blocker, w.pid as waiter,
           pg_catalog.date_part('epoch', pg_catalog.now() operator(pg_catalog.-) coalesce(
               (select pg_catalog.min(l.waitstart) from pg_catalog.pg_locks l
                where l.pid operator(pg_catalog.=) w.pid and not l.granted),
               w.state_change)) as waited
    from activity w
    cross join lateral pg_catalog.unnest(pg_catalog.pg_blocking_pids(w.pid)) as b(blocker)
    where w.wait_event_type operator(pg_catalog.=) 'Lock'
      -- a plugin waiting on another plugin ends nobody: it could have any transaction of
      -- another agent's plugin ended by queueing a lock behind it (the 30 s rule bounds it)
      and not exists (select from plugin p where p.pid operator(pg_catalog.=) w.pid)
), reasons as (
    select p.pid, p.usename, 1 as rank,
           pg_catalog.format('blocked pid %%s for %%s s', k.waiter,
                             pg_catalog.round(k.waited::pg_catalog.numeric, 1)) as why
    from plugin p join blocking k on k.blocker operator(pg_catalog.=) p.pid
    where k.waited operator(pg_catalog.>) %(block)s::pg_catalog.float8
  union all
    select p.pid, p.usename, 2,
           pg_catalog.format('idle in a transaction for %%s s', pg_catalog.round(
               pg_catalog.date_part('epoch', pg_catalog.now() operator(pg_catalog.-)
                                    p.state_change)::pg_catalog.numeric, 1))
    from plugin p
    where pg_catalog.starts_with(p.state, 'idle in transaction')
      and pg_catalog.date_part('epoch', pg_catalog.now() operator(pg_catalog.-) p.state_change)
          operator(pg_catalog.>) %(idle)s::pg_catalog.float8
  union all
    select p.pid, p.usename, 3,
           pg_catalog.format('in one transaction for %%s s', pg_catalog.round(
               pg_catalog.date_part('epoch', pg_catalog.now() operator(pg_catalog.-)
                                    p.xact_start)::pg_catalog.numeric, 1))
    from plugin p
    where pg_catalog.date_part('epoch', pg_catalog.now() operator(pg_catalog.-) p.xact_start)
          operator(pg_catalog.>) %(transaction)s::pg_catalog.float8
), chosen as (
    select distinct on (pid) pid, usename, why from reasons order by pid, rank
)
select pid, usename, why from chosen where pg_catalog.pg_terminate_backend(pid)
"""


# A plugin's prepared transactions past the limit, in this database (ROLLBACK PREPARED works
# only there). Owned by a plugin login, or by maim_plugin itself (the owner is the role current
# at PREPARE, so a plugin that ran SET ROLE maim_plugin first). On Citus, a gid of Citus's own
# form (citus_<group>_<pid>_<transaction>_<connection>) is left to Citus's recovery when it may
# be a real two-phase commit: another node's (a worker's prepared transactions are the
# coordinator's, as maim_plugin, and only the coordinator knows whether to commit them),
# recorded in pg_dist_transaction (Citus commits it), or its initiating backend still in the
# distributed transaction the gid numbers (in flight; the test Citus's own recovery makes, so a
# plugin naming a live backend that is in some other transaction gains nothing).
PREPARED: Final = """
select x.gid, x.owner::text,
       pg_catalog.round(pg_catalog.date_part('epoch', pg_catalog.now() operator(pg_catalog.-)
                                             x.prepared)::pg_catalog.numeric, 1)
from pg_catalog.pg_prepared_xacts x
join pg_catalog.pg_roles r on r.rolname operator(pg_catalog.=) x.owner
where x.database operator(pg_catalog.=) pg_catalog.current_database()
  and pg_catalog.pg_has_role(r.oid, 'maim_plugin', 'MEMBER')
  and not pg_catalog.pg_has_role(r.oid, 'maim_app', 'MEMBER')
  and not pg_catalog.pg_has_role(r.oid, 'maim_tenant', 'MEMBER')
  and not pg_catalog.pg_has_role(r.oid, 'maim_admin', 'MEMBER')
  and not pg_catalog.pg_has_role(r.oid, 'maim_owner', 'MEMBER')
  and pg_catalog.date_part('epoch', pg_catalog.now() operator(pg_catalog.-) x.prepared)
      operator(pg_catalog.>) %(prepared)s::pg_catalog.float8
"""
_CITUS_OWN: Final = """
  and not (x.gid operator(pg_catalog.~) '^citus_[0-9]{1,9}_[0-9]{1,9}_[0-9]{1,18}_[0-9]+$' and (
      (pg_catalog.split_part(x.gid, '_', 2)::pg_catalog.int4 operator(pg_catalog.<>)
           (select g.groupid from pg_catalog.pg_dist_local_group g)
       -- another node's, for that node to recover: only a node that exists (a plugin
       -- chooses its gid, and nothing recovers a group no node has)
       and exists (select from pg_catalog.pg_dist_node n
                   where n.groupid operator(pg_catalog.=)
                         pg_catalog.split_part(x.gid, '_', 2)::pg_catalog.int4))
      or exists (select from pg_catalog.pg_dist_transaction t
              where t.gid operator(pg_catalog.=) x.gid)
      or exists (select from pg_catalog.get_all_active_transactions() a
                 where a.process_id operator(pg_catalog.=)
                       pg_catalog.split_part(x.gid, '_', 3)::pg_catalog.int4
                   and a.transaction_number operator(pg_catalog.=)
                       pg_catalog.split_part(x.gid, '_', 4)::pg_catalog.int8)))
"""

# Per watcher connection: the prepared-transaction query for its server, or None where the
# server allows no prepared transactions (asked once, on the connection's first tick).
_prepared_query: weakref.WeakKeyDictionary[psycopg.Connection[Any], str | None] = (
    weakref.WeakKeyDictionary())


def tick(conn: psycopg.Connection[Any], limits: Limits) -> list[Ended]:
    """One look at the server: terminate the plugin backends past a limit, roll back the
    plugins' prepared transactions past theirs; return them."""
    rows = conn.execute(TICK, {"block": limits.block, "idle": limits.idle,
                               "transaction": limits.transaction}).fetchall()
    ended = [Ended(pid, login, why) for pid, login, why in rows]
    if limits.prepared is not None:
        ended += _roll_back_prepared(conn, limits.prepared)
    return ended


def _roll_back_prepared(conn: psycopg.Connection[Any], limit: float) -> list[Ended]:
    """Roll back the plugins' prepared transactions older than ``limit`` seconds. A failure
    (the watcher is not a superuser, the only role besides the owner that may) is logged once
    per transaction, not raised: it must not stop the terminations."""
    if conn not in _prepared_query:
        row = conn.execute(
            "select pg_catalog.current_setting('max_prepared_transactions')::pg_catalog.int4 "
            "operator(pg_catalog.>) 0, exists (select from pg_catalog.pg_extension "
            "where extname operator(pg_catalog.=) 'citus')").fetchone()
        allowed, citus = row if row is not None else (False, False)
        _prepared_query[conn] = (PREPARED + (_CITUS_OWN if citus else "")) if allowed else None
    query = _prepared_query[conn]
    if query is None:
        return []
    ended: list[Ended] = []
    for gid, owner, age in conn.execute(query, {"prepared": limit}).fetchall():
        try:
            conn.execute(sql.SQL("rollback prepared {}").format(sql.Literal(gid)))
        except psycopg.Error as err:
            if gid not in _failed:
                _failed.add(gid)
                log.error("maimdb watch: cannot roll back prepared transaction %r (login %s, "
                          "held %s s): %s (only a superuser or its owner may: run the watcher "
                          "as a superuser where max_prepared_transactions > 0)",
                          gid, owner, age, str(err).strip().splitlines()[0])
            continue
        ended.append(Ended(0, owner, f"prepared transaction held for {age} s", gid=gid))
    return ended


_failed: set[str] = set()  # prepared transactions the watcher could not roll back, logged


def connect(dsn: str | None = None) -> psycopg.Connection[Any]:
    """The watcher's own connection: autocommit, and bounded itself (it never waits on a
    lock a plugin could hold, but a stuck server must not stop it for good)."""
    try:
        conn = psycopg.connect(resolve_dsn(dsn), autocommit=True,
                               application_name="maimdb watch")
    except psycopg.OperationalError as err:
        raise connect_error(err) from err
    conn.execute("set statement_timeout = '10s'")
    conn.execute("set lock_timeout = '2s'")
    return conn


def run(dsn: str | None, limits: Limits, *, stop: threading.Event | None = None,
        report: Callable[[Ended], None] | None = None) -> None:
    """Tick every ``limits.interval`` seconds until ``stop`` is set; reconnect (every
    interval) after the server went away, and log a failure once until it changes."""
    stop = stop or threading.Event()
    conn: psycopg.Connection[Any] | None = None
    last_problem = ""
    while not stop.is_set():
        started = time.monotonic()
        try:
            if conn is None or conn.closed:
                conn = connect(dsn)
            for ended in tick(conn, limits):
                log.warning("maimdb watch: %s", ended)
                if report is not None:
                    report(ended)
            last_problem = ""
        except (psycopg.Error, MaimDBError) as err:
            problem = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
            if problem != last_problem:
                log.error("maimdb watch: %s (retrying every %s s)", problem, limits.interval)
                last_problem = problem
            if conn is not None and not conn.closed and conn.broken:
                conn.close()
            if isinstance(err, psycopg.OperationalError | ConnectError) and conn is not None:
                conn.close()
        stop.wait(max(0.0, limits.interval - (time.monotonic() - started)))
    if conn is not None:
        conn.close()
