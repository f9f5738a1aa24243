"""The sampler contract of the SG-MCMC driver: explicit state, a few small functions (BlackJAX-like).

    init(ctx) -> state                 per-chain buffers; ``state.w`` IS ``ctx.positions``
    step(state, g, pg, ctx, t, aux)    one update of all chains, in place, under no_grad
    park(state, dead, ctx)             reset the rows of diverged chains (frozen from then on)
    summary(state, aux, ctx)           JSON-able sampler-specific values for Estimate.extra

The positions live in one buffer the driver owns (``ctx.positions``, a
``(chains, dim)`` view of the rows of its batched forward pass, so that no
copy is needed per step). A sampler updates it in place and never rebinds
``state.w``; the driver checks that after every step and fails loudly
instead of silently sampling from a stale copy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch


@dataclass
class Context:
    """What a sampler's init/step see: constants of the run (no hidden globals).

    eps: the sampler's step (ε, or h for SGNHT); eps_rule: the SGLD rule's ε_s
    (None when no rule is used). Both may be re-set by the driver during the
    first half of the burn-in (step-size adaptation), never after it.
    positions: the (chains, dim) buffer of the chains' positions, initialised
    to w*; the sampler's ``state.w`` must be this tensor.
    """

    chains: int
    dim: int
    w_star: torch.Tensor  # (dim,) in the run dtype, on the device
    nbeta: float
    gamma: float
    eps: float
    generator: torch.Generator
    dtype: torch.dtype
    device: torch.device
    config: Any
    positions: Optional[torch.Tensor] = None
    eps_rule: Optional[float] = None
    # minibatch gradient noise at the current positions: per chain, the mean over coordinates of
    # the variance of ∇L_B across minibatches (None for exact gradients); a few extra gradients
    grad_noise: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    points: int = 1  # grid points sharing the rows (chains // points rows each); 1 outside a grid run

    def start(self) -> torch.Tensor:
        """The positions buffer (w* in every row) a sampler's init must use as ``state.w``."""
        if self.positions is None:  # a sampler used outside the driver
            self.positions = self.w_star.expand(self.chains, self.dim).clone()
        return self.positions


def _identity(x: float) -> float:
    return x


def _noop(*args) -> None:
    return None


@dataclass
class Sampler:
    """What a sampler provides (see the module doc).

    aux_width: number of per-chain values ``step`` writes per step into the
        auxiliary trace row it is given (e.g. SGNHT's ξ and kinetic energy); 0 for none.
    from_rule(ε_s) -> the sampler's step when step_size is None (SGLD: ε_s; SGNHT: √ε_s).
    on_step_size(state, ctx, t): called after the driver (re)sets ctx.eps / ctx.eps_rule.
    on_burn_in_end(state, ctx): called once, after the last burn-in step (e.g. to freeze an
        adaptive preconditioner so that the draws come from a time-homogeneous chain).
    uses_rule(config): whether the step-size rule (and its adaptation) runs.
    langevin_step(ctx): the run's SGLD step ε (a number, or a (rows, 1) column in a grid run) that
        the tempered start (tempered_start.py) scales; default the rule's ε_s (None without the rule).
    per_row: whether ``step`` also takes ctx.eps, ctx.nbeta, ctx.gamma (and ctx.eps_rule) as
        (rows, 1) columns, one value per chain: then configs that differ only in them can share
        one chain tensor (:mod:`.grid`); ``point_fields`` names the state's fields that are then
        per-point columns too (e.g. RMSProp-SGLD's ε, a and m).
    """

    name: str
    init: Callable[["Context"], Any]
    step: Callable[..., None]
    park: Callable[[Any, torch.Tensor, "Context"], None]
    summary: Callable[[Any, Optional[np.ndarray], "Context"], dict] = lambda s, a, c: {}
    aux_width: int = 0
    from_rule: Callable[[float], float] = _identity
    on_step_size: Callable[[Any, "Context", int], None] = _noop
    on_burn_in_end: Callable[[Any, "Context"], None] = _noop
    uses_rule: Callable[[Any], bool] = lambda config: config.step_size is None
    langevin_step: Callable[["Context"], Any] = lambda ctx: ctx.eps_rule
    per_row: bool = False
    point_fields: tuple = ()  # state fields that a grid run holds as per-point (rows, 1) columns


def prior_gradient(target, w: torch.Tensor) -> Optional[torch.Tensor]:
    """∇log φ at every row of w (None for a flat prior), by autograd; the driver's loop and the starts
    (:class:`StartStep`) add it to the drift."""
    if not target.has_prior:
        return None
    with torch.enable_grad():
        wl = w.detach().requires_grad_(True)
        (pg,) = torch.autograd.grad(target.log_prior(wl).sum(), wl)
    return pg


def potential_gradient(w: torch.Tensor, g: torch.Tensor, pg: Optional[torch.Tensor], ctx: Context,
                       out: torch.Tensor) -> torch.Tensor:
    """out ← ∇U(w) = nβ·∇L_B(w) + γ·(w − w*) − ∇log φ(w), the drift of the tempered localised
    potential (pg = ∇log φ, None for a flat prior), written in place."""
    if isinstance(ctx.nbeta, torch.Tensor):  # (rows, 1) columns: a shared-chain grid run
        torch.sub(w, ctx.w_star, out=out).mul_(ctx.gamma).addcmul_(g, ctx.nbeta)
    elif ctx.gamma != 0.0:
        torch.sub(w, ctx.w_star, out=out).mul_(ctx.gamma).add_(g, alpha=ctx.nbeta)
    else:
        torch.mul(g, ctx.nbeta, out=out)
    if pg is not None:
        out.sub_(pg)
    return out


class StartStep:
    """The plain SGLD step the starts take before the sampler's first (tempered_start.py, orbit_start.py):
    ε (a number, or a (rows, 1) column in a shared-chain grid run) at ``ctx``'s nβ and γ, with noise and
    minibatches from the start's own generators; and the check that resets chains that blew up to w*."""

    def __init__(self, target, ctx: Context, eps, noise_gen: torch.Generator, batch_gen: torch.Generator):
        self.target, self.ctx, self.eps = target, ctx, eps
        self.noise_gen, self.batch_gen = noise_gen, batch_gen
        self.batch = int(ctx.config.batch_size)
        self.minibatch = target.num_data > 0 and self.batch < target.num_data
        self.column = isinstance(eps, torch.Tensor)
        self.sqrt_eps = eps.sqrt() if self.column else math.sqrt(eps)
        self.drift, self.noise = torch.empty_like(ctx.positions), torch.empty_like(ctx.positions)

    def __call__(self, w: torch.Tensor) -> None:
        """One step of every row of w, in place (under no_grad)."""
        idx = (torch.randint(self.target.num_data, (self.batch,), generator=self.batch_gen, device=w.device)
               if self.minibatch else None)
        _, g = self.target.loss_and_grad(w, idx)
        pg = prior_gradient(self.target, w)
        potential_gradient(w, g, pg, self.ctx, out=self.drift)  # nβ·∇L_B + γ·(w − w*) − ∇log φ
        self.noise.normal_(generator=self.noise_gen)
        if self.column:
            w.addcmul_(self.drift, self.eps, value=-0.5).addcmul_(self.noise, self.sqrt_eps)
        else:
            w.add_(self.drift, alpha=-self.eps / 2).add_(self.noise, alpha=self.sqrt_eps)

    @staticmethod
    def reset_blown_up(w: torch.Tensor, w_star: torch.Tensor) -> int:
        """Rows of w that are no longer finite go back to w*; how many did."""
        bad = ~torch.isfinite(w).all(dim=1)
        if not bool(bad.any()):
            return 0
        w[bad] = w_star
        return int(bad.sum())
