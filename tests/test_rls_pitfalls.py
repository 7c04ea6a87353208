"""The known ways around row-level security (errors raised by predicates, foreign-key probes,
TRUNCATE, COPY, upserts on another agent's key, writable CTEs, planner statistics) that the
other isolation tests do not reach, each from both sides: what agent A's scope does to its
own rows, and that B's stay hidden and unchanged. Agent B holds a row whose key A also uses,
so every probe has something to find."""

from __future__ import annotations

import psycopg
import pytest

from maim_db import ConflictError, DatabaseError, InputError, IsolationError, connect
from maim_db.tables.runtime import RuntimeState
from tests.databases import TestDB, World
from tests.samples import message


@pytest.fixture
def rows(db: TestDB, world: World) -> tuple[str, str]:
    """A and B each hold runtime_state 'shared'; B also holds 'b-only'."""
    a, b = world.agent_id("A1"), world.agent_id("B1")
    with connect(db.dsn("app"), agent_id=a) as s:
        s.insert(RuntimeState(state_key="shared", state_value="a-value"))
    with connect(db.dsn("app"), agent_id=b) as s:
        s.insert_many([RuntimeState(state_key="shared", state_value="b-secret"),
                       RuntimeState(state_key="b-only", state_value="b-secret")])
    return a, b


def _b_rows(db: TestDB, b: str) -> list[tuple[str, str | None]]:
    with connect(db.dsn("app"), agent_id=b) as s:
        return s.rows("select state_key, state_value from runtime_state order by 1")


B_ROWS = [("b-only", "b-secret"), ("shared", "b-secret")]


def test_errors_raised_by_a_predicate_do_not_reveal_hidden_rows(
        db: TestDB, rows: tuple[str, str]) -> None:
    """The policy runs before a user's function (no LEAKPROOF functions exist), so a
    predicate that would divide by zero on B's row never sees it."""
    a, b = rows
    with connect(db.dsn("app"), agent_id=a) as s:
        probe = ("select state_key from runtime_state "
                 "where 1 / (case when state_key = 'b-only' then 0 else 1 end) = 1")
        assert s.rows(probe) == [("shared",)]
    with pytest.raises(InputError, match="division by zero"), \
            connect(db.dsn("app"), agent_id=b) as s:
        s.rows(probe)  # the same probe in B's own scope does reach the row


def test_a_foreign_key_cannot_probe_for_hidden_agents(db: TestDB, world: World) -> None:
    """Writing another agent's id is refused the same way whether that agent exists or not:
    the insert policy rejects it before the foreign key is checked."""
    a = world.agent_id("A1")
    messages = []
    for other in (world.agent_id("B1"), "agent_doesnotexist"):
        with pytest.raises(IsolationError) as caught, \
                connect(db.dsn("app"), agent_id=a) as s:
            s.execute("insert into runtime_state (agent_id, state_key) values (%s, 'x')",
                      [other])
        messages.append(str(caught.value).replace(other, "<agent>"))
    assert messages[0] == messages[1]


def test_truncate_is_refused_to_every_scoped_role(db: TestDB, rows: tuple[str, str]) -> None:
    """TRUNCATE ignores row-level security, so no scoped role holds it."""
    a, b = rows
    with pytest.raises(IsolationError), connect(db.dsn("app"), agent_id=a) as s:
        s.execute("truncate runtime_state")
    assert _b_rows(db, b) == B_ROWS
    with connect(db.dsn("admin"), admin=True) as adm:
        held = adm.rows("""
            select r.rolname, c.relname, p.privilege
            from pg_class c
            join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
            cross join (values ('maim_app'), ('maim_tenant'), ('maim_admin')) as r(rolname)
            cross join (values ('TRUNCATE'), ('REFERENCES'), ('TRIGGER')) as p(privilege)
            where c.relkind = 'r' and c.relname not like '%%yoyo%%'
              and has_table_privilege(r.rolname, c.oid, p.privilege)""")
    assert held == []


def test_copy_out_is_filtered_like_select(db: TestDB, rows: tuple[str, str]) -> None:
    a, b = rows
    with connect(db.dsn("app"), agent_id=a) as s:
        s.execute("select 1")  # open the scope
        with s.connection.cursor().copy(
                "copy (select agent_id, state_key from runtime_state) to stdout") as copy:
            copied = [tuple(r) for r in copy.rows()]
        assert copied == [(a, "shared")]
        # COPY of the table itself runs as a query under the policy
        with s.connection.cursor().copy(
                "copy runtime_state (agent_id, state_key) to stdout") as copy:
            assert [tuple(r) for r in copy.rows()] == [(a, "shared")]
    # COPY into it is refused outright (the importer goes through a temp table)
    with pytest.raises(DatabaseError, match="nothing was committed"), \
            connect(db.dsn("app"), agent_id=a) as s:
        s.execute("select 1")
        with pytest.raises(psycopg.errors.FeatureNotSupported), \
                s.connection.cursor().copy("copy runtime_state (state_key) from stdin") as copy:
            copy.write_row(("x",))
    assert _b_rows(db, b) == B_ROWS


def test_upsert_on_a_key_another_agent_holds_writes_only_its_own_row(
        db: TestDB, rows: tuple[str, str]) -> None:
    """ON CONFLICT sees only the scope's rows: A's upsert of 'b-only' inserts A's own row and
    cannot touch B's; A's upsert of 'shared' updates A's."""
    a, b = rows
    with connect(db.dsn("app"), agent_id=a) as s:
        mine = s.upsert(RuntimeState(state_key="b-only", state_value="a-new"), on="state_key")
        assert mine.agent_id == a
        s.upsert(RuntimeState(state_key="shared", state_value="a-updated"), on="state_key")
        assert s.rows("select state_key, state_value from runtime_state order by 1") == [
            ("b-only", "a-new"), ("shared", "a-updated")]
    assert _b_rows(db, b) == B_ROWS
    with pytest.raises(ConflictError), connect(db.dsn("app"), agent_id=a) as s:
        s.insert(RuntimeState(state_key="shared"))  # A's own unique key still holds


def test_on_conflict_do_nothing_sees_only_the_scope(db: TestDB, rows: tuple[str, str]) -> None:
    """DO NOTHING cannot be used to learn that another agent holds a key: A's insert of
    'b-only' is written (A has no such row), A's insert of 'shared' is the one skipped."""
    a, b = rows
    with connect(db.dsn("app"), agent_id=a) as s:
        inserted = [s.execute("insert into runtime_state (state_key, state_value) "
                              "values (%s, 'probe') on conflict do nothing", [key])
                    for key in ("b-only", "shared")]
    assert inserted == [1, 0]
    assert _b_rows(db, b) == B_ROWS


def test_a_tenant_setting_in_agent_scope_widens_nothing(db: TestDB, world: World) -> None:
    """maim_app's policies read maim.agent_id only: setting maim.tenant_id to another
    tenant inside agent scope shows no more agents, tenants or rows."""
    a = world.agent_id("A1")
    with connect(db.dsn("app"), agent_id=a) as s:
        s.execute("select set_config('maim.tenant_id', %s, true)", [world.tenant_id("T2")])
        assert [r[0] for r in s.rows("select id from agents")] == [a]
        assert [r[0] for r in s.rows("select id from tenants")] == [world.tenant_id("T1")]


def test_writable_ctes_reach_only_the_scope(db: TestDB, rows: tuple[str, str]) -> None:
    a, b = rows
    with connect(db.dsn("app"), agent_id=a) as s:
        gone = s.rows("with d as (delete from runtime_state returning agent_id, state_key) "
                      "select * from d")
        moved = s.rows("with u as (update runtime_state set state_value = 'x' "
                       "returning agent_id) select count(*) from u")
    assert gone == [(a, "shared")] and moved == [(0,)]
    assert _b_rows(db, b) == B_ROWS


def test_planner_statistics_are_hidden_from_scoped_roles(
        db: TestDB, rows: tuple[str, str]) -> None:
    """pg_stats would show other agents' most common values; PostgreSQL hides the rows of
    tables with RLS from roles that cannot read them all."""
    a, _ = rows
    with psycopg.connect(db.superuser, autocommit=True) as su:
        su.execute("analyze runtime_state")
        assert su.execute("select count(*) from pg_stats "
                          "where tablename = 'runtime_state'").fetchone() != (0,)
    with connect(db.dsn("app"), agent_id=a) as s:
        assert s.scalar("select count(*) from pg_stats where tablename = 'runtime_state'") == 0


def test_extended_statistics_are_hidden_from_scoped_roles(db: TestDB, world: World) -> None:
    """The same for pg_stats_ext: messages carries extended statistics (0007) whose
    most-common (agent_id, chat_id) pairs name other agents' chats."""
    for agent in ("A1", "B1"):
        with connect(db.dsn("app"), agent_id=world.agent_id(agent)) as s:
            s.insert_many([message(i, f"chat-{agent}") for i in range(20)])
    with psycopg.connect(db.superuser, autocommit=True) as su:
        su.execute("analyze messages")
        assert su.execute("select count(*) from pg_stats_ext "
                          "where tablename = 'messages'").fetchone() != (0,)
    for role in ("app", "tenant"):
        scope = ({"agent_id": world.agent_id("A1")} if role == "app"
                 else {"tenant_id": world.tenant_id("T1")})
        with connect(db.dsn(role), **scope) as s:
            assert s.scalar("select count(*) from pg_stats_ext "
                            "where tablename = 'messages'") == 0
            assert s.scalar("select count(*) from pg_stats where tablename = 'messages'") == 0


def test_the_scope_setting_is_trusted_inside_a_transaction(
        db: TestDB, rows: tuple[str, str]) -> None:
    """The boundary's limit, pinned so a change is noticed: code that runs arbitrary SQL in a
    scope can re-set maim.agent_id (docs/concepts.md, "What isolation protects against").
    maim_db itself never does, and nothing it builds from user input can; a service must
    not pass SQL from its callers through ``execute``."""
    a, b = rows
    with connect(db.dsn("app"), agent_id=a) as s:
        s.execute("select set_config('maim.agent_id', %s, true)", [b])
        assert ("b-only",) in s.rows("select state_key from runtime_state")
    with connect(db.dsn("app"), agent_id=a) as s:  # and it ends with the transaction
        assert s.rows("select state_key from runtime_state") == [("shared",)]
