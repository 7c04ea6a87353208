"""SQL for the typed operations, built from a model's own fields.

Identifiers come only from the model (anything else is an :class:`InputError` before SQL is
sent); values are always bound parameters. The sync and async handles both run these.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cache, lru_cache
from typing import Any, TypeAlias

from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg.types.numeric import Int8

from .errors import InputError
from .row import SERVER_DEFAULT, Row

Statement: TypeAlias = tuple[sql.Composed, list[Any]]

#: The largest LIMIT PostgreSQL takes (a bigint).
MAX_LIMIT = 2**63 - 1
#: Rows per multi-row INSERT (and never more than PostgreSQL's 65535 bind parameters).
BATCH_ROWS = 1000


def adapt(value: Any, jsonb: bool) -> Any:
    return Jsonb(value) if jsonb and value is not None else value


def _values(model: type[Row], given: Mapping[str, Any]) -> list[Any]:
    jsonb = model.jsonb_fields()
    return [adapt(v, c in jsonb) for c, v in given.items()]


def _names(columns: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, columns))


def _field(model: type[Row], name: str) -> str:
    if name not in model.model_fields:
        raise InputError(f"{model.__name__} has no column {name!r}; columns: "
                         f"{', '.join(model.model_fields)}")
    return name


def _mapping(what: str, value: object) -> Mapping[str, Any]:
    """``where=``/``set=`` must be a mapping: ``{}`` is the only way to say "every row", so a
    ``None``, ``[]`` or ``""`` that happens to be falsy must not quietly mean it too."""
    if not isinstance(value, Mapping):
        raise InputError(f"{what} takes a mapping of column to value ({{}} for every row in "
                         f"scope), got {type(value).__name__}")
    return value


def _names_given(what: str, value: object) -> list[str]:
    """A column name or a list of them (``order_by=``, ``on=``)."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise InputError(f"{what} takes a column name or a list of column names, got {value!r}")
    return list(names)


def _row(what: str, value: object) -> Row:
    if not isinstance(value, Row):
        raise InputError(f"{what} takes a row model instance (e.g. Message(...)), got "
                         f"{type(value).__name__}")
    return value


def _where(model: type[Row], where: Mapping[str, Any],
           agent_id: str | None) -> tuple[sql.Composable, list[Any]]:
    """``where`` as SQL; in agent scope an agent table's also names the agent. The policy
    restricts the rows to it anyway, but Citus plans a query before policies apply: only an
    ``agent_id`` in the query routes it to the agent's shard rather than to every shard."""
    where = _mapping("where=", where)
    if agent_id and model.key[0] == "agent_id" and "agent_id" not in where:
        where = {"agent_id": agent_id, **where}
    if not where:
        return sql.SQL(""), []
    jsonb = model.jsonb_fields()
    parts, params = [], []
    for column, value in where.items():
        name = sql.Identifier(_field(model, column))
        if value is None:
            parts.append(sql.SQL("{} is null").format(name))
        elif isinstance(value, list | tuple | set | frozenset) and column not in jsonb:
            parts.append(sql.SQL("{} = any(%s)").format(name))
            params.append(list(value))
        else:
            parts.append(sql.SQL("{} = %s").format(name))
            params.append(adapt(value, column in jsonb))
    return sql.SQL(" where {}").format(sql.SQL(" and ").join(parts)), params


def insert(row: Row) -> Statement:
    model = type(_row("insert()", row))
    given = row.given()
    return _insert_text(model.table_path(), tuple(given)), _values(model, given)


@lru_cache(maxsize=1024)
def _insert_text(table: tuple[str, ...], columns: tuple[str, ...]) -> sql.Composed:
    """Rendered once per table and column set: composing and quoting the statement on every
    call was a sixth of a single insert's client time (profiled)."""
    if not columns:
        query = sql.SQL("insert into {} default values returning *").format(
            sql.Identifier(*table))
    else:
        query = sql.SQL("insert into {} ({}) values ({}) returning *").format(
            sql.Identifier(*table), _names(columns),
            sql.SQL(", ").join(sql.Placeholder() * len(columns)))
    return sql.Composed([sql.SQL(query.as_string(None))])


def insert_many(rows: Iterable[Row]) -> Iterator[Statement]:
    """Multi-row INSERTs; a field one row gives and another leaves out is ``DEFAULT`` there.

    (``COPY FROM`` is refused on tables with row-level security, so this is the bulk path.)
    """
    if isinstance(rows, Row | str | bytes | Mapping) or not isinstance(rows, Iterable):
        raise InputError(f"insert_many() takes a list of rows, got {type(rows).__name__}")
    rows = [_row("insert_many()", r) for r in rows]
    if not rows:
        return
    model = type(rows[0])
    if any(type(r) is not model for r in rows):
        raise InputError("insert_many() takes rows of one model at a time")
    given = [r.given() for r in rows]
    columns = [f for f in model.model_fields if any(f in g for g in given)]
    if not columns:
        raise InputError(f"insert_many() needs at least one field set on the {model.__name__} "
                         "rows (use insert() for an all-defaults row)")
    jsonb = model.jsonb_fields()
    per_statement = max(1, min(BATCH_ROWS, 65535 // len(columns)))
    if all(len(g) == len(columns) for g in given):  # every row gives the same fields
        for start in range(0, len(given), per_statement):
            chunk = given[start:start + per_statement]
            yield (_insert_many_text(model.table_path(), tuple(columns), len(chunk)),
                   [adapt(v, c in jsonb) for g in chunk for c, v in g.items()])
        return
    head = sql.SQL("insert into {} ({}) values ").format(sql.Identifier(*model.table_path()),
                                                         _names(columns))
    for start in range(0, len(given), per_statement):
        params: list[Any] = []
        tuples = []
        for g in given[start:start + per_statement]:
            cells: list[sql.Composable] = []
            for c in columns:
                if c in g:
                    cells.append(sql.Placeholder())
                    params.append(adapt(g[c], c in jsonb))
                else:
                    cells.append(sql.SQL("default"))
            tuples.append(sql.SQL("({})").format(sql.SQL(", ").join(cells)))
        yield sql.Composed([head, sql.SQL(", ").join(tuples)]), params


@lru_cache(maxsize=256)
def _insert_many_text(table: tuple[str, ...], columns: tuple[str, ...], rows: int) -> sql.Composed:
    """``insert … values (%s, …), …`` for ``rows`` full rows, rendered once: composing a
    thousand tuples per call cost more than the server's insert (profiled)."""
    head = sql.SQL("insert into {} ({}) values ").format(sql.Identifier(*table),
                                                         _names(columns))
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    return sql.Composed([sql.SQL(head.as_string(None) + ", ".join([one] * rows))])


def key(model: type[Row], values: Sequence[Any], agent_id: str | None) -> dict[str, Any]:
    """The primary key as ``where``; in agent scope a leading ``agent_id`` may be left out."""
    if len(values) == len(model.key) - 1 and model.key[0] == "agent_id" and agent_id:
        values = (agent_id, *values)
    if len(values) != len(model.key):
        raise InputError(f"{model.__name__} is keyed by {model.key}, got {len(values)} value(s)")
    return dict(zip(model.key, values, strict=True))


@cache
def _select(model: type[Row]) -> sql.SQL:
    """``select <the model's columns> from <table>``, rendered once per model: naming the
    columns lets a model of some of a table's columns (``UserProfile``) read it where the
    role holds privileges on those columns only."""
    def quoted(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    return sql.SQL("select " + ", ".join(map(quoted, model.model_fields))
                   + " from " + ".".join(map(quoted, model.table_path())))


def find(model: type[Row], where: Mapping[str, Any] | None, order_by: str | Sequence[str],
         limit: int | None, agent_id: str | None = None, *, offset: int = 0,
         after: Row | Mapping[str, Any] | None = None) -> Statement:
    """``select`` of ``model``'s rows. ``offset`` skips rows; ``after`` (keyset pagination,
    for deep pages) starts after the row whose ordered columns have these values — the
    order is made total by the model's key, appended where ``order_by`` leaves it out."""
    clause, params = _where(model, {} if where is None else where, agent_id)
    orders = _names_given("order_by=", order_by)
    skip = _bigint("offset", offset)
    if after is not None:
        if skip:
            raise InputError("give offset= or after=, not both")
        orders = _total(model, orders, agent_id)
        seek, seek_params = _after(model, orders, after)
        clause = (sql.SQL(" where {}").format(seek) if clause == sql.SQL("")
                  else sql.SQL("{} and {}").format(clause, seek))
        params = [*params, *seek_params]
    query = sql.SQL("{}{}").format(_select(model), clause)
    if orders:
        query = sql.SQL("{} order by {}").format(query, sql.SQL(", ").join(
            sql.SQL("{} desc" if o.startswith("-") else "{}").format(
                sql.Identifier(_field(model, o.removeprefix("-")))) for o in orders))
    # parameters, not literals: one prepared statement for every page size and offset
    if limit is not None:
        query = sql.SQL("{} limit %s").format(query)
        params.append(_bigint("limit", limit))
    if skip:
        query = sql.SQL("{} offset %s").format(query)
        params.append(skip)
    return query, params


def _bigint(name: str, value: int) -> Int8:
    """A LIMIT or OFFSET: a non-negative bigint, sent as int8 (psycopg would send a small int
    as int2, and each type is another prepared statement)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LIMIT:
        raise InputError(f"{name} must be a non-negative integer up to {MAX_LIMIT} (a "
                         f"bigint), got {value!r}")
    return Int8(value)


def _total(model: type[Row], orders: list[str], agent_id: str | None) -> list[str]:
    """``orders`` with the model's key columns not in it appended, in the direction of the
    last one: a keyset needs an order in which no two rows tie (``agent_id`` is one value in
    an agent's scope, so it is left out there)."""
    named = {o.removeprefix("-") for o in orders}
    if agent_id:
        named.add("agent_id")
    sign = "-" if orders and orders[-1].startswith("-") else ""
    return [*orders, *(sign + k for k in model.key if k not in named)]


def _after(model: type[Row], orders: list[str],
           after: Row | Mapping[str, Any]) -> tuple[sql.Composable, list[Any]]:
    """The keyset condition: rows after ``after`` in the order ``orders``."""
    columns = [(_field(model, o.removeprefix("-")), o.startswith("-")) for o in orders]
    if isinstance(after, Row):
        values = {c: getattr(after, c, None) for c, _ in columns}
    else:
        values = dict(_mapping("after=", after))
    missing = [c for c, _ in columns if c not in values]
    if missing:
        raise InputError(f"after= needs a value for each ordered column; missing {missing}")
    nulls = [c for c, _ in columns if values[c] is None]
    if nulls:
        raise InputError(f"after= has NULL for {nulls}: a keyset cannot seek past NULL; "
                         "order by columns that are never NULL, or use offset=")
    jsonb = model.jsonb_fields()
    names = [sql.Identifier(c) for c, _ in columns]
    params = [adapt(values[c], c in jsonb) for c, _ in columns]
    if len({desc for _, desc in columns}) == 1:  # one direction: a row comparison, indexable
        op = sql.SQL("<" if columns[0][1] else ">")
        return sql.SQL("({}) {} ({})").format(
            sql.SQL(", ").join(names), op,
            sql.SQL(", ").join(sql.Placeholder() for _ in names)), params
    # mixed directions: (a > x) or (a = x and b < y) or ...
    ors, all_params = [], []
    for i, (_, desc) in enumerate(columns):
        ands = [sql.SQL("{} = %s").format(names[j]) for j in range(i)]
        ands.append(sql.SQL("{} {} %s").format(names[i], sql.SQL("<" if desc else ">")))
        ors.append(sql.SQL("({})").format(sql.SQL(" and ").join(ands)))
        all_params.extend(params[: i + 1])
    return sql.SQL("({})").format(sql.SQL(" or ").join(ors)), all_params


def update(model: type[Row], where: Mapping[str, Any], values: Mapping[str, Any],
           agent_id: str | None = None) -> Statement:
    if not _mapping("set=", values):
        raise InputError("update() needs at least one column in set=")
    jsonb = model.jsonb_fields()
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = %s").format(sql.Identifier(_field(model, c))) for c in values)
    params = [adapt(v, c in jsonb) for c, v in values.items()]
    clause, where_params = _where(model, where, agent_id)
    query = sql.SQL("update {} set {}{}").format(sql.Identifier(*model.table_path()),
                                                 assignments, clause)
    return query, params + where_params


def delete(model: type[Row], where: Mapping[str, Any],
           agent_id: str | None = None) -> Statement:
    clause, params = _where(model, where, agent_id)
    return sql.SQL("delete from {}{}").format(sql.Identifier(*model.table_path()), clause), params


def upsert(row: Row, on: str | Sequence[str]) -> Statement:
    model = type(_row("upsert()", row))
    given = row.given()
    target = [_field(model, c) for c in _names_given("on=", on)]
    if not target:
        raise InputError("upsert() needs the unique key to match on: on=['column', ...]")
    agent = model.model_fields.get("agent_id")
    scoped_agent = agent is not None and agent.default is SERVER_DEFAULT
    if scoped_agent and "agent_id" not in target:
        target.insert(0, "agent_id")
    missing = [c for c in target if c not in given and not (scoped_agent and c == "agent_id")]
    if missing:
        raise InputError(f"upsert on {tuple(target)} needs values for {missing}")
    changes = [c for c in given if c not in target] or [target[-1]]
    action = sql.SQL(", ").join(
        sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in changes)
    values = (sql.SQL("({}) values ({})").format(
        _names(given), sql.SQL(", ").join(sql.Placeholder() * len(given)))
        if given else sql.SQL("default values"))
    query = sql.SQL("insert into {} {} on conflict ({}) do update set {} returning *").format(
        sql.Identifier(*model.table_path()), values, _names(target), action)
    return query, _values(model, given)
