"""Theory-kind scaling scores of the modular-arithmetic runs and their report, from synthetic records."""

import json

import pytest

from llcbench.report import build_report
from llcbench.score import build_scores
from llcbench.score.scaling import loglog_fit
from llcbench.store import Store
from synthetic_records import BASE_CONFIG, record


def fill(path, records):
    store = Store(path)
    for r in records:
        store.put(r)
    return store


def modular(task, p, seed, lam_hat, test_acc=1.0, step=None, projected=False):
    cid = f"modular/{task}/p{p}" + (f"@{step}" if step else "")
    rec = record(cid, "modular_addition", 4.0 * p if task == "add" else 0.8 * p * p, "sgld", dict(BASE_CONFIG),
                 seed, lam_hat, truth_kind="theory")
    params = {"p": p, "task": task, "train_fraction": 0.8, "trajectory": "g" if step else "",
              "train_steps": step or 5000, "project_gradient": projected}
    rec["case_definition"] = {"id": cid, "family": "modular_addition", "params": params, "seed": 0}
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
    assert th["tasks"]["random"]["slope"] == pytest.approx(2, abs=1e-9)  # a scale factor leaves the slope
    assert th["tasks"]["random"]["slope_seed_sd"] == pytest.approx(0, abs=1e-9)
    add = th["tasks"]["add"]
    assert add["replicates"] == 3 and add["slope_seed_sd"] > 0  # the wobble differs between seeds
    assert add["slope"] == pytest.approx(1, abs=0.05) and add["predicted_slope"] == 1
    assert [pt["p"] for pt in add["points"]] == [17, 19, 23, 29]  # checkpoints are not scaling points
    assert add["points"][0]["lambda_over_p"] == pytest.approx(8 * (0.95 + 1 + 1.05 + 1) / 4, rel=1e-3)
    assert th["tasks"]["random"]["points"][0]["lambda_over_memorised"] == pytest.approx(1.0)
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
