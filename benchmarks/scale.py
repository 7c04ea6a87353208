"""Scale: 10 million messages spread over 100, 1,000 and 10,000 agents; p50/p99 of the
context read and the poll through maim_db, per agent count."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from maim_db import Pool
from maim_db.tables.runtime import Message

from . import data
from .workloads import CONTEXT, FUTURE, POLL


def _percentiles(samples: list[float]) -> tuple[float, float]:
    samples.sort()
    return (samples[len(samples) // 2] * 1000, samples[int(len(samples) * 0.99) - 1] * 1000)


def run(server_dsn: str, rows: int, log: Callable[[str], None],
        ops: int = 3000) -> list[dict[str, Any]]:
    results = []
    for agents in (100, 1_000, 10_000):
        began = time.perf_counter()
        b = data.create(server_dsn, f"maimdb_scale_{agents}", agents, rows // agents)
        seeded = time.perf_counter() - began
        rnd = random.Random(agents)
        timings: dict[str, list[float]] = {"context": [], "poll": []}
        with Pool(b.dsn, min_size=1, max_size=1) as pool:
            for _ in range(ops):
                a = rnd.randint(1, agents)
                chat = data.chat_id(a, rnd.randint(0, data.CHATS_PER_AGENT - 1))
                for name, query, params in (("context", CONTEXT, [chat]),
                                            ("poll", POLL, [chat, FUTURE])):
                    t = time.perf_counter()
                    pool.fetch(Message, query, params, agent_id=data.agent_id(a))
                    timings[name].append(time.perf_counter() - t)
        record: dict[str, Any] = {"agents": agents, "messages": rows, "seed_s": round(seeded)}
        for name, samples in timings.items():
            p50, p99 = _percentiles(samples)
            record[f"{name}_p50_ms"], record[f"{name}_p99_ms"] = round(p50, 3), round(p99, 3)
        results.append(record)
        data.drop(server_dsn, f"maimdb_scale_{agents}")  # a 10M-row database is gigabytes
        log(f"scale {agents:>6} agents: context p50 {record['context_p50_ms']} ms "
            f"p99 {record['context_p99_ms']} ms; poll p50 {record['poll_p50_ms']} ms "
            f"p99 {record['poll_p99_ms']} ms (seeded in {seeded:.0f}s)")
    return results
