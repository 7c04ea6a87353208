"""The cluster against one server, the same data and the same calls: ``python -m
benchmarks.citus COORDINATOR_DSN [--agents N] [--messages-per-agent N] [--seconds S]
[--distribute-rows N]``.

The coordinator (a superuser DSN on a migrated Citus database, ``python tools/citus.py
start DIR``) and one PostgreSQL (``MAIMDB_BENCH_DSN``, or the embedded server) get the same
seed (:mod:`benchmarks.data`); each workload runs for the same time on each, one connection,
and the result is the ratio cluster ÷ server, measured in the same run (machines here are
noisy: ratios, never absolute targets). Then the time ``create_distributed_table`` takes to
distribute a local copy of ``messages`` of ``--distribute-rows`` rows — what distributing an
existing deployment costs per million rows."""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from typing import Any

import psycopg

from maim_db import Pool
from maim_db.tables import Message

from . import data

TENANT = "tenant_bench"


def _seed_cluster(dsn: str, agents: int, messages_per_agent: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("delete from tenants where id = %s", [TENANT])  # cascades to its agents
    data.seed(dsn, agents, messages_per_agent)


def _workloads(agents: int) -> dict[str, Callable[[Pool, random.Random], object]]:
    # The policy alone adds the scope's agent_id on each shard, after Citus has planned the
    # query: it goes to every shard. Naming the agent lets Citus route it to one.
    def point(pool: Pool, rnd: random.Random) -> object:
        n = rnd.randint(1, agents)
        return pool.result("select * from messages where chat_id = %s order by time desc "
                           "limit 1", [data.chat_id(n, rnd.randint(0, 3))],
                           agent_id=data.agent_id(n))

    def point_named(pool: Pool, rnd: random.Random) -> object:
        n = rnd.randint(1, agents)
        return pool.result("select * from messages where agent_id = %s and chat_id = %s "
                           "order by time desc limit 1",
                           [data.agent_id(n), data.chat_id(n, rnd.randint(0, 3))],
                           agent_id=data.agent_id(n))

    def point_found(pool: Pool, rnd: random.Random) -> object:  # find() names the agent
        n = rnd.randint(1, agents)
        with pool.connection(agent_id=data.agent_id(n)) as db:
            return db.find(Message, {"chat_id": data.chat_id(n, rnd.randint(0, 3))},
                           order_by="-time", limit=1)

    def context(pool: Pool, rnd: random.Random) -> object:
        n = rnd.randint(1, agents)
        return pool.result("select * from messages where agent_id = %s and chat_id = %s "
                           "order by time desc limit 50",
                           [data.agent_id(n), data.chat_id(n, rnd.randint(0, 3))],
                           agent_id=data.agent_id(n))

    def insert(pool: Pool, rnd: random.Random) -> object:
        n = rnd.randint(1, agents)
        return pool.result("insert into llm_usage (model_name, user_id, request_type, "
                           "endpoint, prompt_tokens, completion_tokens, total_tokens, cost, "
                           "status, timestamp) values ('m', 'u', 'chat', '/v1', 1, 1, 2, 0, "
                           "'success', now())", agent_id=data.agent_id(n))

    def tenant_count(pool: Pool, rnd: random.Random) -> object:  # every shard: multi-shard
        return pool.result("select count(*) from messages where chat_id like %s",
                           [f"chat-{rnd.randint(1, agents):06d}-%"], tenant_id=TENANT)

    return {"point read, policy only (every shard)": point,
            "point read, agent named (router)": point_named,
            "point read, find() (router)": point_found,
            "context read, agent named (router)": context,
            "insert (router)": insert, "tenant count (multi-shard)": tenant_count}


def _raw_point(agents: int) -> Callable[[Any, random.Random], object]:
    def point(conn: Any, rnd: random.Random) -> object:
        n = rnd.randint(1, agents)
        return conn.execute("select * from messages where agent_id = %s and chat_id = %s "
                            "order by time desc limit 1",
                            [data.agent_id(n), data.chat_id(n, rnd.randint(0, 3))]).fetchall()
    return point


def _rate(pool: Any, work: Callable[[Any, random.Random], object], seconds: float) -> float:
    rnd = random.Random(7)
    for _ in range(20):  # warm the connection, the plans, the caches
        work(pool, rnd)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        work(pool, rnd)
        n += 1
    return n / (time.perf_counter() - start)


def _distribute_seconds(dsn: str, rows: int) -> float:
    """A local copy of messages' shape with ``rows`` rows, distributed by agent_id."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("drop table if exists distribute_probe")
        conn.execute("create table distribute_probe (like messages including defaults)")
        conn.execute("alter table distribute_probe add primary key (agent_id, id)")
        conn.execute("""
            insert into distribute_probe (agent_id, message_id, time, chat_id,
                chat_info_stream_id, chat_info_platform, chat_info_user_platform,
                chat_info_user_id, chat_info_user_nickname, chat_info_create_time,
                chat_info_last_active_time, user_id, user_nickname, processed_plain_text,
                display_message)
            select 'agent_b' || lpad((i %% 1000)::text, 6, '0'), 'm' || i,
                   1700000000 + i, 'chat-' || (i %% 4000), 'chat-' || (i %% 4000), 'qq', 'qq',
                   '10001', '小明', 1700000000, 1700000000, '1000' || (i %% 50), '群友',
                   '消息正文 ' || i || ' 今天天气不错，我们去吃火锅吧 🙂', '消息正文 ' || i
            from generate_series(1, %s) i""", [rows])
        start = time.perf_counter()
        conn.execute("select create_distributed_table('distribute_probe', 'agent_id', "
                     "colocate_with => 'none')")
        seconds = time.perf_counter() - start
        conn.execute("drop table distribute_probe")
    return seconds


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.citus")
    parser.add_argument("coordinator", help="superuser DSN of a migrated Citus coordinator")
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--messages-per-agent", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--distribute-rows", type=int, default=1_000_000)
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args(argv)

    report: dict[str, Any] = {"agents": args.agents,
                              "messages_per_agent": args.messages_per_agent}
    with data.server() as server:
        single = data.create(server, "maimdb_bench_citus", args.agents,
                             args.messages_per_agent)
        _seed_cluster(args.coordinator, args.agents, args.messages_per_agent)
        rates: dict[str, dict[str, float]] = {}
        with Pool(single.dsn) as one, Pool(args.coordinator) as cluster:
            for name, work in _workloads(args.agents).items():
                rates[name] = {"server": _rate(one, work, args.seconds),
                               "cluster": _rate(cluster, work, args.seconds)}
        # What Citus costs by itself: the routed point read as the superuser, no scope, no
        # policies (superusers bypass them), autocommit — not a way to run, a baseline.
        with psycopg.connect(single.dsn, autocommit=True) as one_raw, \
                psycopg.connect(args.coordinator, autocommit=True) as cluster_raw:
            raw = _raw_point(args.agents)
            rates["point read, superuser, no scope (baseline)"] = {
                "server": _rate(one_raw, raw, args.seconds),
                "cluster": _rate(cluster_raw, raw, args.seconds)}
        data.drop(server, "maimdb_bench_citus")
    print(f"{'workload':40} {'server/s':>10} {'cluster/s':>10} {'cluster÷server':>15}")
    for name, r in rates.items():
        r["ratio"] = r["cluster"] / r["server"]
        print(f"{name:40} {r['server']:10.0f} {r['cluster']:10.0f} {r['ratio']:15.2f}")
    report["workloads"] = rates
    if args.distribute_rows:
        seconds = _distribute_seconds(args.coordinator, args.distribute_rows)
        report["distribute"] = {"rows": args.distribute_rows, "seconds": seconds,
                                "seconds_per_million": seconds * 1e6 / args.distribute_rows}
        print(f"create_distributed_table of {args.distribute_rows:,} message rows: "
              f"{seconds:.1f} s ({seconds * 1e6 / args.distribute_rows:.1f} s per million)")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)
    return report


if __name__ == "__main__":
    main()
