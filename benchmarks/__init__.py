"""maim_db benchmarks: ratios against baselines measured in the same run, on the same data.

    python -m benchmarks --quick --json out.json

- ``raw``: plain psycopg, tuple rows, the same SQL with an explicit ``WHERE agent_id = …``,
  as a superuser (bypasses RLS) — the ceiling;
- ``peewee``: the original's approach — Peewee models, the agent filter added in Python;
- ``maim_db``: the public API, typed pydantic rows, RLS doing the filtering.
"""
