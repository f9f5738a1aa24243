"""The SG-MCMC driver: one loop over steps for every sampler (module doc of the package).

:func:`run_sgmcmc` sets up the run (temperature, L_n(w*), the step-size
rule, the minibatch stream, the trace, the chain monitor), then
:func:`_sample` runs the loop — one batched ``loss_and_grad`` per step for
all chains, the sampler's in-place update, the checks — and
:func:`_estimate` turns what was recorded into the Estimate.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional

import numpy as np
import torch

from ...target import Target
from ..base import Estimate
from ..temperature import resolve_gamma, resolve_nbeta
from .batches import BATCH_DRAWS, EpochBatches
from .config import DIVERGENCE_PER_DIM, DTYPES
from .monitor import ChainMonitor
from .per_sample import PerSampleAccumulator
from .sampler import Context, Sampler, prior_gradient
from .streams import generator
from .stepsize import StepSizeRule, minibatch_gradient_variance
from .trace import LambdaTrace, loss_trace_points, summarise
from ...locality import assess
from .accuracy import AccuracyProbe
from .extrapolate import richardson
from .pilot import annotate, applies, configured
from .grid import extrapolated, shareable
from .settle import run_until_settled, window
from . import orbit_start, tempered_start


def prior_problem(target: Target) -> Optional[str]:
    """None if the target's prior (if any) has a finite log-density gradient at w*, else why not."""
    if not target.has_prior:
        return None
    w = target.w_star.detach().to(torch.float64).reshape(1, -1).clone().requires_grad_(True)
    lp = target.log_prior(w)
    if lp is None:
        return None
    try:
        (g,) = torch.autograd.grad(lp.sum(), w)
    except RuntimeError as exc:  # pragma: no cover - a prior without a gradient
        return f"the prior's log-density has no gradient ({exc})"
    if not (torch.isfinite(lp).all() and torch.isfinite(g).all()):
        return ("the prior's log-density (or its gradient) is infinite at w* (e.g. |w_i|^h at w_i = 0); "
                "gradient samplers cannot start there")
    return None


def supports(target: Target) -> Optional[str]:
    """EstimatorSpec.supports for every SG-MCMC estimator: all flat-prior targets, and targets whose
    prior has a finite log-density gradient at w* (then ∇ log prior joins the drift)."""
    return prior_problem(target)



@dataclass
class Run:
    """What the loop needs and what it leaves behind (explicit state, no closures)."""

    target: Target  # in the run dtype, on the device
    sampler: Sampler
    state: Any
    ctx: Context
    rows: torch.Tensor  # (chains + extra rows, dim): the rows of every batched forward pass
    batches: Optional[EpochBatches]
    trace: LambdaTrace
    monitor: ChainMonitor
    rule: StepSizeRule
    aux: Optional[torch.Tensor]
    threshold: float
    init_loss: float
    trace_mode: str  # see trace_mode()
    trace_gen: Optional[torch.Generator] = None  # the independent trace batches
    batch_size: int = 0
    per_sample: Optional[PerSampleAccumulator] = None  # per-sample losses at λ̂'s draws (per_sample.py)
    accuracy: Optional[AccuracyProbe] = None  # the chains' train accuracy, for classifiers (accuracy.py)
    chance_loss: Optional[float] = None  # L_n of a chance-level predictor (Target.chance_loss)
    start: Optional[dict] = None  # where the chains started: the start's record (orbit_start.py, tempered_start.py)

    def grow_aux(self, steps: int) -> None:
        """Room for ``steps`` steps of the sampler's per-step values (the adaptive length, settle.py)."""
        if self.aux is not None:
            aux = torch.empty(steps, *self.aux.shape[1:], dtype=self.aux.dtype, device=self.aux.device)
            aux[: self.aux.shape[0]] = self.aux
            self.aux = aux


def run_sgmcmc(target: Target, config, seed: int, device: str, sampler: Sampler,
               progress: Optional[Callable[[int, int], None]] = None) -> Estimate:
    """Run ``config.chains`` chains of ``sampler`` on ``target``; return the Estimate."""
    t_start = time.perf_counter()
    config, pilot = configured(target, config, seed, device, sampler, run_sgmcmc_grid)  # γ of a trained anchor (pilot.py)
    if config.extrapolation(sampler.per_row) == "richardson":  # ε and 2ε on shared chains (extrapolate.py)
        estimate = richardson(target, config, seed, device, sampler, run_sgmcmc_grid)
        estimate.seconds = time.perf_counter() - t_start
    else:
        run = _setup(target, config, seed, device, sampler)
        restart = lambda: _setup(target, config, seed, device, sampler, restart=True, converted=run.target)  # noqa: E731
        doublings, settling = _run_until_settled(run, [config], progress, restart=restart)
        (estimate,) = _estimates(run, [config], time.perf_counter() - t_start, doublings, settling)
    annotate(estimate, pilot)
    return estimate


def run_sgmcmc_grid(target: Target, configs: list, seed: int, device: str, sampler: Sampler,
                    judge: Optional[Callable] = None) -> list[Estimate]:
    """Run every config of ``configs`` (:func:`.grid.shareable`) in one chain tensor (a shared-chain grid
    run, :mod:`.grid`); one Estimate each. ``judge``: what the adaptive length reads (settle.py)."""
    if any(extrapolated(c) for c in configs):
        return [run_sgmcmc(target, c, seed, device, sampler) for c in configs]  # one grid run each
    why = shareable(configs)
    if why is not None:
        raise ValueError(f"not a shared-chain grid: {why}")
    if not sampler.per_row:
        raise ValueError(f"sampler {sampler.name!r} has no per-row update; run its configs one by one")
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
    restart = lambda: _setup(target, points[0], seed, device, sampler, points=points, restart=True,  # noqa: E731
                             converted=run.target)
    doublings, settling = _run_until_settled(run, points, None, judge, restart)
    seconds = time.perf_counter() - t_start
    estimates = _estimates(run, points, seconds, doublings, settling)
    for k, (e, (_, pilot)) in enumerate(zip(estimates, pilots)):
        e.extra["shared_chains"] = {"points": len(points), "point": k, "rows": len(points) * int(points[0].chains),
                                    "seconds": seconds}
        annotate(e, pilot)
    return estimates


def column(values: list, chains: int, dtype, device) -> torch.Tensor:
    """Per-point numbers as a (rows, 1) column: each repeated for the point's chains."""
    return torch.tensor(values, dtype=dtype, device=device).repeat_interleave(chains)[:, None]


def _setup(target: Target, config, seed: int, device: str, sampler: Sampler, points: Optional[list] = None,
           restart: bool = False, converted: Optional[Target] = None) -> Run:
    """The run's state. ``points``: the configs of a shared-chain grid run (:mod:`.grid`; ``config``
    is then the first of them), whose rows are ``config.chains`` chains per point and whose nβ, γ
    and ε are (rows, 1) columns instead of numbers. ``restart``: take the start that start = 'auto'
    restarts from (:func:`start_kind`); ``converted``: the target already in the run's dtype and on
    its device (the run being restarted has it: no second copy of the data)."""
    config.validate()
    problem = prior_problem(target)
    if problem is not None:
        from ...errors import UnsupportedTarget

        raise UnsupportedTarget(f"{sampler.name} on {target.id}: {problem}")
    dev = torch.device(device)
    dtype = DTYPES[config.dtype]
    chains, d = int(config.chains) * (1 if points is None else len(points)), int(target.dim)

    # L_n(w*) on the full data, float64 (the offset every draw is measured from)
    t64 = target.to(dev, torch.float64)
    w_star64 = t64.w_star.to(device=dev, dtype=torch.float64)
    with torch.no_grad():
        init_loss = float(t64.full_loss(w_star64[None])[0])
    chance_loss = t64.chance_loss()

    minibatch = target.num_data > 0 and config.batch_size < target.num_data
    configs = [config] if points is None else points
    nbetas = [resolve_nbeta(t64, c) for c in configs]
    gammas = [resolve_gamma(nb, c) for nb, c in zip(nbetas, configs)]
    rule = StepSizeRule.at_anchor(t64, w_star64, configs, nbetas, gammas, minibatch, seed, dev,
                                  enabled=bool(sampler.uses_rule(config)))
    if points is None:
        nbeta, gamma = nbetas[0], gammas[0]
        eps_rule = None if rule.eps_rule is None else rule.eps_rule[0]
        eps = float(config.step_size) if config.step_size is not None else float(sampler.from_rule(eps_rule))
    else:
        nbeta, gamma = column(nbetas, config.chains, dtype, dev), column(gammas, config.chains, dtype, dev)
        eps_rule = None if rule.eps_rule is None else column(rule.eps_rule, config.chains, dtype, dev)
        eps = (column([float(c.step_size) for c in points], config.chains, dtype, dev) if config.step_size is not None
               else sampler.from_rule(eps_rule))

    tgt = (converted if converted is not None else
           target if (dtype == torch.float64 and target.w_star.device == dev) else target.to(dev, dtype))
    accuracy = AccuracyProbe.for_run(t64, w_star64, tgt, config)
    del t64
    w_star = tgt.w_star.to(device=dev, dtype=dtype)
    gen = generator("chains", seed, dev)
    data_gen = generator("batches", seed, dev)
    batches = (BATCH_DRAWS[config.batch_draw](target.num_data, config.batch_size, data_gen, dev, plan=tgt.epoch_batches)
               if minibatch else None)
    mode = trace_mode(target, config, minibatch)
    use_cv = mode in ("same", "independent") and bool(config.control_variate)
    # all rows of one forward pass live in one buffer: the chains, then (control variate) w*
    rows = torch.empty(chains + (1 if use_cv else 0), d, dtype=dtype, device=dev)
    rows[:] = w_star
    ctx = Context(chains=chains, dim=d, w_star=w_star, nbeta=nbeta, gamma=gamma, eps=eps, generator=gen,
                  dtype=dtype, device=dev, config=config, positions=rows[:chains], eps_rule=eps_rule,
                  points=1 if points is None else len(points))
    if minibatch:
        noise_gen = generator("grad_noise", seed, dev)
        ctx.grad_noise = lambda w, k=8: minibatch_gradient_variance(tgt, w, int(config.batch_size), k, noise_gen)
    kind = start_kind(tgt, config, restart)
    if kind == "w_star":
        start = {"kind": "w_star", "steps": 0, "skipped": STARTED_AT_W_STAR[config.start]}
    else:
        start = {"kind": kind, **STARTS[kind].run(tgt, ctx, sampler.langevin_step(ctx), config.start_steps(kind), seed)}
        if "step_factor" in start:  # the start held only at a smaller step: the run takes it too
            rule.shrink(start["step_factor"])
            _take_rule_step(ctx, rule, sampler)
    state = sampler.init(ctx)
    _check_positions(state, ctx, sampler)
    threshold = (float(config.divergence_threshold) if config.divergence_threshold is not None
                 else DIVERGENCE_PER_DIM * max(d, 1))
    steps = int(config.steps)
    # the trace: L_n(w_t) − L_n(w*) exactly ('full'), L_B(w_t) − L_B(w*) of one evaluation (control
    # variate), else L(w_t) − L_n(w*)
    trace = LambdaTrace(steps, chains, reference_column=use_cv, offset=0.0 if mode == "full" else init_loss,
                        dtype=dtype, device=dev, localisation_from=int(config.burn_in) if bool((gamma > 0).any() if points else gamma > 0) else steps)
    trace_gen = None
    if mode == "independent":
        trace_gen = generator("trace", seed, dev)
    aux = torch.empty(steps, chains, sampler.aux_width, dtype=dtype, device=dev) if sampler.aux_width else None
    limit = threshold / nbeta if points is None else (threshold / nbeta)[:, 0]  # per row in a grid run
    return Run(target=tgt, sampler=sampler, state=state, ctx=ctx, rows=rows, batches=batches, trace=trace,
               monitor=ChainMonitor(chains, limit, dev), rule=rule, aux=aux, threshold=threshold,
               init_loss=init_loss, trace_mode=mode, trace_gen=trace_gen, batch_size=int(config.batch_size),
               per_sample=PerSampleAccumulator.for_run(target, tgt, config, seed, dev, rows=chains),
               accuracy=accuracy, chance_loss=chance_loss, start=start)


def trace_mode(target: Target, config, minibatch: bool) -> str:
    """Which data the λ trace is evaluated on (``trace_batch``, resolved for this target).

    The trace must estimate L_n(w_t) − L_n(w*) without bias. The gradient's
    own batch B_t does not: within an epoch B_t is disjoint from the batches
    that just moved w_t, so L_{B_t}(w_t) behaves like a held-out loss and
    overstates L_n(w_t) when the labels are noisy ('same', kept only for
    comparison). 'full' evaluates all the data (exact; for targets whose full
    loss costs about a minibatch loss); 'independent' a fresh uniform batch
    drawn independently of the chain, whose mean given w_t is L_n(w_t).
    Without minibatches the gradient's loss is the full loss: 'full' where
    the target has the cancellation-free excess, else 'exact'.
    """
    if not minibatch:
        return "full" if target.has_full_excess_loss else "exact"
    mode = config.trace_batch
    if mode == "auto":
        return "full" if target.has_full_excess_loss else "independent"
    if mode == "full" and not target.has_full_excess_loss:
        from ...errors import UnsupportedTarget

        raise UnsupportedTarget(f"trace_batch='full' on {target.id}: the target has no cheap full-data excess "
                                "loss; use 'independent' or 'auto'")
    return mode


def _evaluate(run: Run, idx):
    """One step's batched evaluation: (∇L_B of the chains, the trace values of this step)."""
    tgt, rows, chains = run.target, run.rows, run.ctx.chains
    mode = run.trace_mode
    if mode == "full":
        _, g, excess = tgt.loss_grad_and_excess(run.ctx.positions, idx)
        return g, excess
    if mode == "independent":
        _, g = tgt.loss_and_grad(run.ctx.positions, idx)
        tidx = torch.randint(tgt.num_data, (run.batch_size,), generator=run.trace_gen, device=rows.device)
        return g, tgt.loss(rows, tidx)  # the chains (+ w* with the control variate) on the trace batch
    out, g_all = tgt.loss_and_grad(rows, idx)  # 'same' / 'exact': all chains (+ the w* row) at once
    return g_all[:chains], out


def _check_positions(state, ctx: Context, sampler: Sampler) -> None:
    if state.w is not ctx.positions:
        raise RuntimeError(f"sampler {sampler.name!r}: state.w must be ctx.positions, updated in place "
                           "(the driver evaluates the loss on that buffer)")


def _check(run: Run, upto: int) -> None:
    """Flush the trace and park the chains that diverged since the last check."""
    block = run.trace.flush(upto)
    if block is None:
        return
    bad = run.monitor.check(block, upto)
    if bad is not None:
        run.ctx.positions[bad] = run.ctx.w_star
        run.sampler.park(run.state, bad, run.ctx)


def _adapt(run: Run, t: int) -> None:
    """Re-set the step size from the curvature where the live chains are now."""
    _check(run, t)
    with torch.enable_grad():
        changed = run.rule.adapt(run.target, run.ctx.positions, run.monitor.alive, t)
    if not changed:
        return
    _take_rule_step(run.ctx, run.rule, run.sampler)
    run.sampler.on_step_size(run.state, run.ctx, t)
    run.rule.log_step_size(per_point(run.ctx.eps, run.rule.chains, len(run.rule.points)))


def _take_rule_step(ctx: Context, rule: StepSizeRule, sampler: Sampler) -> None:
    """ctx's ε_s (and ε, when the step is the rule's) from the rule's current per-point steps."""
    one = ctx.points == 1 and not isinstance(ctx.nbeta, torch.Tensor)  # an independent run: numbers
    ctx.eps_rule = rule.eps_rule[0] if one else column(rule.eps_rule, rule.chains, ctx.dtype, ctx.device)
    if ctx.config.step_size is None:
        ctx.eps = sampler.from_rule(ctx.eps_rule)
        ctx.eps = float(ctx.eps) if not isinstance(ctx.eps, torch.Tensor) else ctx.eps


def per_point(value, chains: int, points: int) -> list:
    """A per-point column (or one number for all points) as a list of floats, one per point."""
    return value[::chains, 0].tolist() if isinstance(value, torch.Tensor) else [float(value)] * points


class _Start(NamedTuple):
    run: Callable[..., dict]  # (target, ctx, langevin_step, steps, seed) -> the start's record
    skip_reason: Callable[..., Optional[str]]  # (target, ctx, langevin_step) -> why it does not run, or None


STARTS = {"tempered": _Start(tempered_start.run_tempered_start, tempered_start.skip_reason),
          "orbit": _Start(orbit_start.run_orbit_start, orbit_start.skip_reason)}


def start_kind(target: Target, config, restart: bool = False) -> str:
    """Where a run's chains start: config.start, and for the restart of start = 'auto' the orbit start
    where the target declares rescalings (it needs no tempering), else the tempered start."""
    if restart:
        return "orbit" if target.rescalings() else "tempered"
    return config.start if config.start in STARTS else "w_star"


def _start_steps(start: dict) -> int:
    """The steps taken before the run's own: the start's (or one tried and undone), and those of a
    run from w* it replaced."""
    tried = int((start.get("tried") or {}).get("steps", 0)) + sum(int(r["steps"]) for r in start.get("retries", ()))
    return int(start["steps"]) + tried + int((start.get("after") or {}).get("steps", 0))


STARTED_AT_W_STAR = {"w_star": "start = 'w_star'",
                     "auto": "start = 'auto': the chains were not still spreading from w* after the planned steps"}


def _restart(run: Run, setup: Callable[[], Run], found: list, steps: int) -> bool:
    """start = 'auto': replace the run by one from the start :func:`start_kind` picks (``setup()``),
    unless that start does not apply to it; its record says after what (steps from w*, the problems
    found)."""
    kind = start_kind(run.target, run.ctx.config, restart=True)
    why = STARTS[kind].skip_reason(run.target, run.ctx, run.sampler.langevin_step(run.ctx))  # before building a run for nothing
    fresh = None if why is not None else setup()
    start = {"kind": kind, "steps": 0, "skipped": why} if fresh is None else fresh.start
    if not start["steps"]:  # not taken (or tried and undone, whose steps count): the run from w* goes on
        run.start = {**start, "skipped": f"still spreading from w* after {steps} steps, but not "
                                         f"started again: {start['skipped']}"}
        return False
    fresh.start["after"] = {"steps": steps, "problems": found}
    vars(run).update(vars(fresh))
    return True


def _run_until_settled(run: Run, configs: list, progress, judge: Optional[Callable] = None,
                       restart: Optional[Callable[[], Run]] = None) -> tuple[int, Optional[dict]]:
    """The loop for the planned steps, then on while the draws have not settled (settle.py); ``restart``:
    builds the run from the start :func:`start_kind` picks, for start = 'auto'."""
    def sample(start: int, stop: int, total: int) -> None:
        _sample(run, configs[0], progress, start, stop, total)

    def summarise_points(windows: list) -> list:
        traces = run.trace.to_numpy()
        return [_summary(run, c, k, traces) for k, c in enumerate(windows)]

    again = None
    if restart is not None and configs[0].start == "auto":
        again = lambda found: _restart(run, restart, found, int(configs[0].steps))  # noqa: E731
    return run_until_settled(run, configs, sample, summarise_points, judge, again)


def _summary(run: Run, config, k: int, traces) -> dict:
    """:func:`.trace.summarise` of point k (config: its window) from ``traces`` = run.trace.to_numpy()."""
    trace_np, r2 = traces
    chains = int(config.chains)
    cols = slice(k * chains, (k + 1) * chains)
    alive = run.monitor.alive.cpu().numpy()
    divergence = {r - k * chains: s for r, s in run.monitor.divergence_step.items() if cols.start <= r < cols.stop}
    return summarise(trace_np[:, cols], None if r2 is None else r2[:, cols], alive[cols], run.rule.nbetas[k],
                     run.rule.gammas[k], int(config.burn_in), int(config.thin), run.trace.loc_from, run.threshold,
                     divergence)


def _sample(run: Run, config, progress: Optional[Callable[[int, int], None]], start: int = 0,
            stop: Optional[int] = None, total: Optional[int] = None) -> None:
    """Steps start, ..., stop − 1 (default: all) of a loop ``total`` steps long (default config.steps;
    more where the adaptive length runs on, settle.py); the asv suite times single steps."""
    ctx, state, sampler, tgt, rows, trace = run.ctx, run.state, run.sampler, run.target, run.rows, run.trace
    w, w_star, chains = ctx.positions, ctx.w_star, ctx.chains
    steps, check_every, burn_in = int(config.steps), int(config.check_every), int(config.burn_in)
    if total is not None:
        steps = int(total)
    has_prior = tgt.has_prior
    step_fn = sampler.step
    grad_mode = torch.is_grad_enabled()
    torch.set_grad_enabled(False)  # the loop's updates need no graph (autograd re-enables it where used)
    try:
        for t in range(start, steps if stop is None else stop):
            if run.rule.due(t):
                _adapt(run, t)
            if t == burn_in:
                sampler.on_burn_in_end(state, ctx)
            # the batch is not kept past the step: it would hold its epoch's plan while the next is made
            g, values = _evaluate(run, run.batches.next() if run.batches is not None else None)
            trace.record(values)  # copied into the trace buffer in one kernel at the next check
            if run.per_sample is not None and run.per_sample.due(t):
                run.per_sample.record(w)  # the same w_t as the trace value
            if run.accuracy is not None and run.accuracy.due(t):
                run.accuracy.record(w)
            pg = prior_gradient(tgt, rows)[:chains] if has_prior else None  # all rows, as the forward pass
            trace.record_distance(t, w, w_star)
            step_fn(state, g, pg, ctx, t, None if run.aux is None else run.aux[t])
            if state.w is not w:
                _check_positions(state, ctx, sampler)
            run.monitor.hold(w, w_star)
            if (t + 1) % check_every == 0 or t + 1 == steps:
                _check(run, t + 1)
                if progress is not None:
                    progress(t + 1, steps)
    finally:
        torch.set_grad_enabled(grad_mode)


def record_extra(run: Run, config, nbeta: float, gamma: float, step: float, rule_init: Optional[float],
                 adaptation: list, heat_log: list, stride: int) -> dict:
    """What an SG-MCMC Estimate's ``extra`` says about the run (one point of it, in a grid run)."""
    batches = run.batches
    return {
        "init_loss": run.init_loss,
        "nbeta": nbeta,
        "step_size": step,
        "step_size_source": "config" if config.step_size is not None else "rule",
        "rule_step_size_init": rule_init,
        "hessian_top": run.rule.hess_top,
        "adaptation": adaptation,
        "minibatch_heat": config.minibatch_heat if batches is not None else None,
        "heat_log": heat_log,
        "gamma": gamma,
        "chains": int(config.chains),
        "steps": int(config.steps),
        "burn_in": int(config.burn_in),
        "start": run.start,
        "thin": int(config.thin),
        "batch_size": (int(config.batch_size) if batches is not None else None),
        "batches_per_epoch": (batches.per_epoch if batches is not None else None),
        "batch_draw": (config.batch_draw if batches is not None else None),
        "trace_batch": run.trace_mode,
        "trace_reference": ("L_B(w*) same batch" if run.trace.reference_column
                            else "exact excess L_n(w) − L_n(w*)" if run.trace_mode == "full" else "L_n(w*)"),
        "loss_trace_stride": stride * int(config.thin),
        "dtype": config.dtype,
        "device": str(run.ctx.device),
    }


def locality(run: Run, lambda_hat: float, nbeta: float, gamma: float, diagnostics: dict,
             chains: np.ndarray) -> dict:
    """The run's (or a grid point's) ``locality`` object (``llcbench.locality``); ``chains``: the mask
    of its live chains."""
    acc = run.accuracy
    return assess(lambda_hat=lambda_hat, nbeta=float(nbeta), gamma=float(gamma), dim=int(run.ctx.dim),
                  init_loss=run.init_loss, chance_loss=run.chance_loss,
                  mean_sq_distance=diagnostics.get("mean_sq_distance"),
                  sensitivity_rel=diagnostics.get("localisation_sensitivity_rel"),
                  accuracy=None if acc is None else acc.mean(chains),
                  anchor_accuracy=None if acc is None else acc.anchor_accuracy,
                  chance_accuracy=None if acc is None else run.target.chance_accuracy())


def _estimates(run: Run, configs: list, seconds: float, doublings: int = 0,
               settling: Optional[dict] = None) -> list[Estimate]:
    """What the run recorded, as one Estimate per point (one point: an independent run); ``doublings``:
    how often the adaptive length doubled the run (settle.py), ``settling`` its record."""
    rule, ctx, chains = run.rule, run.ctx, int(configs[0].chains)
    traces = run.trace.to_numpy()
    aux_np = None if run.aux is None else run.aux.to(torch.float64).cpu().numpy()
    alive = run.monitor.alive.cpu().numpy()
    eps = per_point(ctx.eps, chains, len(configs))
    out = []
    for k, planned in enumerate(configs):
        config = window(planned, doublings)  # the steps and burn-in the run took
        cols = slice(k * chains, (k + 1) * chains)
        nbeta, gamma = rule.nbetas[k], rule.gammas[k]
        mine = _mask(alive, cols)
        s = _summary(run, config, k, traces)
        loss_trace, stride = loss_trace_points(s["draws_loss"], config.trace_points)
        init = None if rule.eps_rule_init is None else rule.eps_rule_init[k]
        extra = record_extra(run, config, nbeta, gamma, eps[k], init, rule.adapt_logs[k], rule.heat_logs[k], stride)
        if settling is not None:
            extra["settling"] = settling
        extra.update(run.sampler.summary(_rows_view(run.state, cols, ctx.chains, run.sampler.point_fields),
                                         None if aux_np is None else aux_np[:, cols],
                                         _rows_view(ctx, cols, ctx.chains, CONTEXT_POINT_FIELDS, chains=chains,
                                                    points=1, config=config)))
        out.append(Estimate(
            lambda_hat=s["lambda_hat"], lambda_hat_chains=s["per_chain"], se=s["se"], loss_trace=loss_trace,
            diagnostics=s["diagnostics"],
            grad_evals=(int(config.steps) + _start_steps(run.start)) * chains, seconds=seconds / len(configs),
            warnings=s["warnings"], extra=extra, nbeta=nbeta, gamma=gamma,
            per_sample=None if run.per_sample is None else run.per_sample.result(mine, nbeta, gamma),  # its nβ, γ
            locality=locality(run, s["lambda_hat"], nbeta, gamma, s["diagnostics"], mine)))
    return out


def _mask(alive: np.ndarray, cols: slice) -> np.ndarray:
    """The live chains of one point, as a mask over all rows."""
    mine = np.zeros_like(alive)
    mine[cols] = alive[cols]
    return mine


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


def grid_estimator(sampler: Sampler):
    """``EstimatorSpec.estimate_grid`` of an SG-MCMC estimator whose sampler has a per-row update."""
    def estimate_grid(target: Target, configs: list, seed: int, device: str = "cpu") -> list[Estimate]:
        return run_sgmcmc_grid(target, configs, seed, device, sampler)

    estimate_grid.__doc__ = (f"λ̂ of {sampler.name} at every config of a grid that differs only in ε, nβ, γ, "
                             "in one chain tensor (llcbench.estimators.sgmcmc.grid).")
    return estimate_grid
