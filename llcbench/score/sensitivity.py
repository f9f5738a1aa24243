"""Hyperparameter sensitivity over a sweep: how much λ̂ moves, and where an estimator is stable.

A *sweep* is a set of configs of one estimator (one llcbench version) that
are equal except in the swept fields (``SWEPT``: the step-size constant and
the scales of nβ and γ, the knobs the SG-MCMC estimators share). Each
config is a *grid point*. From the case rows at every point:

- the spread of λ̂ per case across the *healthy* grid points (no divergent
  chain, split R-hat ≤ 1.1, finite λ̂: ``select.healthy``), as the range
  (max − min)/λ — the answer a user can get by choosing the knobs;
- the *stable region* per family: the grid points at which every case of
  the family that the sweep ran is present, healthy and within
  ``STABLE_TOLERANCE`` of λ;
- the *recommended* config per family: of its stable points, the one with
  the smallest median |rel. error| (then the fewest gradient evaluations);
  where no point is stable, the point with the most cases inside the band,
  marked ``stable: false``.

Works for any store: a store without a sweep has no sweeps, a sweep over
one field is a one-dimensional grid, cases missing at some points make
those points unstable for their family.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from typing import Optional

from ..sweep_axes import SWEPT
from .select import Group, case_rows, finite

STABLE_TOLERANCE = 0.10


def _base_key(config: dict, swept: tuple) -> str:
    rest = {k: v for k, v in config.items() if k not in swept}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()[:10]


def find_sweeps(groups: list[Group], swept: tuple = SWEPT) -> list[list[Group]]:
    """Groups of one estimator whose configs differ only in swept fields (two points at least)."""
    parts: dict[tuple, list[Group]] = {}
    for g in groups:
        parts.setdefault((g.estimator, g.version, g.shared_chains, _base_key(g.config, swept)), []).append(g)
    return [gs for gs in parts.values() if len(gs) >= 2]


def _good(row: dict) -> bool:
    return row["healthy"] and finite(row["rel_error"]) and abs(row["rel_error"]) <= STABLE_TOLERANCE


def sweep_scores(groups: list[Group], rows_of: Optional[dict] = None, swept: tuple = SWEPT) -> dict:
    """The sensitivity scores of one sweep (``groups`` from ``find_sweeps``). ``rows_of`` maps a
    group id to its exact-truth case rows (computed here when absent)."""
    rows_of = rows_of or {}
    rows = {g.id: rows_of.get(g.id) or [r for r in case_rows(g) if r["truth_kind"] == "exact"] for g in groups}
    axes = {}
    for name in swept:
        values = {g.config.get(name) for g in groups}
        if len(values) > 1:
            axes[name] = sorted(values, key=lambda v: (v is None, v if v is not None else 0))
    fam_cases: dict[str, set] = {}
    for rs in rows.values():
        for r in rs:
            fam_cases.setdefault(r["family"], set()).add(r["case"])
    points = []
    for g in groups:
        by_case = {r["case"]: r for r in rows[g.id]}
        fams = {}
        for fam, cases in sorted(fam_cases.items()):
            present = [by_case[c] for c in cases if c in by_case]
            errs = [abs(r["rel_error"]) for r in present if finite(r["rel_error"])]
            fams[fam] = {
                "cases": len(present),
                "healthy": sum(r["healthy"] for r in present),
                "within": sum(_good(r) for r in present),
                "median_abs_rel_error": statistics.median(errs) if errs else None,
                "stable": len(present) == len(cases) and all(_good(r) for r in present),
            }
        grads = [r["grad_evals"] for r in rows[g.id] if finite(r["grad_evals"])]
        errs = [abs(r["rel_error"]) for r in rows[g.id] if finite(r["rel_error"])]
        points.append({
            "group": g.id,
            "values": {a: g.config.get(a) for a in axes},
            "runs": len(g.records),
            "median_abs_rel_error": statistics.median(errs) if errs else None,
            "grad_evals_median": statistics.median(grads) if grads else None,
            "families": fams,
            "stable_families": [f for f, b in fams.items() if b["stable"]],
        })
    families = {}
    for fam, cases in sorted(fam_cases.items()):
        stable = [p for p in points if p["families"][fam]["stable"]]
        families[fam] = {"cases": len(cases), "stable_points": [p["group"] for p in stable],
                         "stable_size": len(stable), "recommended": _recommend(points, fam, stable)}
    stable_all = [p["group"] for p in points if len(p["stable_families"]) == len(fam_cases) and fam_cases]
    return {
        "id": f"{groups[0].estimator}:{_base_key(groups[0].config, swept)}",
        "estimator": groups[0].estimator,
        "llcbench_version": groups[0].version,
        "axes": axes,
        "points": points,
        "families": families,
        "stable_all": stable_all,
        "case_spread": _spreads(groups, rows),
    }


def _recommend(points: list[dict], fam: str, stable: list[dict]) -> Optional[dict]:
    def err(p):
        e = p["families"][fam]["median_abs_rel_error"]
        return e if e is not None else float("inf")

    def cost(p):
        return p["grad_evals_median"] if p["grad_evals_median"] is not None else float("inf")

    if stable:
        best = min(stable, key=lambda p: (err(p), cost(p)))
    else:
        pool = [p for p in points if p["families"][fam]["cases"]]
        if not pool:
            return None
        best = min(pool, key=lambda p: (-p["families"][fam]["within"], err(p), cost(p)))
    return {"group": best["group"], "values": best["values"], "stable": bool(stable),
            "median_abs_rel_error": best["families"][fam]["median_abs_rel_error"]}


def _spreads(groups: list[Group], rows: dict) -> list[dict]:
    per_case: dict[str, dict] = {}
    for g in groups:
        for r in rows[g.id]:
            c = per_case.setdefault(r["case"], {"case": r["case"], "family": r["family"], "lambda": r["lambda_float"],
                                                "per_point": []})
            c["per_point"].append([g.id, r["lambda_hat"], r["healthy"]])
    out = []
    for c in per_case.values():
        vals = [v for _, v, ok in c["per_point"] if ok and finite(v)]
        lam = c["lambda"]
        c["healthy_points"] = len(vals)
        c["min"] = min(vals) if vals else None
        c["max"] = max(vals) if vals else None
        c["rel_range"] = (max(vals) - min(vals)) / abs(lam) if len(vals) >= 2 and finite(lam) and lam else None
        out.append(c)
    out.sort(key=lambda c: -(c["rel_range"] if c["rel_range"] is not None else -1))
    return out
