"""The library API (``llcbench.run``, ``sweep``, ``scores``, ``report``): the same records as the command
line, quiet, light to import, and bad input as a one-line UserError."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import llcbench
from llcbench.cli import main

CASES = ["poly/w1^2", "regular/linear-2x1"]
QUICK_SET = ["steps=400", "burn_in=100", "chains=2"]  # a short run: the test is about plumbing, not accuracy
QUICK = {"steps": 400, "burn_in": 100, "chains": 2}


def test_cli_and_library_give_the_same_records(tmp_path, capsys):
    """Separate stores, so both compute: same keys, same run keys and bit-identical λ̂ (the config
    given as a dict parses to the config of the command's --set texts)."""
    argv = ["run", "--estimator", "sgld", "--db", str(tmp_path / "cli.sqlite"), "--quiet", "--json"]
    for case in CASES:
        argv += ["--case", case]
    for item in QUICK_SET:
        argv += ["--set", item]
    assert main(argv) == 0
    from_cli = json.loads(capsys.readouterr().out)
    from_lib = llcbench.run("sgld", cases=CASES, config=QUICK, db=tmp_path / "lib.sqlite")
    assert [r["case"] for r in from_lib] == CASES and not any(r["cached"] for r in from_lib)
    assert [sorted(r) for r in from_lib] == [sorted(r) for r in from_cli]
    for lib, cli in zip(from_lib, from_cli):
        assert lib["key"] == cli["key"] and lib["lambda_hat"] == cli["lambda_hat"]
        assert {k: v for k, v in lib.items() if k != "seconds"} == {k: v for k, v in cli.items() if k != "seconds"}


def test_the_library_prints_nothing_and_reads_back_from_the_store(tmp_path, capfd):
    db = tmp_path / "r.sqlite"
    first = llcbench.run("sgld", cases=["poly/w1^2"], config=QUICK, db=db)
    again = llcbench.run("sgld", cases=["poly/w1^2"], config=QUICK, db=db, full=True)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # no progress bar, no table, no warning
    assert again[0]["cached"] and again[0]["lambda_hat"] == first[0]["lambda_hat"]
    assert "loss_trace" in again[0] and "loss_trace" not in first[0]  # full=True: the whole record


def test_sweep_scores_and_report(tmp_path):
    db = tmp_path / "r.sqlite"
    points = llcbench.sweep("sgld", cases=["poly/w1^2"], grid={"step_scale": [0.1, 0.2]}, config=QUICK, db=db)
    assert [p["step_scale"] for p in points] == ["0.1", "0.2"] and [p["runs"] for p in points] == [1, 1]
    assert points.axes == ["step_scale"] and points.runs == 2
    scores = llcbench.scores(db)
    assert scores["runs"] == 2 and scores["leaderboard"]
    html = llcbench.report(db, tmp_path / "rep")
    assert html == tmp_path / "rep" / "index.html" and html.is_file()
    assert json.loads((html.parent / "scores.json").read_text())["runs"] == 2


def test_report_is_callable_after_its_package_is_imported(tmp_path):
    """``llcbench.report`` is also a subpackage: once imported it sits in that name, and calling it
    must still write the report."""
    import llcbench.report.figures  # noqa: F401

    with pytest.raises(llcbench.UserError, match="no store there"):
        llcbench.report(tmp_path / "missing.sqlite")


def test_bad_input_is_a_user_error():
    with pytest.raises(llcbench.UserError, match="no such case"):
        llcbench.run("sgld", cases=["no/such/case"])
    with pytest.raises(llcbench.UserError, match="--seeds 0: must be >= 1"):
        llcbench.run("sgld", cases=["poly/w1^2"], seeds=0)
    with pytest.raises(llcbench.UserError, match="unknown field"):
        llcbench.run("sgld", cases=["poly/w1^2"], config={"no_such_field": 1})


def test_import_llcbench_is_light():
    """``import llcbench`` loads neither torch nor the catalogue: the API loads on first use."""
    code = "import sys, llcbench; print(sorted(m for m in ('torch', 'llcbench.api', 'llcbench.catalogue') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
