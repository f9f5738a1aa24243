"""Stochastic-gradient Nosé–Hoover thermostat (Ding et al. 2014), localised and tempered.

State per chain: position w, momentum p, thermostat ξ (one scalar per chain).
Potential U(w) = nβ·L_B(w) − log φ(w) + (γ/2)·‖w − w*‖² (log φ only for
targets with a prior). One step with time step h, all chains at once:

    p ← p − h·ξ·p − h·∇U(w) + √(2·A·h)·N(0, I)
    w ← w + h·p
    ξ ← ξ + h·(pᵀp/d − 1)

The thermostat is applied (the friction term h·ξ·p) and adapts: ξ rises
when the kinetic energy per coordinate pᵀp/d exceeds 1 (heat from gradient
noise and discretisation) and falls below it, so pᵀp/d is driven to 1, the
temperature of the target exp(−U). (devinterp 2.0.1's "sgnht" computes ξ but
never applies it.) Initial p ~ N(0, I) or 0 (``init_momentum``). Initial ξ:
``xi_init``, or A + B̂ with B̂ = h·nβ²·mean_i Var(∂_i L_B)/2 the heat the
minibatch gradient noise injects per unit time (estimated from a few extra
minibatch gradients; 0 for exact gradients): the stationary friction at
temperature 1. Ding et al.'s thermostat reaches it by itself, but at a rate
of (pᵀp/d − 1) per unit time, i.e. thousands of steps when the gradient
noise dominates; the estimate is refreshed at each step-size adaptation
during the first half of the burn-in, and from then on ξ evolves freely.

Step size: ``step_size`` is h. Default (None): h = √ε_s with the SGLD rule
ε_s = step_scale/(nβ·max(h_H, curvature_floor) + heat + γ) of
:mod:`llcbench.estimators.sgmcmc` (h_H the top Hessian eigenvalue of L and
heat the minibatch-noise term — by default, ``minibatch_heat = "measured"``,
nβ² times the measured variance of the minibatch gradient — at w* and then
at the chains' positions during the first half of the burn-in):
h·ω_max ≤ √step_scale for the stiffest frequency
ω_max = √(nβ·h_H + γ), the same discretisation bias in the stiffest
direction as SGLD with ε_s (the symplectic-Euler oscillator's stationary
position variance is 1/(ω²(1 − h²ω²/4))), while flat directions move
≈ 2/(ξ·h) times faster than under SGLD.

Extra in the Estimate: thermostat trace summaries (ξ initial / post-burn-in
mean / final per chain) and the kinetic energy pᵀp/d (initial, post-burn-in
mean per chain), so that one can check that the thermostat works.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from ..target import Target
from .base import Estimate, EstimatorSpec, doc
from .sgmcmc import Context, Sampler, SGMCMCConfig, potential_gradient, run_sgmcmc, supports
from .sgmcmc.grid import grid_estimator

MOMENTUM_INITS = ("normal", "zero")


@dataclass
class SGNHTConfig(SGMCMCConfig):
    """SGNHT. Every field: see ``llcbench estimators``."""

    step_size: Optional[float] = doc(
        None, "time step h; None: h = √ε_s, ε_s the SGLD step-size rule (see sgld), adapted in the burn-in")
    diffusion: float = doc(1.0, "A: injected noise √(2·A·h)·N(0, I)")
    xi_init: Optional[float] = doc(
        None, "initial ξ; None: A + B̂, B̂ = h·nβ²·mean Var(∇L_B)/2 the minibatch-noise heat estimated at w* "
        "(0 for exact gradients), re-estimated at the chains' positions at each step-size adaptation")
    init_momentum: str = doc("normal", "initial momentum: 'normal' (p ~ N(0, I)) or 'zero'")

    def validate(self) -> None:
        super().validate()
        if not (self.diffusion > 0 and math.isfinite(self.diffusion)):
            raise ValueError("diffusion must be > 0")
        if self.init_momentum not in MOMENTUM_INITS:
            raise ValueError(f"init_momentum must be one of {', '.join(MOMENTUM_INITS)}")


@dataclass
class SGNHTState:
    w: torch.Tensor  # (chains, dim)
    p: torch.Tensor  # (chains, dim)
    xi: torch.Tensor  # (chains, 1)
    noise: torch.Tensor
    drift: torch.Tensor
    ke: torch.Tensor  # (chains, 1) buffer: pᵀp/d
    fric: torch.Tensor  # (chains, 1) buffer: 1 − h·ξ
    xi0: float
    ke0: list


def sgnht_rule(eps_sgld):
    """h = √ε_s, ε_s the SGLD rule (:func:`llcbench.estimators.sgmcmc.default_step_size`); a number,
    or a (rows, 1) column in a shared-chain grid run."""
    return eps_sgld.sqrt() if isinstance(eps_sgld, torch.Tensor) else math.sqrt(eps_sgld)


def init(ctx: Context) -> SGNHTState:
    cfg = ctx.config
    w = ctx.start()  # the driver's positions buffer (w* in every row)
    p = torch.zeros_like(w)
    if cfg.init_momentum == "normal":
        p.normal_(generator=ctx.generator)
    xi = torch.full((ctx.chains, 1), float(cfg.diffusion), dtype=w.dtype, device=w.device)
    ke0 = (p.square().sum(dim=1) / ctx.dim).tolist()
    state = SGNHTState(w=w, p=p, xi=xi, noise=torch.empty_like(w), drift=torch.empty_like(w),
                       ke=torch.empty_like(xi), fric=torch.empty_like(xi), xi0=float(cfg.diffusion), ke0=ke0)
    if cfg.xi_init is not None:
        xi.fill_(float(cfg.xi_init))
    else:
        _reset_xi(state, ctx)
    state.xi0 = float(xi.mean()) if ctx.points == 1 else xi[:, 0].clone()  # per row in a grid run
    return state


def _reset_xi(state: SGNHTState, ctx: Context) -> None:
    """ξ ← A + B̂ per chain, B̂ = h·nβ²·mean_i Var(∂_i L_B)/2 (the friction that balances the
    minibatch gradient noise at temperature 1); ξ ← A for exact gradients."""
    A = float(ctx.config.diffusion)
    if ctx.grad_noise is None:
        state.xi.fill_(A)
        return
    var = ctx.grad_noise(state.w)  # (chains,)
    state.xi.copy_(A + ctx.eps * ctx.nbeta**2 * var[:, None] / 2)


def on_step_size(state: SGNHTState, ctx: Context, t: int) -> None:
    """Adaptation: re-estimate the minibatch-noise heat at the chains' positions (unless ξ was given)."""
    if ctx.config.xi_init is None:
        _reset_xi(state, ctx)


def step(state: SGNHTState, g, pg, ctx: Context, t: int, aux: Optional[torch.Tensor] = None) -> None:
    h = ctx.eps
    w, p, xi, drift, noise = state.w, state.p, state.xi, state.drift, state.noise
    potential_gradient(w, g, pg, ctx, out=drift)  # ∇U = nβ·g + γ·(w − w*) − ∇log φ
    # p ← p·(1 − h·ξ) − h·∇U + √(2Ah)·N;  w ← w + h·p;  ξ ← ξ + h·(pᵀp/d − 1)
    torch.mul(xi, -h, out=state.fric).add_(1.0)
    if isinstance(h, torch.Tensor):  # per-row h (a shared-chain grid run): the same update, in columns
        p.mul_(state.fric).addcmul_(drift, h, value=-1.0)
        noise.normal_(generator=ctx.generator).mul_((2.0 * ctx.config.diffusion * h).sqrt())
        p.add_(noise)
        w.addcmul_(p, h)
    else:
        p.mul_(state.fric).add_(drift, alpha=-h)
        noise.normal_(0.0, math.sqrt(2.0 * ctx.config.diffusion * h), generator=ctx.generator)
        p.add_(noise)
        w.add_(p, alpha=h)
    torch.linalg.vector_norm(p, dim=1, keepdim=True, out=state.ke)
    state.ke.square_().div_(ctx.dim)
    if isinstance(h, torch.Tensor):
        xi.addcmul_(state.ke, h).sub_(h)
    else:
        xi.add_(state.ke, alpha=h).sub_(h)
    if aux is not None:
        aux[:, 0:1].copy_(xi)
        aux[:, 1:2].copy_(state.ke)


def park(state: SGNHTState, dead: torch.Tensor, ctx: Context) -> None:
    state.p[dead] = 0.0


def summary(state: SGNHTState, aux: Optional[np.ndarray], ctx: Context) -> dict:
    cfg = ctx.config
    out = {"step_size": ctx.eps, "diffusion": cfg.diffusion, "init_momentum": cfg.init_momentum,
           "xi_init": float(torch.as_tensor(state.xi0).mean()), "kinetic_init": [float(x) for x in state.ke0]}
    if aux is not None:
        post = aux[cfg.burn_in :]
        out["xi_final"] = [float(x) for x in aux[-1, :, 0]]
        out["xi_mean"] = [float(x) for x in post[:, :, 0].mean(axis=0)]
        out["xi_min"] = [float(x) for x in aux[:, :, 0].min(axis=0)]
        out["xi_max"] = [float(x) for x in aux[:, :, 0].max(axis=0)]
        out["kinetic_mean"] = [float(x) for x in post[:, :, 1].mean(axis=0)]
        out["kinetic_first_steps_mean"] = [float(x) for x in aux[: max(1, cfg.steps // 100), :, 1].mean(axis=0)]
    return out


SAMPLER = Sampler(name="sgnht", init=init, step=step, park=park, summary=summary, aux_width=2,
                  from_rule=sgnht_rule, on_step_size=on_step_size, per_row=True)


def estimate(target: Target, config: SGNHTConfig, seed: int, device: str = "cpu",
             progress: Optional[Callable[[int, int], None]] = None) -> Estimate:
    """λ̂ by SGNHT (see the module doc)."""
    return run_sgmcmc(target, config, seed, device, SAMPLER, progress=progress)



SPEC = EstimatorSpec(
    name="sgnht", config_cls=SGNHTConfig, estimate=estimate, supports=supports,
    estimate_grid=grid_estimator(SAMPLER),
    summary="stochastic-gradient Nosé-Hoover thermostat (Ding et al. 2014), localised",
)
