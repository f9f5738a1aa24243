"""The detection scores (AUROC, average precision, bootstrap intervals) against hand-computed values."""

import numpy as np
import pytest

from llcbench.score.detection import auroc, average_precision, bootstrap_interval, roc_curve, run_row


def test_the_scikit_learn_documentation_example_by_hand():
    y, s = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    # pairs (positive, negative): 0.35 > 0.1, 0.35 < 0.4, 0.8 > 0.1, 0.8 > 0.4: 3 of 4
    assert auroc(s, y) == 0.75
    # descending thresholds 0.8, 0.4, 0.35, 0.1: (R, P) = (1/2, 1), (1/2, 1/2), (1, 2/3), (1, 1/2)
    # AP = 1/2·1 + 0·1/2 + 1/2·2/3 + 0 = 5/6
    assert average_precision(s, y) == pytest.approx(5 / 6, abs=1e-15)
    fpr, tpr = roc_curve(s, y)
    assert fpr.tolist() == [0, 0, 0.5, 0.5, 1] and tpr.tolist() == [0, 0.5, 0.5, 1, 1]


def test_ties_count_one_half():
    # the positive ties one negative (½) and beats the other (1): AUROC 3/4; one threshold holding 1 TP and
    # 1 FP, then the last: AP = 1·1/2
    assert auroc([1.0, 1.0, 0.0], [1, 0, 0]) == 0.75
    assert average_precision([1.0, 1.0, 0.0], [1, 0, 0]) == 0.5
    assert auroc([2.0, 2.0, 2.0, 2.0], [1, 0, 1, 0]) == 0.5


def test_against_scikit_learn_where_installed():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.1
    s = np.round(rng.normal(size=300) + y, 1)  # rounded: many ties
    assert auroc(s, y) == pytest.approx(metrics.roc_auc_score(y, s), abs=1e-12)
    assert average_precision(s, y) == pytest.approx(metrics.average_precision_score(y, s), abs=1e-12)


def test_bootstrap_interval():
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(20, bool), np.zeros(200, bool)]
    s = rng.normal(size=220) + 1.5 * y
    lo, hi = bootstrap_interval(s, y, auroc, reps=400, seed=5)
    assert lo < auroc(s, y) < hi and hi - lo < 0.3
    assert [lo, hi] == bootstrap_interval(s, y, auroc, reps=400, seed=5)  # seeded
    # the vectorised AUROC path and the per-replicate loop (any other metric) see the same replicates
    looped = bootstrap_interval(s, y, lambda a, b: auroc(a, b), reps=400, seed=5)
    assert looped == pytest.approx([lo, hi], abs=1e-12)
    assert bootstrap_interval(y.astype(float), y, auroc, reps=50) == [1.0, 1.0]  # perfect separation
    assert bootstrap_interval(s, np.zeros(220, bool), auroc) == [None, None]  # no positive


def test_run_row_scores_the_three_methods():
    labels = [1, 0, 0, 0, 1, 0]
    rec = {"key": "k", "case": "c", "estimator": "sgld", "seed": 0, "config": {}, "lambda_hat": 1.0,
           "per_sample": {"lambda": [5, 1, 2, 0, 4, 3], "loss_star": [0, 1, 2, 3, 4, 5],
                          "grad_norm_star": [1, 1, 1, 1, 1, None], "memorised": labels}}
    row = run_row(rec)
    assert row["methods"]["llc"]["auroc"] == 1.0 and row["methods"]["llc"]["average_precision"] == 1.0
    # loss: the positive 4 beats the negatives 1, 2, 3 (not 5), the positive 0 beats none: 3 of 8 pairs
    assert row["methods"]["loss"]["auroc"] == 3 / 8
    assert row["methods"]["grad_norm"]["samples"] == 5  # the None is left out
    assert row["histogram"]["memorised"] and sum(row["histogram"]["memorised"]) == 2
    assert run_row({"per_sample": {"lambda": [1.0]}}) is None  # no ground truth: not scored


def test_the_noise_baseline_is_scored_beside_the_others_and_older_records_still_score():
    labels = [1, 0, 0, 1]
    ps = {"lambda": [5, 1, 2, 0], "loss_star": [0, 1, 2, 3], "grad_norm_star": [1, 1, 1, 1],
          "loss_under_noise": [4, 1, 2, 3], "memorised": labels}
    rec = {"key": "k", "case": "c", "estimator": "sgld", "seed": 0, "config": {}, "lambda_hat": 1.0, "per_sample": ps}
    row = run_row(rec)
    # noise: the positive 4 beats all of 1, 2; the positive 3 beats both: AUROC 1
    assert set(row["methods"]) == {"llc", "loss", "grad_norm", "noise"} and row["methods"]["noise"]["auroc"] == 1.0
    assert row["methods"]["noise"]["auroc_interval"] == [1.0, 1.0]
    older = {**rec, "per_sample": {k: v for k, v in ps.items() if k != "loss_under_noise"}}
    assert set(run_row(older)["methods"]) == {"llc", "loss", "grad_norm"}  # made before the baseline existed
    from llcbench.score.detection import summary_rows

    (summary,) = summary_rows([run_row(older)])
    assert summary["methods"]["noise"]["auroc_mean"] is None and summary["methods"]["llc"]["auroc_mean"] == 0.5


def test_non_local_runs_are_scored_apart_and_counted(tmp_path):
    from llcbench.report.console import detection_summary
    from llcbench.score.detection import detection_scores
    from llcbench.store import Store
    from synthetic_records import BASE_CONFIG, record

    ps = {"probe": [0, 1, 2, 3], "lambda": [5, 1, 2, 0], "loss_star": [0, 1, 2, 3], "grad_norm_star": [1, 1, 1, 1],
          "loss_under_noise": [4, 1, 2, 3], "memorised": [1, 0, 0, 1]}
    # a posterior whose draws are the localisation's Gaussian alone (spread 1.0 > 0.9 of d/γ): not local
    far = {"mean_sq_distance": 10.0, "prior_sq_distance": 10.0, "excess_loss": 0.01, "chance_excess": 1.0}
    near = {"mean_sq_distance": 1.0, "prior_sq_distance": 10.0, "excess_loss": 0.01, "chance_excess": 1.0}
    store = Store(tmp_path / "s.sqlite")
    records = []
    for seed, loc in enumerate([near, far, None]):
        rec = {**record("memorisation/c/s0", "memorisation", 4.0, "sgld", BASE_CONFIG, seed, 1.0, truth_kind="theory"),
               "per_sample": ps, "locality": loc}
        store.put(rec)
        records.append(rec)
    det = detection_scores(store)
    assert [r["seed"] for r in det["runs"]] == [0, 2] and [r["local"] for r in det["runs"]] == [True, None]
    assert det["non_local_runs"] == 1 and [r["seed"] for r in det["apart"]] == [1] and det["apart"][0]["local"] is False
    assert det["settings"][0]["runs"] == 2  # the summary pools the scored runs only
    assert det["unhealthy_runs"] == 1 and det["apart"][0]["problem"].startswith("not local")
    line = detection_summary(records)
    assert "of 2 runs" in line and "1 unhealthy run (1 not local) not scored" in line and "under noise 1.000" in line


def test_local_runs_whose_chains_did_not_mix_are_apart_too(tmp_path):
    """A local posterior sampled by chains that did not mix gives no per-sample LLC estimate either."""
    from llcbench.report.console import detection_summary
    from llcbench.score.detection import detection_scores
    from llcbench.store import Store
    from synthetic_records import BASE_CONFIG, record

    ps = {"probe": [0, 1, 2, 3], "lambda": [5, 1, 2, 0], "loss_star": [0, 1, 2, 3], "grad_norm_star": [1, 1, 1, 1],
          "memorised": [1, 0, 0, 1]}
    near = {"mean_sq_distance": 1.0, "prior_sq_distance": 10.0, "excess_loss": 0.01, "chance_excess": 1.0}
    store, records = Store(tmp_path / "s.sqlite"), []
    for seed, rhat in enumerate([1.01, 1.45]):
        rec = {**record("memorisation/c/s0", "memorisation", 4.0, "sgld", BASE_CONFIG, seed, 1.0, truth_kind="theory",
                        rhat=rhat), "per_sample": ps, "locality": near}
        store.put(rec)
        records.append(rec)
    det = detection_scores(store)
    assert [r["seed"] for r in det["runs"]] == [0] and [r["seed"] for r in det["apart"]] == [1]
    assert det["unhealthy_runs"] == 1 and det["non_local_runs"] == 0 and det["apart"][0]["local"] is True
    assert det["apart"][0]["problem"].startswith("R-hat 1.45")
    assert "of 1 run " in detection_summary(records) and "1 unhealthy run not scored" in detection_summary(records)
