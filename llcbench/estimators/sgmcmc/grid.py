"""Shared-chain grid runs: several configs of one case, seed and sampler in one chain tensor.

A sensitivity sweep runs the same sampler on the same target at many
(step_scale, nβ, γ) points. On the small models of the catalogue a step
costs a few dozen kernel launches whatever the number of chains, so K runs
one after another cost K times the per-step overhead. Here the K points
share one ``(K·chains, dim)`` tensor: row block k holds point k's chains,
and ε, nβ and γ are ``(rows, 1)`` columns, so one batched forward/backward
and one update per step serve every point.

What is shared, and therefore part of what such a run *is* (its records are
keyed with the whole group, never served for an independent run): the
noise generator (one normal draw for all rows per step), the minibatch
sequence (every point sees the same batches — common random numbers, which
makes differences between grid points less noisy than between independent
runs) and the control-variate row at w*. What stays per point: nβ, γ, the
step-size rule (ε_s from the curvature and minibatch heat at w*, re-applied
during the burn-in with h and v the largest over *that point's* live
chains), the divergence threshold, and everything read off the trace.

Only samplers whose update is written for per-row columns join
(``Sampler.per_row``: sgld, rmsprop_sgld, sgnht); fields that may differ
between the points are :data:`GRID_FIELDS`. RMSProp-SGLD's gradient scale m
(which sets its ε and a after the warm-up) is taken per point, over that
point's chains.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from ...target import Target
from ..base import Estimate, config_dict
from ..temperature import resolve_gamma, resolve_nbeta
from .sampler import Sampler
from .stepsize import (_subset, adaptation_steps, default_step_size, minibatch_gradient_variance,
                       top_hessian_eigenvalues)
from .trace import loss_trace_points, summarise

# GRID_FIELDS: the config fields that only enter a step as per-row numbers (ε through the rule, nβ,
# γ): points that differ in nothing else can share one chain tensor.
from ...sweep_axes import GRID_FIELDS


def _extrapolated(config) -> bool:
    return getattr(config, "extrapolation", lambda: "none")() != "none"


def shareable(configs: list) -> Optional[str]:
    """None if the configs can run as one shared-chain grid run, else why not."""
    if not configs:
        return "no configs"
    if any(_extrapolated(c) for c in configs):
        return "an extrapolated config is a grid run of its own (extrapolate.py)"
    base = {k: v for k, v in config_dict(configs[0]).items() if k not in GRID_FIELDS}
    for c in configs[1:]:
        if type(c) is not type(configs[0]):
            return "configs of different estimators"
        other = {k: v for k, v in config_dict(c).items() if k not in GRID_FIELDS}
        diff = sorted(k for k in base if base[k] != other.get(k))
        if diff:
            return f"the configs differ in {', '.join(diff)} (only {', '.join(GRID_FIELDS)} may differ)"
    return None


def _heat(config, nbeta: float, h: float, v: Optional[float]) -> float:
    """The minibatch-heat term of the rule (:func:`.stepsize.minibatch_heat`) from a measured v."""
    if config.minibatch_heat == "fisher":
        return nbeta * h * nbeta / config.batch_size
    return nbeta * nbeta * float(v)


@dataclass
class GridStepSizeRule:
    """The step-size rule of every point of a grid run (:class:`.stepsize.StepSizeRule`, per point).

    The curvature h at w* and the minibatch-gradient variance v there do not
    depend on nβ, γ or step_scale, so they are measured once, with the same
    generators and data subset as an independent run with this seed (so each
    point's ε_s at w* equals that run's); adaptation measures h and v per
    row and takes, per point, the largest over its live chains.
    """

    points: list
    chains: int
    nbetas: list
    gammas: list
    minibatch: bool
    device: torch.device
    hess_idx: Optional[torch.Tensor]
    heat_gen: torch.Generator
    adapt_gen: torch.Generator
    hess_top: Optional[float] = None
    eps_rule: Optional[list] = None
    eps_rule_init: Optional[list] = None
    schedule: list = field(default_factory=list)
    heat_logs: list = field(default_factory=list)  # per point
    adapt_logs: list = field(default_factory=list)  # per point

    @classmethod
    def at_anchor(cls, target64: Target, w_star64: torch.Tensor, points: list, minibatch: bool, seed: int,
                  device: torch.device, enabled: bool) -> "GridStepSizeRule":
        base = points[0]
        nbetas = [resolve_nbeta(target64, c) for c in points]
        heat_gen = torch.Generator(device=device)  # the seeds of StepSizeRule.at_anchor, for the same ε_s at w*
        heat_gen.manual_seed(int(seed) + 130_363)
        adapt_gen = torch.Generator(device=device)
        adapt_gen.manual_seed(int(seed) + 7_919)
        rule = cls(points=points, chains=int(base.chains), nbetas=nbetas,
                   gammas=[resolve_gamma(nb, c) for nb, c in zip(nbetas, points)], minibatch=minibatch,
                   device=device, hess_idx=_subset(target64, base.hessian_points, device), heat_gen=heat_gen,
                   adapt_gen=adapt_gen, heat_logs=[[] for _ in points], adapt_logs=[[] for _ in points])
        if not enabled:
            return rule
        rule.hess_top = float(top_hessian_eigenvalues(target64, w_star64[None], rule.hess_idx,
                                                      base.hessian_iters)[0])
        h = rule.hess_top if math.isfinite(rule.hess_top) else base.curvature_floor
        v = None
        if minibatch and base.minibatch_heat != "fisher":
            v = float(minibatch_gradient_variance(target64, w_star64[None], int(base.batch_size),
                                                  int(base.heat_batches), heat_gen, reduce="max").max())
        eps = []
        for c, nb, g, log in zip(points, rule.nbetas, rule.gammas, rule.heat_logs):
            heat = _heat(c, nb, max(h, c.curvature_floor), v) if minibatch else 0.0
            if minibatch:
                log.append({"step": 0, "heat": heat, "grad_variance": v})
            eps.append(float(default_step_size(h, nb, g, c, heat)))
        rule.eps_rule, rule.eps_rule_init = eps, list(eps)
        rule.schedule = adaptation_steps(base) if base.adapt_rounds > 0 else []
        return rule

    def column(self, values: list, dtype) -> torch.Tensor:
        """Per-point numbers as a (rows, 1) column: each repeated for the point's chains."""
        return torch.tensor(values, dtype=dtype, device=self.device).repeat_interleave(self.chains)[:, None]

    def due(self, t: int) -> bool:
        return bool(self.schedule) and self.schedule[0] == t

    def adapt(self, target: Target, positions: torch.Tensor, alive: torch.Tensor, t: int) -> Optional[torch.Tensor]:
        """Re-apply each point's rule at its live chains before step t: the new ε_s column (points
        with no live chain keep theirs), or None when nothing could be measured."""
        self.schedule.pop(0)
        rows = alive.nonzero().flatten()
        if rows.numel() == 0:
            return None
        base = self.points[0]
        live = positions[rows]
        h_rows = top_hessian_eigenvalues(target, live, self.hess_idx, base.adapt_iters, self.adapt_gen)
        v_rows = None
        if self.minibatch and base.minibatch_heat != "fisher":
            v_rows = minibatch_gradient_variance(target, live, int(base.batch_size), int(base.heat_batches),
                                                 self.heat_gen, reduce="max")
        point_of = (rows // self.chains).tolist()
        h_rows, v_rows = h_rows.tolist(), None if v_rows is None else v_rows.tolist()
        changed = False
        for k, c in enumerate(self.points):
            mine = [i for i, p in enumerate(point_of) if p == k and math.isfinite(h_rows[i])]
            if not mine:
                continue
            h_top = max(h_rows[i] for i in mine)
            heat = 0.0
            if self.minibatch:
                v = None if v_rows is None else max(v_rows[i] for i in mine)
                heat = _heat(c, self.nbetas[k], h_top, v)
                self.heat_logs[k].append({"step": t, "heat": heat, "grad_variance": v})
            new = float(default_step_size(h_top, self.nbetas[k], self.gammas[k], c, heat, floor=1e-30))
            new = min(new, self.eps_rule[k] * c.adapt_growth)
            self.eps_rule[k] = new
            self.adapt_logs[k].append({"step": t, "h_max": h_top,
                                       "h_median": float(torch.tensor([h_rows[i] for i in mine]).median()),
                                       "rule_step_size": new})
            changed = True
        return self.column(self.eps_rule, positions.dtype) if changed else None

    def log_step_size(self, step) -> None:
        """Note each point's sampler step after the last adaptation round."""
        steps = step[:: self.chains, 0].tolist() if isinstance(step, torch.Tensor) else [step] * len(self.points)
        for log, s in zip(self.adapt_logs, steps):
            if log:
                log[-1]["step_size"] = float(s)


# what a grid run's context holds per point, as (rows, 1) columns
CONTEXT_POINT_FIELDS = ("eps", "nbeta", "gamma", "eps_rule")


def _rows_view(obj, rows: slice, total: int, point_fields: tuple = (), **fixed):
    """A shallow copy of a sampler state or context as one point of the grid would have it alone:
    per-row tensors and lists (first dimension ``total``) cut to ``rows``, and the per-point
    columns named in ``point_fields`` turned into that point's number; so that a sampler's
    ``summary`` serves grid runs unchanged."""
    view = copy.copy(obj)
    for name, value in vars(obj).items():
        if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == total:
            value = value[rows]
            if name in point_fields:
                value = float(value.reshape(-1)[0])
        elif isinstance(value, list) and len(value) == total:
            value = value[rows]
        setattr(view, name, value)
    for name, value in fixed.items():
        setattr(view, name, value)
    return view


def run_sgmcmc_grid(target: Target, configs: list, seed: int, device: str, sampler: Sampler) -> list[Estimate]:
    """Run every config of ``configs`` (:func:`shareable`) in one chain tensor; one Estimate each."""
    from .driver import _sample, _setup

    if any(_extrapolated(c) for c in configs):
        from .driver import run_sgmcmc

        return [run_sgmcmc(target, c, seed, device, sampler) for c in configs]  # one grid run each
    why = shareable(configs)
    if why is not None:
        raise ValueError(f"not a shared-chain grid: {why}")
    if not sampler.per_row:
        raise ValueError(f"sampler {sampler.name!r} has no per-row update; run its configs one by one")
    from .pilot import annotate, applies, configured

    t_start = time.perf_counter()
    # trained anchors: each point's γ from the pilot (pilot.py), one pilot per (nβ, step_scale)
    pilots, done = [], {}
    for c in configs:
        if not applies(target, c):
            pilots.append((c, None))
            continue
        key = (resolve_nbeta(target, c), c.step_scale)  # what else a pilot reads is shared by the points
        if key not in done:
            done[key] = configured(target, c, seed, device, sampler, run_sgmcmc_grid)
        pilots.append(done[key])
    points = [c for c, _ in pilots]
    run = _setup(target, points[0], seed, device, sampler, points=points)
    _sample(run, points[0], None)
    estimates = _estimates(run, points, time.perf_counter() - t_start)
    for e, (_, pilot) in zip(estimates, pilots):
        annotate(e, pilot)
    return estimates


def _estimates(run, configs: list, seconds: float) -> list[Estimate]:
    """Split what the shared run recorded into one Estimate per point."""
    from .driver import locality, record_extra

    rule, ctx, chains = run.rule, run.ctx, int(configs[0].chains)
    trace_np, r2 = run.trace.to_numpy()
    aux_np = None if run.aux is None else run.aux.to(torch.float64).cpu().numpy()
    alive = run.monitor.alive.cpu().numpy()
    eps = ctx.eps[:: chains, 0].tolist() if isinstance(ctx.eps, torch.Tensor) else [ctx.eps] * len(configs)
    out = []
    for k, config in enumerate(configs):
        cols = slice(k * chains, (k + 1) * chains)
        nbeta, gamma = rule.nbetas[k], rule.gammas[k]
        threshold = run.threshold
        divergence = {r - k * chains: s for r, s in run.monitor.divergence_step.items() if cols.start <= r < cols.stop}
        s = summarise(trace_np[:, cols], None if r2 is None else r2[:, cols], alive[cols], nbeta, gamma,
                      int(config.burn_in), int(config.thin), run.trace.loc_from, threshold, divergence)
        loss_trace, stride = loss_trace_points(s["draws_loss"], config.trace_points)
        init = None if rule.eps_rule_init is None else rule.eps_rule_init[k]
        extra = record_extra(run, config, nbeta, gamma, float(eps[k]), init, rule.adapt_logs[k], rule.heat_logs[k],
                             stride)
        extra.update(run.sampler.summary(_rows_view(run.state, cols, ctx.chains, run.sampler.point_fields),
                                         None if aux_np is None else aux_np[:, cols],
                                         _rows_view(ctx, cols, ctx.chains, CONTEXT_POINT_FIELDS, chains=chains,
                                                    points=1, config=config)))
        extra["shared_chains"] = {"points": len(configs), "point": k, "rows": len(configs) * chains,
                                  "seconds": seconds}
        per_sample = None
        if run.per_sample is not None:  # the point's live chains only, at its nβ and γ
            mine = np.zeros_like(alive)
            mine[cols] = alive[cols]
            per_sample = run.per_sample.result(mine, nbeta, gamma)
        out.append(Estimate(
            lambda_hat=s["lambda_hat"], lambda_hat_chains=s["per_chain"], se=s["se"], loss_trace=loss_trace,
            diagnostics=s["diagnostics"], grad_evals=int(config.steps) * chains, seconds=seconds / len(configs),
            warnings=s["warnings"], extra=extra, per_sample=per_sample,
            locality=locality(run, s["lambda_hat"], nbeta, gamma, s["diagnostics"], _mask(alive, cols))))
    return out


def _mask(alive: np.ndarray, cols: slice) -> np.ndarray:
    """The live chains of one point, as a mask over all rows."""
    mine = np.zeros_like(alive)
    mine[cols] = alive[cols]
    return mine


def grid_estimator(sampler: Sampler):
    """``EstimatorSpec.estimate_grid`` of an SG-MCMC estimator whose sampler has a per-row update."""
    def estimate_grid(target: Target, configs: list, seed: int, device: str = "cpu") -> list[Estimate]:
        return run_sgmcmc_grid(target, configs, seed, device, sampler)

    estimate_grid.__doc__ = (f"λ̂ of {sampler.name} at every config of a grid that differs only in ε, nβ, γ, "
                             "in one chain tensor (llcbench.estimators.sgmcmc.grid).")
    return estimate_grid
