"""How a block's statements reach the server: prepared once per connection, sent with libpq's
pipeline calls before one Sync, results loaded by psycopg's C loaders.

psycopg stays the driver: its ``pq`` layer sends, its generators and ``wait`` wait, its
``Transformer`` dumps parameters and loads rows, its query parser turns ``%s`` into ``$1``.
What is left out is psycopg's generic cursor and pipeline bookkeeping, which cost about as
much as the scope statement itself (docs/performance.md).

A prepared statement is session state, and the next borrower of a connection runs it by
name. Code in a block can DEALLOCATE one and PREPARE its own SQL under the same name; the
next block would then run that SQL in *its* scope (tests/test_unforgeable.py steals a key and
another agent's messages that way). So before the first block after untrusted code — a block
opened from an API key, or one whose statements prepared or deallocated anything — the guard
(:data:`GUARD`, sent unnamed so it cannot itself be replaced) checks that the connection
holds exactly the statements this client prepared and none made in SQL, and raises the reset
check's MA001 otherwise: the session is reset and the block retried.
"""

from __future__ import annotations

import secrets
import threading
import weakref
from collections import OrderedDict
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

#: libpq sends the protocol's Close for a statement from 17 on; before, SQL's DEALLOCATE does
#: it (which, unlike Close, fails for a statement already gone: the block then fails once).
CLOSE_IN_PROTOCOL: Final = pq.version() >= 170000
#: Statements kept prepared per connection; the least recently used one is closed beyond.
MAX_PREPARED: Final = 200
PREFIX: Final = "maim_"
#: Longer query texts are parsed again on every call rather than kept.
MAX_PARSED_LENGTH: Final = 1 << 20
#: SQLSTATE of a prepared statement that does not exist (dropped behind the client's back).
MISSING: Final = "26000"

# The guard: the statements this client prepared are all there (by count: names are never
# reused) and none was prepared in SQL (PREPARE, the only way SQL can put one back under a
# taken name). It raises through the reset check, so a failure takes the reset-and-retry path.
GUARD: Final = (
    b"select maim.assert_clean_session(count(*) filter (where from_sql) = 0"
    b" and count(*) filter (where pg_catalog.starts_with(name, '" + PREFIX.encode() + b"'))"
    b" = $1::pg_catalog.int8) from pg_catalog.pg_prepared_statements"
)
# Asked once per connection, before its first block (AsyncDatabase._probe): whether the
# database is a Citus node, and the oldest release it serves (maim_db.release).
CITUS: Final = (b"select exists (select from pg_catalog.pg_extension"
                b" where extname operator(pg_catalog.=) 'citus')")
PROBE: Final = (b"select exists (select from pg_catalog.pg_extension"
                b" where extname operator(pg_catalog.=) 'citus'), maim.release_floor()")
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


class Statement:
    """One query text with its parameter types, prepared (or to be) under ``name``."""

    __slots__ = ("makers", "name", "prepared")

    def __init__(self, name: bytes) -> None:
        self.name = name
        self.prepared = False
        # The result's shape is fixed for a prepared statement: one row builder per model.
        self.makers: dict[type[Any], RowMaker[Any]] = {}


class Call:
    """A statement ready to send: its text and dumped parameters, and how it goes out."""

    __slots__ = ("formats", "params", "query", "statement", "types")

    def __init__(self, query: bytes, params: Any, types: Any, formats: Any,
                 statement: Statement | None) -> None:
        self.query = query
        self.params = params
        self.types = types
        self.formats = formats
        self.statement = statement


#: Ends a pipeline's segment: what comes before it commits (or fails) on its own, in the same
#: round trip.
SYNC: Final = Call(b"", None, None, None, None)


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
        self.statements: OrderedDict[tuple[bytes, Any], Statement] = OrderedDict()
        self.parsed: dict[Any, PostgresQuery] = {}
        self.seen: dict[tuple[bytes, Any], None] = {}
        self.closing: list[bytes] = []
        # Names are never reused, and differ between connections (a pooler in front that
        # mixes clients makes a clear "does not exist", not another client's statement).
        self.prefix = f"{PREFIX}{secrets.token_hex(4)}_"
        self.counter = 0
        self.suspect = False
        # A key's block ran since the last committed reset of settings and temporary objects.
        self.unsettled = False
        # The reported settings as the session began, to see a block change one.
        self.reported = [(name, conn.pgconn.parameter_status(name)) for name in REPORTED]
        self.citus: bool | None = None  # a Citus node? (asked with the release floor)
        self.probed = False  # the first block's probe ran, and the release floor allows us
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
        pgq.dump(params)
        key = (pgq.query, pgq.types)
        statement = None
        if prepare and self.preparing:
            statement = self.statements.get(key)
            if statement is not None:
                self.statements.move_to_end(key)
            elif key in self.seen:
                del self.seen[key]
                statement = self.statements[key] = Statement(
                    f"{self.prefix}{self.counter}".encode())
                self.counter += 1
                self._evict()
            else:
                if len(self.seen) >= 4 * MAX_PREPARED:
                    self.seen.clear()
                self.seen[key] = None
        return Call(pgq.query, pgq.params, pgq.types, pgq.formats, statement)

    def _parsed(self, query: Query, params: Params) -> PostgresQuery:
        """The query split into text and placeholders once per text (psycopg re-splits texts
        over 4 kB, such as a 1,000-row INSERT, on every call)."""
        if isinstance(query, sql.Composable):
            query = query.as_bytes(self.tx)
        elif not isinstance(query, (str, bytes)):
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

    def _evict(self) -> None:
        while len(self.statements) > MAX_PREPARED:
            _, old = self.statements.popitem(last=False)
            if old.prepared:
                self.closing.append(old.name)

    def guard(self) -> Call:
        """The guard, for the start of the next pipeline (after its closes, so those do not
        count)."""
        prepared = sum(s.prepared for s in self.statements.values())
        return Call(GUARD, [str(prepared).encode()], None, None, None)

    def limit(self) -> Call | None:
        """The statement that sets this block's timeouts; None when none is configured."""
        if self.limits is None:
            return None
        query, values = self.limits
        return self.call(query, values)

    def forget(self) -> None:
        """After ``DISCARD ALL``: the connection holds no statement of ours any more."""
        for st in self.statements.values():
            st.prepared = False
        self.statements.clear()
        self.closing.clear()
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
        pgconn = self.pgconn
        if not self.unsettled and all(pgconn.parameter_status(name) == value
                                      for name, value in self.reported):
            return []
        return [*(Call(query, None, None, None, None) for query in RESET_SETTINGS), SYNC]

    def settled(self, results: list[PGresult], resets: int) -> None:
        """The first ``resets`` results were a reset's: once they succeeded, the session is
        as it began (until the next key's block)."""
        if resets and all(res.status in (COMMAND_OK, PIPELINE_SYNC)
                          for res in results[:resets]):
            self.unsettled = False

    # -- one round trip -----------------------------------------------------------------------

    def pipeline(self, calls: list[Call]) -> PQGen[list[PGresult]]:
        """Send ``calls`` and one Sync; the result of each call, in order."""
        pgconn = self.pgconn
        pgconn.enter_pipeline_mode()
        copying = False
        try:
            closing, self.closing = self.closing, []
            # Closes go in the block's own segment, after a reset's Sync: a close that fails
            # (DEALLOCATE of a statement already gone) then aborts the block, not the reset
            # that had to come before it.
            split = next((i + 1 for i, call in enumerate(calls) if call is SYNC), 0)
            parses: list[Statement | None] = []  # per call: the statement it also prepares
            for at, call in enumerate(calls):
                if at == split:
                    self._close(closing)
                if call is SYNC:
                    pgconn.pipeline_sync()
                    parses.append(None)
                    continue
                st = call.statement
                if st is None:
                    pgconn.send_query_params(call.query, call.params, call.types,
                                             call.formats, TEXT)
                    parses.append(None)
                    continue
                if st.prepared or st in parses:
                    parses.append(None)
                else:
                    pgconn.send_prepare(st.name, call.query, call.types)
                    parses.append(st)
                pgconn.send_query_prepared(st.name, call.params, call.formats, TEXT)
            pgconn.pipeline_sync()
            yield from generators.send(pgconn)
            results: list[PGresult] = []
            syncs = 1 + sum(call is SYNC for call in calls)
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
            elif pgconn.pipeline_status != pq.PipelineStatus.OFF:
                with suppress(psycopg.OperationalError):
                    pgconn.exit_pipeline_mode()
            if pgconn.pipeline_status != pq.PipelineStatus.OFF:
                # Interrupted with results pending (Ctrl-C landing here): the connection can
                # neither leave pipeline mode nor roll back. Closed now, the server ends the
                # transaction, the caller's exception goes on alone, and a pool replaces it.
                pgconn.finish()
        if copying:
            raise psycopg.NotSupportedError(COPY_REFUSED)
        answers = iter(results)
        # A Parse answers with a result of its own; count a statement as prepared only once
        # the server said so, and when it failed, its error is the call's result.
        out: list[PGresult] = []
        for at, (call, parsed) in enumerate(zip(calls, parses, strict=True)):
            if at == split:
                for _ in closing:  # closing a statement that is gone is no error in the
                    if (res := next(answers)).status == FATAL_ERROR:  # protocol
                        raise self.error(res)
            if parsed is not None:
                answer = next(answers)
                parsed.prepared = answer.status == COMMAND_OK
            res = next(answers)
            if parsed is not None and answer.status == FATAL_ERROR:
                res = answer
            if res.status == FATAL_ERROR:
                self._failed(call, res)
            elif (tag := res.command_status) is not None and tag.startswith(_TAMPERING):
                self.suspect = True
            out.append(res)
        return out

    def _close(self, names: list[bytes]) -> None:
        for name in names:
            if CLOSE_IN_PROTOCOL:
                self.pgconn.send_close_prepared(name)
            else:  # libpq before 17 (Debian 12's, psycopg-binary 3.2's) has no Close
                self.pgconn.send_query_params(b'deallocate "' + name + b'"', None)

    def _failed(self, call: Call, res: PGresult) -> None:
        if res.error_field(pq.DiagnosticField.SQLSTATE) == MISSING.encode():
            # Deallocated behind our back: what else is gone is unknown, so the next block
            # checks (and resets) the connection.
            self.forget()
            self.suspect = True
        elif call.statement is not None and call.statement.prepared and res.error_field(
                pq.DiagnosticField.SQLSTATE) == b"0A000":
            # "cached plan must not change result type": a table changed; prepare it anew.
            self.statements.pop((call.query, call.types), None)
            self.closing.append(call.statement.name)

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

    def models(self, res: PGresult, call: Call, model: type[R]) -> list[R]:
        st = call.statement
        if st is None:
            return self.rows(res, row_maker(model, res, self.encoding))
        make = st.makers.get(model)
        if make is None:
            make = st.makers[model] = row_maker(model, res, self.encoding)
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
