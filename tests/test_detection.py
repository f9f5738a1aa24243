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
