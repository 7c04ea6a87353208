"""Every change that lands is a release (docs/conventions.md#releases): one version, in
``maim_db/version.py``; a CHANGELOG entry for it; and a new one whenever the schema or the
public names change. ``python -m tests.test_release --write`` rewrites the public-names list.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import maim_db
from maim_db.schema.migrate import load
from maim_db.version import __version__
from tests.cli import maimdb

ROOT = Path(__file__).resolve().parent.parent
NAMES = ROOT / "tests" / "public_names.txt"
CHANGELOG = ROOT / "CHANGELOG.md"
FLOORS = ROOT / ".ci" / "floors.txt"
# `## 0.2.0 — 2026-12-07`: one heading per release, newest first.
HEADING = re.compile(r"^## (\S+) — (\d{4}-\d{2}-\d{2})$", re.M)


def public_names() -> list[str]:
    """``module:name`` for every public name a service may import: a module's ``__all__``
    where it has one, else the public classes and functions it defines. The CLI is a
    command, not an API; ``_private`` modules are nobody's."""
    names: set[str] = set()
    for info in pkgutil.walk_packages(maim_db.__path__, "maim_db."):
        if info.name.startswith("maim_db.cli") or any(
                part.startswith("_") for part in info.name.split(".")):
            continue
        module = importlib.import_module(info.name)
        exported = getattr(module, "__all__", None)
        if exported is None:
            exported = [n for n, v in vars(module).items() if not n.startswith("_")
                        and (inspect.isclass(v) or inspect.isfunction(v))
                        and v.__module__ == info.name]
        names.update(f"{info.name}:{n}" for n in exported)
    return sorted(names)


def test_the_public_names_list_is_current() -> None:
    assert NAMES.read_text(encoding="utf-8").splitlines() == public_names(), (
        "the public names changed: run `python -m tests.test_release --write`, and raise the "
        "version (docs/conventions.md#releases)")


def test_the_newest_changelog_entry_is_this_version_and_names_its_schema() -> None:
    text = CHANGELOG.read_text(encoding="utf-8")
    versions = [Version(v) for v, _ in HEADING.findall(text)]
    assert versions and str(versions[0]) == __version__ == str(Version(__version__))
    assert versions == sorted(versions, reverse=True) and len(set(versions)) == len(versions)
    newest = text[HEADING.search(text).end():]  # type: ignore[union-attr]
    newest = newest[:m.start()] if (m := HEADING.search(newest)) else newest
    assert f"Schema: {load()[-1].id}" in newest, "the entry names the newest migration"


def test_every_runtime_floor_is_the_version_ci_pins() -> None:
    """The floors CI installs (.ci/floors.txt) are the declared ones, for every dependency
    and the extras of the Peewee bridge, the SQLAlchemy engines and the SQLModel tables: a
    floor raised or lowered in one place only fails here."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {}
    extras = project["optional-dependencies"]
    for text in [*project["dependencies"], *extras["peewee"], *extras["sqlalchemy"],
                 *extras["sqlmodel"]]:
        req = Requirement(text)
        (floor,) = [s.version for s in req.specifier if s.operator == ">="]
        declared[req.name] = Version(floor)
    pinned = {name: Version(v) for line in FLOORS.read_text(encoding="utf-8").splitlines()
              if line and not line.startswith("#") for name, v in [line.split("==")]}
    assert pinned.pop("psycopg-binary") == pinned["psycopg"]  # psycopg[binary]'s own pin
    assert pinned == declared


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_no_migration_or_public_name_changed_since_the_version_was_raised() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (an sdist): the rule is checked where the code is made")
    if _git("rev-parse", "--is-shallow-repository") == "true":
        pytest.skip("a shallow clone has not the commit that raised the version")
    if f'__version__ = "{__version__}"' not in _git("show", "HEAD:maim_db/version.py"):
        return  # being raised in the working tree: whatever changed is in this release
    # Along main's own line: a merge commit counts with what it brought in.
    raised = _git("log", "-1", "--first-parent", "--diff-merges=first-parent", "--no-patch",
                  "--format=%H",
                  "-G^__version__ = ", "--", "maim_db/version.py")
    assert raised, "maim_db/version.py has never set __version__"
    changed = _git("diff", "--name-only", raised, "--", "migrations", "sql",
                   str(NAMES.relative_to(ROOT))).split()
    untracked = _git("ls-files", "--others", "--exclude-standard", "--", "migrations",
                     "sql").split()
    assert not changed + untracked, (
        f"{', '.join(changed + untracked)} changed since {__version__} was set "
        f"({raised[:10]}): raise the version in maim_db/version.py and add its CHANGELOG "
        "entry (docs/conventions.md#releases)")


def test_no_migration_a_release_shipped_was_edited() -> None:
    """A database keeps the checksum of every migration it applied, rollback file included
    (maim_db/schema/migrate.py), and `maimdb migrate` refuses to run where one differs. So a
    migration the previous release shipped, or its rollback, must be byte for byte what it
    was, or every deployment that applied it stops migrating (found in issue 36's review: an
    edit to 0019's rollback)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (an sdist): the rule is checked where the code is made")
    if _git("rev-parse", "--is-shallow-repository") == "true":
        pytest.skip("a shallow clone has not the previous release's commit")
    releases = _git("log", "--first-parent", "--diff-merges=first-parent", "--no-patch",
                    "--format=%H",
                    "-G^__version__ = ", "--", "maim_db/version.py").split()
    previous = next((c for c in releases if f'__version__ = "{__version__}"'
                     not in _git("show", f"{c}:maim_db/version.py")), None)
    if previous is None:
        pytest.skip("no earlier release on this line")
    shipped = _git("ls-tree", "--name-only", previous, "migrations/").split()
    edited = [path for path in shipped
              if not (ROOT / path).exists()
              or _git("hash-object", str(ROOT / path)) != _git("rev-parse", f"{previous}:{path}")]
    assert not edited, (f"{', '.join(edited)} shipped in {previous[:10]} and changed since: "
                        "restore them and fix forward with a new migration")


@pytest.mark.slow
def test_version_names_the_release_and_its_newest_migration() -> None:
    ran = maimdb("--version")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == f"maimdb {__version__} (schema {load()[-1].id})"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        NAMES.write_text("".join(f"{n}\n" for n in public_names()), encoding="utf-8")
    else:
        sys.exit("usage: python -m tests.test_release --write")


def test_names_the_handle_module_used_to_re_export_still_import_with_a_warning() -> None:
    """maim_db.handle lists only what it defines; code that imported a type alias or
    ``not_found`` from it keeps working, told where the name lives."""
    from maim_db import errors, pipeline

    with pytest.warns(DeprecationWarning, match="from maim_db.pipeline"):
        from maim_db.handle import Params
    assert Params is pipeline.Params
    with pytest.warns(DeprecationWarning, match="from maim_db.errors"):
        from maim_db.handle import not_found
    assert not_found is errors.not_found
    with pytest.raises(ImportError):
        from maim_db.handle import nothing_here  # noqa: F401
