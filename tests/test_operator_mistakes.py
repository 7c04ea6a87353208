"""What a new operator trips over (issue 14): everyday mistakes get one line that says what
is wrong with the value given, and change nothing; ids are never cut off."""

from __future__ import annotations

import json

import pytest

from maim_db import (
    ConflictError,
    InputError,
    IsolationError,
    NotFoundError,
    UnknownAgentError,
    UnknownTenantError,
    connect,
)
from maim_db.control import tenancy
from maim_db.tables import Agent, Tenant
from tests.cli import in_process, maimdb, one_line_error
from tests.databases import TestDB, World


def _counts(db: TestDB) -> tuple[int, ...]:
    with connect(db.dsn("admin"), admin=True) as adm:
        return tuple(int(adm.scalar(f"select count(*) from {t}"))
                     for t in ("users", "tenants", "agents", "api_keys"))


@pytest.mark.parametrize(("args", "says"), [
    (("tenant", "create", ""), "tenant name must not be empty or only spaces, got ''"),
    (("tenant", "create", "   "), "tenant name must not be empty or only spaces"),
    (("tenant", "create", "\n\n"), "tenant name must not be empty or only spaces"),
    (("tenant", "create", "x" * 101), "tenant name is 101 characters long; the limit is 100"),
    (("tenant", "create", "a\tb"), "tenant name must not contain control characters"),
    (("tenant", "create", "x", "--owner", "user_000000000000"),
     "no such user user_000000000000"),
    (("agent", "create", " ", "--tenant", "{T1}"), "agent name must not be empty"),
    (("agent", "create", "y" * 101, "--tenant", "{T1}"), "the limit is 100"),
    (("agent", "create", "bot A1", "--tenant", "{T1}"),
     "tenant {T1} already has an agent named 'bot A1'"),
    (("agent", "create", "bot", "--tenant", "tenant_000000000000"),
     "no such tenant tenant_000000000000"),
    (("agent", "rename", "{A1}", ""), "agent name must not be empty"),
    (("agent", "rename", "agent_000000000000", "x"), "no such agent agent_000000000000"),
    (("tenant", "rename", "tenant_000000000000", "x"), "no such tenant tenant_000000000000"),
    (("key", "revoke", "key_000000000000"), "no such API key key_000000000000"),
    (("key", "create", "", "--agent", "{A1}"), "key name must not be empty"),
    (("user", "create", " \n"), "username must not be empty or only spaces"),
    (("user", "create", "{U1}"), "a user with username '{U1}' already exists"),
    (("user", "create", "carol", "--email", "carol"), "email must look like name@host"),
])
def test_everyday_mistakes_are_one_line_and_change_nothing(db: TestDB, world: World,
                                                          args: tuple[str, ...],
                                                          says: str) -> None:
    ids = {"{T1}": world.tenant_id("T1"), "{A1}": world.agent_id("A1"),
           "{U1}": world.users["U1"].username}
    args = tuple(ids.get(a, a) for a in args)
    for k, v in ids.items():
        says = says.replace(k, v)
    before = _counts(db)
    extra = () if args[1] == "revoke" else ("--json",)
    line = one_line_error(maimdb(*args, *extra, dsn=db.dsn("admin")))
    assert says in line, line
    assert "constraint" not in line and "violates" not in line
    assert _counts(db) == before


@pytest.mark.parametrize("command", [
    ("export", "--agent", "agent_000000000000", "--out", "{tmp}/x"),
    ("erase", "--agent", "agent_000000000000", "--yes"),
])
def test_a_mistyped_agent_is_no_such_agent(db: TestDB, world: World, secret_key: str,
                                           command: tuple[str, ...], tmp_path: object) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    line = one_line_error(maimdb(*args, dsn=db.dsn("app")))
    assert "no such agent agent_000000000000" in line and "isolation" not in line


def test_not_found_has_one_wording(db: TestDB, world: World) -> None:
    """From the library: every lookup that finds nothing says `no such <thing> <what>`."""
    with connect(db.dsn("admin"), admin=True) as adm:
        for call, says in [
            (lambda: adm.get(Agent, "agent_000000000000"), "no such agent agent_000000000000"),
            (lambda: adm.get(Tenant, "tenant_000000000000"), "no such tenant tenant_0000"),
            (lambda: adm.fetch_one(Agent, "select * from agents where false"),
             "no such agent in scope admin"),
            (lambda: adm.scalar("select 1 where false"), "no such row in scope admin"),
            (lambda: tenancy.delete_agent(adm, "agent_000000000000"), "no such agent agent_0"),
            (lambda: tenancy.rename_tenant(adm, "tenant_000000000000", "x"),
             "no such tenant tenant_0"),
        ]:
            with pytest.raises(NotFoundError, match=says) as info:
                call()
            assert "{" not in str(info.value)  # no Python dict repr
    with pytest.raises(UnknownAgentError, match="no such agent") as raised, connect(
            db.dsn("app"), agent_id="agent_000000000000") as app:
        app.find(Agent)
    assert isinstance(raised.value, IsolationError)  # refused by the database, as before
    # a mistyped tenant: refused when the scope opens (maim.open_tenant_scope), not a tenant
    # scope that silently sees nothing
    with pytest.raises(UnknownTenantError, match="no such tenant tenant_0") as missing, connect(
            db.dsn("tenant"), tenant_id="tenant_000000000000") as ten:
        ten.find(Agent)
    assert isinstance(missing.value, IsolationError)
    with connect(db.dsn("tenant"), tenant_id=world.tenant_id("T1")) as ten:  # and a real one
        assert len(ten.find(Agent)) == 2


def test_raw_constraint_errors_are_in_words(db: TestDB, world: World) -> None:
    """Past the control-plane functions (a service inserting rows itself) a violation still
    says what is wrong; the constraint's name stays on the error for code."""
    with pytest.raises(ConflictError) as dup, connect(db.dsn("admin"), admin=True) as adm:
        adm.insert(Agent(id="agent_dup000000000", tenant_id=world.tenant_id("T1"),
                         name="bot A1"))
    assert "already exists" in str(dup.value) and "constraint" not in str(dup.value)
    assert dup.value.constraint == "agents_tenant_id_name_key"
    with pytest.raises(ConflictError) as orphan, connect(db.dsn("admin"), admin=True) as adm:
        adm.insert(Agent(id="agent_orphan000000", tenant_id="tenant_000000000000", name="x"))
    assert str(orphan.value).startswith("no such tenant")


@pytest.mark.parametrize("columns", [80, 60])
def test_ids_are_never_cut_off(db: TestDB, world: World, columns: int) -> None:
    for args in (("tenant", "list"), ("agent", "list"), ("key", "list")):
        listed = maimdb(*args, dsn=db.dsn("admin"), columns=columns)
        assert listed.returncode == 0, listed.stderr
        assert "…" not in "".join(line for line in listed.stdout.splitlines()
                                  if "_" in line and "│" in line).split("│")[1]
        for agent in world.agents.values():
            if args[0] != "tenant":
                assert agent.id in listed.stdout
        for tenant in world.tenants.values():
            if args[0] != "key":
                assert tenant.id in listed.stdout
    shown = json.loads(maimdb("agent", "show", world.agent_id("A1"), "--json",
                              dsn=db.dsn("admin")).stdout)
    assert set(Agent.model_fields) <= set(shown)


def test_agent_show_shows_every_field_and_list_names_its_statuses(db: TestDB,
                                                                  world: World) -> None:
    shown = maimdb("agent", "show", world.agent_id("A1"), dsn=db.dsn("admin"))
    assert shown.returncode == 0, shown.stderr
    for field in Agent.model_fields:
        assert f"│ {field} " in shown.stdout
    assert "active|inactive|suspended|archived" in maimdb("agent", "list", "--help").stdout
    assert "active|inactive|suspended" in maimdb("tenant", "list", "--help").stdout


def test_key_check_reads_a_piped_key_quietly(db: TestDB, world: World) -> None:
    issued = json.loads(maimdb("key", "create", "piped", "--agent", world.agent_id("A1"),
                               "--json", dsn=db.dsn("admin")).stdout)
    checked = maimdb("key", "check", "--json", dsn=db.dsn("admin"),
                     stdin=issued["secret"] + "\n")
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["agent_id"] == world.agent_id("A1")  # stdout: JSON only
    assert checked.stderr == ""  # no prompt, no "cannot control echo" warning


def test_reports_list_only_tables_with_rows_unless_all(db: TestDB, world: World) -> None:
    from tests.samples import message

    a1 = world.agent_id("A1")
    with connect(db.dsn("app"), agent_id=a1) as app:
        app.insert_many([message(n) for n in range(3)])
    app_dsn = db.dsn("app")
    erased = maimdb("erase", "--agent", a1, "--yes", dsn=app_dsn, columns=200)
    assert erased.returncode == 0, erased.stderr
    assert "│ messages " in erased.stdout
    tables = json.loads(maimdb("erase", "--agent", a1, "--yes", "--all", "--json",
                               dsn=app_dsn).stdout)["tables"]
    assert len(tables) > 5 and not any(tables.values())
    empty = maimdb("erase", "--agent", a1, "--yes", dsn=app_dsn, columns=200).stdout
    assert not [t for t in tables if f"│ {t} " in empty]
    every = maimdb("erase", "--agent", a1, "--yes", "--all", dsn=app_dsn, columns=200).stdout
    assert all(f"│ {t} " in every for t in tables)


def _command_paths() -> list[tuple[str, ...]]:
    """Every command and group of `maimdb`, as the words that reach it."""
    import typer

    from maim_db.cli.main import app

    paths: list[tuple[str, ...]] = [()]

    def walk(group: object, prefix: tuple[str, ...]) -> None:
        for name, sub in getattr(group, "commands", {}).items():
            paths.append((*prefix, name))
            walk(sub, (*prefix, name))
    walk(typer.main.get_command(app), ())
    return paths


def test_help_shows_flags_without_a_type() -> None:
    """`--yes` takes no value, so its help says none (typer printed `<bool>`); options that
    take one still show it. Every command in process; the installed script once below."""
    paths = _command_paths()
    assert ("rollback",) in paths and ("db", "psql") in paths and len(paths) > 30
    helps = {path: in_process(*path, "--help", columns=120) for path in paths}
    for path, shown in helps.items():
        assert shown.returncode == 0, (path, shown.stderr)
        assert "<bool>" not in shown.stdout, path
        assert "--help" in shown.stdout, path
    assert "--steps" in helps[("rollback",)].stdout
    assert "<int range>" in helps[("rollback",)].stdout  # a value still shows its type


def test_the_installed_script_prints_the_same_help() -> None:
    """The console script renders help as the in-process runner above does."""
    shown = maimdb("rollback", "--help", columns=120)
    assert shown.returncode == 0, shown.stderr
    assert "<bool>" not in shown.stdout and "--help" in shown.stdout
    assert "--steps" in shown.stdout and "<int range>" in shown.stdout
    assert shown.stdout == in_process("rollback", "--help", columns=120).stdout


@pytest.mark.fresh_db  # a fixed username; counts users
def test_users_made_here_own_tenants_and_have_no_password(db: TestDB, world: World) -> None:
    """`tenant create --owner` needs a user to name: `maimdb user create` makes one."""
    made = maimdb("user", "create", "carol", "--email", "carol@example.com", "--json",
                  dsn=db.dsn("admin"))
    assert made.returncode == 0, made.stderr
    user = json.loads(made.stdout)
    assert user["username"] == "carol" and "hashed_password" not in user
    owned = json.loads(maimdb("tenant", "create", "carol's bots", "--owner", user["id"],
                              "--json", dsn=db.dsn("admin")).stdout)
    assert owned["owner_id"] == user["id"]
    listed = json.loads(maimdb("tenant", "list", "--owner", user["id"], "--json",
                               dsn=db.dsn("admin")).stdout)
    assert [t["id"] for t in listed["items"]] == [owned["id"]]
    with connect(db.dsn("admin"), admin=True) as adm:
        assert adm.scalar("select hashed_password from users where id = %s",
                          [user["id"]]) == tenancy.NO_PASSWORD
    users = json.loads(maimdb("user", "list", "--json", dsn=db.dsn("admin")).stdout)
    assert users["total"] == 3 and users["items"][0]["id"] == user["id"]
    refused = one_line_error(maimdb("user", "create", "dave", "--email", "carol@example.com",
                                    dsn=db.dsn("admin")))
    assert "a user with email 'carol@example.com' already exists" in refused


@pytest.mark.parametrize("name", ["   ", "\n\n", "\u3000 x\u0085", "a\tb", "tab\x1b[31m"])
def test_the_database_refuses_names_without_text_from_raw_sql(db: TestDB, world: World,
                                                              name: str) -> None:
    """Past `check_name` (psql, a service's own SQL) migration 0015's checks hold: a name
    needs a character that is not white space and no control characters; the message is in
    words, the constraint's name on `.constraint`."""
    t1 = world.tenant_id("T1")
    for table, column, noun, where in [
            ("tenants", "tenant_name", "tenant name", ("id", t1)),
            ("agents", "name", "agent name", ("id", world.agent_id("A1"))),
            ("users", "username", "username", ("id", world.users["U1"].id)),
            ("api_keys", "name", "API key name", ("agent_id", world.agent_id("A1")))]:
        before = _counts(db)
        with pytest.raises(InputError) as refused, connect(db.dsn("admin"), admin=True) as adm:
            adm.execute(f"update {table} set {column} = %s where {where[0]} = %s",
                        [name, where[1]])
        assert str(refused.value).startswith(f"{noun} must be 1 to 100 characters, not only "
                                             "white space"), refused.value
        assert refused.value.constraint == f"{table}_{column}_check1"
        assert _counts(db) == before
    with connect(db.dsn("admin"), admin=True) as adm:  # a name with text still goes in
        adm.execute("update tenants set tenant_name = %s where id = %s", [" 麦麦 的 bots ", t1])
        assert adm.get(Tenant, t1).tenant_name == " 麦麦 的 bots "


def test_old_names_without_text_do_not_stop_the_migration(empty_db: TestDB,
                                                           tmp_path: object) -> None:
    import shutil
    from pathlib import Path

    import psycopg

    from maim_db.schema import migrate
    from maim_db.schema.migrate import MIGRATIONS_DIR

    before = Path(str(tmp_path)) / "migrations"
    shutil.copytree(MIGRATIONS_DIR, before, ignore=shutil.ignore_patterns("0015_*"))
    migrate.migrate(empty_db.superuser, migrations_dir=before)
    with psycopg.connect(empty_db.superuser, autocommit=True) as conn:
        conn.execute("insert into tenants (id, tenant_name) values ('tenant_blank00000', '  ')")
    assert [m.id for m in migrate.migrate(empty_db.superuser)] == ["0015_names_with_text"]
    with psycopg.connect(empty_db.superuser) as conn:
        assert conn.execute("select tenant_name from tenants").fetchall() == [("  ",)]
