"""The benchmark database: a fresh, migrated database on the embedded server (or
``MAIMDB_BENCH_DSN``), seeded server-side with generate_series."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from maim_db import embedded
from maim_db.schema import migrate

CHATS_PER_AGENT = 4
PEOPLE_PER_AGENT = 100


def agent_id(n: int) -> str:
    return f"agent_b{n:06d}"


def chat_id(agent: int, chat: int) -> str:
    return f"chat-{agent:06d}-{chat}"


def person_id(agent: int, person: int) -> str:
    return f"person-{agent:06d}-{person}"


@dataclass
class Bench:
    dsn: str  # superuser on the bench database
    agents: int
    messages_per_agent: int

    def with_options(self, **options: str) -> str:
        params = {k: v for k, v in conninfo_to_dict(self.dsn).items() if v is not None}
        return make_conninfo("", **{**params, **options})


@contextmanager
def server() -> Iterator[str]:
    """Superuser DSN on database ``postgres`` of the bench server."""
    if dsn := os.environ.get("MAIMDB_BENCH_DSN"):
        yield dsn
        return
    data_dir = Path(tempfile.mkdtemp(prefix="maimdb-bench-")) / "pg"
    data_dir.parent.chmod(0o755)  # as root the server runs as another user: it must enter
    try:
        yield embedded.start(data_dir, "postgres")
    finally:
        embedded.stop(data_dir)
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def drop(server_dsn: str, name: str) -> None:
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(
            sql.Identifier(name)))


def create(server_dsn: str, name: str, agents: int, messages_per_agent: int) -> Bench:
    drop(server_dsn, name)
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    params = {k: v for k, v in conninfo_to_dict(server_dsn).items() if v is not None}
    dsn = make_conninfo("", **{**params, "dbname": name})
    migrate.migrate(dsn)
    seed(dsn, agents, messages_per_agent)
    return Bench(dsn, agents, messages_per_agent)


def seed(dsn: str, agents: int, messages_per_agent: int) -> None:
    per_chat = max(1, messages_per_agent // CHATS_PER_AGENT)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("insert into tenants (id, tenant_name) values ('tenant_bench', 'bench')")
        conn.execute("""
            insert into agents (id, tenant_id, name)
            select 'agent_b' || lpad(a::text, 6, '0'), 'tenant_bench', 'bench ' || a
            from generate_series(1, %s) a""", [agents])
        conn.execute("""
            insert into messages (agent_id, message_id, time, chat_id, chat_info_stream_id,
                chat_info_platform, chat_info_user_platform, chat_info_user_id,
                chat_info_user_nickname, chat_info_create_time, chat_info_last_active_time,
                user_id, user_nickname, processed_plain_text, display_message)
            select 'agent_b' || lpad(a::text, 6, '0'), 'm' || a || '-' || c || '-' || i,
                   1700000000 + i * 7.5, 'chat-' || lpad(a::text, 6, '0') || '-' || c,
                   'chat-' || lpad(a::text, 6, '0') || '-' || c, 'qq', 'qq', '10001', '小明',
                   1700000000, 1700000000, '1000' || (i %% 50), '群友' || (i %% 50),
                   '消息正文 ' || i || ' 今天天气不错，我们去吃火锅吧 🙂',
                   '消息正文 ' || i
            from generate_series(1, %s) a, generate_series(0, %s) c, generate_series(1, %s) i
            """, [agents, CHATS_PER_AGENT - 1, per_chat])
        conn.execute("""
            insert into person_info (agent_id, person_id, person_name, platform, user_id,
                nickname, know_times, know_since, last_know)
            select 'agent_b' || lpad(a::text, 6, '0'),
                   'person-' || lpad(a::text, 6, '0') || '-' || p, '群友' || p, 'qq',
                   '1000' || p, 'nick' || p, p, 1700000000, 1700000000 + p
            from generate_series(1, %s) a, generate_series(1, %s) p""",
                     [agents, PEOPLE_PER_AGENT])
        conn.execute("vacuum analyze")
