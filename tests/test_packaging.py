"""The wheel carries the presets and the JSON Schema, so an installed `fusion` finds them outside a checkout."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_presets(tmp_path):
    pytest.importorskip("hatchling")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("fusioncli-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {Path(n).name for n in names if n.startswith("fusioncli/presets/")}
    assert shipped == {p.name for p in (ROOT / "presets").glob("*.toml")}
    assert "fusioncli/cli/__init__.py" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "fusion = fusioncli._launch:main" in zipfile.ZipFile(wheel).read(entry).decode()
    # the JSON Schema (a non-Python file) ships inside the package, byte for byte
    packaged = zipfile.ZipFile(wheel).read("fusioncli/schema/report.schema.json")
    assert packaged == (ROOT / "fusioncli" / "schema" / "report.schema.json").read_bytes()
    assert json.loads(packaged)["$defs"]["schema_version"]["const"] == 1
