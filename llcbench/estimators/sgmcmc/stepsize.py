"""The SG-MCMC step-size rule: curvature and minibatch heat at w*, re-applied during the burn-in.

ε_s = step_scale / (nβ·max(h, curvature_floor) + heat + γ), with h the top
eigenvalue of the Hessian of L (power iteration with Hessian-vector
products on a fixed data subset) and heat = nβ²·v the minibatch-noise term,
v the measured variance of the minibatch gradient (0 for exact gradients;
:func:`minibatch_heat`): it keeps the discretisation error plus the heat of
the gradient noise at ≈ step_scale/4 of the variance in the stiffest
direction (:func:`default_step_size`). Because h at w* says little at a
singular point (h = 0 at a quartic minimum, and v = 0 at a noiseless
teacher), :class:`StepSizeRule` re-applies the rule ``adapt_rounds`` times
during the first half of the burn-in with h and v the largest over the
chains at their current positions (growth ≤ ``adapt_growth`` per round);
from then on ε is fixed, so the draws come from a time-homogeneous chain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch

from ...target import Target
from .streams import generator

HEAT_REDUCE = "max"  # the noisiest coordinate sets the heat, as the stiffest direction sets h


def default_step_size(h: float, nbeta: float, gamma: float, config, heat: float = 0.0,
                      floor: Optional[float] = None) -> float:
    """The SGLD rule ε_s = step_scale / (nβ·max(h, floor) + heat + γ).

    floor: curvature_floor at w* (where h is 0 at a quartic minimum); during
    adaptation a tiny floor, growth being capped by adapt_growth instead.

    h: top Hessian eigenvalue of L (at w*, or the largest over chains at their
    current positions during adaptation): SGLD's stationary variance in the
    stiffest direction is inflated by ≈ ε·nβ·h/4 by the discretisation.
    heat: the minibatch-noise term (:func:`minibatch_heat`; 0 for exact
    gradients), whose inflation is ε·heat/4. The rule keeps the sum at
    step_scale/4.
    """
    floor = config.curvature_floor if floor is None else floor
    return config.step_scale / (nbeta * max(h, floor) + heat + gamma)


def minibatch_heat(config, nbeta: float, h: float, v: Optional[float]) -> float:
    """The heat term of the step-size rule for a minibatch target, from the measured v (or None).

    The minibatch gradient enters an SGLD step as (ε·nβ/2)·∇L_B, whose noise adds
    (ε·nβ/2)²·Var(∇L_B) to the injected variance ε per coordinate: a relative
    heat ε·nβ²·v/4, v = Var(∇L_B). 'measured': v = the largest per-coordinate
    variance over ``heat_batches`` random minibatches (largest over the rows
    too: the noisiest coordinate sets the heat, as the stiffest direction sets
    h; :func:`measured_variance`), heat = nβ²·v. 'fisher': v = h/b (the
    per-sample gradient covariance taken equal to the Hessian, as at a true
    parameter of a well-specified model with noisy labels), heat = nβ·h·nβ/b.
    The two agree on noisy linear regression; with noiseless teacher labels
    (the DLN and RRR catalogue) the per-sample gradients vanish at w* and the
    measured heat is orders of magnitude smaller, so the rule no longer shrinks
    the step ~(1 + nβ/b)-fold for noise that is not there.
    """
    if config.minibatch_heat == "fisher":
        return nbeta * h * nbeta / config.batch_size
    return nbeta * nbeta * float(v)


def measured_variance(target: Target, w: torch.Tensor, config, generator: torch.Generator) -> Optional[torch.Tensor]:
    """v of :func:`minibatch_heat` per row of w (None for 'fisher', which measures nothing)."""
    if config.minibatch_heat == "fisher":
        return None
    return minibatch_gradient_variance(target, w, int(config.batch_size), int(config.heat_batches), generator,
                                       reduce=HEAT_REDUCE)


def minibatch_gradient_variance(target: Target, w: torch.Tensor, batch_size: int, k: int,
                                generator: torch.Generator, reduce: str = "mean") -> torch.Tensor:
    """Var(∂_i L_B) across k random minibatches (with replacement), reduced over the coordinates
    i by ``reduce`` ("mean" or "max"), per row of w."""
    w = w.detach()
    gs = []
    for _ in range(k):
        bidx = torch.randint(target.num_data, (batch_size,), generator=generator, device=w.device)
        gs.append(target.loss_and_grad(w, bidx)[1])
    var = torch.stack(gs).var(dim=0)
    return var.amax(dim=1) if reduce == "max" else var.mean(dim=1)


# --------------------------------------------------------------------------- curvature


def hessian_subset(target: Target, points: int, device) -> Optional[torch.Tensor]:
    """A fixed data subset (permutation seeded with 0: independent of the run's seed), or None for all."""
    if target.num_data <= points:
        return None
    g = torch.Generator().manual_seed(0)
    # a copy of the first points: a slice would keep all n int64 indices alive for the whole run
    return torch.randperm(target.num_data, generator=g)[:points].clone().to(device)


def top_hessian_eigenvalues(target: Target, w: torch.Tensor, idx: Optional[torch.Tensor], iters: int,
                            generator: Optional[torch.Generator] = None, tol: float = 1e-3) -> torch.Tensor:
    """Largest |eigenvalue| of the Hessian of L at each row of w, by batched power iteration.

    w: (k, dim). One forward and one first backward (kept), then one
    Hessian-vector product per iteration for all rows at once (rows are
    independent, so the HVP of the summed loss is the per-row HVP).
    Stops early when every row's estimate changed by less than ``tol``
    (relative). Returns (k,) on w's device; 0 where the Hessian is 0.
    """
    w = w.detach().clone().requires_grad_(True)
    loss = target.loss(w, idx).sum()
    (grad,) = torch.autograd.grad(loss, w, create_graph=True)
    if grad.grad_fn is None:  # the gradient does not depend on w: zero Hessian
        return torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
    if generator is None:
        generator = torch.Generator(device=w.device).manual_seed(0)
    v = torch.randn(w.shape, generator=generator, dtype=w.dtype, device=w.device)
    v = v / v.norm(dim=1, keepdim=True)
    lam = torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
    for i in range(iters):
        (hv,) = torch.autograd.grad(grad, w, grad_outputs=v, retain_graph=i + 1 < iters)
        new = (v * hv).sum(dim=1).abs()
        norm = hv.norm(dim=1, keepdim=True)
        v = torch.where(norm > 0, hv / norm.clamp_min(torch.finfo(w.dtype).tiny), v)
        done = bool(((new - lam).abs() <= tol * new.clamp_min(torch.finfo(w.dtype).tiny)).all())
        lam = torch.where(norm[:, 0] > 0, new, torch.zeros_like(new))
        if done:
            break
    return lam.detach()


def top_hessian_eigenvalue(target: Target, w_star: torch.Tensor, iters: int = 30, points: int = 4096) -> float:
    """Largest |eigenvalue| of the Hessian of L at w* (float64, on a fixed data subset; 0.0 if zero)."""
    w = w_star.detach().to(torch.float64).reshape(1, -1)
    idx = hessian_subset(target, points, w.device)
    return float(top_hessian_eigenvalues(target, w, idx, iters)[0])


def adaptation_steps(config) -> list[int]:
    """Steps (before which) the step size is re-set: adapt_rounds points evenly spread over the
    first half of the burn-in (none when adapt_rounds is 0 or the burn-in is too short)."""
    k = int(config.adapt_rounds)
    half = int(config.burn_in) // 2
    if k <= 0 or half < k:
        return []
    return sorted({max(1, (half * (i + 1)) // k) for i in range(k)})


@dataclass
class StepSizeRule:
    """The rule at w* (:meth:`at_anchor`) and its re-application at the chains' positions
    (:meth:`adapt`), for every point of a run (one point, or the points of a shared-chain grid run
    whose rows are ``chains`` consecutive rows per point), with the logs a record keeps.

    The curvature h at w* and the minibatch-gradient variance v there do not
    depend on nβ, γ or step_scale, so they are measured once for all points;
    adaptation measures h and v per row and takes, per point, the largest over
    the live chains of its leader, the first point of the same nβ and γ
    (:meth:`leader`: its own chains where nβ or γ differ, as in a sweep over
    them), so points that differ only in step_scale keep their steps' ratio.
    """

    points: list  # the configs (only step_scale, nβ, γ differ between them)
    chains: int  # rows per point
    nbetas: list
    gammas: list
    minibatch: bool
    hess_idx: Optional[torch.Tensor]
    heat_gen: torch.Generator
    adapt_gen: torch.Generator
    hess_top: Optional[float] = None
    eps_rule: Optional[list] = None  # per point
    eps_rule_init: Optional[list] = None  # per point: the rule at w*, before any adaptation
    eps_cap: Optional[list] = None  # per point: a ceiling the adaptation keeps under (:meth:`shrink`)
    schedule: list = field(default_factory=list)
    heat_logs: list = field(default_factory=list)  # per point
    adapt_logs: list = field(default_factory=list)  # per point

    @classmethod
    def at_anchor(cls, target64: Target, w_star64: torch.Tensor, points: list, nbetas: list, gammas: list,
                  minibatch: bool, seed: int, device: torch.device, enabled: bool) -> "StepSizeRule":
        """The rule at w* (float64 target); ``enabled`` False: no rule (a user-given step size)."""
        base = points[0]
        rule = cls(points=list(points), chains=int(base.chains), nbetas=list(nbetas), gammas=list(gammas),
                   minibatch=minibatch, hess_idx=hessian_subset(target64, base.hessian_points, device),
                   heat_gen=generator("heat", seed, device),  # apart from the samplers': neither shifts the other
                   adapt_gen=generator("adapt", seed, device),
                   heat_logs=[[] for _ in points], adapt_logs=[[] for _ in points])
        if not enabled:
            return rule
        rule.hess_top = float(top_hessian_eigenvalues(target64, w_star64[None], rule.hess_idx,
                                                      base.hessian_iters)[0])
        h = rule.hess_top if math.isfinite(rule.hess_top) else base.curvature_floor
        v = None
        if minibatch:
            v_rows = measured_variance(target64, w_star64[None], base, rule.heat_gen)
            v = None if v_rows is None else float(v_rows.max())
        eps = []
        for c, nb, g, log in zip(points, rule.nbetas, rule.gammas, rule.heat_logs):
            heat = 0.0
            if minibatch:
                heat = minibatch_heat(c, nb, max(h, c.curvature_floor), v)
                log.append({"step": 0, "heat": heat, "grad_variance": v})
            eps.append(float(default_step_size(h, nb, g, c, heat)))
        rule.eps_rule, rule.eps_rule_init = eps, list(eps)
        rule.schedule = adaptation_steps(base) if base.adapt_rounds > 0 else []
        return rule

    def shrink(self, factor: float) -> None:
        """Every point's step times ``factor`` (< 1), and the adaptation never above it again: a start
        whose chains blew up at the rule's step held at this one (orbit_start.py), so the curvature the
        chains meet in the posterior can need it where the rounds' few chains do not show it."""
        self.eps_rule = [e * factor for e in self.eps_rule]
        self.eps_cap = list(self.eps_rule)

    def due(self, t: int) -> bool:
        """Whether the rule is re-applied before step t."""
        return bool(self.schedule) and self.schedule[0] == t

    def log_step_size(self, steps: list) -> None:
        """Note each point's sampler step after the last adaptation round."""
        for log, s in zip(self.adapt_logs, steps):
            if log:
                log[-1]["step_size"] = s

    def leader(self, k: int) -> int:
        """The point whose chains set point k's curvature and heat in :meth:`adapt`: the first point with
        k's nβ and γ. Points of one posterior that differ only in step_scale (Richardson's ε and 2ε, a
        sweep's step axis) so keep the ratio of their steps equal to that of their step_scales; each
        measuring its own chains, a maximum over 8 chains' noisy curvatures set each step, and
        Richardson's "2ε" ranged from 0.1ε to 2ε."""
        return next(j for j in range(len(self.points))
                    if self.nbetas[j] == self.nbetas[k] and self.gammas[j] == self.gammas[k])

    def adapt(self, target: Target, positions: torch.Tensor, alive: torch.Tensor, t: int) -> bool:
        """Re-apply each point's rule at the live chains of its :meth:`leader` before step t
        (``eps_rule``; points whose leader has no live chain keep theirs); whether any changed. Needs
        autograd enabled (Hessian-vector products)."""
        self.schedule.pop(0)
        rows = alive.nonzero().flatten()
        if rows.numel() == 0:
            return False
        base = self.points[0]
        live = positions[rows]
        h_rows = top_hessian_eigenvalues(target, live, self.hess_idx, base.adapt_iters, self.adapt_gen)
        v_rows = measured_variance(target, live, base, self.heat_gen) if self.minibatch else None
        point_of = (rows // self.chains).tolist()
        finite = torch.isfinite(h_rows).tolist()
        changed = False
        for k, c in enumerate(self.points):
            lead = self.leader(k)
            mine = [i for i, p in enumerate(point_of) if p == lead]
            hs = h_rows[[i for i in mine if finite[i]]]
            if hs.numel() == 0:
                continue
            h_top = float(hs.max())
            heat = 0.0
            if self.minibatch:  # the noisiest live chain of the leader (as an independent run's rule)
                v = None if v_rows is None else float(v_rows[mine].max())
                heat = minibatch_heat(c, self.nbetas[k], h_top, v)
                self.heat_logs[k].append({"step": t, "heat": heat, "grad_variance": v})
            new = float(default_step_size(h_top, self.nbetas[k], self.gammas[k], c, heat, floor=1e-30))
            new = min(new, self.eps_rule[k] * c.adapt_growth)
            if self.eps_cap is not None:
                new = min(new, self.eps_cap[k])
            self.eps_rule[k] = new
            self.adapt_logs[k].append({"step": t, "h_max": h_top, "h_median": float(hs.median()),
                                       "rule_step_size": new})
            changed = True
        return changed
