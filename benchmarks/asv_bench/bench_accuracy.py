"""Accuracy of the default ``sgld`` across commits, on a fixed subset of the catalogue (asv ``track_``).

Like scipy's ``track_`` benchmarks of the distance to a known optimum: a
commit that breaks calibration shows on the same dashboard as one that
slows a step. Five small cases (≈ 5 s of runs in all, shared by the
benchmarks through ``setup_cache``), each with a shipped reference λ_nβ,γ
(``llcbench/references/data/default.json``), so that the error splits into
the estimand's and the sampler's part (``llcbench.attribution``); seed 0,
one torch thread: the values are reproducible on one machine.
"""

from __future__ import annotations

import statistics

from llcbench.attribution import Z
from llcbench.references import with_best_reference
from llcbench.runner import RunSpec, execute

from .common import case, config

SUBSET = ["dln/2-2-2/r0", "dln/3-2-3/r1", "rrr/5-3-5/r0", "rrr/1-1-1/r1", "regular/logistic-3"]


class SGLDAccuracy:
    timeout = 600

    def setup_cache(self):
        spec, cfg = config("sgld")
        records = []
        for cid in SUBSET:
            record = with_best_reference(None, execute(RunSpec(case(cid), spec, cfg, 0)))
            source = record.get("lambda_ref_source") or ""
            if not source.startswith("shipped:"):  # the subset is chosen for its shipped references
                raise RuntimeError(f"{cid}: no usable shipped reference ({source or 'none'})")
            records.append({k: record[k] for k in ("case", "rel_error", "lambda_float", "sampler_bias",
                                                   "sampler_bias_se")})
        return records

    def track_median_abs_rel_error(self, records):
        """Median over the subset of |λ̂ − λ|/λ."""
        return statistics.median(abs(r["rel_error"]) for r in records)

    track_median_abs_rel_error.unit = "relative error"

    def track_median_abs_sampler_bias(self, records):
        """Median over the subset of |λ̂ − λ_nβ,γ|/λ against the shipped references: the sampler's part."""
        return statistics.median(abs(r["sampler_bias"]) / r["lambda_float"] for r in records)

    track_median_abs_sampler_bias.unit = "relative error"

    def track_sampler_bias_beyond_3se(self, records):
        """How many of the subset's runs have a sampler bias beyond Z = 3 se (the attribution rule's threshold)."""
        return sum(abs(r["sampler_bias"]) > Z * r["sampler_bias_se"] for r in records)

    track_sampler_bias_beyond_3se.unit = "runs"
