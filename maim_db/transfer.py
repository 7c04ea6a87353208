"""An agent's data as a whole: export it, restore it into another agent, erase it.

All three run in the agent's own scope, so row-level security bounds them exactly as it
bounds the runtime: an export cannot contain, and an erase cannot touch, another agent's rows.
The tables covered are the agent's data plane (configuration, business and runtime tables);
the control plane (the agent record, API keys, activity, plugin settings) stays with the
control plane. See docs/import-export.md.

An export is a directory of JSON Lines, one file per table, rows in key order as PostgreSQL's
``row_to_json`` writes them, plus ``manifest.json`` with the counts and the schema version. It
holds no timestamp of its own, so exporting the same data twice gives identical files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import psycopg
from psycopg import sql

from .config_document import rebind_secrets
from .connection import Database, connect, open_connection, run_scoped
from .errors import ConfigurationError, ConflictError, InputError, translate
from .row import Row
from .scope import named_agent
from .tables import agent_config, business, imports, runtime

#: The tables an export holds and a restore fills, parents before children.
DATA_ROWS: Final[tuple[type[Row], ...]] = agent_config.ROWS + business.ROWS + runtime.ROWS
#: What an erase empties: the data plane and the import bookkeeping that points into it.
ERASED_ROWS: Final[tuple[type[Row], ...]] = DATA_ROWS + imports.ROWS

FORMAT: Final = "maim_db-export"
FORMAT_VERSION: Final = 1
MANIFEST: Final = "manifest.json"
BATCH: Final = 5000


def schema_version() -> str:
    """The newest migration this code knows: the schema an export is written in."""
    from .migrate import load

    return load()[-1].id


def columns(model: type[Row], *, skip: Iterable[str] = ("agent_id",)) -> list[str]:
    """The table's columns in catalog order, without those the scope fills in."""
    skipped = set(skip)
    return [name for name in model.model_fields if name not in skipped]


def names(cols: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, cols))


def agent_counts(db: Database, models: Iterable[type[Row]]) -> dict[str, int]:
    """Rows the scope's agent holds per table, in one statement."""
    parts = [sql.SQL("select {}, count(*) from {}").format(sql.Literal(m.table),
                                                          sql.Identifier(m.table))
             for m in models]
    return {t: int(n) for t, n in db.rows(sql.SQL(" union all ").join(parts))}


@contextmanager
def copy_via_temp(db: Database, name: str, create: sql.Composed, cols: Iterable[str], *,
                  types: Sequence[int] = ()) -> Iterator[psycopg.Copy]:
    """COPY rows into ``name``, a transaction-local table that ``create`` makes.

    COPY FROM is refused on a table under row-level security, so rows go into a temporary
    table first (temporary tables have no policies, and this one dies with the transaction)
    and on with one INSERT … SELECT, which the policies check like any other insert.
    ``types`` (the columns' type oids) makes the COPY binary: no text for the server to parse.
    """
    db.execute(create)
    binary = sql.SQL(" (format binary)" if types else "")
    try:
        with db.connection.cursor().copy(sql.SQL("copy {} ({}) from stdin{}").format(
                sql.Identifier(name), names(cols), binary)) as copy:
            if types:
                copy.set_types(list(types))
            yield copy
    except psycopg.Error as err:
        raise translate(err) from err


def temp_like(name: str, table: str, cols: Iterable[str]) -> sql.Composed:
    """A temporary table with ``table``'s types for ``cols`` (and none of its defaults)."""
    return sql.SQL("create temp table {} on commit drop as select {} from {} with no data"
                   ).format(sql.Identifier(name), names(cols), sql.Identifier(table))


# -- export ----------------------------------------------------------------------------------

def export_agent(agent_id: str, out: Path, *, dsn: str | None = None) -> dict[str, int]:
    """Write every data row of ``agent_id`` under ``out``; return the rows per table.

    One read-only repeatable-read transaction: the files are one consistent state. The
    manifest is written last, so an export that failed half-way cannot be restored.
    """
    scope = named_agent(agent_id)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} is not an empty directory; export into a new one")
    counts: dict[str, int] = {}
    with open_connection(dsn) as conn, run_scoped(conn, scope, snapshot=True) as db:
        db.execute("set local timezone = 'UTC'")  # timestamps the same whoever exports
        # only now, with the scope open (the agent exists and is active), is there an export
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(f"cannot create {out}: {err.strerror or err}") from None
        for model in DATA_ROWS:
            counts[model.table] = _export_table(db, model, out / f"{model.table}.jsonl")
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "schema_version": schema_version(), "agent_id": agent_id, "tables": counts}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                encoding="utf-8")
    return counts


def _export_table(db: Database, model: type[Row], path: Path) -> int:
    order = [k for k in model.key if k != "agent_id"] or ["agent_id"]
    query = sql.SQL("select row_to_json(t)::text from (select * from {} order by {}) as t"
                    ).format(sql.Identifier(model.table), names(order))
    n = 0
    try:
        handle = path.open("w", encoding="utf-8", newline="\n")
    except OSError as err:
        raise InputError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        with handle as f, \
                db.connection.cursor(name=f"maim_export_{model.table}") as cur:
            cur.itersize = BATCH
            cur.execute(query)
            for (line,) in cur:
                f.write(line)
                f.write("\n")
                n += 1
    except psycopg.Error as err:
        raise translate(err) from err
    return n


# -- restore ---------------------------------------------------------------------------------

def read_manifest(directory: Path) -> tuple[dict[str, int], str]:
    """The table counts and the source agent of an export, after checking it is one this
    code can restore."""
    if not directory.is_dir():
        raise InputError(f"{directory} is not a directory; give the directory an export wrote")
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{directory} holds no {MANIFEST}; is it a maimdb export?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{directory / MANIFEST} is not valid UTF-8 JSON: {err}") from None
    except OSError as err:
        raise InputError(f"cannot read {directory / MANIFEST}: {err.strerror or err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"{directory / MANIFEST} is not a maimdb export manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InputError(f"export format version {manifest.get('format_version')!r} is not "
                         f"{FORMAT_VERSION}, the one this maim_db reads")
    if manifest.get("schema_version") != schema_version():
        raise InputError(f"the export was written at schema {manifest.get('schema_version')!r}"
                         f" and this database is at {schema_version()!r}; export again with "
                         "the same maim_db version as the restore")
    tables = manifest.get("tables")
    known = {m.table for m in DATA_ROWS}
    if not isinstance(tables, dict) or not all(
            t in known and isinstance(n, int) and n >= 0 for t, n in tables.items()):
        raise InputError(f"{directory / MANIFEST}: 'tables' must map known tables to counts")
    for table in tables:
        if not (directory / f"{table}.jsonl").is_file():
            raise InputError(f"{directory} lacks {table}.jsonl, which the manifest lists")
    source = manifest.get("agent_id")
    if not isinstance(source, str):
        raise InputError(f"{directory / MANIFEST}: 'agent_id' must name the exported agent")
    return {str(t): int(n) for t, n in tables.items()}, source


def import_export(directory: Path, agent_id: str, *, dsn: str | None = None) -> dict[str, int]:
    """Restore an export into ``agent_id``, which must hold no data yet; return the rows per
    table. One transaction: the agent ends with all of the export or none of it. Row ids are
    kept (keys include agent_id, so they cannot collide with the source agent's)."""
    directory = Path(directory)
    scope = named_agent(agent_id)
    expected, source = read_manifest(directory)
    written: dict[str, int] = {}
    with connect(dsn, agent_id=scope.id) as db:
        held = {t: n for t, n in agent_counts(db, DATA_ROWS).items() if n}
        if held:
            listed = ", ".join(f"{t}: {n}" for t, n in held.items())
            raise ConflictError(f"agent {agent_id} already holds data ({listed}); restore into "
                                "an agent with none, or `maimdb erase` it first")
        for model in DATA_ROWS:
            if model.table in expected:
                written[model.table] = _restore_table(db, model, directory)
        if source != agent_id:
            try:
                rebind_secrets(db, source)
            except ConfigurationError as err:
                raise ConfigurationError(
                    f"the export holds encrypted provider secrets of {source}; restoring them "
                    f"into another agent re-encrypts them, which needs the MAIMDB_SECRET_KEY "
                    f"they were written with ({err})") from err
        wrong = {t: (n, written[t]) for t, n in expected.items() if written[t] != n}
        if wrong:  # inside the transaction: a short or padded file restores nothing
            listed = ", ".join(f"{t}: manifest {n}, file {w}" for t, (n, w) in wrong.items())
            raise InputError(f"the files do not match the manifest ({listed}); nothing was "
                             "restored")
    return written


def _restore_table(db: Database, model: type[Row], directory: Path) -> int:
    try:
        return _restore_lines(db, model, directory)
    except UnicodeDecodeError as err:
        raise InputError(f"{model.table}.jsonl is not valid UTF-8: {err}") from None
    except OSError as err:
        raise InputError(f"cannot read {model.table}.jsonl: {err.strerror or err}") from None


def _restore_lines(db: Database, model: type[Row], directory: Path) -> int:
    temp = f"maim_restore_{model.table}"
    known = set(model.model_fields)
    lines = 0
    with (directory / f"{model.table}.jsonl").open(encoding="utf-8") as f, \
            copy_via_temp(db, temp, sql.SQL("create temp table {} (line jsonb not null) "
                                            "on commit drop").format(sql.Identifier(temp)),
                          ["line"]) as copy:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{model.table}.jsonl line {number}: {err}") from None
            if not isinstance(record, dict):
                raise InputError(f"{model.table}.jsonl line {number}: not a JSON object")
            if unknown := sorted(set(record) - known):
                # jsonb_populate_record would skip them: a renamed key must not become NULL
                raise InputError(f"{model.table}.jsonl line {number}: no column "
                                 f"{', '.join(map(repr, unknown))} in {model.table}")
            copy.write_row((line,))
            lines += 1
    cols = columns(model)
    n = db.execute(sql.SQL("insert into {t} ({c}) select {pc} from {tmp}, "
                           "jsonb_populate_record(null::{t}, {tmp}.line) as p").format(
        t=sql.Identifier(model.table), c=names(cols), tmp=sql.Identifier(temp),
        pc=sql.SQL(", ").join(sql.SQL("p.{}").format(sql.Identifier(c)) for c in cols)))
    if n != lines:  # pragma: no cover - an insert either writes every row or raises
        raise InputError(f"{model.table}: {lines} lines but {n} rows written")
    return n


# -- erase -----------------------------------------------------------------------------------

def erase_agent(agent_id: str, *, dsn: str | None = None) -> dict[str, int]:
    """Delete every data row of ``agent_id`` in one transaction; return what went, per table
    (tables it had no rows in are left out). The agent, its keys and its tenant stay: use
    ``tenancy.delete_agent`` to remove the agent itself."""
    erased: dict[str, int] = {}
    with connect(dsn, agent_id=named_agent(agent_id).id) as db:
        for model in reversed(ERASED_ROWS):  # children before the rows they refer to
            n = db.execute(sql.SQL("delete from {} where agent_id = maim.agent_id()").format(
                sql.Identifier(model.table)))
            if n:
                erased[model.table] = n
    return dict(reversed(erased.items()))

