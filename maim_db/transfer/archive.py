"""An agent's data as a whole: export it, restore it into another agent, erase it.

All three run in the agent's own scope, so row-level security bounds them exactly as it
bounds the runtime: an export cannot contain, and an erase cannot touch, another agent's rows.
The tables covered are the agent's data plane (configuration, business and runtime tables,
and MaiBot 1.x's in the schema maibot1, named ``maibot1.<table>`` in files and counts);
the control plane (the agent record, API keys, activity, plugin settings) stays with the
control plane. See docs/import-export.md.

An export is a directory of JSON Lines, one file per table, rows in key order as PostgreSQL's
``row_to_json`` writes them, plus ``manifest.json`` with the counts, the schema version, each
file's SHA-256 and a tag over all of it made with ``MAIMDB_SECRET_KEY``: a restore trusts the
files (and re-seals their secrets) only when the tag verifies. It holds no timestamp of its
own, so exporting the same data twice gives identical files. Every file is written 0600.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import psycopg
from psycopg import sql

from .. import crypto
from ..connection import Block, connect, open_connection, run_scoped
from ..control import sealed
from ..errors import ConfigurationError, ConflictError, InputError, MaimDBError, translate
from ..row import Row
from ..scope import named_agent
from ..tables import agent_config, business, imports, maibot1, runtime
from .progress import Progress

#: The tables an export holds and a restore fills, parents before children.
DATA_ROWS: Final[tuple[type[Row], ...]] = (agent_config.ROWS + business.ROWS + runtime.ROWS
                                           + maibot1.ROWS)
#: What an erase empties: the data plane and the import marks that point into it (not a
#: running import's claim, which its import removes).
ERASED_ROWS: Final[tuple[type[Row], ...]] = (*DATA_ROWS, imports.ImportProgress)

FORMAT: Final = "maim_db-export"
FORMAT_VERSION: Final = 2  # 2: authenticated (a tag, file digests, the tenant)
MANIFEST: Final = "manifest.json"
BATCH: Final = 5000


def schema_version() -> str:
    """The newest migration this code knows: the schema an export is written in."""
    from ..schema.migrate import load

    return load()[-1].id


def columns(model: type[Row], *, skip: Iterable[str] = ("agent_id",)) -> list[str]:
    """The table's columns in catalog order, without those the scope fills in."""
    skipped = set(skip)
    return [name for name in model.model_fields if name not in skipped]


def names(cols: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, cols))


def agent_counts(db: Block, models: Iterable[type[Row]]) -> dict[str, int]:
    """Rows the scope's agent holds per table (named as ``Row.table_name`` names it), in one
    statement."""
    parts = [sql.SQL("select {}, count(*) from {}").format(sql.Literal(m.table_name()),
                                                          sql.Identifier(*m.table_path()))
             for m in models]
    return {t: int(n) for t, n in db.rows(sql.SQL(" union all ").join(parts))}


@contextmanager
def copy_via_temp(db: Block, name: str, create: sql.Composed, cols: Iterable[str], *,
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


def insert_counted(db: Block, insert: sql.Composed) -> int:
    """Run ``insert`` (an INSERT … SELECT from the temporary table) and return its row count.

    Through a Citus coordinator, an INSERT … SELECT without RETURNING reaches the shards as
    COPY, which row-level security refuses; with RETURNING, Citus stages the rows and writes
    them with INSERTs that the shards' policies check. The count comes back as one row."""
    return int(db.scalar(sql.SQL("with written as ({} returning 1) select count(*) from written"
                                 ).format(insert)))


def temp_like(name: str, table: str | tuple[str, ...], cols: Iterable[str]) -> sql.Composed:
    """A temporary table with ``table``'s types for ``cols`` (and none of its defaults);
    ``table`` a name, or a path (schema, name) as ``Row.table_path()`` gives it."""
    path = (table,) if isinstance(table, str) else table
    return sql.SQL("create temp table {} on commit drop as select {} from {} with no data"
                   ).format(sql.Identifier(name), names(cols), sql.Identifier(*path))


# -- export ----------------------------------------------------------------------------------

def private_file(path: Path, *, replace: bool = False) -> IO[bytes]:
    """A file only its owner can read or write (0600), for anything that may hold secrets:
    an export holds sealed secrets and all of an agent's conversations. A new file unless
    ``replace``; a replaced one is made 0600 before anything is written into it."""
    # never through a symlink: one planted in a shared directory would get the secrets
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if replace else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as err:
        raise InputError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        os.fchmod(fd, 0o600)
    except OSError as err:
        os.close(fd)
        raise InputError(f"cannot make {path} private: {err.strerror or err}") from None
    return os.fdopen(fd, "wb")


def _signed_bytes(manifest: dict[str, Any]) -> bytes:
    """What the tag covers: the manifest without its key id and tag, in one canonical form."""
    body = {k: v for k, v in manifest.items() if k not in ("key_id", "tag")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with the key id and tag of the current key (the manifest names each
    file's SHA-256, so the tag covers every row and every sealed value)."""
    key_id, tag = crypto.sign(_signed_bytes(manifest))
    return {**manifest, "key_id": key_id, "tag": tag}


def export_agent(agent_id: str, out: Path, *, dsn: str | None = None,
                 progress: Progress | None = None) -> dict[str, int]:
    """Write every data row of ``agent_id`` under ``out``; return the rows per table.

    One read-only repeatable-read transaction: the files are one consistent state. The
    manifest is written last, so an export that failed half-way cannot be restored. With
    ``progress``, each table is counted first (in the same snapshot) and told as it goes.
    """
    scope = named_agent(agent_id)
    out = Path(out)
    try:
        crypto.current()
    except ConfigurationError as err:
        raise ConfigurationError(f"an export is signed with MAIMDB_SECRET_KEY, so that a "
                                 f"restore can trust it: {err}") from None
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} is not an empty directory; export into a new one")
    counts: dict[str, int] = {}
    digests: dict[str, str] = {}
    with open_connection(dsn) as conn, run_scoped(conn, scope, snapshot=True) as db:
        db.execute("set local timezone = 'UTC'")  # timestamps the same whoever exports
        tenant = db.scalar("select tenant_id from agents where id = maim.agent_id()")
        held = sealed.count(db)
        # only now, with the scope open (the agent exists and is active), is there an export
        try:
            out.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(f"cannot create {out}: {err.strerror or err}") from None
        for model in DATA_ROWS:
            name = model.table_name()
            counts[name], digests[name] = _export_table(db, model, out / f"{name}.jsonl",
                                                        progress)
    manifest: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "schema_version": schema_version(), "agent_id": agent_id, "tenant_id": tenant,
        "tables": counts, "sha256": digests, "sealed_values": held}
    manifest = sign(manifest)
    with private_file(out / MANIFEST) as f:
        f.write((json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode())
    return counts


def _temp_name(prefix: str, model: type[Row]) -> str:
    """A name for a transaction's temporary table or cursor of ``model``'s table, distinct
    for public's ``images`` and maibot1's."""
    return prefix + "__".join(model.table_path())


def _export_table(db: Block, model: type[Row], path: Path,
                  progress: Progress | None) -> tuple[int, str]:
    order = [k for k in model.key if k != "agent_id"] or ["agent_id"]
    table, name = sql.Identifier(*model.table_path()), model.table_name()
    query = sql.SQL("select row_to_json(t)::text from (select * from {} order by {}) as t"
                    ).format(table, names(order))
    n = 0
    digest = hashlib.sha256()
    if progress is not None:
        progress.start(name, int(db.scalar(sql.SQL("select count(*) from {}").format(table))))
    try:
        with private_file(path) as f, \
                db.connection.cursor(name=_temp_name("maim_export_", model)) as cur:
            cur.itersize = BATCH
            cur.execute(query)
            for (line,) in cur:
                data = line.encode() + b"\n"
                f.write(data)
                digest.update(data)
                n += 1
                if progress is not None and n % BATCH == 0:
                    progress.advance(name, BATCH)
    except psycopg.Error as err:
        raise translate(err) from err
    if progress is not None:
        if n % BATCH:
            progress.advance(name, n % BATCH)
        progress.finish(name, n)
    return n, digest.hexdigest()


# -- restore ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Manifest:
    """An export's manifest, once its tag has verified."""

    tables: dict[str, int]
    sha256: dict[str, str]
    agent_id: str
    tenant_id: str
    sealed_values: int


def read_manifest(directory: Path) -> Manifest:
    """The manifest of an export, after checking it is one this code can restore and that
    its tag verifies under a configured key. Nothing in the directory is trusted before."""
    where = directory / MANIFEST
    if not directory.is_dir():
        raise InputError(f"{directory} is not a directory; give the directory an export wrote")
    try:
        manifest = json.loads(where.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{directory} holds no {MANIFEST}; is it a maimdb export?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{where} is not valid UTF-8 JSON: {err}") from None
    except OSError as err:
        raise InputError(f"cannot read {where}: {err.strerror or err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"{where} is not a maimdb export manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InputError(f"export format version {manifest.get('format_version')!r} is not "
                         f"{FORMAT_VERSION}, the one this maim_db reads (version 1 exports "
                         "carry no authentication tag: export the agent again)")
    key_id, tag = manifest.get("key_id"), manifest.get("tag")
    if not isinstance(key_id, str) or not isinstance(tag, str):
        raise InputError(f"{where} carries no authentication tag, so nothing in it is "
                         "trusted; nothing was restored")
    try:
        genuine = crypto.verify(_signed_bytes(manifest), key_id, tag)
    except ConfigurationError as err:
        raise ConfigurationError(f"{where} is signed with key {key_id}: {err}") from None
    except UnicodeEncodeError:  # a lone surrogate escape: never written by an export
        genuine = False
    if not genuine:
        raise InputError(f"{where}: the authentication tag does not match, so the export was "
                         "changed after it was written (or never was one); nothing was "
                         "restored")
    if manifest.get("schema_version") != schema_version():
        raise InputError(f"the export was written at schema {manifest.get('schema_version')!r}"
                         f" and this database is at {schema_version()!r}; export again with "
                         "the same maim_db version as the restore")
    tables, digests = manifest.get("tables"), manifest.get("sha256")
    known = {m.table_name() for m in DATA_ROWS}
    if not isinstance(tables, dict) or not isinstance(digests, dict) or not all(
            t in known and isinstance(n, int) and n >= 0 and isinstance(digests.get(t), str)
            for t, n in tables.items()):
        raise InputError(f"{where}: 'tables' must map known tables to counts and digests")
    for table in tables:
        if not (directory / f"{table}.jsonl").is_file():
            raise InputError(f"{directory} lacks {table}.jsonl, which the manifest lists")
    return Manifest({str(t): int(n) for t, n in tables.items()},
                    {str(t): str(digests[t]) for t in tables}, str(manifest["agent_id"]),
                    str(manifest["tenant_id"]), int(manifest["sealed_values"]))


def import_export(directory: Path, agent_id: str, *, drop_secrets: bool = False,
                  dsn: str | None = None) -> dict[str, int]:
    """Restore an export into ``agent_id``, which must hold no data yet; return the rows per
    table. One transaction: the agent ends with all of the export or none of it. Row ids are
    kept (keys include agent_id, so they cannot collide with the source agent's).

    Sealed secrets are re-sealed for the new agent only within the tenant they were
    exported from; into another tenant's agent the restore is refused unless
    ``drop_secrets``, which restores everything but them."""
    directory = Path(directory)
    scope = named_agent(agent_id)
    manifest = read_manifest(directory)
    written: dict[str, int] = {}
    with connect(dsn, agent_id=scope.id) as db:
        tenant = db.scalar("select tenant_id from agents where id = maim.agent_id()")
        foreign = tenant != manifest.tenant_id
        if foreign and manifest.sealed_values and not drop_secrets:
            raise ConflictError(
                f"the export comes from tenant {manifest.tenant_id} and {agent_id} belongs to "
                f"{tenant}: its {manifest.sealed_values} sealed secrets (provider keys and "
                "URLs, maim_message tokens) do not cross tenants. Restore with --drop-secrets "
                "to bring everything else; nothing was restored")
        held = {t: n for t, n in agent_counts(db, DATA_ROWS).items() if n}
        if held:
            listed = ", ".join(f"{t}: {n}" for t, n in held.items())
            raise ConflictError(f"agent {agent_id} already holds data ({listed}); restore into "
                                "an agent with none, or `maimdb erase` it first")
        for model in DATA_ROWS:
            if (name := model.table_name()) in manifest.tables:
                written[name] = _restore_table(db, model, directory, manifest.sha256[name])
        wrong = {t: (n, written[t]) for t, n in manifest.tables.items() if written[t] != n}
        if wrong:  # inside the transaction: a short or padded file restores nothing
            listed = ", ".join(f"{t}: manifest {n}, file {w}" for t, (n, w) in wrong.items())
            raise InputError(f"the files do not match the manifest ({listed}); nothing was "
                             "restored")
        if foreign:
            sealed.drop(db)
        else:
            try:
                sealed.rebind(db, manifest.agent_id)
            except MaimDBError as err:
                raise type(err)(f"the export holds sealed secrets of {manifest.agent_id}; "
                                f"re-sealing them for {agent_id} failed ({err}); nothing was "
                                "restored") from err
    return written


def _restore_table(db: Block, model: type[Row], directory: Path, sha256: str) -> int:
    try:
        return _restore_lines(db, model, directory, sha256)
    except UnicodeDecodeError as err:
        raise InputError(f"{model.table_name()}.jsonl is not valid UTF-8: {err}") from None
    except OSError as err:
        raise InputError(f"cannot read {model.table_name()}.jsonl: {err.strerror or err}"
                         ) from None


def _restore_lines(db: Block, model: type[Row], directory: Path, sha256: str) -> int:
    temp = _temp_name("maim_restore_", model)
    name = model.table_name()
    known = set(model.model_fields)
    lines = 0
    digest = hashlib.sha256()
    with (directory / f"{name}.jsonl").open("rb") as f, \
            copy_via_temp(db, temp, sql.SQL("create temp table {} (line jsonb not null) "
                                            "on commit drop").format(sql.Identifier(temp)),
                          ["line"]) as copy:
        for number, data in enumerate(f, 1):
            digest.update(data)
            line = data.decode("utf-8")
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{name}.jsonl line {number}: {err}") from None
            if not isinstance(record, dict):
                raise InputError(f"{name}.jsonl line {number}: not a JSON object")
            if unknown := sorted(set(record) - known):
                # jsonb_populate_record would skip them: a renamed key must not become NULL
                raise InputError(f"{name}.jsonl line {number}: no column "
                                 f"{', '.join(map(repr, unknown))} in {name}")
            copy.write_row((line,))
            lines += 1
    if digest.hexdigest() != sha256:  # before its rows go anywhere but the temporary table
        raise InputError(f"{name}.jsonl is not the file the export wrote (its SHA-256 "
                         "differs from the signed manifest's); nothing was restored")
    cols = columns(model)
    n = insert_counted(db, sql.SQL("insert into {t} ({c}) select {pc} from {tmp}, "
                                   "jsonb_populate_record(null::{t}, {tmp}.line) as p").format(
        t=sql.Identifier(*model.table_path()), c=names(cols), tmp=sql.Identifier(temp),
        pc=sql.SQL(", ").join(sql.SQL("p.{}").format(sql.Identifier(c)) for c in cols)))
    if n != lines:  # pragma: no cover - an insert either writes every row or raises
        raise InputError(f"{name}: {lines} lines but {n} rows written")
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
                sql.Identifier(*model.table_path())))
            if n:
                erased[model.table_name()] = n
    return dict(reversed(erased.items()))

