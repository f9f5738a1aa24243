"""RMSProp-preconditioned localised SGLD (Hitchcock & Hoogland 2025, arXiv 2507.21449).

Per step, all chains at once (rows of w), g = ∇L_B(w) the minibatch LOSS
gradient only (no nβ, no localisation, no prior):

    v   ← β2·v + (1 − β2)·g²                      (per chain, per coordinate)
    v̂   = v / (1 − β2^t)                           (bias correction, t = 1, 2, …)
    ε_t = ε / (√v̂ + a)                             (per-coordinate step)
    w   ← w − (ε_t/2)·[nβ·g − ∇log φ(w) + γ·(w − w*)] + N(0, ε_t)

(∇log φ only for targets with a prior φ). ``beta2`` is β2, ``eps_precond`` a.

Defaults that cannot be absolute: ε and a are in units of the gradient's
scale, which varies by orders of magnitude between targets. When
``step_size`` (ε) or ``eps_precond`` (a) is None, the first ``warmup`` steps
(part of the burn-in) are plain SGLD steps with the SGLD rule's ε_s (see
:mod:`llcbench.estimators.sgmcmc`) while v accumulates as above; then, with
m = max over coordinates of √v̂ (averaged over chains),

    ε = ε_s · m             the coordinate with the largest gradient scale gets ε_s
    a = precond_floor · m   no coordinate's step exceeds ε_s / precond_floor

and the update above runs from then on. Why the max: in equilibrium
E[(∂_i L)²] = E[∂_ii L]/nβ (integration by parts under the Gibbs law), and
the minibatch part of v is C_ii/b ≈ H_ii/b, so v_i grows with the curvature
of coordinate i; normalising by the largest √v̂ gives the stiffest
coordinate the SGLD rule's (stable) step and the flatter ones larger steps,
which is the point of the preconditioner. ε and a are re-derived (m
re-measured) at each step-size adaptation round of the driver; after the
first half of the burn-in they are fixed. With both ε and a given there is
no warm-up: the H&H update runs from the first step (note that at an
analytic minimum g = 0 there, so the first step is ε/a).

Frozen for the draws (``freeze_preconditioner``, the default): at the end
of the burn-in ε_t is fixed, so the post-burn-in chain is SGLD with a fixed
diagonal preconditioner — time-homogeneous, with the target as its
continuous-time stationary law. Hitchcock & Hoogland keep updating v while
sampling; ``freeze_preconditioner=false`` does that (docs/defaults.md has
the ablation on the catalogue).

β2 = 0.999 (not 0.99): v is a time average over ~1000 steps, so the
preconditioner hardly depends on the current position; with 0.99 it tracks
the position and, without the correction term of position-dependent
preconditioners, over-estimated λ by up to 60 % on w^6 and 30 % on
w1^4 + w2^4 (docs/defaults.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from ..target import Target
from .base import Estimate, EstimatorSpec, doc
from .sgld import sgld_update
from .sgmcmc import Context, Sampler, SGMCMCConfig, potential_gradient, run_sgmcmc, supports
from .sgmcmc.config import extrapolate_field
from .sgmcmc.driver import grid_estimator


@dataclass
class RMSPropSGLDConfig(SGMCMCConfig):
    """RMSProp-preconditioned SGLD. Every field: see ``llcbench estimators``."""

    step_size: Optional[float] = doc(
        None, "ε, the numerator of ε_t = ε/(√v̂ + a); None: ε_s·m after the warm-up, m = max_i √v̂_i "
        "(module doc)")
    beta2: float = doc(0.999, "decay β2 of the second-moment average v")
    eps_precond: Optional[float] = doc(None, "a in ε/(√v̂ + a); None: precond_floor·m after the warm-up")
    precond_floor: float = doc(0.1, "a = precond_floor·m when eps_precond is None")
    warmup: int = doc(100, "SGLD warm-up steps that set ε and/or a when they are None "
                      "(at most burn_in; at least 1)")
    freeze_preconditioner: bool = doc(
        True, "freeze v (so ε_t) at the end of the burn-in: the draws then come from a time-homogeneous "
        "chain; False: keep updating v while sampling, as in Hitchcock & Hoogland's update")
    # Richardson in ε by default, as sgld (docs/error-bars.md)
    extrapolate: str = extrapolate_field("auto")

    def validate(self) -> None:
        super().validate()
        if not (0.0 <= self.beta2 < 1.0):
            raise ValueError("beta2 must be in [0, 1)")
        if self.eps_precond is not None and not (self.eps_precond > 0 and math.isfinite(self.eps_precond)):
            raise ValueError("eps_precond must be > 0 (or None for the default)")
        if not (self.precond_floor > 0 and math.isfinite(self.precond_floor)):
            raise ValueError("precond_floor must be > 0")
        if self.warmup < 1:
            raise ValueError("warmup must be >= 1")


@dataclass
class RMSPropState:
    w: torch.Tensor
    v: torch.Tensor  # second-moment average of g
    noise: torch.Tensor
    buf: torch.Tensor
    drift: torch.Tensor
    eps: Optional[float]  # ε (None until the warm-up sets it)
    a: Optional[float]  # eps_precond
    warmup: int  # number of SGLD warm-up steps (0: none)
    m: Optional[float] = None  # max over coordinates of √v̂ (mean over chains) when ε / a were last set
    frozen: bool = False  # ε_t fixed from here on (buf = ε_t, sqrt_eps = √ε_t)
    sqrt_eps: Optional[torch.Tensor] = None


def init(ctx: Context) -> RMSPropState:
    cfg = ctx.config
    w = ctx.start()  # the driver's positions buffer (w* in every row)
    need_warmup = cfg.step_size is None or cfg.eps_precond is None
    return RMSPropState(
        w=w, v=torch.zeros_like(w), noise=torch.empty_like(w), buf=torch.empty_like(w),
        drift=torch.empty_like(w),
        eps=None if cfg.step_size is None else float(cfg.step_size),
        a=cfg.eps_precond, warmup=min(int(cfg.warmup), max(int(cfg.burn_in), 1)) if need_warmup else 0,
    )


def step(state: RMSPropState, g, pg, ctx: Context, t: int, aux=None) -> None:
    w, buf, drift, noise = state.w, state.buf, state.drift, state.noise
    if state.frozen:  # the preconditioner of the end of the burn-in: a time-homogeneous chain
        potential_gradient(w, g, pg, ctx, out=drift)
        w.addcmul_(drift, buf, value=-0.5)
        noise.normal_(generator=ctx.generator)
        w.addcmul_(noise, state.sqrt_eps)
        return
    b2 = ctx.config.beta2
    v = state.v
    v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
    if t < state.warmup:  # plain SGLD with the rule's step while v accumulates
        sgld_update(w, noise, g, pg, ctx.eps_rule, ctx)
        if t == state.warmup - 1:
            _set_from_gradient_scale(state, ctx, t)
        return
    bc = 1.0 - b2 ** (t + 1)
    # buf = ε_t = ε / (√(v/bc) + a)
    torch.div(v, bc, out=buf).sqrt_().add_(state.a).reciprocal_().mul_(state.eps)
    potential_gradient(w, g, pg, ctx, out=drift)  # nβ·g + γ·(w − w*) − ∇log φ
    w.addcmul_(drift, buf, value=-0.5)
    noise.normal_(generator=ctx.generator)
    w.addcmul_(noise, buf.sqrt_())


def _set_from_gradient_scale(state: RMSPropState, ctx: Context, t: int) -> None:
    """Set ε and/or a (those the config leaves None) from m = max_i √v̂_i (one host sync)."""
    cfg = ctx.config
    if cfg.step_size is not None and cfg.eps_precond is not None:
        return
    bc = 1.0 - cfg.beta2 ** (t + 1)
    if ctx.points > 1:  # a shared-chain grid run: m per grid point, as a (rows, 1) column
        per = ctx.chains // ctx.points
        m = (state.v / bc).sqrt().reshape(ctx.points, per, -1).mean(dim=1).amax(dim=1)
        last = state.m[::per, 0] if isinstance(state.m, torch.Tensor) else torch.ones_like(m)
        m = torch.where(torch.isfinite(m) & (m > 0), m, last).repeat_interleave(per)[:, None]
    else:
        m = float((state.v / bc).sqrt().mean(dim=0).max())
        if not (math.isfinite(m) and m > 0):
            m = state.m if state.m else 1.0  # no gradient seen at all: keep the last scale
    state.m = m
    if cfg.step_size is None:
        state.eps = ctx.eps_rule * m
    if cfg.eps_precond is None:
        state.a = cfg.precond_floor * m


def on_step_size(state: RMSPropState, ctx: Context, t: int) -> None:
    """The driver re-set ε_s (adaptation): after the warm-up, re-derive ε (and a) from it."""
    if t >= state.warmup:
        _set_from_gradient_scale(state, ctx, t - 1)


def on_burn_in_end(state: RMSPropState, ctx: Context) -> None:
    """Freeze ε_t = ε/(√v̂ + a) at its value after the last burn-in step (freeze_preconditioner).

    An RMSProp preconditioner that keeps adapting makes the sampling chain
    time-inhomogeneous, and its stationary law is not the target's without
    the correction term of position-dependent preconditioners; frozen, the
    chain is SGLD with a fixed diagonal preconditioner, which leaves p
    invariant up to discretisation. Nothing to freeze before any H&H step
    (burn_in = 0)."""
    cfg = ctx.config
    t = int(cfg.burn_in)  # steps taken so far
    if not cfg.freeze_preconditioner or t < 1 or state.eps is None or state.a is None:
        return
    bc = 1.0 - cfg.beta2 ** t
    torch.div(state.v, bc, out=state.buf).sqrt_().add_(state.a).reciprocal_().mul_(state.eps)
    state.sqrt_eps = state.buf.sqrt()
    state.frozen = True


def park(state: RMSPropState, dead: torch.Tensor, ctx: Context) -> None:
    state.v[dead] = 0.0


def summary(state: RMSPropState, aux, ctx: Context) -> dict:
    cfg = ctx.config
    out = {"step_size": state.eps, "eps_precond": state.a, "warmup": state.warmup,
           "warmup_step_size": ctx.eps_rule if state.warmup else None, "max_sqrt_v": state.m,
           "preconditioner_frozen": state.frozen}
    if state.frozen:
        eps_t = state.buf.to(torch.float64).flatten().cpu().numpy()
    elif state.eps is not None and state.a is not None:
        vhat = (state.v / (1.0 - cfg.beta2 ** cfg.steps)).to(torch.float64)
        eps_t = (state.eps / (vhat.sqrt() + state.a)).flatten().cpu().numpy()
    else:
        eps_t = None
    if eps_t is not None:
        q = np.quantile(eps_t, [0.0, 0.1, 0.5, 0.9, 1.0])
        out["eps_t_quantiles_final"] = {k: float(x) for k, x in zip(("min", "q10", "median", "q90", "max"), q)}
    return out


def make_sampler() -> Sampler:
    return Sampler(name="rmsprop_sgld", init=init, step=step, park=park, summary=summary,
                   on_step_size=on_step_size, on_burn_in_end=on_burn_in_end,
                   uses_rule=lambda cfg: cfg.step_size is None or cfg.eps_precond is None, per_row=True,
                   point_fields=("eps", "a", "m"))


SAMPLER = make_sampler()


def estimate(target: Target, config: RMSPropSGLDConfig, seed: int, device: str = "cpu",
             progress: Optional[Callable[[int, int], None]] = None) -> Estimate:
    """λ̂ by RMSProp-preconditioned localised SGLD (see the module doc)."""
    return run_sgmcmc(target, config, seed, device, SAMPLER, progress=progress)



SPEC = EstimatorSpec(
    name="rmsprop_sgld", config_cls=RMSPropSGLDConfig, estimate=estimate, supports=supports,
    estimate_grid=grid_estimator(SAMPLER),
    summary="RMSProp-preconditioned localised SGLD (Hitchcock & Hoogland 2025)",
)
