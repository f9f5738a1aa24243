"""Synthetic run records for score and report tests: the fields a real record has, values chosen."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random

BASE_CONFIG = {"chains": 4, "steps": 1000, "burn_in": 200, "step_scale": 0.2, "nbeta_scale": 1.0,
               "gamma_scale": 1e-3, "step_size": None, "batch_size": 1024}


def record(case: str, family: str, lam: float, estimator: str, config: dict, seed: int, lam_hat: float,
           se: float = 0.02, rhat: float = 1.01, divergent=(), truth_kind: str = "exact", version: str = "0.3.0",
           lambda_ref=None, ref_se: float = 0.0, trace_points: int = 50, chains: int = 4, seconds: float = 1.0,
           grad_evals: int = 4000, multiplicity: int = 1, created_at: str = "2025-01-01T00:00:00+00:00",
           ess: float = 500.0, locality=None) -> dict:
    """One run's record. ``lam_hat`` None or NaN: a failed run (every chain diverged); ``trace_points``
    0: no loss trace (an estimator that records none); ``locality``: the record's locality object."""
    key = hashlib.sha256(json.dumps([case, estimator, config, seed, version], sort_keys=True).encode()).hexdigest()
    nbeta = 1000.0 * config.get("nbeta_scale", 1.0)
    rng = random.Random(key)
    ok = isinstance(lam_hat, float | int) and math.isfinite(lam_hat)
    rec = {
        "key": key, "case": case, "case_key": "ck-" + case, "family": family,
        "case_definition": {"id": case, "family": family}, "n": 10000,
        "lambda": str(lam), "lambda_float": lam, "multiplicity": multiplicity, "truth_kind": truth_kind,
        "truth_source": "synthetic", "estimator": estimator, "config": config, "seed": seed,
        "lambda_hat": lam_hat, "lambda_hat_chains": [lam_hat if ok else None] * chains, "se": se,
        "rel_error": (lam_hat - lam) / lam if ok else None, "rhat": rhat, "ess": ess,
        "diagnostics": {"rhat": rhat, "ess": ess, "ess_bulk": ess, "divergent_chains": list(divergent)},
        "warnings": [], "loss_fingerprint": "fp-" + case,
        "loss_trace": [[(lam_hat if ok else 1e9) / nbeta * (1 + 0.1 * rng.gauss(0, 1)) for _ in range(trace_points)]
                       for _ in range(chains)] if trace_points else None,
        "extra": {"nbeta": nbeta, "gamma": config.get("gamma_scale", 1e-3) * nbeta},
        "lambda_ref": None, "lambda_ref_source": None, "estimand_bias": None, "sampler_bias": None,
        "sampler_bias_se": None, "grad_evals": grad_evals, "seconds": seconds, "device": "cpu",
        "llcbench_version": version, "git_commit": "abc123", "torch_version": "2.13.0+cpu", "torch_threads": 1,
        "created_at": created_at, "locality": locality,
    }
    if lambda_ref is not None:
        rec.update(lambda_ref=lambda_ref, lambda_ref_error=ref_se, lambda_ref_method="exact (synthetic)",
                   lambda_ref_source="exact", estimand_bias=lambda_ref - lam,
                   sampler_bias=lam_hat - lambda_ref if ok else None,
                   sampler_bias_se=math.hypot(se, ref_se) if ok and se is not None else None)
    return rec


CASES = [(f"syn/{fam}-{i}", fam, lam) for fam, lams in
         (("polynomial", [0.25, 0.5, 0.75, 1.0, 1.5]), ("dln", [1.5, 3.0, 4.0, 10.0]),
          ("regular", [1.0, 5.0, 25.0]), ("rrr", [6.0, 13.0]))
         for i, lam in enumerate(lams)]


def sweep_records(estimators=("sgld", "rmsprop_sgld"), grid=None, seeds=2, cases=CASES, trace_points=50):
    """Records of a full grid: λ̂ = λ·(1 + bias(point)) + noise, a few points unhealthy."""
    grid = grid or {"step_scale": [0.05, 0.2, 0.8], "nbeta_scale": [0.3, 1.0, 3.0], "gamma_scale": [1e-4, 1e-3, 1e-2]}
    names = list(grid)
    out = []
    rng = random.Random(0)
    for est in estimators:
        for values in itertools.product(*grid.values()):
            config = dict(BASE_CONFIG, **dict(zip(names, values)))
            step = config["step_scale"]
            for case, fam, lam in cases:
                for seed in range(seeds):
                    bias = 0.3 * (step - 0.2) + (0.15 if fam == "dln" and config["gamma_scale"] > 1e-3 else 0.0)
                    lam_hat = lam * (1 + bias + 0.01 * rng.gauss(0, 1))
                    out.append(record(case, fam, lam, est, config, seed, lam_hat, se=0.01 * lam,
                                      rhat=1.3 if step > 0.5 and fam == "regular" else 1.01,
                                      lambda_ref=lam * 0.98 if fam == "polynomial" else None,
                                      trace_points=trace_points, grad_evals=int(4000 / step)))
    return out
