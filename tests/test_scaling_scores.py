"""Theory-kind scaling scores of the modular-arithmetic runs and their report, from synthetic records."""

import json
import math

import pytest

from llcbench.report import build_report
from llcbench.score import build_scores
from llcbench.score.scaling import linear_fit, loglog_fit, scaling_block
from llcbench.store import Store
from synthetic_records import BASE_CONFIG, record


def fill(path, records):
    store = Store(path)
    for r in records:
        store.put(r)
    return store


def modular(task, p, seed, lam_hat, test_acc=1.0, step=None, projected=False, case_seed=0, cid=None, **fields):
    cid = cid or f"modular/{task}/p{p}" + (f"@{step}" if step else "")
    rec = record(cid, "modular_addition", 4.0 * p if task == "add" else 0.8 * p * p, "sgld", dict(BASE_CONFIG),
                 seed, lam_hat, truth_kind="theory")
    rec["key"] = f"{cid}|{seed}|{case_seed}"
    params = {"p": p, "task": task, "train_fraction": 0.8, "trajectory": "g" if step else "",
              "train_steps": step or 5000, "project_gradient": projected, "trojans": 0, **fields}
    rec["case_definition"] = {"id": cid, "family": "modular_addition", "params": params, "seed": case_seed}
    rec["target_info"] = {"test_accuracy": test_acc, "train_accuracy": 1.0, "train_loss": 0.01}
    return rec


def test_loglog_fit_recovers_a_power_law():
    slope, se = loglog_fit([5, 7, 11, 13], [3 * p ** 1.7 for p in (5, 7, 11, 13)])
    assert slope == pytest.approx(1.7, abs=1e-12) and se == pytest.approx(0, abs=1e-9)
    assert loglog_fit([5, 5], [1.0, 2.0]) is None and loglog_fit([5, 7], [1.0, -2.0]) is None


def test_scaling_scores_and_report(tmp_path):
    recs = []
    for seed, wobble in enumerate((0.95, 1.0, 1.05)):
        for i, p in enumerate((17, 19, 23, 29)):
            recs.append(modular("add", p, seed, 8 * p * wobble ** (i % 2)))
        for p in (7, 11, 19, 23):
            recs.append(modular("random", p, seed, 0.8 * p * p * wobble, test_acc=0.1))
    recs.append(modular("add", 17, 3, 8.0 * 17))  # seed 3 ran one p only: no slope of its own
    other = modular("add", 17, 0, 40.0)  # another nβ: with the defaults, a sweep of theory-kind cases only
    other.update(config=dict(BASE_CONFIG, nbeta_scale=10.0), key="k-nbeta-10")
    recs.append(other)
    recs += [modular("add", 23, 0, lam, step=step, test_acc=acc) for step, lam, acc in
             ((250, 300.0, 0.0), (1000, 150.0, 0.9))]
    with fill(tmp_path / "s.sqlite", recs) as store:
        scores = build_scores(store)
        paths = build_report(scores, tmp_path / "report", store)
    assert scores["sweeps"]  # the nβ variant made a sweep without an exact case: the report still builds
    (g,) = [g for g in scores["groups"] if g["headline"]]
    th = g["theory"]
    fits = {f["task"]: f for f in th["fits"]}
    assert len(th["fits"]) == 2 and th["excluded"] == {"non_local": 0, "unhealthy": 0, "low_ess": 0}
    assert fits["random"]["slope"] == pytest.approx(2, abs=1e-9)  # a scale factor leaves the slope
    assert fits["random"]["slope_seed_sd"] == pytest.approx(0, abs=1e-9)
    assert fits["random"]["linear_in"] == "p²" and fits["random"]["linear"]["r2"] > 0.99  # λ̂ ∝ p²
    add = fits["add"]
    assert add["replicates"] == 3 and add["slope_seed_sd"] > 0  # the wobble differs between seeds
    assert add["slope"] == pytest.approx(1, abs=0.05) and add["predicted_slope"] == 1
    assert add["linear_in"] == "p" and add["linear"]["a_low"] < 8 < add["linear"]["a_high"]
    assert [pt["p"] for pt in add["points"]] == [17, 19, 23, 29]  # checkpoints are not scaling points
    assert add["points"][0]["lambda_over_p"] == pytest.approx(8 * (0.95 + 1 + 1.05 + 1) / 4, rel=1e-3)
    assert fits["random"]["points"][0]["lambda_over_memorised"] == pytest.approx(1.0)
    assert th["ordering_pairs"] == 2 and th["ordering_holds"] == 2  # p = 19 and 23
    (traj,) = g["trajectories"]
    assert [pt["step"] for pt in traj["points"]] == [250, 1000] and traj["points"][1]["test_accuracy"] == 0.9
    page = paths["html"].read_text()
    assert "Modular arithmetic: λ̂ against p" in page and "λ̂ over training" in page
    assert "| sgld |" in paths["markdown"].read_text() and "memorising > generalising" in paths["markdown"].read_text()
    from test_scores import ROOT, check, parse_schema

    doc = json.loads(paths["scores"].read_text())
    check(doc, "document", parse_schema((ROOT / "docs" / "scores.md").read_text()), "scores")  # documented


def test_no_modular_runs_no_theory_block(tmp_path):
    with fill(tmp_path / "s.sqlite", [record("syn/a", "dln", 3.0, "sgld", dict(BASE_CONFIG), 0, 2.9)]) as store:
        scores = build_scores(store)
    assert scores["groups"][0]["theory"] is None and scores["groups"][0]["trajectories"] == []


def test_linear_fit_recovers_a_line_and_its_interval():
    xs = [23, 29, 37, 41, 47, 53] * 2
    noise = [0.5, -0.5] * 6
    fit = linear_fit(xs, [6.0 * x + 10 + e for x, e in zip(xs, noise)])
    assert fit["a"] == pytest.approx(6.0, abs=0.05) and fit["b"] == pytest.approx(10, abs=2)
    assert fit["a_low"] < 6.0 < fit["a_high"] and fit["r2"] > 0.999 and fit["runs"] == 12
    assert linear_fit([5, 5], [1.0, 2.0]) is None
    two = linear_fit([5, 7], [1.0, 2.0])
    assert two["a"] == pytest.approx(0.5) and two["a_low"] is None  # no interval from two points


def test_one_fit_per_anchor_recipe_and_excluded_runs_are_counted():
    recs = [modular("add", p, 0, 8.0 * p, case_seed=s, cid=f"hk/add/p{p}/s{s}")
            for p in (23, 29, 37) for s in range(3)]
    # the trojan networks: a p = 23 add network of another recipe; they must not join the add fit
    recs += [modular("add", 23, 0, 500.0, case_seed=s, cid=f"modular/trojans/add-p23-k8/s{s}", trojans=8)
             for s in range(3)]
    # a wider network, and a budget that differs per p (the same recipe: p = 37 trained longer)
    recs += [modular("add", p, 0, 5.0 * p, cid=f"wide/p{p}", hidden_dim=128) for p in (23, 29)]
    recs[6]["case_definition"]["params"]["train_steps"] = 15000
    # not scored: non-local, unhealthy (split R-hat), low ESS
    bad = [modular("add", 29, 1, 900.0, cid="hk/bad/a"), modular("add", 29, 2, 900.0, cid="hk/bad/b"),
           modular("add", 29, 3, 900.0, cid="hk/bad/c")]
    bad[0]["locality"] = {"local": False, "excess_loss": 4.0, "chance_excess": 3.3}
    bad[1]["rhat"] = 1.5
    bad[2]["ess"] = 40.0  # a real record's ess is its bulk ESS, which the health rule reads
    bad[2].setdefault("diagnostics", {})["ess_bulk"] = 40.0
    for r in recs[:3]:  # the ceiling nβ·(ln p − L_n(w*)) from the runs' own nβ and anchor loss
        r["extra"]["init_loss"] = 0.01
    th = scaling_block(recs + bad)
    assert th["excluded"] == {"non_local": 1, "unhealthy": 1, "low_ess": 1} and th["scored"] == len(recs)
    assert th["excluded_cases"] == ["hk/bad/a", "hk/bad/b", "hk/bad/c"]
    by_cases = {tuple(sorted(c for pt in f["points"] for c in pt["cases"])): f for f in th["fits"]}
    assert len(th["fits"]) == 3
    main = next(f for f in th["fits"] if any("hk/add" in c for pt in f["points"] for c in pt["cases"]))
    assert [pt["p"] for pt in main["points"]] == [23, 29, 37]
    assert all(pt["networks"] == 3 and pt["seeds"] == 3 for pt in main["points"])  # none overwrites another
    assert not any("trojans" in c for pt in main["points"] for c in pt["cases"])
    assert main["points"][2]["train_steps"] == [5000, 15000]
    assert main["points"][0]["lambda_hat"] == pytest.approx(8 * 23)  # the trojans' 500 never enters
    assert main["linear"]["a"] == pytest.approx(8.0) and main["slope"] == pytest.approx(1.0)
    assert main["points"][0]["lambda_ceiling"] == pytest.approx(1000.0 * (math.log(23) - 0.01))
    assert main["points"][1]["lambda_ceiling"] is None  # no anchor loss in those records
    trojan = next(f for f in th["fits"] if f["recipe"]["trojans"] == 8)
    assert trojan["points"][0]["cases"] == [f"modular/trojans/add-p23-k8/s{s}" for s in range(3)]
    assert len(by_cases) == 3
