"""What the Peewee bridge reuses between statements (issue 36) serves each query the SQL
Peewee itself writes for it: the cache may never hand one query's text to another shape,
never holds a value, and a shape it does not know is Peewee's own path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import peewee
import pytest

from maim_db import agent_scope
from maim_db.peewee import Messages, PersonInfo, ScopedDatabase, models
from tests import test_peewee_bridge
from tests.databases import World

M, P = Messages, PersonInfo
bridge = test_peewee_bridge.bridge  # the models bound to a bridge (one fixture for both)
Aliased = Messages.alias()
_from = Messages.select().where(Messages.time > 5)

#: Shapes whose column lists differ while the model is the same: the alias the statement gives
#: the table, the fields chosen, a model alias, a subquery.
SHAPES: dict[str, Callable[[], Any]] = {
    "default": lambda: M.select().where(M.chat_id == "c1").order_by(M.time).limit(20),
    "person": lambda: P.select().where(P.person_id == "p1"),
    "as a FROM source (its table is t2)": lambda: (
        P.select(P.person_id).join(_from, on=(_from.c.chat_id == P.person_id))),
    "self-join through an alias": lambda: (
        M.select().join(Aliased, on=(Aliased.chat_id == M.chat_id)).where(Aliased.time > 1)),
    "the alias's own select": lambda: Aliased.select().where(Aliased.time > 2),
    "columns() keeps is_default": lambda: M.select().columns(M.id, M.chat_id),
    "some fields": lambda: M.select(M.id, M.time).where(M.chat_id == "c2"),
    "extended": lambda: M.select().select_extend(peewee.fn.COUNT(M.id)).group_by(M.id),
    "an IN subquery (its key only)": lambda: M.select().where(
        M.id.in_(M.select().where(M.chat_id == "c3"))),
    "distinct on": lambda: M.select().distinct(M.chat_id).order_by(M.chat_id, M.time.desc()),
}


def _render(db: ScopedDatabase, query: Any) -> tuple[str, list[Any]]:
    sql, params = db.get_sql_context(maim_agent_id="agent_x").sql(query).query()
    return sql, list(params)


def _peewees_own(db: ScopedDatabase, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Every shape as Peewee renders it with nothing reused (the oracle)."""
    with monkeypatch.context() as m:
        m.setattr(models._Select, "__sql_selection__",
                  peewee.ModelSelect.__sql_selection__)
        return {name: _render(db, shape()) for name, shape in SHAPES.items()}


@pytest.mark.parametrize("order", ["as listed", "reversed"])
def test_every_shape_gets_the_sql_peewee_writes_for_it(bridge: ScopedDatabase,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       order: str) -> None:
    """Rendered cold, then again with every other shape's entries in the cache, in two
    orders: each shape's SQL and parameters are Peewee's own, character for character."""
    want = _peewees_own(bridge, monkeypatch)
    names = list(SHAPES) if order == "as listed" else list(reversed(SHAPES))
    monkeypatch.setattr(models, "_SELECTIONS", {})
    for _ in range(2):
        for name in names:
            assert _render(bridge, SHAPES[name]()) == want[name], name
    assert models._SELECTIONS  # the default selects were reused, not only rendered


def test_values_are_parameters_never_cached_text(bridge: ScopedDatabase,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "_SELECTIONS", {})
    first = _render(bridge, M.select().where(M.chat_id == "chat-'one'").limit(3))
    second = _render(bridge, M.select().where(M.chat_id == "chat-two").limit(7))
    assert first[0] == second[0]
    assert first[1] == ["chat-'one'", "agent_x", 3] and second[1] == ["chat-two", "agent_x", 7]
    assert not any("chat-" in text for _, text in models._SELECTIONS.values())


def test_the_shapes_run_through_the_bridge(bridge: ScopedDatabase, world: World) -> None:
    """The same shapes against the server, in a scope: the rows each one asks for."""
    with agent_scope(world.agent_id("A1")):
        for n in range(3):
            M.create(message_id=f"m{n}", time=float(n), chat_id=f"c{n % 2 + 1}",
                     chat_info_stream_id="s", chat_info_platform="qq",
                     chat_info_user_platform="qq", chat_info_user_id="1",
                     chat_info_user_nickname="n", chat_info_create_time=0.0,
                     chat_info_last_active_time=0.0, processed_plain_text=f"t{n}")
        for _ in range(2):  # cold, then served from the cache
            assert [m.message_id for m in SHAPES["default"]()] == ["m0", "m2"]
            assert [m.message_id for m in M.select().where(M.chat_id == "c2")] == ["m1"]
            joined = SHAPES["self-join through an alias"]()
            assert sorted(m.message_id for m in joined) == ["m0", "m2"]  # c1 rows, paired with m2
            assert [(m.id is not None, m.chat_id) for m in SHAPES["columns() keeps is_default"]()
                    .order_by(M.time)] == [(True, "c1"), (True, "c2"), (True, "c1")]
            assert sorted(m.time for m in Aliased.select().where(Aliased.time > 0.5)) == [1.0, 2.0]
            assert [m.message_id for m in SHAPES["distinct on"]()] == ["m2", "m1"]


def test_rows_are_made_from_their_own_columns(bridge: ScopedDatabase, world: World,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows' set-up reused for a default select never serves another column list of the
    same model (``columns()`` keeps the select default), nor dicts, tuples or a join."""
    monkeypatch.setattr(models, "_RESOLVED", {})
    with agent_scope(world.agent_id("A1")):
        P.create(person_id="p1", platform="qq", user_id="1", nickname="小明", know_times=3.0)
        P.create(person_id="p2", platform="qq", user_id="2", nickname="小红")
        for _ in range(2):  # cold, then from the cache
            whole = list(P.select().order_by(P.person_id))
            assert [(p.person_id, p.nickname, p.know_times) for p in whole] == [
                ("p1", "小明", 3.0), ("p2", "小红", None)]
            assert not whole[0].is_dirty() and whole[0].id is not None
            two = list(P.select().columns(P.nickname, P.person_id).order_by(P.person_id))
            assert [(p.person_id, p.nickname, p.user_id) for p in two] == [
                ("p1", "小明", None), ("p2", "小红", None)]
            assert list(P.select().order_by(P.person_id).dicts())[1]["nickname"] == "小红"
            assert [t[3] for t in P.select().order_by(P.person_id).tuples()] == ["p1", "p2"]
    assert list(models._RESOLVED) == [(P, tuple(f.column_name for f in P._meta.sorted_fields))]
