"""Theory-kind scaling scores: λ̂ against p for the modular-arithmetic networks (read from the store only).

Their truths are theory values with a factor-of-two uncertainty (Rimsky &
Vaintrob 2023), so they are scored by shape, not by bias: the log-log slope
of λ̂ in p per task (≈ 1 for ``add``, which generalises; ≈ 2 for ``random``,
which memorises), λ̂/p and λ̂/(train_fraction·p²), the ordering memorising >
generalising at equal p, and each anchor's test accuracy (whether it
generalised). The slope is fitted by least squares on the seed means (its se
the fit's) and again per replicate — one (case seed, run seed) pair that ran
every p of the task — so its spread over seeds is measured, not assumed. Checkpoints of a λ̂-over-training
run (``trajectory`` set) are left out.
"""

from __future__ import annotations

import math
import statistics
from typing import Optional

import numpy as np

from .select import finite

FAMILY = "modular_addition"


def _params(record: dict) -> dict:
    return (record.get("case_definition") or {}).get("params") or {}


def scaling_records(records: list[dict]) -> list[dict]:
    """The family's runs at trained anchors (not trajectory checkpoints) with a finite λ̂."""
    return [r for r in records if r.get("family") == FAMILY and not _params(r).get("trajectory")
            and finite(r.get("lambda_hat"))]


def loglog_fit(ps: list[float], lams: list[float]) -> Optional[tuple[float, Optional[float]]]:
    """(slope, its se) of log λ̂ = a + slope·log p by least squares (numpy.polyfit); None with fewer than
    two distinct p or a λ̂ ≤ 0 (no logarithm); se None with only two points."""
    if len(set(ps)) < 2 or min(lams) <= 0:
        return None
    x, y = np.log(ps), np.log(lams)
    if len(x) == 2:
        return float(np.polyfit(x, y, 1)[0]), None
    coef, cov = np.polyfit(x, y, 1, cov="unscaled")
    resid = y - np.polyval(coef, x)
    s2 = float(resid @ resid) / (len(x) - 2)
    return float(coef[0]), math.sqrt(s2 * float(cov[0, 0]))


def _point(recs: list[dict]) -> dict:
    first = recs[0]
    q, info = _params(first), first.get("target_info") or {}
    p, frac = int(q["p"]), float(q.get("train_fraction", 0.8))
    hats = [r["lambda_hat"] for r in recs]
    lam = statistics.fmean(hats)
    return {"case": first["case"], "p": p, "train_fraction": frac, "lambda_hat": lam,
            "seed_spread": statistics.stdev(hats) if len(hats) > 1 else None, "seeds": len(hats),
            "lambda_theory": first.get("lambda_float"), "lambda_over_p": lam / p,
            "lambda_over_memorised": lam / (frac * p * p), "test_accuracy": info.get("test_accuracy"),
            "train_accuracy": info.get("train_accuracy")}


def _task_block(task: str, recs: list[dict]) -> dict:
    from ..truth.modular import SLOPE

    by_case: dict[str, list] = {}
    for r in recs:
        by_case.setdefault(r["case"], []).append(r)
    points = sorted((_point(rs) for rs in by_case.values()), key=lambda pt: pt["p"])
    fit = loglog_fit([pt["p"] for pt in points], [pt["lambda_hat"] for pt in points])
    replicates: dict[tuple, dict] = {}  # (case seed, run seed) -> {p: λ̂}
    for r in recs:
        rep = ((r.get("case_definition") or {}).get("seed"), r.get("seed"))
        replicates.setdefault(rep, {})[int(_params(r)["p"])] = r["lambda_hat"]
    slopes = []
    every_p = {pt["p"] for pt in points}
    for rep in sorted(replicates, key=str):
        if set(replicates[rep]) != every_p:  # a replicate that misses a p would fit another slope
            continue
        f = loglog_fit(list(map(float, replicates[rep])), list(replicates[rep].values()))
        if f is not None:
            slopes.append(f[0])
    return {"predicted_slope": SLOPE.get(task), "slope": fit[0] if fit else None, "slope_se": fit[1] if fit else None,
            "slope_seeds": slopes, "slope_seed_mean": statistics.fmean(slopes) if slopes else None,
            "slope_seed_sd": statistics.stdev(slopes) if len(slopes) > 1 else None,
            "replicates": len(slopes), "points": points}


def scaling_block(records: list[dict]) -> Optional[dict]:
    """The scaling scores of a group's runs of the family, or None when it has none."""
    recs = scaling_records(records)
    if not recs:
        return None
    tasks = {task: _task_block(task, [r for r in recs if _params(r).get("task") == task])
             for task in sorted({_params(r).get("task") for r in recs})}
    ordering = []
    gen = {pt["p"]: pt["lambda_hat"] for pt in tasks.get("add", {}).get("points", [])}
    mem = {pt["p"]: pt["lambda_hat"] for pt in tasks.get("random", {}).get("points", [])}
    for p in sorted(set(gen) & set(mem)):
        ordering.append({"p": p, "generalising": gen[p], "memorising": mem[p], "holds": mem[p] > gen[p]})
    return {"tasks": tasks, "ordering": ordering, "ordering_holds": sum(o["holds"] for o in ordering),
            "ordering_pairs": len(ordering)}
