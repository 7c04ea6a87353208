"""An installed wheel can migrate: it carries every migration and every ``sql/`` file,
byte for byte, where ``maim_db.schema.migrate`` looks for them outside a checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_wheel_carries_the_schema(tmp_path: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                            str(tmp_path), str(ROOT)], capture_output=True, text=True,
                           timeout=600)
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("maim_db-*.whl")
    with zipfile.ZipFile(wheel) as z:
        packed = {name: z.read(name) for name in z.namelist()
                  if name.startswith(("maim_db/migrations/", "maim_db/sql/"))}
    expected = {f"maim_db/{path.parent.name}/{path.name}": path.read_bytes()
                for folder in ("migrations", "sql") for path in (ROOT / folder).iterdir()
                if path.is_file()}
    assert sorted(packed) == sorted(expected)
    assert packed == expected
