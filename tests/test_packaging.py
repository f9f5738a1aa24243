"""The catalogue lives at the top of the repository (cases/) but is installed as package data:
a wheel built from the repository must carry it, or `pip install llcbench` has no cases."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_the_catalogue_suites_and_reference_table(tmp_path):
    # no build isolation: the test environment already has setuptools (a dev requirement), and
    # CI has no reason to fetch it again
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("llcbench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"llcbench/cases/{p.name}" for p in (ROOT / "cases").glob("*.toml")}
    shipped |= {f"llcbench/cases/suites/{p.name}" for p in (ROOT / "cases" / "suites").glob("*.toml")}
    assert len(shipped) >= 5 and shipped <= names, sorted(shipped - names)
    assert "llcbench/references/data/default.json" in names
    assert "llcbench/cli.py" in names and not any(n.startswith("src/") for n in names)
