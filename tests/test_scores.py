"""The score package: bias, ordinality, calibration, sensitivity over sweeps, versions kept apart, and
scores.json against its documented schema (docs/scores.md)."""

import json
import math
import re
from pathlib import Path

import pytest

from llcbench.errors import UserError
from llcbench.score import build_scores
from llcbench.store import Store
from synthetic_records import BASE_CONFIG, record, sweep_records

ROOT = Path(__file__).resolve().parents[1]


def fill(path, records):
    store = Store(path)
    for r in records:
        store.put(r)
    return store


def group(scores, estimator="sgld"):
    return next(g for g in scores["groups"] if g["estimator"] == estimator and g["headline"])


# ----------------------------------------------------------------- the schema page
def parse_schema(text):
    """{object name: {field: type}} from the tables under the '### `name`' headings of docs/scores.md."""
    objects, current = {}, None
    for line in text.splitlines():
        m = re.match(r"^### `(\w+)`", line)
        if m:
            current = objects.setdefault(m.group(1), {})
            continue
        m = re.match(r"^\| `(\w+)` \| ([^|]+) \|", line)
        if m and current is not None:
            current[m.group(1)] = m.group(2).strip()
    return objects


def check(value, typ, objects, where):
    if typ.endswith("?"):
        if value is None:
            return
        typ = typ[:-1]
    if typ.startswith("list of "):
        assert isinstance(value, list), where
        for i, v in enumerate(value):
            check(v, typ[8:], objects, f"{where}[{i}]")
    elif typ.startswith("map of "):
        assert isinstance(value, dict), where
        for k, v in value.items():
            check(v, typ[7:], objects, f"{where}.{k}")
    elif typ == "any":
        pass
    elif typ == "string":
        assert isinstance(value, str), (where, value)
    elif typ == "boolean":
        assert isinstance(value, bool), (where, value)
    elif typ == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), (where, value)
    elif typ == "number":
        assert isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), (where, value)
    else:
        assert typ in objects, f"{where}: type {typ!r} is not an object of docs/scores.md"
        assert isinstance(value, dict), (where, value)
        fields = objects[typ]
        assert set(value) == set(fields), (where, sorted(set(value) ^ set(fields)))
        for k, t in fields.items():
            check(value[k], t, objects, f"{where}.{k}")


def test_scores_json_matches_the_documented_schema(tmp_path):
    recs = sweep_records(seeds=2)
    recs.append(record("syn/theory", "modular", 3.0, "sgld", dict(BASE_CONFIG), 0, 2.5, truth_kind="theory"))
    recs.append(record("syn/old", "dln", 3.0, "sgld", dict(BASE_CONFIG), 0, 2.5, version="0.1.0"))
    with fill(tmp_path / "s.sqlite", recs) as store:
        scores = build_scores(store)
    objects = parse_schema((ROOT / "docs" / "scores.md").read_text())
    assert {"document", "group", "block", "sweep"} <= set(objects)
    doc = json.loads(json.dumps(scores, allow_nan=False))  # what scores.json holds
    check(doc, "document", objects, "scores")
    # the blocks the issue asks for, per estimator × config: overall and per family
    for g in doc["groups"]:
        for block in [g["overall"], *g["families"].values()]:
            for key in ("median_abs_rel_error", "kendall_tau", "coverage_truth", "coverage_reference", "runs"):
                assert key in block


def test_schema_check_fails_on_an_undocumented_field(tmp_path):
    with fill(tmp_path / "s.sqlite", sweep_records(seeds=1, estimators=("sgld",))) as store:
        scores = build_scores(store)
    scores["groups"][0]["overall"]["surprise"] = 1
    with pytest.raises(AssertionError):
        check(scores, "document", parse_schema((ROOT / "docs" / "scores.md").read_text()), "scores")


# ------------------------------------------------------------------- bias, order, calibration
def small_store(path):
    """Five cases of one family with chosen λ̂ (two seeds each) and one exact reference."""
    c = dict(BASE_CONFIG)
    recs = []
    for seed, noise in ((0, -0.01), (1, 0.01)):
        recs += [
            record("p/a", "polynomial", 0.5, "sgld", c, seed, 0.5 * (1.02 + noise), se=0.01),  # +2 %
            record("p/b", "polynomial", 1.0, "sgld", c, seed, 1.0 * (0.92 + noise), se=0.01),  # -8 %
            record("p/c", "polynomial", 1.5, "sgld", c, seed, 1.5 * (1.20 + noise), se=0.01),  # +20 %
            # λ = 2 but λ̂ below c's: the pair (c, d) is in the wrong order
            record("p/d", "polynomial", 2.0, "sgld", c, seed, 2.0 * (0.85 + noise), se=0.2,
                   lambda_ref=1.9),
            record("p/e", "polynomial", 4.0, "sgld", c, seed, 4.0 * (1.0 + noise), se=0.2),
        ]
    return fill(path, recs)


def test_bias_ordinality_calibration(tmp_path):
    with small_store(tmp_path / "s.sqlite") as store:
        scores = build_scores(store)
    g = group(scores)
    o = g["overall"]
    assert o["runs"] == 10 and o["cases"] == 5
    assert o["median_abs_rel_error"] == pytest.approx(0.08)
    assert o["within_5pct"] == pytest.approx(2 / 5) and o["within_10pct"] == pytest.approx(3 / 5)
    assert o["worst"]["case"] == "p/c" and o["worst"]["rel_error"] == pytest.approx(0.20)
    row = {r["case"]: r for r in g["cases"]}
    assert row["p/d"]["estimand_rel"] == pytest.approx(-0.05) and row["p/d"]["sampler_rel"] == pytest.approx(-0.10)
    assert o["cases_with_reference"] == 1
    assert o["violated_pairs"] == [["p/c", "p/d"]]
    assert o["pairs"] == 10 and o["pairwise_accuracy"] == pytest.approx(0.9)
    assert o["kendall_tau"] == pytest.approx(0.8)  # 9 concordant, 1 discordant of 10
    assert o["spearman_rho"] == pytest.approx(0.9)
    assert g["families"]["polynomial"]["kendall_tau"] == pytest.approx(0.8)
    # coverage of λ (2 se): p/a is 1 % and 3 % of λ off (2 se = 4 %), p/d 0.32 and 0.28 off (2 se = 0.4),
    # p/e 0.04 off: 6 of 10 runs; p/b and p/c are many se off
    assert o["coverage_truth"] == pytest.approx(6 / 10)
    # against the reference 1.9 (se hypot(0.2, 0)): |1.68 - 1.9| = 0.22 and |1.72 - 1.9| = 0.18 ≤ 0.4
    assert o["coverage_reference"] == pytest.approx(1.0) and o["coverage_reference_runs"] == 2
    # seed spread: λ̂ ± 0.01·λ around the mean: sd = 0.01·λ·√2; over mean se 0.01 (λ ≤ 1.5) or 0.2
    ratios = sorted([0.005 * 2 ** 0.5 / 0.01, 0.01 * 2 ** 0.5 / 0.01, 0.015 * 2 ** 0.5 / 0.01,
                     0.02 * 2 ** 0.5 / 0.2, 0.04 * 2 ** 0.5 / 0.2])
    assert o["seed_spread_ratio"] == pytest.approx(ratios[2])


def test_theory_cases_apart_and_versions_apart(tmp_path):
    c = dict(BASE_CONFIG)
    recs = [record("p/a", "polynomial", 0.5, "sgld", c, 0, 0.5),
            record("p/b", "polynomial", 1.0, "sgld", c, 0, 1.1),
            record("m/x", "modular", 7.0, "sgld", c, 0, 70.0, truth_kind="theory"),
            record("p/a", "polynomial", 0.5, "sgld", c, 0, 5.0, version="0.2.9"),
            record("p/a", "polynomial", 0.5, "sgld", c, 1, 5.0, version="0.10.0")]
    with fill(tmp_path / "s.sqlite", recs) as store:
        newest = build_scores(store)
        older = build_scores(store, version="0.3.0")
    assert newest["llcbench_version"] == "0.10.0"  # numerically newest, not lexically
    assert set(newest["other_versions"]) == {"0.3.0", "0.2.9"}
    g = group(older)
    assert older["other_versions"]["0.10.0"]["runs"] == 1
    assert [r["case"] for r in g["apart"]] == ["m/x"]
    assert g["overall"]["cases"] == 2 and g["overall"]["median_abs_rel_error"] == pytest.approx(0.05)


def test_a_stored_reference_run_decomposes_the_error(tmp_path):
    """A reference added to the store after the run is used (the same look-up as `llcbench run`)."""
    c = dict(BASE_CONFIG)
    run = record("d/x", "dln", 2.0, "sgld", c, 0, 1.6, se=0.02)
    ref = record("d/x", "dln", 2.0, "exact", {"nbeta": None}, 0, 1.7, se=0.0)
    ref["extra"] = dict(run["extra"])
    with fill(tmp_path / "s.sqlite", [run, ref]) as store:
        scores = build_scores(store, ["sgld"])
    row = group(scores)["cases"][0]
    assert row["lambda_ref"] == pytest.approx(1.7) and row["reference"].startswith("exact")
    assert row["estimand_rel"] == pytest.approx(-0.15) and row["sampler_rel"] == pytest.approx(-0.05)


def test_bad_input_is_a_user_error(tmp_path):
    with Store(tmp_path / "empty.sqlite") as store:
        with pytest.raises(UserError, match="no runs"):
            build_scores(store)
    with small_store(tmp_path / "s.sqlite") as store:
        with pytest.raises(UserError, match="--estimator nope"):
            build_scores(store, ["nope"])
        with pytest.raises(UserError, match="version 9.9"):
            build_scores(store, version="9.9")


# ------------------------------------------------------------------------- sensitivity
def test_sensitivity_stable_region_and_recommendation(tmp_path):
    """A 3 × 2 grid: step_scale 0.05 is too small for 'a', 0.8 diverges on 'b'; only 0.2 is stable."""
    recs = []
    for step in (0.05, 0.2, 0.8):
        for gs in (1e-3, 1e-2):
            c = dict(BASE_CONFIG, step_scale=step, gamma_scale=gs)
            good = 1.0 + (0.02 if gs == 1e-2 else 0.01)
            recs.append(record("f/a", "polynomial", 1.0, "sgld", c, 0, 0.8 if step == 0.05 else good))
            recs.append(record("f/b", "polynomial", 2.0, "sgld", c, 0, 2.0 * good,
                               divergent=[3] if step == 0.8 else ()))
            recs.append(record("g/a", "dln", 3.0, "sgld", c, 0, 3.0 * (1.5 if gs == 1e-2 else 1.0),
                               rhat=1.2 if step == 0.05 else 1.0))
    # a config that differs in a non-swept field is not part of the sweep
    recs.append(record("f/a", "polynomial", 1.0, "sgld", dict(BASE_CONFIG, chains=16), 0, 1.0))
    with fill(tmp_path / "s.sqlite", recs) as store:
        scores = build_scores(store)
    [sweep] = scores["sweeps"]
    assert sweep["axes"] == {"step_scale": [0.05, 0.2, 0.8], "gamma_scale": [1e-3, 1e-2]}
    assert len(sweep["points"]) == 6
    vals = {p["group"]: p["values"] for p in sweep["points"]}
    poly = sweep["families"]["polynomial"]
    assert sorted((vals[g]["step_scale"], vals[g]["gamma_scale"]) for g in poly["stable_points"]) == [
        (0.2, 1e-3), (0.2, 1e-2)]
    assert poly["recommended"]["values"] == {"step_scale": 0.2, "gamma_scale": 1e-3}
    assert poly["recommended"]["stable"] is True
    dln = sweep["families"]["dln"]
    assert sorted((vals[g]["step_scale"], vals[g]["gamma_scale"]) for g in dln["stable_points"]) == [
        (0.2, 1e-3), (0.8, 1e-3)]
    assert [vals[g] for g in sweep["stable_all"]] == [{"step_scale": 0.2, "gamma_scale": 1e-3}]
    spread = {c["case"]: c for c in sweep["case_spread"]}
    assert spread["g/a"]["healthy_points"] == 4  # R-hat 1.2 at step 0.05 is unhealthy
    assert spread["g/a"]["rel_range"] == pytest.approx(0.5)
    assert spread["f/b"]["healthy_points"] == 4  # the divergent points are left out
    rows = {r["group"]: r for r in scores["leaderboard"]}
    stable_group = sweep["stable_all"][0]
    assert rows[stable_group]["stable_region_size"] == 1
    assert set(rows[stable_group]["stable_families"]) == {"polynomial", "dln"}
    off = next(g for g in scores["groups"] if g["config"]["chains"] == 16)
    assert off["sensitivity"]["sweep"] is None


def test_no_sweep_without_swept_differences(tmp_path):
    with small_store(tmp_path / "s.sqlite") as store:
        assert build_scores(store)["sweeps"] == []


def test_coverage_verdict_and_factor(tmp_path):
    """λ = 1, se = 0.1 (bars ± 0.2): the runs' |λ̂ − λ|/(2·se) are chosen, so the coverage, its verdict and
    k (numpy's linear 90th percentile) are known exactly; an estimator no registry knows (a plugin's row)
    gets the same verdict."""
    from llcbench.report.text import coverage
    from llcbench.score.calibration import verdict

    ratios = {"sgld": [0.1 * i for i in range(1, 11)],  # all ≤ 1: covered
              "myplugin": [0.5] * 5 + [1.0, 2.0, 3.0, 4.0, 5.0]}  # 6 of 10 covered
    recs = []
    for est, rs in ratios.items():
        for i, r in enumerate(rs):
            lam_hat = 1.0 + (-1) ** i * 2 * 0.1 * r
            # reference at λ̂ − 0.3·se·(i+1)/10 with se of the reference 0: ratios 0.015·(i+1)·… ≤ 0.15, covered
            recs.append(record(f"p/{i}", "polynomial", 1.0, est, dict(BASE_CONFIG), 0, lam_hat, se=0.1,
                               lambda_ref=lam_hat - 0.03 * (i + 1) / 10))
    with fill(tmp_path / "s.sqlite", recs) as store:
        scores = build_scores(store)
    mine, sgld = group(scores, "myplugin")["overall"], group(scores, "sgld")["overall"]
    assert sgld["coverage_truth"] == 1.0 and sgld["coverage_truth_verdict"] == "holds"
    assert sgld["coverage_truth_k"] == pytest.approx(0.91)  # 0.9 + 0.1·(1.0 − 0.9) at position 8.1 of 0..9
    assert mine["coverage_truth"] == pytest.approx(0.6)
    # sorted ratios 0.5 ×5, 1, 2, 3, 4, 5: position 0.9·9 = 8.1 → 4 + 0.1·(5 − 4) = 4.1
    assert mine["coverage_truth_k"] == pytest.approx(4.1)
    assert mine["coverage_truth_verdict"] == "error bars too small by ×4.1"
    assert mine["coverage_reference"] == 1.0 and mine["coverage_reference_verdict"] == "holds"
    # the same numbers per family and in the plugin's leaderboard row
    assert group(scores, "myplugin")["families"]["polynomial"]["coverage_truth_verdict"] == mine["coverage_truth_verdict"]
    row = next(r for r in scores["leaderboard"] if r["estimator"] == "myplugin")
    assert row["coverage_truth_k"] == pytest.approx(4.1)
    assert coverage(row, "truth") == "60%: error bars too small by ×4.1"
    assert coverage(row, "reference") == "100%: holds"
    # exactly at the 90 % threshold the bars hold; a zero-width bar that misses has no finite factor
    assert verdict(0.9, [1.0] * 9 + [2.0])[1] == "holds"
    assert verdict(0.5, [0.0, math.inf]) == (None, "error bars of zero width: no factor makes them hold")
    assert verdict(None, []) == (None, None)
