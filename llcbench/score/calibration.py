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
"""

from __future__ import annotations

import statistics

from .select import finite

COVERAGE_Z = 2.0


def covered_truth(rec: dict):
    if not (finite(rec.get("lambda_hat")) and finite(rec.get("se")) and finite(rec.get("lambda_float"))):
        return None
    return abs(rec["lambda_hat"] - rec["lambda_float"]) <= COVERAGE_Z * rec["se"]


def covered_reference(rec: dict):
    if not (finite(rec.get("sampler_bias")) and finite(rec.get("sampler_bias_se"))):
        return None
    return abs(rec["sampler_bias"]) <= COVERAGE_Z * rec["sampler_bias_se"]


def calibration_block(rows: list[dict], records: list[dict]) -> dict:
    truth = [c for c in map(covered_truth, records) if c is not None]
    ref = [c for c in map(covered_reference, records) if c is not None]
    ratios = [r["seed_spread"] / r["mean_se"] for r in rows
              if finite(r.get("seed_spread")) and finite(r.get("mean_se")) and r["mean_se"] > 0]
    return {
        "coverage_truth": sum(truth) / len(truth) if truth else None,
        "coverage_truth_runs": len(truth),
        "coverage_reference": sum(ref) / len(ref) if ref else None,
        "coverage_reference_runs": len(ref),
        "seed_spread_ratio": statistics.median(ratios) if ratios else None,
        "seed_spread_cases": len(ratios),
    }
