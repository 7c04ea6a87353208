"""Where sealed secrets live, and what moves them: re-binding to another agent, dropping them,
and rotating every one of them to a new key.

Two kinds of value are sealed (:mod:`maim_db.crypto`): a provider's ``api_key`` and
``base_url`` in ``api_provider_configs``, and each ``maim_message_configs.auth_token``. Their
associated data names the agent, so a copy in another agent's row does not open.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Final

from psycopg.types.json import Jsonb

from .. import crypto
from ..connection import Database, connect
from ..errors import InputError, MaimDBError

PROVIDER_SECRETS: Final = ("api_key", "base_url")


def provider_context(agent: str, provider: str, column: str) -> str:
    return f"{agent}/api_provider_configs/{provider}/{column}"


def _key_context(agent: str, provider: str, base_url: str | None) -> str:
    """An ``api_key`` is bound to the ``base_url`` it was given with: a key moved beside
    another URL — by raw SQL too, or by replaying an older sealed URL — no longer opens, so
    it is never sent to a host it was not meant for."""
    url = hashlib.sha256((base_url or "").encode()).hexdigest()[:32]
    return f"{provider_context(agent, provider, 'api_key')}@{url}"


def open_provider(agent: str, provider: str, api_key: str | None,
                  base_url: str | None) -> tuple[str | None, str | None]:
    """A provider's (api_key, base_url) in plaintext. Empty values are stored as they are."""
    url = (crypto.decrypt(base_url, provider_context(agent, provider, "base_url"))
           if base_url else base_url)
    key = (crypto.decrypt(api_key, _key_context(agent, provider, url),
                          v1_context=provider_context(agent, provider, "api_key"))
           if api_key else api_key)
    return key, url


def seal_provider(agent: str, provider: str, api_key: str | None,
                  base_url: str | None) -> tuple[str | None, str | None]:
    """The pair sealed together under the current key, the key bound to the URL."""
    url = (crypto.encrypt(base_url, provider_context(agent, provider, "base_url"))
           if base_url else base_url)
    key = (crypto.encrypt(api_key, _key_context(agent, provider, base_url))
           if api_key else api_key)
    return key, url


def _provider_current(values: tuple[str | None, ...]) -> bool:
    return all(crypto.is_current(v) for v in values if v)


def token_context(agent: str) -> str:
    return f"{agent}/maim_message_configs/auth_token"


def seal_tokens(agent: str, tokens: list[Any]) -> list[str]:
    """Each token sealed under the current key; a token must be a string."""
    sealed = []
    for i, token in enumerate(tokens):
        if not isinstance(token, str):
            raise InputError(f"auth_token[{i}] must be a string, got {type(token).__name__}")
        crypto.check_length(token)
        sealed.append(crypto.encrypt(token, token_context(agent)))
    return sealed


def open_tokens(agent: str, tokens: list[Any]) -> list[str]:
    opened = []
    for i, token in enumerate(tokens):
        if not isinstance(token, str):
            raise InputError(f"the secret at {token_context(agent)}[{i}] is stored unsealed "
                             "(written around maim_db), so it is not revealed")
        opened.append(crypto.decrypt(token, token_context(agent)))
    return opened


def _own_agent(db: Database) -> str:
    return str(db.scalar("select maim.agent_id()"))


def count(db: Database) -> int:
    """The sealed values the scope's agent holds."""
    return int(db.scalar("""
        select (select count(api_key) + count(base_url) from api_provider_configs)
             + (select coalesce(sum(jsonb_array_length(auth_token)), 0)
                from maim_message_configs)"""))


def rebind(db: Database, from_agent: str) -> int:
    """Re-seal the scope's agent's secrets, which were sealed for ``from_agent`` (a restored
    copy), for the agent itself and under the current key; return how many."""
    agent = _own_agent(db)
    rebound = 0
    for name, api_key, base_url in db.rows("select name, api_key, base_url "
                                            "from api_provider_configs"):
        if api_key or base_url:
            fresh = seal_provider(agent, name, *open_provider(from_agent, name, api_key, base_url))
            db.execute("update api_provider_configs set api_key = %s, base_url = %s "
                       "where name = %s", [*fresh, name])
            rebound += sum(1 for v in fresh if v)
    for (tokens,) in db.rows("select auth_token from maim_message_configs"):
        if tokens:
            moved = [crypto.reseal(t, token_context(from_agent), to_context=token_context(agent))
                     for t in _strings(tokens, from_agent)]
            db.execute("update maim_message_configs set auth_token = %s", [Jsonb(moved)])
            rebound += len(moved)
    return rebound


def drop(db: Database) -> int:
    """Remove every sealed value of the scope's agent; return how many went."""
    n = count(db)
    db.execute("update api_provider_configs set api_key = null, base_url = null "
               "where api_key is not null or base_url is not null")
    db.execute("update maim_message_configs set auth_token = '[]' where auth_token <> '[]'")
    return n


def _strings(tokens: list[Any], agent: str) -> list[str]:
    if not all(isinstance(t, str) for t in tokens):
        raise InputError(f"the secrets at {token_context(agent)} are not all strings "
                         "(written around maim_db)")
    return tokens


# -- rotation ------------------------------------------------------------------------------------

@dataclass
class Tally:
    """What a rotation found in one table, value by value."""

    current: int = 0  # already under the current key
    resealed: int = 0  # moved to the current key now (or, in a dry run, would be)
    unsealed: int = 0  # stored in plaintext around maim_db: left as is, never revealed
    unreadable: list[str] = field(default_factory=list)  # no configured key opens these
    retried: int = 0  # changed by someone else during this run: the next run takes them
    remaining: int = 0  # sealed values not under the current key, counted after the run

    @property
    def done(self) -> bool:
        return self.remaining == 0


def rotate(dsn: str | None = None, *, batch_size: int = 500,
           dry_run: bool = False) -> dict[str, Tally]:
    """Re-seal every sealed value under ``MAIMDB_SECRET_KEY``, in batches of ``batch_size``
    rows, each its own transaction in admin scope. Resumable: a value already under the
    current key is left alone, so a rerun continues where an interrupted one stopped."""
    if isinstance(batch_size, bool) or not 1 <= batch_size <= 100_000:
        raise InputError(f"batch size must be between 1 and 100000, got {batch_size}")
    key = crypto.current()  # refuse before reading anything when no key is set
    tallies = {"api_provider_configs": _rotate_providers(dsn, batch_size, dry_run),
               "maim_message_configs": _rotate_tokens(dsn, batch_size, dry_run)}
    # Complete means nothing is left under another key now, whatever was written behind
    # the run's cursor meanwhile (a service still sealing with the old key, a restore).
    old = r"^enc:v1:|^enc:v2:(?!" + key.id + ":)"
    with connect(dsn, admin=True) as db:
        (providers, tokens), = db.rows(
            "select (select count(*) filter (where api_key ~ %(old)s)"
            "             + count(*) filter (where base_url ~ %(old)s)"
            "        from api_provider_configs),"
            "       (select count(*) from maim_message_configs,"
            "               jsonb_array_elements_text(auth_token) as t(token)"
            "        where t.token ~ %(old)s)", {"old": old})
    tallies["api_provider_configs"].remaining = int(providers)
    tallies["maim_message_configs"].remaining = int(tokens)
    return tallies


def _reseal_one(value: str, context: str, tally: Tally, where: str) -> str | None:
    """The value under the current key, or None when it stays as it is."""
    if not crypto.is_encrypted(value):
        tally.unsealed += 1
        return None
    if crypto.is_current(value):
        tally.current += 1
        return None
    try:
        fresh = crypto.reseal(value, context)
    except MaimDBError:
        tally.unreadable.append(where)
        return None
    tally.resealed += 1
    return fresh


def _rotate_providers(dsn: str | None, batch_size: int, dry_run: bool) -> Tally:
    tally, after = Tally(), ("", "00000000-0000-0000-0000-000000000000")
    while True:
        with connect(dsn, admin=True) as db:
            rows = db.rows("select agent_id, id::text, name, api_key, base_url "
                           "from api_provider_configs where (agent_id, id) > (%s, %s::uuid) "
                           "order by agent_id, id limit %s", [*after, batch_size])
            for agent, row_id, name, api_key, base_url in rows:
                held = [v for v in (api_key, base_url) if v]
                if not held:
                    continue
                if not all(crypto.is_encrypted(v) for v in held):
                    tally.unsealed += sum(1 for v in held if not crypto.is_encrypted(v))
                    continue
                if _provider_current((api_key, base_url)):
                    tally.current += len(held)
                    continue
                try:
                    fresh = seal_provider(agent, name,
                                          *open_provider(agent, name, api_key, base_url))
                except MaimDBError:
                    tally.unreadable.append(f"{agent} provider {name}")
                    continue
                tally.resealed += len(held)
                if not dry_run and db.execute(
                        "update api_provider_configs set api_key = %s, base_url = %s "
                        "where agent_id = %s and id = %s and api_key is not distinct from %s "
                        "and base_url is not distinct from %s",
                        [*fresh, agent, row_id, api_key, base_url]) == 0:
                    tally.resealed -= len(held)
                    tally.retried += len(held)
        if len(rows) < batch_size:
            return tally
        after = (rows[-1][0], rows[-1][1])


def _rotate_tokens(dsn: str | None, batch_size: int, dry_run: bool) -> Tally:
    tally, after = Tally(), ""
    while True:
        with connect(dsn, admin=True) as db:
            rows = db.rows("select agent_id, auth_token from maim_message_configs "
                           "where agent_id > %s and auth_token <> '[]' "
                           "order by agent_id limit %s", [after, batch_size])
            for agent, tokens in rows:
                fresh_tokens, changed = [], False
                for i, token in enumerate(tokens):
                    fresh = (_reseal_one(token, token_context(agent), tally,
                                         f"{agent} auth_token[{i}]")
                             if isinstance(token, str) else None)
                    if not isinstance(token, str):
                        tally.unsealed += 1
                    changed |= fresh is not None
                    fresh_tokens.append(fresh if fresh is not None else token)
                if changed and not dry_run:
                    n = db.execute("update maim_message_configs set auth_token = %s "
                                   "where agent_id = %s and auth_token = %s",
                                   [Jsonb(fresh_tokens), agent, Jsonb(tokens)])
                    if n == 0:
                        moved = sum(1 for a, b in zip(tokens, fresh_tokens, strict=True)
                                    if a != b)
                        tally.resealed -= moved
                        tally.retried += moved
        if len(rows) < batch_size:
            return tally
        after = rows[-1][0]
