"""The out-of-sample suite (``--suite holdout``): generated reproducibly, disjoint from the catalogue,
and the SG-MCMC defaults' accuracy on it. The suite is never used to tune anything."""

import importlib.util
import json
import statistics
from pathlib import Path

import pytest

from llcbench.catalogue import build_target, case_truth, load_catalogue, load_file, suite_file, suite_names

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = {"dln", "rrr", "polynomial", "regular"}


def _script():
    spec = importlib.util.spec_from_file_location("make_holdout", ROOT / "scripts" / "make_holdout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _definition(case):
    d = dict(case.definition())
    d.pop("id")
    return json.dumps(d, sort_keys=True)


def test_holdout_file_is_the_script_output():
    """The committed file is exactly what the script writes from its fixed seed (rerun the script
    after changing it; never edit the file by hand)."""
    assert _script().render() == suite_file("holdout").read_text(encoding="utf-8")


def test_holdout_suite_loads_and_is_disjoint_from_the_catalogue():
    assert "holdout" in suite_names()
    cases = load_file(suite_file("holdout"))
    assert len(cases) >= 24
    assert {c.family for c in cases} == FAMILIES
    catalogue = load_catalogue()
    assert not {c.id for c in cases} & {c.id for c in catalogue}
    assert not {_definition(c) for c in cases} & {_definition(c) for c in catalogue}
    for case in cases:
        assert case_truth(case).kind == "exact"  # also cross-checks expect_lambda / expect_multiplicity
        assert build_target(case).dim <= 200


def test_suite_flag_replaces_the_builtin_catalogue(cli):
    holdout = json.loads(cli("cases", "--suite", "holdout", "--json").stdout)
    assert holdout and all(r["id"].startswith("holdout/") for r in holdout)
    builtin = json.loads(cli("cases", "--json").stdout)
    assert not any(r["id"].startswith("holdout/") for r in builtin)
    bad = cli("cases", "--suite", "nope")
    assert bad.returncode == 2 and "--suite nope: unknown suite" in bad.stderr


# Median |rel.err| the sgld defaults must reach on the holdout suite: the catalogue's own bar
# (test_run.py::test_sgld_catalogue_accuracy), so that the claim "within 10 % (median)" is held out of
# sample too. Measured with llcbench 0.3.0 (seed 0, one thread; the runs are bit-identical, so the
# measurement repeats exactly): median 2.9 %, worst 23.2 % (holdout/dln/6-2-1-2-4/r0, m = 2); per
# family dln 2.7 %, polynomial 4.1 %, regular 3.0 %, rrr 2.1 %. Re-measure (-s prints the numbers)
# and adjust here when the estimator changes; never change a default to pass it.
HOLDOUT_MEDIAN_BOUND = 0.10


@pytest.mark.slow
def test_sgld_holdout_accuracy(cli, tmp_path):
    """The defaults out of sample, end to end through the CLI: `llcbench run --estimator sgld
    --suite holdout`. Prints the median, worst and per-family median |rel.err| (run with -s).
    ≈ 30 s: `python -m pytest -m slow -k holdout -s`."""
    proc = cli("run", "--estimator", "sgld", "--suite", "holdout", "--db", tmp_path / "r.sqlite", "--quiet",
               "--json", timeout=3600)
    assert proc.returncode == 0, proc.stderr
    records = json.loads(proc.stdout)
    cases = {c.id: c for c in load_file(suite_file("holdout"))}
    assert len(records) == len(cases)
    errs = {r["case"]: abs(r["rel_error"]) for r in records}
    median = statistics.median(errs.values())
    per_family = {f: statistics.median(e for cid, e in errs.items() if cases[cid].family == f)
                  for f in sorted(FAMILIES)}
    worst = max(errs, key=errs.get)
    print(f"\nholdout sgld: median |rel.err| {median:.1%}, worst {errs[worst]:.1%} ({worst}); per family "
          + ", ".join(f"{f} {m:.1%}" for f, m in per_family.items())
          + f"; {sum(r['seconds'] for r in records):.0f} s of sampling")
    for r in records:
        print(f"  {r['case']:<45} λ = {r['lambda']:<5} λ̂ = {r['lambda_hat']:.4g}  {r['rel_error']:+.1%}")
    assert median <= HOLDOUT_MEDIAN_BOUND, (median, per_family)
