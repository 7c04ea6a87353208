"""Seal the maim_message auth tokens (issue 11).

0003 stored ``maim_message_configs.auth_token`` in plaintext, so the tokens showed in tenant
reads, dumps, the WAL, ``pg_statistic`` and exports. maim_db now seals each token as it seals
provider secrets (maim_db/crypto.py, context ``<agent>/maim_message_configs/auth_token``), and
this migration seals the tokens already stored. That needs ``MAIMDB_SECRET_KEY`` when any are
stored; without it the migration refuses, changing nothing, and says what to do.

Row-level security is forced on the table, so the owner lifts it for this transaction only, to
reach every agent's row, and forces it again before the commit; other sessions wait on the
ALTER's lock meanwhile. ANALYZE then replaces the statistics that held plaintext samples.
Written against crypto's public functions only, so it reads the same when the library moves on.
"""

from __future__ import annotations

from typing import Any

from yoyo import step

from maim_db import crypto
from maim_db.errors import MaimDBError

_TABLE = "public.maim_message_configs"


def _each_row(conn: Any) -> list[tuple[str, list[Any]]]:
    with conn.cursor() as cur:
        cur.execute(f"alter table {_TABLE} no force row level security")
        cur.execute(f"select agent_id, auth_token from {_TABLE} where auth_token <> '[]' "
                    "for update")
        return list(cur.fetchall())


def _store(conn: Any, rows: list[tuple[str, list[str]]]) -> None:
    from psycopg.types.json import Jsonb

    with conn.cursor() as cur:
        for agent, tokens in rows:
            cur.execute(f"update {_TABLE} set auth_token = %s where agent_id = %s",
                        [Jsonb(tokens), agent])
        cur.execute(f"alter table {_TABLE} force row level security")
        if rows:
            cur.execute(f"analyze {_TABLE}")


def seal(conn: Any) -> None:
    rows = _each_row(conn)
    odd = [agent for agent, tokens in rows if not all(isinstance(t, str) for t in tokens)]
    if odd:  # a token is a string; anything else was written around maim_db
        raise MaimDBError(
            f"maim_message_configs.auth_token of {', '.join(odd[:5])} holds values that are "
            "not strings, which cannot be sealed as tokens: correct them (as maim_owner, in "
            "psql) and run `maimdb migrate` again. Nothing was changed")
    plain = [(agent, tokens) for agent, tokens in rows
             if any(not crypto.is_encrypted(t) for t in tokens)]
    if plain:
        try:
            crypto.current()
        except MaimDBError:
            n = sum(len(tokens) for _, tokens in plain)
            raise MaimDBError(
                f"{len(plain)} agents hold {n} maim_message auth tokens in plaintext, and "
                f"sealing them needs {crypto.ENV}: set it (`maimdb secrets new-key` makes one; "
                "every service needs the same key) and run `maimdb migrate` again. Nothing "
                "was changed") from None
    sealed = [(agent, [t if crypto.is_encrypted(t)
                       else crypto.encrypt(t, f"{agent}/maim_message_configs/auth_token")
                       for t in tokens]) for agent, tokens in plain]
    _store(conn, sealed)


def unseal(conn: Any) -> None:
    rows = _each_row(conn)
    if rows:
        crypto.current()  # refuses, naming the variable, before anything changes
    _store(conn, [(agent, [crypto.decrypt(t, f"{agent}/maim_message_configs/auth_token")
                           if isinstance(t, str) and crypto.is_encrypted(t) else t
                           for t in tokens]) for agent, tokens in rows])


steps = [step(seal, unseal)]
