"""Step-size (Richardson) extrapolation of an SG-MCMC λ̂ on shared chains.

An SG-MCMC chain with step ε samples a law p_ε whose mean differs from the
target's by O(ε) (SGLD: Mattingly, Stuart & Tretyakov 2010; with minibatch
noise too, Teh, Thiery & Vollmer 2016), so λ̂(ε) = λ_nβ,γ + c·ε + O(ε²): a
bias that no spread of the chains can show. Running the config at its own
step ε and at 2ε and combining

    λ̂_R = 2·λ̂(ε) − λ̂(2ε)

removes the O(ε) term (Richardson extrapolation; Durmus, Şimşekli,
Moulines, Badeau & Richard 2016, "Stochastic gradient Richardson-Romberg
Markov chain Monte Carlo", NeurIPS). Both steps run as ONE shared-chain grid
run (:mod:`.grid`): the rows of the two points in one tensor, the same
minibatches, ``step_scale`` doubled for the coarse one (2ε for SGLD and
RMSProp-SGLD's ε; 2ε_s, √2·h, for SGNHT, whose position bias is O(h²)),
and the step rule's re-measurement during the burn-in taken from the fine
point's chains for both (``StepSizeRule.leader``), so the ratio stays 2.

Why ε and 2ε, not ε/2 and ε: with the same number of steps a chain at ε/2
covers half the time, and where the burn-in is short for the slowest
directions (quartic minima, deep networks) its λ̂ is low for want of
equilibration, not of step, and the combination doubles that error
(measured: docs/error-bars.md). The run's own point keeps today's
equilibration and the coarse one equilibrates faster; what remains of an
equilibration deficit δ(ε) enters as 2δ(ε) − δ(2ε).

Where a chain diverges at 2ε (a step the rule did not choose), the run
reports the plain λ̂(ε) with a warning: a mean over the surviving chains
would be biased toward the stable region.

Standard error: se_R = √(4·se(ε)² + se(2ε)²), each se the ArviZ MCSE of its
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

from ...health import mixing_problems
from ..base import Estimate

COARSE_FACTOR = 2.0  # the coarse point's step_scale relative to the run's


def points(config) -> list:
    """The two configs of the grid run: the run's own (ε, first) and the coarse one (2ε)."""
    fine = dataclasses.replace(config, extrapolate="none")
    return [fine, dataclasses.replace(fine, step_scale=float(config.step_scale) * COARSE_FACTOR)]


def combine(coarse: Estimate, fine: Estimate) -> Estimate:
    """λ̂_R = 2·λ̂(fine) − λ̂(coarse), the coarse step twice the fine one, with its se (module doc);
    the record of the fine point (the run's own config) otherwise, both points' numbers in
    ``extra["extrapolation"]``."""
    lam = 2.0 * fine.lambda_hat - coarse.lambda_hat
    se = math.sqrt(4.0 * fine.se ** 2 + coarse.se ** 2) if _finite(fine.se, coarse.se) else float("nan")
    chains = (2.0 * np.asarray(fine.lambda_hat_chains, dtype=float)
              - np.asarray(coarse.lambda_hat_chains, dtype=float)).tolist()
    trace = [[None if a is None or b is None else 2.0 * b - a for a, b in zip(ca, cb)]
             for ca, cb in zip(coarse.loss_trace, fine.loss_trace)]
    extra = dict(fine.extra)
    extra["extrapolation"] = {
        "method": "richardson", "applied": True, "combination": "2·λ̂(ε) − λ̂(2ε)",
        "points": [_point(fine), _point(coarse)],
        "step_bias": fine.lambda_hat - lam,  # the O(ε) bias of λ̂(ε) this run removed
    }
    warnings = list(dict.fromkeys(fine.warnings + [f"(step 2ε) {w}" for w in coarse.warnings]))
    locality = fine.locality
    if coarse.locality is not None and coarse.locality.get("local") is False:
        locality = coarse.locality
    diagnostics = combined_diagnostics(fine.diagnostics, coarse.diagnostics)
    diagnostics["mcse_mean"] = se
    return Estimate(lambda_hat=lam, lambda_hat_chains=chains, se=se, loss_trace=trace, diagnostics=diagnostics,
                    grad_evals=coarse.grad_evals + fine.grad_evals, seconds=coarse.seconds + fine.seconds,
                    warnings=warnings, extra=extra, per_sample=fine.per_sample, locality=locality,
                    nbeta=fine.nbeta, gamma=fine.gamma)


def combined_diagnostics(fine: dict, coarse: dict) -> dict:
    """The extrapolated run's diagnostics: the fine point's, with the worse of the two points' R-hat
    and ESS."""
    diagnostics = dict(fine)
    for key in ("rhat", "ess_bulk", "ess_mean"):  # the worse of the two points
        a, b = coarse.get(key), fine.get(key)
        if a is not None and b is not None:
            diagnostics[key] = max(a, b) if key == "rhat" else min(a, b)
    return diagnostics


def settling_problems(summaries: list) -> list[str]:
    """What the adaptive length (settle.py) reads in a Richardson run: the problems of the record it
    will make, [fine, coarse] → the combination's, or the fine point's alone where a chain diverged
    at 2ε (then the run reports λ̂(ε))."""
    fine, coarse = summaries
    if fine["diagnostics"].get("divergent_chains"):
        return []  # unhealthy however long it runs
    diagnostics = fine["diagnostics"]
    if not coarse["diagnostics"].get("divergent_chains"):
        diagnostics = combined_diagnostics(fine["diagnostics"], coarse["diagnostics"])
    return mixing_problems({"diagnostics": diagnostics, "lambda_hat": fine["lambda_hat"]})


def richardson(target, config, seed: int, device: str, sampler, run_grid: Callable) -> Estimate:
    """The extrapolated Estimate of ``config`` (its γ already set by the pilot where one applies)."""
    fine, coarse = run_grid(target, points(config), seed, device, sampler, judge=settling_problems)
    diverged = coarse.diagnostics.get("divergent_chains") or []
    if diverged or not _finite(coarse.lambda_hat, coarse.se):
        # a mean over the surviving chains at 2ε is a biased one: no extrapolation, λ̂(ε) as it is
        fine.warnings.append(f"extrapolate='richardson' not applied: {len(diverged)} of {int(config.chains)} "
                             "chains diverged at step 2ε; λ̂ is the plain λ̂(ε), its se contains no step-size bias")
        fine.extra["extrapolation"] = {"method": "richardson", "applied": False,
                                       "points": [_point(fine), _point(coarse)]}
        fine.grad_evals += coarse.grad_evals
        fine.extra.pop("shared_chains", None)
        return fine
    out = combine(coarse, fine)
    out.extra.pop("shared_chains", None)  # one run, not a point of a grid
    return out


def _point(e: Estimate) -> dict:
    return {"step_size": e.extra.get("step_size"), "lambda_hat": e.lambda_hat, "se": e.se,
            "rhat": e.diagnostics.get("rhat")}


def _finite(*xs) -> bool:
    return all(x is not None and math.isfinite(x) for x in xs)
