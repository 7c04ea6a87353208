# WARNING: generated from maim_db/control/config/document_async.py by tools/async_to_sync.py;
# do not edit: change the async source and run `python tools/async_to_sync.py`.

"""An agent's whole configuration as one document, the shape the original served::

    {"persona": {...}, "bot_overrides": {...},
     "config_overrides": {"chat": {...}, ..., "telemetry": {...},
                          "model": {"api_providers": [...], "models": [...],
                                    "model_task_config": {...}}}}

:func:`read` returns it (secrets masked unless asked); :func:`update` applies a *partial*
document: only the fields sent change, everything is validated before anything is written,
and the block's transaction makes it all-or-nothing. Provider ``api_key``/``base_url`` and
the maim_message ``auth_token``s are sealed at rest (:mod:`maim_db.control.sealed`).
:func:`to_toml` / :func:`from_toml` speak MaiBot's ``bot_config.toml`` / ``model_config.toml``
layout.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from psycopg import sql

from ... import crypto, ids, statements
from ...connection import Database
from ...errors import MaimDBError, ScopeError, not_found
from ...row import Row
from ...tables import agent_config as ac
from .. import sealed
from .shape import MASK, MODEL_RENAMES, PROVIDER_SECRETS, SECTIONS, SYSTEM, TOP, fields
from .validation import Errors, as_object, check_fields, check_items

# -- which agent --------------------------------------------------------------------------------


def _agent(db: Database, agent_id: str | None) -> str:
    if db.scope.kind == "agent":
        if agent_id is not None and agent_id != db.scope.agent_id:
            raise ScopeError(f"agent scope {db.scope.agent_id} cannot address agent {agent_id}")
        assert db.scope.agent_id is not None
        return db.scope.agent_id
    if db.scope.kind == "key":
        agent = str(db.scalar("select maim.agent_id()"))
        if agent_id is not None and agent_id != agent:
            raise ScopeError(f"this API key's scope ({agent}) cannot address agent {agent_id}")
        return agent
    if agent_id is None:
        raise ScopeError(f"in {db.scope} scope, name the agent: agent_id=...")
    ids.check("agent", agent_id)
    # Tenant and admin scopes see agents through RLS: one that is not there (or is another
    # tenant's) has no document — not a document of defaults.
    if not db.rows("select 1 from agents where id = %s", [agent_id]):
        raise not_found("agent", agent_id, db.scope)
    return agent_id


# -- reading ----------------------------------------------------------------------------------


def _strip(table_alias: str) -> sql.Composable:
    return sql.SQL(" - ").join(
        [
            sql.SQL("to_jsonb({})").format(sql.Identifier(table_alias)),
            *(sql.Literal(c) for c in sorted(SYSTEM)),
        ]
    )


@cache
def _read_statement() -> sql.Composed:
    """One statement, one round trip, for the whole document."""
    parts = []
    one_row: dict[str, type[Row]] = {**TOP, **SECTIONS, "_task": ac.ModelConfigOverrides}
    for name, model in one_row.items():
        parts.append(
            sql.SQL("(select {} from {} t where t.agent_id = %(agent)s) as {}").format(
                _strip("t"), sql.Identifier(model.table), sql.Identifier(name)
            )
        )
    for name, model in (("_providers", ac.ApiProviderConfig), ("_models", ac.ModelInfoConfig)):
        parts.append(
            sql.SQL(
                "(select coalesce(jsonb_agg({} order by t.name), '[]') from {} t "
                "where t.agent_id = %(agent)s) as {}"
            ).format(_strip("t"), sql.Identifier(model.table), sql.Identifier(name))
        )
    return sql.SQL("select {}").format(sql.SQL(", ").join(parts))


@cache
def _defaults_statement() -> sql.SQL:
    return sql.SQL("""
        select c.relname::text, a.attname::text,
               '(' || pg_get_expr(d.adbin, d.adrelid) || ')::'
                   || format_type(a.atttypid, a.atttypmod)
        from pg_attrdef d
        join pg_attribute a on a.attrelid = d.adrelid and a.attnum = d.adnum
        join pg_class c on c.oid = d.adrelid
        join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
        where c.relname = any(%s) and not (a.attname = any(%s))""")


_DEFAULTS: dict[str, dict[str, Any]] = {}


def _defaults(db: Database) -> dict[str, dict[str, Any]]:
    """Each section's column defaults, evaluated by the database itself (cached)."""
    tables = [m.table for m in (*TOP.values(), *SECTIONS.values())]
    if all(t in _DEFAULTS for t in tables):
        return _DEFAULTS
    found = db.rows(_defaults_statement(), [tables, list(SYSTEM)])
    if found:
        exprs = sql.SQL(", ").join(sql.SQL(expr) for _, _, expr in found)  # catalog text
        values = (db.rows(sql.SQL("select {}").format(exprs)))[0]
        for (table, column, _), value in zip(found, values, strict=True):
            _DEFAULTS.setdefault(table, {})[column] = value
    for t in tables:
        _DEFAULTS.setdefault(t, {})
    return _DEFAULTS


def _section(
    model: type[Row], stored: dict[str, Any] | None, defaults: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    base = stored if stored is not None else defaults[model.table]
    return {f: base.get(f) for f in fields(model)}


def _mask(value: Any) -> Any:
    return MASK if value else value


def read(db: Database, agent_id: str | None = None, *, reveal: bool = False) -> dict[str, Any]:
    """The agent's configuration document. Secrets are masked unless ``reveal`` (which needs
    ``MAIMDB_SECRET_KEY`` to decrypt them) — the runtime reveals, dashboards never do.
    In a scope opened from an API key, the key needs ``config_read`` (or ``config_write``)."""
    db.require("config_read")
    agent = _agent(db, agent_id)
    defaults = _defaults(db)
    (row,) = db.rows(_read_statement(), {"agent": agent})
    got = dict(zip([*TOP, *SECTIONS, "_task", "_providers", "_models"], row, strict=True))
    providers = []
    for p in got["_providers"]:
        item = {f: p.get(f) for f in fields(ac.ApiProviderConfig)}
        if reveal:
            item["api_key"], item["base_url"] = sealed.open_provider(
                agent, item["name"], item["api_key"], item["base_url"]
            )
        else:
            item.update({s: _mask(item[s]) for s in PROVIDER_SECRETS})
        providers.append(item)
    models = [
        {
            ("api_provider" if f == "provider_name" else f): m.get(f)
            for f in fields(ac.ModelInfoConfig)
        }
        for m in got["_models"]
    ]
    overrides: dict[str, Any] = {
        name: _section(model, got[name], defaults) for name, model in SECTIONS.items()
    }
    tokens = overrides["maim_message"]["auth_token"] or []
    overrides["maim_message"]["auth_token"] = (
        sealed.open_tokens(agent, tokens) if reveal else [MASK for _ in tokens]
    )
    overrides["model"] = {
        "api_providers": providers,
        "models": models,
        "model_task_config": (got["_task"] or {}).get("model_task_config") or {},
    }
    persona = _section(ac.PersonalityConfig, got["persona"], defaults)
    return {
        "persona": persona,
        "bot_overrides": _section(ac.BotConfigOverrides, got["bot_overrides"], defaults),
        "config_overrides": overrides,
    }


# -- updating ---------------------------------------------------------------------------------


def _write(
    db: Database, model: type[Row], values: dict[str, Any], agent: str, on: list[str], path: str
) -> None:
    if db.scope.kind != "agent":
        values = {"agent_id": agent, **values}
    try:
        db.execute(*statements.upsert(model.model_construct(**values), on))
    except MaimDBError as err:
        raise type(err)(f"{path}: {err}") from err


def update(db: Database, patch: dict[str, Any], agent_id: str | None = None) -> dict[str, Any]:
    """Apply a partial document; return the new (masked) document. Unknown keys and bad
    values are all reported at once, with their paths, before anything is written. In a
    scope opened from an API key, the key needs ``config_write``."""
    db.require("config_write")
    agent = _agent(db, agent_id)
    errors = Errors()
    doc = as_object(patch, "$", errors)
    for key in doc:
        if key not in (*TOP, "config_overrides"):
            errors.add(key, "unknown key; known: persona, bot_overrides, config_overrides")
    writes: list[tuple[type[Row], dict[str, Any], list[str], str]] = []
    current = read(db, agent)
    for name, model in TOP.items():
        if name in doc:
            given = _changed(doc[name], current[name])
            writes.append((model, check_fields(model, given, name, errors), ["agent_id"], name))
    overrides = as_object(doc.get("config_overrides", {}), "config_overrides", errors)
    for name, section in overrides.items():
        path = f"config_overrides.{name}"
        if name in SECTIONS:
            section = _changed(section, current["config_overrides"][name])
            values = check_fields(SECTIONS[name], section, path, errors)
            if name == "maim_message" and "auth_token" in values:
                values["auth_token"] = _seal_tokens(db, agent, values["auth_token"], path, errors)
            writes.append((SECTIONS[name], values, ["agent_id"], path))
        elif name == "model":
            writes.extend(_model_writes(db, agent, section, path, errors))
        else:
            errors.add(path, f"unknown section; known: {', '.join([*SECTIONS, 'model'])}")
    errors.raise_if_any()
    for model, values, on, path in writes:
        if values:
            _write(db, model, values, agent, on, path)
    return read(db, agent)


def _changed(given: Any, current: dict[str, Any]) -> Any:
    """The fields of a section that differ from what the agent reads now. A document read
    and saved back unchanged then writes nothing — even for a fresh agent, whose persona
    reads as nulls the table would refuse."""
    if not isinstance(given, dict):
        return given  # check_fields reports the shape
    return {k: v for k, v in given.items() if k not in current or v != current[k]}


@cache
def _reset_statement() -> sql.Composed:
    """One statement, one round trip: delete the agent's row of every configuration table."""
    parts = [
        sql.SQL("d{} as (delete from {} where agent_id = %(agent)s)").format(
            sql.SQL(str(i)), sql.Identifier(model.table)
        )
        for i, model in enumerate(ac.ROWS)
    ]
    return sql.SQL("with {} select 1").format(sql.SQL(", ").join(parts))


def reset(db: Database, agent_id: str | None = None) -> dict[str, Any]:
    """Put the agent's configuration back to its defaults, as a new agent has it: every
    section's row, every provider and model deleted (a section without a row reads as its
    columns' defaults); return the new (masked) document. All of it or nothing, in the
    block's transaction. In a scope opened from an API key, the key needs
    ``config_write``."""
    db.require("config_write")
    agent = _agent(db, agent_id)
    db.execute(_reset_statement(), {"agent": agent})
    return read(db, agent)


def _seal_tokens(
    db: Database, agent: str, tokens: list[Any], path: str, errors: Errors
) -> list[Any]:
    """The tokens to store, each sealed under the current key. A document read masked and
    saved back sends ``********`` for each stored token: the stored token at that position
    is kept (re-sealed, so the row never holds tokens under two keys)."""
    rows = db.rows("select auth_token from maim_message_configs where agent_id = %s", [agent])
    stored = (rows[0][0] if rows else None) or []
    kept: list[Any] = []
    for i, token in enumerate(tokens):
        where = f"{path}.auth_token[{i}]"
        try:
            if token == MASK and i < len(stored):
                kept.append(crypto.reseal(stored[i], sealed.token_context(agent)))
            elif token == MASK:
                errors.add(where, "masked, but no token is stored there")
            elif isinstance(token, str) and crypto.is_encrypted(token):
                errors.add(
                    where,
                    f"looks like a stored ciphertext ({crypto.PREFIX}…); send "
                    "the plaintext, or the mask to keep the stored token",
                )
            else:
                kept.extend(sealed.seal_tokens(agent, [token]))
        except MaimDBError as err:
            errors.add(where, str(err))
    return kept


def _model_writes(
    db: Database, agent: str, given: Any, path: str, errors: Errors
) -> list[tuple[type[Row], dict[str, Any], list[str], str]]:
    writes: list[tuple[type[Row], dict[str, Any], list[str], str]] = []
    model = as_object(given, path, errors)
    for key in model:
        if key not in ("api_providers", "models", "model_task_config"):
            errors.add(
                f"{path}.{key}", "unknown key; known: api_providers, models, model_task_config"
            )
    providers = check_items(
        ac.ApiProviderConfig, model.get("api_providers", []), f"{path}.api_providers", errors
    )
    stored = {
        name: dict(zip(PROVIDER_SECRETS, values, strict=True))
        for name, *values in db.rows(
            "select name, api_key, base_url from api_provider_configs where agent_id = %s", [agent]
        )
    }
    for i, values in enumerate(providers):
        _seal_provider(
            agent, values, stored.get(values.get("name", "")), f"{path}.api_providers[{i}]", errors
        )
        writes.append((ac.ApiProviderConfig, values, ["name"], f"{path}.api_providers[{i}]"))
    for i, values in enumerate(
        check_items(
            ac.ModelInfoConfig, model.get("models", []), f"{path}.models", errors, MODEL_RENAMES
        )
    ):
        writes.append((ac.ModelInfoConfig, values, ["name"], f"{path}.models[{i}]"))
    if "model_task_config" in model:
        values = check_fields(
            ac.ModelConfigOverrides, {"model_task_config": model["model_task_config"]}, path, errors
        )
        writes.append((ac.ModelConfigOverrides, values, ["agent_id"], f"{path}.model_task_config"))
    return writes


def _seal_provider(
    agent: str,
    values: dict[str, Any],
    stored: dict[str, str | None] | None,
    path: str,
    errors: Errors,
) -> None:
    """Seal the secrets a provider item sends, in place. Three rules keep a stored key where
    it belongs: a masked value keeps the stored one; a new ``base_url`` needs the
    ``api_key`` sent with it (else whoever may write the configuration, without ever seeing
    the key, could send it to a host of their choosing; the seal binds the key to its URL
    besides, so raw SQL cannot pair them either); and the pair is sealed together, so a row
    never holds values under two keys."""
    name = values.get("name", "")
    for secret in PROVIDER_SECRETS:
        if values.get(secret) == MASK:
            del values[secret]  # a masked value sent back keeps the stored one
    given = {s: values[s] for s in PROVIDER_SECRETS if s in values}
    for secret, value in given.items():
        if value and crypto.is_encrypted(value):
            # it would be stored as is and fail to decrypt on every later read
            errors.add(
                f"{path}.{secret}",
                f"looks like a stored ciphertext "
                f"({crypto.PREFIX}…); send the plaintext, or the mask to keep the "
                "stored value",
            )
            return
    if not given:
        return
    try:
        for value in given.values():
            if value:
                crypto.check_length(value)
        held = stored or {"api_key": None, "base_url": None}
        # open only what is kept: a full pair sent overwrites even a row no key opens
        if "api_key" in given:
            key = given["api_key"]
            url = (
                given["base_url"]
                if "base_url" in given
                else sealed.open_provider(agent, name, None, held["base_url"])[1]
            )
        else:
            key, url = sealed.open_provider(agent, name, held["api_key"], held["base_url"])
            if key and "base_url" in given and given["base_url"] != url:
                errors.add(
                    f"{path}.base_url",
                    "a new base_url needs the api_key sent with "
                    "it (the stored key would go to the new host): send api_key "
                    "again, or api_key: null to drop the stored one",
                )
                return
            url = given.get("base_url", url)
        values["api_key"], values["base_url"] = sealed.seal_provider(agent, name, key, url)
    except MaimDBError as err:
        errors.add(path, str(err))


# The generated module hands these out as well: one import for both flavours.
from .document_async import aread as aread
from .document_async import areset as areset
from .document_async import aupdate as aupdate
