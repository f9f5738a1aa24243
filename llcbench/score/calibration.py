"""Uncertainty calibration: can λ̂ ± 2·se be believed?

- ``coverage_truth``: the share of runs whose λ̂ ± 2·se contains λ. Below
  0.95 it mixes bias (the estimand is not λ at finite nβ, γ) with error
  bars that are too narrow;
- ``coverage_reference``: the share of runs with a reference whose
  λ̂ ± 2·s contains λ_nβ,γ, s = hypot(se, se of the reference) (the
  ``sampler_bias_se`` of ``llcbench.references.with_reference``): the
  sampler's own error bars, bias of the estimand taken out;
- ``seed_spread_ratio``: where a case has several seeds, the standard
  deviation of λ̂ over seeds divided by the mean reported se (median over
  such cases). About 1 when the se is honest; above 1 when the se
  underestimates the run-to-run variation (autocorrelation the ESS missed).

Each coverage comes with a verdict: "holds" when at least ``TARGET`` (90 %)
of the runs are covered, else "error bars too small by ×k", k the factor on
the error bars that would cover ``TARGET`` of the runs: the 90th percentile
(numpy's linear interpolation) of |λ̂ − λ|/(2·se) (of |λ̂ − λ_nβ,γ|/(2·s)).
"""

from __future__ import annotations

import math
import statistics

import numpy as np

from .select import finite

COVERAGE_Z = 2.0
TARGET = 0.9  # the share of runs the error bars must cover for the verdict "holds"


def covered_truth(rec: dict):
    if not (finite(rec.get("lambda_hat")) and finite(rec.get("se")) and finite(rec.get("lambda_float"))):
        return None
    return abs(rec["lambda_hat"] - rec["lambda_float"]) <= COVERAGE_Z * rec["se"]


def covered_reference(rec: dict):
    if not (finite(rec.get("sampler_bias")) and finite(rec.get("sampler_bias_se"))):
        return None
    return abs(rec["sampler_bias"]) <= COVERAGE_Z * rec["sampler_bias_se"]


def _ratio(diff: float, s: float) -> float:
    """|diff|/(2·s): the factor on the error bar ± 2·s that just covers ``diff`` (inf when s = 0 misses)."""
    if s > 0:
        return abs(diff) / (COVERAGE_Z * s)
    return 0.0 if diff == 0 else math.inf


def ratio_truth(rec: dict):
    if covered_truth(rec) is None:
        return None
    return _ratio(rec["lambda_hat"] - rec["lambda_float"], rec["se"])


def ratio_reference(rec: dict):
    if covered_reference(rec) is None:
        return None
    return _ratio(rec["sampler_bias"], rec["sampler_bias_se"])


def verdict(coverage, ratios: list[float]) -> tuple:
    """(k, verdict) of a coverage and the runs' ratios |λ̂ − ref|/(2·se): k the factor on the error bars
    that would cover ``TARGET`` of the runs (None where no run, or a zero error bar must grow without bound)."""
    if coverage is None or not ratios:
        return None, None
    k = float(np.quantile(ratios, TARGET))
    if coverage >= TARGET:
        return (k if math.isfinite(k) else None), "holds"
    if not math.isfinite(k):
        return None, "error bars of zero width: no factor makes them hold"
    return k, f"error bars too small by ×{k:.2g}"


def calibration_block(rows: list[dict], records: list[dict]) -> dict:
    truth = [c for c in map(covered_truth, records) if c is not None]
    ref = [c for c in map(covered_reference, records) if c is not None]
    truth_k, truth_verdict = verdict(sum(truth) / len(truth) if truth else None,
                                     [x for x in map(ratio_truth, records) if x is not None])
    ref_k, ref_verdict = verdict(sum(ref) / len(ref) if ref else None,
                                 [x for x in map(ratio_reference, records) if x is not None])
    ratios = [r["seed_spread"] / r["mean_se"] for r in rows
              if finite(r.get("seed_spread")) and finite(r.get("mean_se")) and r["mean_se"] > 0]
    return {
        "coverage_truth": sum(truth) / len(truth) if truth else None,
        "coverage_truth_runs": len(truth),
        "coverage_truth_k": truth_k,
        "coverage_truth_verdict": truth_verdict,
        "coverage_reference": sum(ref) / len(ref) if ref else None,
        "coverage_reference_runs": len(ref),
        "coverage_reference_k": ref_k,
        "coverage_reference_verdict": ref_verdict,
        "seed_spread_ratio": statistics.median(ratios) if ratios else None,
        "seed_spread_cases": len(ratios),
    }
