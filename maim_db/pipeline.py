"""How a block's statements reach the server: prepared once per connection, sent with libpq's
pipeline calls before one Sync, results loaded by psycopg's C loaders.

psycopg stays the driver: its ``pq`` layer sends, its generators and ``wait`` wait, its
``Transformer`` dumps parameters and loads rows, its query parser turns ``%s`` into ``$1``.
What is left out is psycopg's generic cursor and pipeline bookkeeping, which cost about as
much as the scope statement itself (docs/performance.md).

The statements are prepared per connection (:mod:`maim_db.preparing`), so the first block
after untrusted code starts with the guard (:data:`GUARD`, sent unnamed so it cannot itself
be replaced): docs/concepts.md, "The guard", says what it checks and why.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from contextlib import suppress
from datetime import datetime, tzinfo
from typing import Any, Final, LiteralString, TypeVar

import psycopg
from psycopg import errors as pgerrors
from psycopg import pq, sql
from psycopg.abc import PQGen
from psycopg.adapt import Transformer
from psycopg.pq.abc import PGresult
from psycopg.rows import RowMaker

from ._psycopg import PostgresQuery, generators
from .preparing import MAX_PREPARED, PREFIX, Prepared, StatementCache
from .row import Row, row_maker
from .scope import Scope
from .settings import configured_zone, settings

R = TypeVar("R", bound=Row)
Params = Sequence[Any] | Mapping[str, Any] | None
# As in psycopg: a literal, or a composition of psycopg.sql — never a string built at run time.
Query = LiteralString | bytes | sql.SQL | sql.Composed

PIPELINE_SYNC: Final = pq.ExecStatus.PIPELINE_SYNC
PIPELINE_ABORTED: Final = pq.ExecStatus.PIPELINE_ABORTED
FATAL_ERROR: Final = pq.ExecStatus.FATAL_ERROR
COMMAND_OK: Final = pq.ExecStatus.COMMAND_OK
TUPLES_OK: Final = pq.ExecStatus.TUPLES_OK
#: A statement that started COPY: the protocol now waits for data a block never sends.
COPYING: Final = (pq.ExecStatus.COPY_OUT, pq.ExecStatus.COPY_IN, pq.ExecStatus.COPY_BOTH)
COPY_REFUSED: Final = ("COPY cannot run in a maim_db block (the block cannot send or take "
                       "its data); its connection was closed. Read and write rows instead, "
                       "or COPY with psql")
TEXT: Final = pq.Format.TEXT
PIPELINE_OFF: Final = pq.PipelineStatus.OFF

#: libpq sends the protocol's Close for a statement from 17 on; before, SQL's DEALLOCATE does
#: it (which, unlike Close, fails for a statement already gone: the block then fails once).
CLOSE_IN_PROTOCOL: Final = pq.version() >= 170000
#: Longer query texts are parsed again on every call rather than kept.
MAX_PARSED_LENGTH: Final = 1 << 20
#: SQLSTATE of a prepared statement that does not exist (dropped behind the client's back).
MISSING: Final = "26000"

# The guard: the statements this client prepared are all there (by count: names are never
# reused) and none was prepared in SQL (PREPARE, the only way SQL can put one back under a
# taken name). It raises through the reset check, so a failure takes the reset-and-retry path.
# Sent unnamed, so parsed under the session's search_path: it names the schema of everything.
GUARD: Final = (
    b"select maim.assert_clean_session("
    b"pg_catalog.count(*) filter (where from_sql) operator(pg_catalog.=) 0 and"
    b" pg_catalog.count(*) filter (where pg_catalog.starts_with(name, '" + PREFIX.encode()
    + b"')) operator(pg_catalog.=) $1::pg_catalog.int8) from pg_catalog.pg_prepared_statements"
)
# Asked once per connection, before its first block (AsyncBlock._probe): whether the
# database is a Citus node, and the oldest release it serves (maim_db.release).
CITUS: Final = (b"select exists (select from pg_catalog.pg_extension"
                b" where extname operator(pg_catalog.=) 'citus')")
PROBE: Final = (b"select exists (select from pg_catalog.pg_extension"
                b" where extname operator(pg_catalog.=) 'citus'), maim.release_floor(),"
                b" pg_catalog.to_regprocedure('maim.no_temp_objects()') is not null")
# The block's timeouts (MAIMDB_LOCK_TIMEOUT, MAIMDB_STATEMENT_TIMEOUT), set transaction-locally
# right behind BEGIN in the block's one pipeline: no round trip of their own, and nothing a
# session set before (or PgBouncer carried over) lifts them. Only those configured are set,
# so an operator's own server-side setting stays in force for the other.
LIMITS: Final[dict[tuple[bool, bool], bytes]] = {
    (True, False): b"select pg_catalog.set_config('lock_timeout', %s, true)",
    (False, True): b"select pg_catalog.set_config('statement_timeout', %s, true)",
    (True, True): b"select pg_catalog.set_config('lock_timeout', %s, true),"
                  b" pg_catalog.set_config('statement_timeout', %s, true)",
}
# Command tags after which the connection's statements can no longer be taken on trust.
_TAMPERING: Final = (b"PREPARE", b"DEALLOCATE", b"DISCARD")

# What a block can leave on its session beyond what the reset check probes: settings (what a
# value means, whether a block can run) and temporary objects of every kind. The block after
# a key's block, or after any block that changed a setting the server reports, starts with
# these, committed on their own before its BEGIN (so its transaction starts from the reset
# defaults) in the same round trip.
RESET_SETTINGS: Final = (b"reset all", b"discard temp")
# Settings the server reports to the client whenever they change (GUC_REPORT), so a change
# made at session level by trusted code is seen at no cost (search_path is set in every
# transaction by the scope statement).
REPORTED: Final = (b"client_encoding", b"DateStyle", b"IntervalStyle", b"TimeZone",
                   b"standard_conforming_strings", b"default_transaction_read_only")


# What a queued call is (Call.kind).
RUN: Final = "run"
SYNC: Final = "sync"
CLOSE: Final = "close"


class Call:
    """One queued call of a pipeline: what goes out (a statement with its dumped parameters,
    a Sync, or the Close of a statement of ours), how (unnamed, or by its prepared name, with
    its Parse first when the server does not have it yet), and, after the round trip, the
    server's answer to it (``result``)."""

    __slots__ = ("formats", "kind", "params", "parse", "prepared", "query", "result", "types")

    #: What the server answered; set by :meth:`Session.pipeline` for every call it sent.
    result: PGresult

    def __init__(self, query: bytes, params: Any, types: Any, formats: Any,
                 prepared: Prepared | None, kind: str = RUN) -> None:
        self.query = query
        self.params = params
        self.types = types
        self.formats = formats
        self.prepared = prepared
        self.kind = kind
        self.parse = False  # this call sends its statement's Parse too

    @classmethod
    def sync(cls) -> Call:
        """Ends a pipeline's segment: what comes before it commits (or fails) on its own, in
        the same round trip."""
        return cls(b"", None, None, None, None, SYNC)

    @classmethod
    def close(cls, name: bytes) -> Call:
        """Closes the prepared statement ``name``."""
        return cls(name, None, None, None, None, CLOSE)


class Session:
    """What maim_db keeps per connection: its prepared statements, its parsed queries and
    whether untrusted code has run on it since the last guard."""

    def __init__(self, conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
        self.pgconn = conn.pgconn
        self.encoding = conn.info.encoding
        self.tx = Transformer(conn)
        # Behind PgBouncer in transaction mode a statement prepared on one server connection
        # is missing on the next: nothing is prepared then (settings.connection_options).
        self.preparing = conn.prepare_threshold is not None
        # maim_db prepares on this connection from now on, and psycopg's own preparing is
        # switched off: a statement psycopg prepared (its ROLLBACK after five uses) would be
        # dropped by the reset's DISCARD ALL behind psycopg's back, and fail from then on.
        conn.prepare_threshold = None
        self.cache = StatementCache()
        self.parsed: dict[Any, PostgresQuery] = {}
        self.suspect = False
        # A key's block ran since the last committed reset of settings and temporary objects.
        self.unsettled = False
        # The reported settings as the session began, to see a block change one.
        self.reported = list(map(conn.pgconn.parameter_status, REPORTED))
        self.citus: bool | None = None  # a Citus node? (asked with the release floor)
        self.probed = False  # the first block's probe ran, and the release floor allows us
        # the database has maim.no_temp_objects() (0.10.0's migrate): the scope statement's
        # form (maim_db.scope.SET_SCOPE, else SET_SCOPE_BEFORE_0_10)
        self.temp_probe = False
        # MAIMDB_TIMEZONE: the zone naive datetime parameters mean (else the server's TimeZone
        # decides, as PostgreSQL casts timestamp to timestamptz).
        self.zone = configured_zone()
        # The timeouts every block on this connection sets (see LIMITS), in milliseconds.
        self.limits = _limits()

    # -- statements ---------------------------------------------------------------------------

    def call(self, query: Query, params: Params, *, prepare: bool = True) -> Call:
        """``query`` with ``params`` dumped; prepared from its second use on (as psycopg's
        own threshold does, a statement run once is not kept) unless ``prepare`` is false or
        the connection does not prepare."""
        if self.zone is not None and params:
            params = in_zone(params, self.zone)
        pgq = self._parsed(query, params)
        values: Any
        formats: Any
        wanted = pgq._want_formats
        if (wanted is not None and pgq._order is None and (type(params) is list or type(
                params) is tuple) and len(params) == len(wanted)):
            # %s placeholders and as many values: what PostgresQuery.dump checks and does,
            # without its three Python calls (two statements per block pass here)
            tx = self.tx
            values, types, formats = tx.dump_sequence(params, wanted), tx.types or (), tx.formats
        else:  # named placeholders, no parameters, or a mismatch psycopg reports
            pgq.dump(params)
            values, types, formats = pgq.params, pgq.types, pgq.formats
        prepared = (self.cache.get((pgq.query, types)) if prepare and self.preparing
                    else None)
        return Call(pgq.query, values, types, formats, prepared)

    def _parsed(self, query: Query, params: Params) -> PostgresQuery:
        """The query split into text and placeholders once per text (psycopg re-splits texts
        over 4 kB, such as a 1,000-row INSERT, on every call)."""
        if isinstance(query, (str, bytes)):  # first: an ABC's isinstance (below) is slower
            pass
        elif isinstance(query, sql.Composable):
            query = query.as_bytes(self.tx)
        else:
            raise TypeError(f"a query is a string or a psycopg.sql object, not "
                            f"{type(query).__name__}")
        key = (query, params is None)
        pgq = self.parsed.get(key)
        if pgq is None:
            pgq = PostgresQuery(self.tx)
            pgq.convert(query, params)
            if len(self.parsed) < 4 * MAX_PREPARED and len(query) <= MAX_PARSED_LENGTH:
                self.parsed[key] = pgq
        return pgq

    def guard(self) -> Call:
        """The guard, for the start of the next pipeline (after its closes, so those do not
        count)."""
        return Call(GUARD, [str(self.cache.count()).encode()], None, None, None)

    def limit(self) -> Call | None:
        """The statement that sets this block's timeouts; None when none is configured."""
        if self.limits is None:
            return None
        query, values = self.limits
        return self.call(query, values)

    def forget(self) -> None:
        """After ``DISCARD ALL``: the connection holds no statement of ours any more."""
        self.cache.clear()
        self.suspect = False

    def opening(self, scope: Scope) -> bool:
        """A block in ``scope`` is about to open: whether it must send the guard."""
        guard = self.suspect
        # Code holding an API key is untrusted from its first statement on (a prepared
        # statement survives the rollback of the block that replaced it): whatever it leaves
        # is checked before the next block, whoever opens it.
        self.suspect = scope.kind == "key"
        self.unsettled |= self.suspect
        return guard

    def resets(self) -> list[Call]:
        """The statements that reset settings and temporary objects, if this block must
        start with them: after a key's block, or when a reported setting changed."""
        # the values read in C (map), compared as one list: this runs before every block
        if not self.unsettled and list(map(self.pgconn.parameter_status,
                                           REPORTED)) == self.reported:
            return []
        return [*(Call(query, None, None, None, None) for query in RESET_SETTINGS), Call.sync()]

    def settled(self, resets: list[Call]) -> None:
        """``resets`` (from :meth:`resets`) have run: once they succeeded, the session is as
        it began (until the next key's block)."""
        if resets and all(call.result.status in (COMMAND_OK, PIPELINE_SYNC)
                          for call in resets):
            self.unsettled = False

    # -- one round trip -----------------------------------------------------------------------

    def pipeline(self, calls: list[Call]) -> PQGen[list[PGresult]]:
        """Send ``calls`` and one Sync; the result of each call, in order (also left on each
        call as ``result``)."""
        pgconn = self.pgconn
        pgconn.enter_pipeline_mode()
        copying = False
        try:
            queue = self._queue(calls)
            parsing: list[Prepared] = []  # parsed in this pipeline: parse each once
            syncs = 1  # the Sync that ends the pipeline, and one per Sync call
            for call in queue:
                kind = call.kind
                if kind is SYNC:
                    pgconn.pipeline_sync()
                    syncs += 1
                elif kind is CLOSE:
                    if CLOSE_IN_PROTOCOL:
                        pgconn.send_close_prepared(call.query)
                    else:  # libpq before 17 (Debian 12's, psycopg-binary 3.2's) has no Close
                        pgconn.send_query_params(b'deallocate "' + call.query + b'"', None)
                elif (prepared := call.prepared) is None:
                    pgconn.send_query_params(call.query, call.params, call.types,
                                             call.formats, TEXT)
                else:
                    if not prepared.ready and prepared not in parsing:
                        pgconn.send_prepare(prepared.name, call.query, call.types)
                        call.parse = True
                        parsing.append(prepared)
                    pgconn.send_query_prepared(prepared.name, call.params, call.formats, TEXT)
            pgconn.pipeline_sync()
            yield from generators.send(pgconn)
            results: list[PGresult] = []
            while True:
                res = yield from generators.fetch(pgconn)
                if res is None:
                    continue
                if res.status == PIPELINE_SYNC:
                    syncs -= 1
                    if not syncs:
                        break
                if res.status in COPYING:
                    copying = True
                    break
                results.append(res)
        finally:
            if copying:
                pgconn.finish()  # nothing else can end the COPY: the server ends the rest
            elif pgconn.pipeline_status != PIPELINE_OFF:
                with suppress(psycopg.OperationalError):
                    pgconn.exit_pipeline_mode()
            if pgconn.pipeline_status != PIPELINE_OFF:
                # Interrupted with results pending (Ctrl-C landing here): the connection can
                # neither leave pipeline mode nor roll back. Closed now, the server ends the
                # transaction, the caller's exception goes on alone, and a pool replaces it.
                pgconn.finish()
        if copying:
            raise psycopg.NotSupportedError(COPY_REFUSED)
        answers = iter(results)
        for call in queue:
            # A Parse answers with a result of its own; a statement counts as prepared only
            # once the server said so, and when it failed, its error is the call's result.
            res = next(answers)
            if call.parse:
                parsed, res = res, next(answers)
                call.prepared.ready = parsed.status == COMMAND_OK  # type: ignore[union-attr]
                if parsed.status == FATAL_ERROR:
                    res = parsed
            call.result = res
            if res.status == FATAL_ERROR:
                if call.kind is CLOSE:  # closing a statement that is gone is no error in
                    raise self.error(res)  # the protocol: this is DEALLOCATE's
                self._failed(call, res)
            elif (tag := res.command_status) is not None and tag.startswith(_TAMPERING):
                self.suspect = True
        return [call.result for call in calls]

    def _queue(self, calls: list[Call]) -> list[Call]:
        """``calls`` with the closes due: in the block's own segment, after a reset's Sync, so
        a close that fails (DEALLOCATE of a statement already gone) aborts the block, not the
        reset that had to come before it; and after the block's BEGIN, since a DEALLOCATE
        takes a snapshot, after which a BEGIN naming NOT DEFERRABLE (a key block's) fails."""
        closing = self.cache.closes()
        if not closing:
            return calls
        split = next((at + 1 for at, call in enumerate(calls) if call.kind is SYNC), 0)
        if split < len(calls) and calls[split].query.startswith(b"begin"):
            split += 1
        return [*calls[:split], *map(Call.close, closing), *calls[split:]]

    def _failed(self, call: Call, res: PGresult) -> None:
        if res.error_field(pq.DiagnosticField.SQLSTATE) == MISSING.encode():
            # Deallocated behind our back: what else is gone is unknown, so the next block
            # checks (and resets) the connection.
            self.forget()
            self.suspect = True
        elif call.prepared is not None and call.prepared.ready and res.error_field(
                pq.DiagnosticField.SQLSTATE) == b"0A000":
            # "cached plan must not change result type": a table changed; prepare it anew.
            self.cache.invalidate((call.query, call.types), call.prepared)

    # -- results ------------------------------------------------------------------------------

    def error(self, res: PGresult) -> psycopg.Error:
        """psycopg's error for a failed result, knowing its connection (so a message can
        name the server), as psycopg's own cursors raise it."""
        state = (res.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()
        try:
            cls = pgerrors.lookup(state)
        except KeyError:
            return pgerrors.error_from_result(res, encoding=self.encoding)
        return cls(res.get_error_message(self.encoding), info=res, encoding=self.encoding,
                   pgconn=self.pgconn)

    def rows(self, res: PGresult, make: RowMaker[Any]) -> list[Any]:
        tx = self.tx
        tx.set_pgresult(res)
        return tx.load_rows(0, res.ntuples, make)

    def models(self, call: Call, model: type[R]) -> list[R]:
        """``call``'s rows as ``model``; the row builder is kept with a prepared statement,
        whose result's shape cannot change."""
        res = call.result
        prepared = call.prepared
        if prepared is None:
            return self.rows(res, row_maker(model, res, self.encoding))
        make = prepared.makers.get(model)
        if make is None:
            make = prepared.makers[model] = row_maker(model, res, self.encoding)
        return self.rows(res, make)


def in_zone(params: Sequence[Any] | Mapping[str, Any], tz: tzinfo) -> Any:
    """``params`` with every naive datetime (also inside a list or tuple, as an array
    parameter holds them) taken as a time in ``tz``."""
    def fix(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.replace(tzinfo=tz) if value.tzinfo is None else value
        if type(value) in (list, tuple):
            return type(value)(fix(v) for v in value)
        return value
    if isinstance(params, Mapping):
        return {k: fix(v) for k, v in params.items()}
    return [fix(v) for v in params]


def _limits() -> tuple[bytes, list[str]] | None:
    """The timeouts statement and its parameters (milliseconds), from the settings."""
    configured = settings()
    values = [(f"{max(1, round(seconds * 1000))}ms" if seconds else None)
              for seconds in (configured.lock_timeout, configured.statement_timeout)]
    key = (values[0] is not None, values[1] is not None)
    if not any(key):
        return None
    return LIMITS[key], [v for v in values if v is not None]


def first_error(results: list[PGresult]) -> PGresult | None:
    """The result that failed; what follows it in the pipeline was not run."""
    for res in results:
        if res.status == FATAL_ERROR:
            return res
        if res.status == PIPELINE_ABORTED:  # cannot come first: something failed unseen
            raise psycopg.InternalError("a pipeline was aborted without an error")
    return None


def rowcount(res: PGresult) -> int:
    count = res.command_tuples
    return -1 if count is None else count


_sessions: weakref.WeakKeyDictionary[Any, Session] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def session(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> Session:
    """The session maim_db keeps for ``conn`` (made on first use)."""
    found = _sessions.get(conn)
    if found is None:
        with _lock:
            found = _sessions[conn] = Session(conn)
    return found
