"""Localised, tempered SGLD (Welling & Teh 2011; Lau, Murfet & Wei 2023, arXiv 2308.12108).

One step, all chains at once (rows of w):

    w ← w − (ε/2)·[nβ·∇L_B(w) − ∇log φ(w) + γ·(w − w*)] + N(0, ε·I)

(∇log φ only for targets with a prior φ). The λ trace, burn-in, minibatches,
divergence handling, diagnostics and the step-size rule are the shared
driver's (:mod:`llcbench.estimators.sgmcmc`). Default step size
(``step_size = None``): the driver's rule

    ε = step_scale / (nβ·max(h, curvature_floor) + heat + γ),

h the top Hessian eigenvalue of L and heat the minibatch-noise term, both
at w* and then, during the first half of the burn-in, the largest over the
chains at their positions. By default (``minibatch_heat = "measured"``)
heat = nβ²·v, v the largest per-coordinate variance of the minibatch
gradient measured there (0 for exact gradients); ``"fisher"`` takes
v = h/b instead (heat = nβ·h·nβ/b: the per-sample gradient covariance
equal to the Hessian), which is right for noisy labels at a true parameter
but overstates by orders of magnitude the noise of the noiseless-teacher
DLN and RRR cases. The rule keeps the discretisation error plus the heat of
the gradient noise at ≈ step_scale/4 of the variance in the stiffest
direction (on a quadratic with exact gradients the discretised chain's
stationary variance there is 1/(1 − step_scale/4) times the exact one:
+5 % at 0.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..target import Target
from .base import Estimate, EstimatorSpec
from .sgmcmc import Context, Sampler, SGMCMCConfig, run_sgmcmc, supports
from .sgmcmc.config import extrapolate_field
from .sgmcmc.driver import grid_estimator


@dataclass
class SGLDConfig(SGMCMCConfig):
    """Localised tempered SGLD. Every field: see ``llcbench estimators``."""

    # Richardson in ε by default: it removes SGLD's O(ε) bias, which no error bar contains (docs/error-bars.md)
    extrapolate: str = extrapolate_field("auto")


@dataclass
class SGLDState:
    w: torch.Tensor  # (chains, dim)
    noise: torch.Tensor  # (chains, dim) buffer


def init(ctx: Context) -> SGLDState:
    w = ctx.start()  # the driver's positions buffer (w* in every row)
    return SGLDState(w=w, noise=torch.empty_like(w))


def sgld_update(w: torch.Tensor, noise: torch.Tensor, g: torch.Tensor, pg: Optional[torch.Tensor],
                eps: float, ctx: Context) -> None:
    """w ← w − (ε/2)·[nβ·g − pg + γ·(w − w*)] + √ε·N(0, I), in place (4 elementwise kernels).

    ε, nβ and γ are numbers, or (rows, 1) columns in a shared-chain grid run."""
    if isinstance(eps, torch.Tensor):
        noise.normal_(generator=ctx.generator).mul_(eps.sqrt())
        noise.addcmul_(g, eps * ctx.nbeta, value=-0.5)
        if pg is not None:
            noise.addcmul_(pg, eps, value=0.5)
        w.lerp_(ctx.w_star, eps * ctx.gamma / 2)
        w.add_(noise)
        return
    noise.normal_(0.0, math.sqrt(eps), generator=ctx.generator)
    noise.add_(g, alpha=-eps * ctx.nbeta / 2)
    if pg is not None:
        noise.add_(pg, alpha=eps / 2)
    if ctx.gamma != 0.0:
        a = eps * ctx.gamma / 2
        w.lerp_(ctx.w_star, a)  # (1 − a)·w + a·w*: the localisation's pull, one kernel
    w.add_(noise)


def step(state: SGLDState, g: torch.Tensor, pg: Optional[torch.Tensor], ctx: Context, t: int,
         aux: Optional[torch.Tensor] = None) -> None:
    """One SGLD update of every chain, in place."""
    sgld_update(state.w, state.noise, g, pg, ctx.eps, ctx)


def park(state: SGLDState, dead: torch.Tensor, ctx: Context) -> None:
    """Nothing beyond w (reset to w* by the driver) is per-chain state."""


SAMPLER = Sampler(name="sgld", init=init, step=step, park=park, per_row=True,
                  langevin_step=lambda ctx: ctx.eps)  # the rule's ε or the given one


def estimate(target: Target, config: SGLDConfig, seed: int, device: str = "cpu",
             progress: Optional[Callable[[int, int], None]] = None) -> Estimate:
    """λ̂ by localised tempered SGLD (see the module doc)."""
    return run_sgmcmc(target, config, seed, device, SAMPLER, progress=progress)



SPEC = EstimatorSpec(
    name="sgld", config_cls=SGLDConfig, estimate=estimate, supports=supports,
    estimate_grid=grid_estimator(SAMPLER),
    summary="localised tempered SGLD (Lau et al. 2023), chains vectorised",
)
