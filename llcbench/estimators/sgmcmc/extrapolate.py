"""Step-size (Richardson) extrapolation of an SG-MCMC λ̂ on shared chains.

An SG-MCMC chain with step ε samples a law p_ε whose mean differs from the
target's by O(ε) (SGLD: Mattingly, Stuart & Tretyakov 2010; with minibatch
noise too, Teh, Thiery & Vollmer 2016), so λ̂(ε) = λ_nβ,γ + c·ε + O(ε²): a
bias that no spread of the chains can show, and the main reason λ̂ ± 2·se
missed λ_nβ,γ. Running the same config at ε and ε/2 and combining

    λ̂_R = 2·λ̂(ε/2) − λ̂(ε)

removes the O(ε) term (Richardson extrapolation; Durmus, Şimşekli,
Moulines, Badeau & Richard 2016, "Stochastic gradient Richardson-Romberg
Markov chain Monte Carlo", NeurIPS). Both step sizes run as ONE
shared-chain grid run (:mod:`.grid`): the rows of the two points in one
tensor, the same minibatches, each point its own step-size rule with
``step_scale`` halved for the fine one (so ε/2 for SGLD and RMSProp-SGLD's
ε, and ε_s/2, h/√2, for SGNHT, whose position bias is O(h²)).

Standard error: se_R = √(4·se(ε/2)² + se(ε)²), each se the ArviZ MCSE of its
point's trace. That is exact for independent points and an upper bound when
the points are positively correlated, which is all that sharing the
minibatches can do (the Gaussian noise of the two points' rows is drawn
independently).

The grid runner is passed in by the caller (``run_grid``): this module
imports neither the driver nor the grid module.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np

from ..base import Estimate

FINE_FACTOR = 0.5  # the fine point's step_scale relative to the run's


def points(config) -> list:
    """The two configs of the grid run: the run's own (ε) and the fine one (ε/2)."""
    coarse = dataclasses.replace(config, extrapolate="none")
    return [coarse, dataclasses.replace(coarse, step_scale=float(config.step_scale) * FINE_FACTOR)]


def combine(coarse: Estimate, fine: Estimate) -> Estimate:
    """λ̂_R = 2·λ̂(ε/2) − λ̂(ε) with its se (module doc); the record of the coarse point (the run's
    own config) otherwise, both points' numbers in ``extra["extrapolation"]``."""
    lam = 2.0 * fine.lambda_hat - coarse.lambda_hat
    se = math.sqrt(4.0 * fine.se ** 2 + coarse.se ** 2) if _finite(fine.se, coarse.se) else float("nan")
    chains = (2.0 * np.asarray(fine.lambda_hat_chains, dtype=float)
              - np.asarray(coarse.lambda_hat_chains, dtype=float)).tolist()
    trace = [[None if a is None or b is None else 2.0 * b - a for a, b in zip(ca, cb)]
             for ca, cb in zip(coarse.loss_trace, fine.loss_trace)]
    extra = dict(coarse.extra)
    extra["extrapolation"] = {
        "method": "richardson", "combination": "2·λ̂(ε/2) − λ̂(ε)",
        "points": [_point(coarse), _point(fine)],
        "step_bias": coarse.lambda_hat - lam,  # the O(ε) bias of λ̂(ε) this run removed
    }
    warnings = list(dict.fromkeys(coarse.warnings + [f"(fine step) {w}" for w in fine.warnings]))
    locality = coarse.locality
    if fine.locality is not None and fine.locality.get("local") is False:
        locality = fine.locality
    diagnostics = dict(coarse.diagnostics)
    for key in ("rhat", "ess_bulk", "ess_mean"):  # the worse of the two points: the fine one mixes slower
        a, b = coarse.diagnostics.get(key), fine.diagnostics.get(key)
        if a is not None and b is not None:
            diagnostics[key] = max(a, b) if key == "rhat" else min(a, b)
    diagnostics["mcse_mean"] = se
    return Estimate(lambda_hat=lam, lambda_hat_chains=chains, se=se, loss_trace=trace, diagnostics=diagnostics,
                    grad_evals=coarse.grad_evals + fine.grad_evals, seconds=coarse.seconds + fine.seconds,
                    warnings=warnings, extra=extra, per_sample=coarse.per_sample, locality=locality)


def richardson(target, config, seed: int, device: str, sampler, run_grid: Callable) -> Estimate:
    """The extrapolated Estimate of ``config`` (its γ already set by the pilot where one applies)."""
    coarse, fine = run_grid(target, points(config), seed, device, sampler)
    out = combine(coarse, fine)
    out.extra.pop("shared_chains", None)  # one run, not a point of a grid
    return out


def _point(e: Estimate) -> dict:
    return {"step_size": e.extra.get("step_size"), "lambda_hat": e.lambda_hat, "se": e.se,
            "rhat": e.diagnostics.get("rhat")}


def _finite(*xs) -> bool:
    return all(x is not None and math.isfinite(x) for x in xs)
