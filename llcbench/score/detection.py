"""Per-sample detection: how well a per-sample score separates the known memorised samples from the rest.

For every stored run with per-sample values and a ground truth (targets whose
``memorised_samples()`` is known: ``record["per_sample"]["memorised"]``),
four scores of each probe sample, higher meaning "more likely memorised":

- ``llc``: the per-sample LLC λ̂_i from the run's draws;
- ``loss``: the sample's loss ℓ_i(w*) at the anchor;
- ``grad_norm``: ‖∇ℓ_i(w*)‖ at the anchor;
- ``noise``: the sample's loss under the localisation's Gaussian alone,
  E_ξ[ℓ_i(w* + ξ)] − ℓ_i(w*), ξ ~ N(0, I/γ) at the run's γ (``loss_under_noise``;
  a baseline that still ranks samples when the anchor fits every one). Records
  made before it existed have none: the method is left out of their row.

For each: the area under the ROC curve (AUROC, the probability that a random
memorised sample scores above a random other one, ties counted ½: the
Mann–Whitney statistic), the average precision (AP = Σ_k (R_k − R_{k−1})·P_k
over the distinct score thresholds, as ``sklearn.metrics.average_precision_score``
defines it), each with a stratified bootstrap percentile interval
(memorised and other samples resampled separately, so every replicate has
both). Hand-written here with numpy/scipy (scikit-learn is not a dependency
of llcbench); tests/test_detection.py checks them against hand-computed
values (and against scikit-learn where it is installed).

A run that is not healthy (``llcbench.health``: its chains did not mix, are
still spreading, diverged, or its posterior is not local) is no per-sample
LLC estimate: its row is kept apart (``apart``, with the reason), counted
(``unhealthy_runs``; of them ``non_local_runs`` not local) and left out of
the per-setting summary.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from typing import Optional

import numpy as np
from scipy.stats import rankdata

from ..health import healthy, reason
from ..locality import is_local
from ..store import Store

METHODS = {"llc": "per-sample LLC λ̂_i", "loss": "loss ℓ_i(w*)", "grad_norm": "gradient norm ‖∇ℓ_i(w*)‖",
           "noise": "loss under noise E_ξ[ℓ_i(w*+ξ)] − ℓ_i(w*), ξ ~ N(0, I/γ)"}
# the per_sample field that holds each method's scores
FIELDS = {"llc": "lambda", "loss": "loss_star", "grad_norm": "grad_norm_star", "noise": "loss_under_noise"}
BOOTSTRAP = 1000  # replicates of each interval
LEVEL = 0.95
ROC_POINTS = 101  # points of each stored ROC curve (FPR grid)
HIST_BINS = 30


def auroc(scores, labels) -> float:
    """P(score of a positive > score of a negative) + ½·P(equal), from midranks (Mann–Whitney U)."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(s)  # midranks: ties count ½
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def average_precision(scores, labels) -> float:
    """Σ over distinct thresholds (descending) of (recall gain)·(precision there); NaN without positives."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    pos = int(y.sum())
    if pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last index of each run of equal scores
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall_gain = np.diff(np.r_[0, tp]) / pos
    return float((recall_gain * precision).sum())


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) at every distinct threshold, from (0, 0) to (1, 1)."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
    return np.r_[0.0, fp / max(fp[-1], 1)], np.r_[0.0, tp / max(tp[-1], 1)]


def bootstrap_interval(scores, labels, metric, reps: int = BOOTSTRAP, seed: int = 0,
                       level: float = LEVEL) -> list[Optional[float]]:
    """[lo, hi]: percentile interval of ``metric`` over stratified bootstrap replicates (seeded)."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    if len(pos) == 0 or len(neg) == 0:
        return [None, None]
    rng = np.random.default_rng(seed)
    take = np.concatenate([rng.choice(pos, (reps, len(pos))), rng.choice(neg, (reps, len(neg)))], axis=1)
    if metric is auroc:  # every replicate at once: midranks along the rows (the positives come first)
        ranks = rankdata(s[take], axis=1)
        values = (ranks[:, : len(pos)].sum(axis=1) - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))
    else:
        values = np.array([metric(s[row], y[row]) for row in take])
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]


def _finite(x) -> Optional[float]:
    return float(x) if x is not None and math.isfinite(x) else None


def method_scores(scores, labels, seed: int = 0) -> dict:
    """AUROC and AP with their bootstrap intervals, and the ROC curve on a fixed FPR grid."""
    s = np.asarray([np.nan if v is None else v for v in scores], dtype=float)
    y = np.asarray(labels, dtype=bool)
    ok = np.isfinite(s)
    s, y = s[ok], y[ok]
    fpr, tpr = roc_curve(s, y)
    grid = np.linspace(0, 1, ROC_POINTS)
    return {
        "auroc": _finite(auroc(s, y)),
        "auroc_interval": bootstrap_interval(s, y, auroc, seed=seed),
        "average_precision": _finite(average_precision(s, y)),
        "average_precision_interval": bootstrap_interval(s, y, average_precision, seed=seed),
        "roc_tpr": [float(v) for v in np.interp(grid, fpr, tpr)],  # TPR at FPR = grid (step curve's upper edge)
        "samples": int(len(s)),
    }


def histogram(values, labels, bins: int = HIST_BINS) -> dict:
    """Counts of λ̂_i split by ground truth on one set of edges."""
    v = np.asarray([np.nan if x is None else x for x in values], dtype=float)
    y = np.asarray(labels, dtype=bool)
    ok = np.isfinite(v)
    v, y = v[ok], y[ok]
    edges = np.histogram_bin_edges(v, bins=bins) if len(v) else np.linspace(0, 1, bins + 1)
    return {"edges": edges.tolist(), "memorised": np.histogram(v[y], edges)[0].tolist(),
            "other": np.histogram(v[~y], edges)[0].tolist()}


def run_row(record: dict) -> Optional[dict]:
    """The detection scores of one run, or None when it has no per-sample ground truth."""
    ps = record.get("per_sample") or {}
    labels = ps.get("memorised")
    if not labels:
        return None
    seed = int(record.get("seed") or 0)
    definition = dict(record.get("case_definition") or {})
    case_seed = definition.pop("seed", None)
    definition.pop("id", None)
    columns = {m: ps[f] for m, f in FIELDS.items() if ps.get(f) is not None}
    return {
        "key": record["key"], "case": record["case"], "estimator": record["estimator"], "seed": seed,
        "case_seed": case_seed, "setting": re.sub(r"/s\d+$", "", record["case"]),
        "setting_key": json.dumps(definition, sort_keys=True, default=str),
        "config_hash": _config_hash(record.get("config") or {}),
        "probe": len(labels), "memorised": int(sum(labels)),
        "lambda_hat": _finite(record.get("lambda_hat")), "local": is_local(record),
        "healthy": healthy(record), "problem": reason(record),
        "methods": {m: method_scores(col, labels, seed) for m, col in columns.items()},
        "histogram": histogram(ps["lambda"], labels),
    }


def _config_hash(config: dict) -> str:
    from .select import config_hash

    return config_hash(config)


def summary_rows(runs: list[dict]) -> list[dict]:
    """Per estimator × config × setting (a case definition up to its data seed: the catalogue names the
    seeds of one setting ".../s0", ".../s1", ...): mean and range over its runs (data seeds × run
    seeds) of each method's AUROC and AP."""
    by: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        by[(r["estimator"], r["config_hash"], r["setting_key"])].append(r)
    out = []
    for (est, cfg, _), rows in sorted(by.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[1][0]["setting"])):
        methods = {}
        for m in METHODS:
            scored = [r["methods"][m] for r in rows if m in r["methods"]]
            au = [v["auroc"] for v in scored if v["auroc"] is not None]
            ap = [v["average_precision"] for v in scored if v["average_precision"] is not None]
            methods[m] = {"auroc_mean": float(np.mean(au)) if au else None,
                          "auroc_range": [float(min(au)), float(max(au))] if au else [None, None],
                          "average_precision_mean": float(np.mean(ap)) if ap else None}
        out.append({"estimator": est, "config_hash": cfg, "setting": rows[0]["setting"],
                    "cases": sorted({r["case"] for r in rows}), "runs": len(rows),
                    "case_seeds": sorted({r["case_seed"] for r in rows if r["case_seed"] is not None}),
                    "seeds": sorted({r["seed"] for r in rows}), "memorised": rows[0]["memorised"],
                    "probe": rows[0]["probe"], "methods": methods})
    return out


def detection_scores(store: Store, version: Optional[str] = None, estimators: Optional[list] = None) -> dict:
    """The ``detection`` block of scores.json: one row per run with per-sample ground truth (the
    unhealthy ones, non-local among them, apart), and a summary per setting (means over its healthy runs)."""
    runs, apart = [], []
    for record in store.records_with("per_sample"):
        if version is not None and record.get("llcbench_version") != version:
            continue
        if estimators and record.get("estimator") not in estimators:
            continue
        row = run_row(record)
        if row is not None:
            (runs if row["healthy"] else apart).append(row)
    order = lambda r: (r["estimator"], r["config_hash"], r["case"], r["seed"])  # noqa: E731
    runs.sort(key=order)
    apart.sort(key=order)
    return {"methods": dict(METHODS), "bootstrap": {"replicates": BOOTSTRAP, "level": LEVEL},
            "runs": runs, "settings": summary_rows(runs), "unhealthy_runs": len(apart),
            "non_local_runs": sum(r["local"] is False for r in apart), "apart": apart}
