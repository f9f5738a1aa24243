"""Theory-kind scaling scores: λ̂ against p for the modular-arithmetic networks (read from the store only).

Their truths are theory values with a factor-of-two uncertainty (Rimsky &
Vaintrob 2023), so they are scored by shape, not by bias. One *fit* per
anchor recipe: the runs whose anchors share the whole anchor definition
except p and the training seed (the case seed) — so the trojan networks,
another width or another optimiser never join the default `add` fit. Per
fit: a straight line λ̂ = a·x + b through every run (x = p for a network
that generalises, x = p² for one that memorises; R² and a 95 % t-interval
for a), the log-log slope of λ̂ in p (≈ 1 / ≈ 2; fitted on the p means and
again per replicate — one (case seed, run seed) pair that ran every p — so
its spread over seeds is measured, not assumed), and per p the mean λ̂ over
networks and runs, its spread, λ̂/p and λ̂/(train_fraction·p²), the
anchors' accuracies and the largest λ̂ a local posterior can show there.

A run is not scored when it is not healthy (``llcbench.health``: it did not
mix, its bulk ESS is below 100, or it is not local); such runs are counted by
reason and listed. Checkpoints of a λ̂-over-training run
(``trajectory`` set) are left out.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from typing import Optional

import numpy as np
from scipy import stats

from ..health import ESS_MIN, ess_bulk, problems
from .select import finite

FAMILY = "modular_addition"
# the case fields that vary along one fit (everything else is the anchor recipe): the modulus, and the
# training budget and acceptance threshold chosen per p to reach convergence (the hackathon trains
# p = 41 and 53 longer) — neither another network nor another task; the points list the steps used
ALONG_THE_FIT = ("p", "train_steps", "max_train_loss")
# the fields in which a memorising and a generalising recipe of the same network may differ
TASK_FIELDS = ("task", "commutative")


def _params(record: dict) -> dict:
    return (record.get("case_definition") or {}).get("params") or {}


def scaling_records(records: list[dict]) -> list[dict]:
    """The family's runs at trained anchors (not trajectory checkpoints) with a finite λ̂."""
    return [r for r in records if r.get("family") == FAMILY and not _params(r).get("trajectory")
            and finite(r.get("lambda_hat"))]


def exclusion(record: dict) -> Optional[str]:
    """Why a run is not scored as an LLC estimate ('non_local', 'unhealthy', 'low_ess'), or None."""
    if (record.get("locality") or {}).get("local") is False:
        return "non_local"
    sick = problems(record)
    if not sick:
        return None
    ess = ess_bulk(record) if ess_bulk(record) is not None else record.get("ess")
    if len(sick) == 1 and finite(ess) and ess < ESS_MIN:
        return "low_ess"  # the only problem: too few effective draws
    return "unhealthy"


def recipe(record: dict) -> dict:
    """The anchor's whole definition except p and the training seed: the case's family fields less
    ``ALONG_THE_FIT``, and its noise level. (n follows from p and train_fraction; the case seed is the
    training seed.)"""
    definition = record.get("case_definition") or {}
    out = {k: v for k, v in _params(record).items() if k not in ALONG_THE_FIT}
    out["noise_std"] = definition.get("noise_std")
    return out


def recipe_key(rec: dict) -> str:
    text = json.dumps(rec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


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


def linear_fit(xs: list[float], lams: list[float], level: float = 0.95) -> Optional[dict]:
    """λ̂ = a·x + b by least squares through every run (scipy.stats.linregress): a, its se and a
    ``level`` t-interval (n − 2 degrees of freedom), b and R²; None with fewer than two distinct x;
    the interval None with only two runs."""
    if len(set(xs)) < 2:
        return None
    fit = stats.linregress(xs, lams)
    dof = len(xs) - 2
    half = float(stats.t.ppf(0.5 + level / 2, dof) * fit.stderr) if dof > 0 else None
    return {"a": float(fit.slope), "a_se": float(fit.stderr) if dof > 0 else None,
            "a_low": float(fit.slope) - half if half is not None else None,
            "a_high": float(fit.slope) + half if half is not None else None,
            "b": float(fit.intercept), "r2": float(fit.rvalue ** 2), "runs": len(xs)}


def _ceiling(recs: list[dict], p: int) -> Optional[float]:
    """The largest λ̂ a local posterior can show at these runs' nβ: nβ·(ln p − L_n(w*)), the excess loss
    of uniform logits (the mean over the runs of that p)."""
    vals = []
    for r in recs:
        extra = r.get("extra") or {}
        nbeta, init = extra.get("nbeta"), extra.get("init_loss")
        if finite(nbeta) and finite(init):
            vals.append(nbeta * (math.log(p) - init))
    return statistics.fmean(vals) if vals else None


def _point(p: int, recs: list[dict]) -> dict:
    first = recs[0]
    frac = float(_params(first).get("train_fraction", 0.8))
    hats = [r["lambda_hat"] for r in recs]
    lam = statistics.fmean(hats)
    infos = [r.get("target_info") or {} for r in recs]
    acc = lambda key: [i[key] for i in infos if finite(i.get(key))]  # noqa: E731
    test, train = acc("test_accuracy"), acc("train_accuracy")
    return {"cases": sorted({r["case"] for r in recs}), "p": p, "train_fraction": frac, "lambda_hat": lam,
            "seed_spread": statistics.stdev(hats) if len(hats) > 1 else None, "seeds": len(hats),
            "networks": len({(r.get("case_definition") or {}).get("seed") for r in recs}),
            "lambda_theory": first.get("lambda_float"), "lambda_over_p": lam / p,
            "lambda_over_memorised": lam / (frac * p * p), "lambda_ceiling": _ceiling(recs, p),
            "train_steps": sorted({int(_params(r).get("train_steps", 0)) for r in recs}),
            "test_accuracy": min(test) if test else None, "train_accuracy": min(train) if train else None}


def _fit_block(rec: dict, recs: list[dict]) -> dict:
    from ..truth.modular import SLOPE, modular_theory

    task = rec.get("task")
    by_p: dict[int, list] = {}
    for r in recs:
        by_p.setdefault(int(_params(r)["p"]), []).append(r)  # every run kept: none overwrites another
    points = [_point(p, by_p[p]) for p in sorted(by_p)]
    fit = loglog_fit([pt["p"] for pt in points], [pt["lambda_hat"] for pt in points])
    replicates: dict[tuple, dict] = {}  # (case seed, run seed) -> {p: [λ̂]}
    for r in recs:
        rep = ((r.get("case_definition") or {}).get("seed"), r.get("seed"))
        replicates.setdefault(rep, {}).setdefault(int(_params(r)["p"]), []).append(r["lambda_hat"])
    slopes = []
    every_p = set(by_p)
    for rep in sorted(replicates, key=str):
        if set(replicates[rep]) != every_p:  # a replicate that misses a p would fit another slope
            continue
        ps = sorted(replicates[rep])
        f = loglog_fit(list(map(float, ps)), [statistics.fmean(replicates[rep][p]) for p in ps])
        if f is not None:
            slopes.append(f[0])
    memorises = task == "random"
    xs = [float(_params(r)["p"]) ** (2 if memorises else 1) for r in recs]
    theory = modular_theory(points[0]["p"], task, points[0]["train_fraction"]) if task in SLOPE else None
    return {"task": task, "recipe": rec, "recipe_key": recipe_key(rec),
            "regime": theory.regime if theory else None, "theory_source": theory.source if theory else None,
            "linear_in": "p²" if memorises else "p",
            "linear": linear_fit(xs, [r["lambda_hat"] for r in recs]),
            "predicted_slope": SLOPE.get(task), "slope": fit[0] if fit else None,
            "slope_se": fit[1] if fit else None,
            "slope_seeds": slopes, "slope_seed_mean": statistics.fmean(slopes) if slopes else None,
            "slope_seed_sd": statistics.stdev(slopes) if len(slopes) > 1 else None,
            "replicates": len(slopes), "runs": len(recs), "points": points}


def _ordering(fits: list[dict]) -> list[dict]:
    """Memorising against generalising at equal p, between fits of the same network (recipes equal
    except the task fields)."""
    def network(f):
        return recipe_key({k: v for k, v in f["recipe"].items() if k not in TASK_FIELDS})

    out = []
    for gen in (f for f in fits if f["task"] == "add"):
        for mem in (f for f in fits if f["task"] == "random" and network(f) == network(gen)):
            g = {pt["p"]: pt["lambda_hat"] for pt in gen["points"]}
            m = {pt["p"]: pt["lambda_hat"] for pt in mem["points"]}
            out += [{"p": p, "generalising": g[p], "memorising": m[p], "holds": m[p] > g[p]}
                    for p in sorted(set(g) & set(m))]
    return out


def scaling_block(records: list[dict]) -> Optional[dict]:
    """The scaling scores of a group's runs of the family, or None when it has none."""
    recs = scaling_records(records)
    if not recs:
        return None
    kept, excluded = [], {"non_local": [], "unhealthy": [], "low_ess": []}
    for r in recs:
        why = exclusion(r)
        (excluded[why] if why else kept).append(r)
    by_recipe: dict[str, tuple[dict, list]] = {}
    for r in kept:
        rec = recipe(r)
        by_recipe.setdefault(recipe_key(rec), (rec, []))[1].append(r)
    fits = sorted((_fit_block(rec, rs) for rec, rs in by_recipe.values()),
                  key=lambda f: (str(f["task"]), f["points"][0]["p"], f["recipe_key"]))
    ordering = _ordering(fits)
    return {"fits": fits, "ordering": ordering, "ordering_holds": sum(o["holds"] for o in ordering),
            "ordering_pairs": len(ordering), "scored": len(kept),
            "excluded": {k: len(v) for k, v in excluded.items()},
            "excluded_cases": sorted({r["case"] for v in excluded.values() for r in v})}
