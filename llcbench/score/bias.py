"""Bias: how far λ̂ is from λ, and whose fault that is where a reference λ_nβ,γ exists.

Over the case rows of a group (seeds aggregated) whose truth is exact:
signed relative error (λ̂ − λ)/λ, its median absolute value, the share of
cases within 5 % and 10 %, and — on the cases with a reference (exact, a
stored reference run, or the shipped table; ``llcbench.references``) — the
split λ̂ − λ = (λ_nβ,γ − λ) + (λ̂ − λ_nβ,γ) into estimand and sampler parts.
Runs worse than ``attribution.TOLERANCE`` are counted by their attribution
(``llcbench.attribution``, the one place that rule is stated). Only healthy runs
reach a block (``llcbench.health``), so none is attributed "unhealthy" here.
"""

from __future__ import annotations

import statistics

from ..attribution import ATTRIBUTIONS, TOLERANCE, Z
from .select import finite


def _median(xs):
    xs = [x for x in xs if finite(x)]
    return statistics.median(xs) if xs else None


def bias_block(rows: list[dict], records: list[dict]) -> dict:
    """Bias scores of case rows (one per case) and of the runs behind them."""
    rels = [r["rel_error"] for r in rows if finite(r["rel_error"])]
    abs_rels = [abs(x) for x in rels]
    worst = max((r for r in rows if finite(r["rel_error"])), key=lambda r: abs(r["rel_error"]), default=None)
    refd = [r for r in rows if finite(r["estimand_rel"])]
    sig = [rec for rec in records if finite(rec.get("sampler_bias")) and finite(rec.get("sampler_bias_se"))
           and rec["sampler_bias_se"] > 0 and abs(rec["sampler_bias"]) > Z * rec["sampler_bias_se"]]
    off = [rec for rec in records if rec.get("attribution")]
    return {
        "median_abs_rel_error": _median(abs_rels),
        "mean_rel_error": statistics.fmean(rels) if rels else None,
        "within_5pct": sum(x <= 0.05 for x in abs_rels) / len(abs_rels) if abs_rels else None,
        "within_10pct": sum(x <= 0.10 for x in abs_rels) / len(abs_rels) if abs_rels else None,
        "worst": {"case": worst["case"], "rel_error": worst["rel_error"]} if worst else None,
        "cases_with_reference": len(refd),
        "median_abs_estimand_rel": _median([abs(r["estimand_rel"]) for r in refd]),
        "median_abs_sampler_rel": _median([abs(r["sampler_rel"]) for r in refd]),
        "runs_sampler_significant": len(sig),
        "runs_beyond_tolerance": {"tolerance": TOLERANCE, "total": len(off),
                                  **{a: sum(rec["attribution"] == a for rec in off) for a in ATTRIBUTIONS if a != "unhealthy"}},
    }
