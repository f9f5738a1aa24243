"""Shared machinery of the stochastic-gradient MCMC estimators of the LLC.

BlackJAX-like: a sampler (:class:`Sampler`) is a few small functions with
explicit state,

    init(ctx) -> state                 buffers, one row per chain (w starts at w*)
    step(state, g, pg, ctx, t, aux)    one update of all chains, in place, under no_grad
    park(state, dead, ctx)             reset the rows of diverged chains (frozen from then on)
    summary(state, aux, ctx)           JSON-able sampler-specific values for Estimate.extra

and ONE driver loop (:func:`run_sgmcmc`) owns everything they share: the
tempered, localised target

    p(w) ∝ exp(−nβ·L_n(w) − (γ/2)·‖w − w*‖²)  (× the prior φ, if the target has one),

the seeded minibatch stream, the batched forward/backward (all chains in one
``(chains, dim)`` tensor: ONE ``target.loss_and_grad`` call per step —
autograd, or the family's closed form — never a Python loop over chains),
the per-draw λ trace, burn-in, thinning, divergence handling, the step-size
rule and its adaptation, the ArviZ diagnostics, and the localisation
sensitivity ∂λ̂/∂log γ = −(γ/2)·Cov(nβL, ‖w − w*‖²) from the same draws.

Defaults users can trust (each is a documented config field):

- nβ = nbeta_scale·n/log n (``target.nbeta_star``), never b/log b;
- γ = gamma_scale·nβ (10⁻³·nβ: ≈ 1.1 at n = 10⁴, ≈ 8.7 at n = 10⁵), chosen
  by measurement on the catalogue (docs/defaults.md); an absolute ``gamma``
  is used as is;
- L_n(w*) on the FULL data (``target.full_loss``), in float64;
- burn-in excluded from every average;
- minibatches without replacement: each epoch a fresh seeded permutation of
  the data split into ceil(N/batch_size) near-equal batches (sizes differ by
  at most one), so every point is visited exactly once per epoch; analytic
  potentials (num_data == 0) and batch_size ≥ N use the exact loss;
- per-draw λ trace nβ·(L_B(w_t) − L_B(w*)), both minibatch losses from the
  same batched forward pass as the gradient (w* rides along as one extra
  row): unbiased for nβ·(L_n(w_t) − L_n(w*)) — the mean of L_B(w*) over an
  epoch is L_n(w*) — and free of the huge minibatch noise of L_B(w*) itself
  (at n = 10⁵, b = 256 that noise is ≈ ±850 per draw on a λ of 11);
  ``control_variate=False`` gives nβ·(L_B(w_t) − L_n(w*)) instead;
- chains start at w*; a chain whose loss becomes NaN/inf or whose
  nβ·(L − L*) exceeds ``divergence_threshold`` is flagged, parked at w* (its
  state is never updated again, so it cannot poison anything) and excluded
  from λ̂; if every chain diverges λ̂ is NaN with a warning.

Step size (``step_size = None``, the default): the rule
ε_s = step_scale / (nβ·max(h, curvature_floor) + heat + γ), with h the top
eigenvalue of the Hessian of L at w* (power iteration with Hessian-vector
products on a fixed data subset) and heat = nβ²·v the minibatch-noise term,
v the measured variance of the minibatch gradient (0 for exact gradients;
:func:`minibatch_heat`): it keeps the discretisation error plus the heat of
the gradient noise at ≈ step_scale/4 of the variance in the stiffest
direction (:func:`default_step_size`). Because h at w* says little at a
singular point (h = 0 at a quartic minimum, and v = 0 at a noiseless
teacher), the rule is re-applied ``adapt_rounds`` times during the first
half of the burn-in with h and v the largest over the chains at their
current positions (growth ≤ ``adapt_growth`` per round);
from then on ε is fixed, so the draws come from a time-homogeneous chain.
Each sampler maps ε_s to its own step (SGLD: ε = ε_s; SGNHT: h = √ε_s;
RMSProp-SGLD: see its module). A user-given ``step_size`` is used as is.

Determinism: the noise comes from a ``torch.Generator`` seeded with ``seed``,
the minibatch order from a second one seeded from ``seed`` (so two samplers
run with the same seed see the same batches); same target, config and seed
give a bit-identical λ̂ on CPU (for a fixed number of torch threads).
Device: everything lives on ``device`` (generators included); the loop never
calls ``.item()``: the only host syncs are the divergence checks every
``check_every`` steps, the adaptation rounds, and the final transfer.
"""

from __future__ import annotations

import math
import time
import warnings as _warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import torch

from ..target import Target
from .base import Estimate, doc
from .temperature import TemperatureConfig, resolve_gamma, resolve_nbeta  # noqa: F401 (re-exported)

DTYPES = {"float32": torch.float32, "float64": torch.float64}
HEAT_RULES = ("measured", "fisher")
HEAT_REDUCE = "max"  # the noisiest coordinate sets the heat, as the stiffest direction sets h

# Diverged: nβ·(L − L_n(w*)) above this many units per parameter (see the config doc).
DIVERGENCE_PER_DIM = 1e4
# ‖w − w*‖² is recorded every this many post-burn-in steps (for the localisation sensitivity)
LOCALISATION_STRIDE = 5


# --------------------------------------------------------------------------- config


@dataclass
class SGMCMCConfig(TemperatureConfig):
    """Fields shared by the SG-MCMC estimators (names are a contract of the CLI and sweeps)."""

    step_size: Optional[float] = doc(
        None, "step size ε (h for sgnht); None: the rule ε = step_scale/(nβ·max(h, curvature_floor) + heat + γ), "
        "h = top Hessian eigenvalue of L at w*, heat = the minibatch-noise term (minibatch_heat), "
        "adapted in the burn-in")
    step_scale: float = doc(0.2, "c in the step-size rule (used only when step_size is None)")
    batch_size: int = doc(1024, "minibatch size (without replacement, near-equal batches per epoch); "
                          "ignored by analytic potentials")
    chains: int = doc(8, "number of chains, vectorised in one tensor")
    steps: int = doc(6000, "sampler steps per chain, burn-in included")
    burn_in: int = doc(2000, "initial steps excluded from every average")
    thin: int = doc(1, "keep every thin-th post-burn-in draw")
    dtype: str = doc("float32", "sampling precision: float32 or float64 (L_n(w*) is always float64)")
    curvature_floor: float = doc(1.0, "lower bound on h in the step-size rule (h = 0 at quartic minima)")
    hessian_iters: int = doc(30, "power iterations for h in the step-size rule")
    hessian_points: int = doc(4096, "data points (fixed subset) for h in the step-size rule")
    divergence_threshold: Optional[float] = doc(
        None, "a chain diverges when nβ·(L_B − L_n(w*)) exceeds this (or is NaN/inf); "
        f"None: {DIVERGENCE_PER_DIM:g}·max(dim, 1)")
    control_variate: bool = doc(
        True, "λ trace nβ·(L_B(w_t) − L_B(w*)) with L_B(w*) from the same batched forward (one extra row; "
        "unbiased, removes the minibatch noise of L_B(w*)); False: nβ·(L_B(w_t) − L_n(w*))")
    adapt_rounds: int = doc(
        4, "re-set the rule's step this many times in the first half of the burn-in from the largest over "
        "chains of the top Hessian eigenvalue at their current positions (0: the rule at w* only)")
    adapt_growth: float = doc(4.0, "at most this factor of growth of the step per adaptation round")
    minibatch_heat: str = doc(
        "measured", "the minibatch-noise term of the step-size rule: 'measured' (nβ²·v, v the largest "
        "per-coordinate Var(∇L_B) over heat_batches random minibatches at w* and at each adaptation) or "
        "'fisher' (nβ·h·nβ/b, which assumes the per-sample gradient covariance equals the Hessian)")
    heat_batches: int = doc(16, "minibatch gradients per measurement of v (minibatch_heat = 'measured')")
    adapt_iters: int = doc(10, "power iterations per adaptation round")
    check_every: int = doc(100, "steps between divergence checks (the only host syncs of the loop)")
    trace_points: int = doc(200, "at most this many loss-trace points per chain in the record")

    def validate(self) -> None:
        self.validate_temperature()
        _positive(self, "step_scale", "curvature_floor")
        if not (self.adapt_growth >= 1 and math.isfinite(self.adapt_growth)):
            raise ValueError("adapt_growth must be >= 1")
        if self.adapt_rounds < 0:
            raise ValueError("adapt_rounds must be >= 0")
        _optional_positive(self, "step_size", "divergence_threshold")
        _at_least(self, 1, "batch_size", "chains", "steps", "thin", "hessian_iters", "hessian_points", "adapt_iters",
                  "check_every", "trace_points")
        if self.burn_in < 0:
            raise ValueError("burn_in must be >= 0")
        if self.burn_in >= self.steps:
            raise ValueError(f"burn_in must be < steps (got burn_in={self.burn_in}, steps={self.steps})")
        if (self.steps - self.burn_in) // self.thin < 1:
            raise ValueError("no draw left: need (steps - burn_in) // thin >= 1")
        if self.minibatch_heat not in HEAT_RULES:
            raise ValueError(f"minibatch_heat must be one of {', '.join(HEAT_RULES)}, got {self.minibatch_heat!r}")
        if self.heat_batches < 2:
            raise ValueError("heat_batches must be >= 2")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")


def _positive(cfg, *names):
    for name in names:
        v = getattr(cfg, name)
        if not (v > 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be > 0")


def _optional_positive(cfg, *names):
    for name in names:
        v = getattr(cfg, name)
        if v is not None and not (v > 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be > 0 (or None for the default)")


def _at_least(cfg, lo, *names):
    for name in names:
        if getattr(cfg, name) < lo:
            raise ValueError(f"{name} must be >= {lo}")


# --------------------------------------------------------------------------- minibatches


class EpochBatches:
    """Minibatches without replacement.

    Each epoch draws a fresh permutation of range(num_data) from ``generator``
    and splits it into ceil(num_data / batch_size) near-equal contiguous
    slices (sizes differ by at most one, so that the mean of the batch means
    over an epoch is the full-data mean). Every index is visited exactly once
    per epoch. ``plan(perm, count)`` turns an epoch's permutation into what
    the loss takes per step: by default the index slices themselves
    (``torch.tensor_split``); a target may precompute per-batch statistics for
    the whole epoch at once (``Target.epoch_batches``). ``next()`` costs one
    list lookup.
    """

    def __init__(self, num_data: int, batch_size: int, generator: torch.Generator, device="cpu",
                 plan: Optional[Callable[[torch.Tensor, int], list]] = None):
        if num_data < 1:
            raise ValueError("EpochBatches needs num_data >= 1")
        self.num_data = int(num_data)
        self.per_epoch = -(-self.num_data // int(batch_size))
        self.generator = generator
        self.device = torch.device(device)
        self.plan = plan or (lambda perm, count: list(torch.tensor_split(perm, count)))
        self.epoch = -1
        self._batches: list = []
        self._pos = 0

    def _new_epoch(self) -> None:
        perm = torch.randperm(self.num_data, generator=self.generator, device=self.device)
        self._batches = self.plan(perm, self.per_epoch)
        self._pos = 0
        self.epoch += 1

    def next(self):
        if self._pos >= len(self._batches):
            self._new_epoch()
        batch = self._batches[self._pos]
        self._pos += 1
        return batch


# --------------------------------------------------------------------------- context


@dataclass
class Context:
    """What a sampler's init/step see: constants of the run (no hidden globals).

    eps: the sampler's step (ε, or h for SGNHT); eps_rule: the SGLD rule's ε_s
    (None when no rule is used). Both may be re-set by the driver during the
    first half of the burn-in (step-size adaptation), never after it.
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
    eps_rule: Optional[float] = None
    # minibatch gradient noise at the current positions: per chain, the mean over coordinates of
    # the variance of ∇L_B across minibatches (None for exact gradients); a few extra gradients
    grad_noise: Optional[Callable[[torch.Tensor], torch.Tensor]] = None


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
    uses_rule(config): whether the step-size rule (and its adaptation) runs.
    """

    name: str
    init: Callable[[Context], Any]
    step: Callable[..., None]
    park: Callable[[Any, torch.Tensor, Context], None]
    summary: Callable[[Any, Optional[np.ndarray], Context], dict] = lambda s, a, c: {}
    aux_width: int = 0
    from_rule: Callable[[float], float] = _identity
    on_step_size: Callable[[Any, Context, int], None] = _noop
    uses_rule: Callable[[Any], bool] = lambda config: config.step_size is None


def potential_gradient(w: torch.Tensor, g: torch.Tensor, pg: Optional[torch.Tensor], ctx: "Context",
                       out: torch.Tensor) -> torch.Tensor:
    """out ← ∇U(w) = nβ·∇L_B(w) + γ·(w − w*) − ∇log φ(w), the drift of the tempered localised
    potential (pg = ∇log φ, None for a flat prior), written in place."""
    if ctx.gamma != 0.0:
        torch.sub(w, ctx.w_star, out=out).mul_(ctx.gamma).add_(g, alpha=ctx.nbeta)
    else:
        torch.mul(g, ctx.nbeta, out=out)
    if pg is not None:
        out.sub_(pg)
    return out


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


def minibatch_heat(target: Target, w: torch.Tensor, nbeta: float, h: float, config,
                   generator: torch.Generator) -> tuple[float, Optional[float]]:
    """(heat term of the step-size rule, measured v or None), for a minibatch target at rows w.

    The minibatch gradient enters an SGLD step as (ε·nβ/2)·∇L_B, whose noise adds
    (ε·nβ/2)²·Var(∇L_B) to the injected variance ε per coordinate: a relative
    heat ε·nβ²·v/4, v = Var(∇L_B). 'measured': v = the largest per-coordinate
    variance over ``heat_batches`` random minibatches (largest over the rows
    too: the noisiest coordinate sets the heat, as the stiffest direction sets
    h), heat = nβ²·v. 'fisher': v = h/b (the per-sample gradient covariance
    taken equal to the Hessian, as at a true parameter of a well-specified
    model with noisy labels), heat = nβ·h·nβ/b. The two agree on noisy linear
    regression; with noiseless teacher labels (the DLN and RRR catalogue) the
    per-sample gradients vanish at w* and the measured heat is orders of
    magnitude smaller, so the rule no longer shrinks the step ~(1 + nβ/b)-fold
    for noise that is not there.
    """
    if config.minibatch_heat == "fisher":
        return nbeta * h * nbeta / config.batch_size, None
    v = float(minibatch_gradient_variance(target, w, int(config.batch_size), int(config.heat_batches),
                                          generator, reduce=HEAT_REDUCE).max())
    return nbeta * nbeta * v, v


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


def _subset(target: Target, points: int, device) -> Optional[torch.Tensor]:
    """A fixed data subset (permutation seeded with 0: independent of the run's seed), or None for all."""
    if target.num_data <= points:
        return None
    g = torch.Generator().manual_seed(0)
    return torch.randperm(target.num_data, generator=g)[:points].to(device)


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
    idx = _subset(target, points, w.device)
    return float(top_hessian_eigenvalues(target, w, idx, iters)[0])


# --------------------------------------------------------------------------- driver


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


def _finite_or_none(x: float) -> Optional[float]:
    x = float(x)
    return x if math.isfinite(x) else None


def adaptation_steps(config) -> list[int]:
    """Steps (before which) the step size is re-set: adapt_rounds points evenly spread over the
    first half of the burn-in (none when adapt_rounds is 0 or the burn-in is too short)."""
    k = int(config.adapt_rounds)
    half = int(config.burn_in) // 2
    if k <= 0 or half < k:
        return []
    return sorted({max(1, (half * (i + 1)) // k) for i in range(k)})


def run_sgmcmc(target: Target, config, seed: int, device: str, sampler: Sampler,
               progress: Optional[Callable[[int, int], None]] = None) -> Estimate:
    """Run ``config.chains`` chains of ``sampler`` on ``target``; return the Estimate."""
    t_start = time.perf_counter()
    config.validate()
    problem = prior_problem(target)
    if problem is not None:
        from ..errors import UnsupportedTarget

        raise UnsupportedTarget(f"{sampler.name} on {target.id}: {problem}")
    dev = torch.device(device)
    dtype = DTYPES[config.dtype]
    chains, d = int(config.chains), int(target.dim)
    nbeta = resolve_nbeta(target, config)
    gamma = resolve_gamma(nbeta, config)

    # L_n(w*) on the full data, float64 (the offset every draw is measured from)
    t64 = target.to(dev, torch.float64)
    w_star64 = t64.w_star.to(device=dev, dtype=torch.float64)
    with torch.no_grad():
        init_loss = float(t64.full_loss(w_star64[None])[0])

    minibatch = target.num_data > 0 and config.batch_size < target.num_data
    hess_idx = _subset(target, config.hessian_points, dev)
    noise_gen = torch.Generator(device=dev)  # the samplers' gradient-noise estimates (ctx.grad_noise)
    noise_gen.manual_seed(int(seed) + 104_729)
    heat_gen = torch.Generator(device=dev)  # the step-size rule's, kept apart so neither shifts the other
    heat_gen.manual_seed(int(seed) + 130_363)

    # step size: user-given, or the rule at w* (then adapted during the burn-in)
    uses_rule = bool(sampler.uses_rule(config))
    hess_top = eps_rule = None
    heat_log: list[dict] = []
    if uses_rule:
        hess_top = float(top_hessian_eigenvalues(t64, w_star64[None], hess_idx, config.hessian_iters)[0])
        h = hess_top if math.isfinite(hess_top) else config.curvature_floor
        heat = 0.0
        if minibatch:
            heat, v = minibatch_heat(t64, w_star64[None], nbeta, max(h, config.curvature_floor), config, heat_gen)
            heat_log.append({"step": 0, "heat": heat, "grad_variance": v})
        eps_rule = float(default_step_size(h, nbeta, gamma, config, heat))
    if config.step_size is not None:
        eps = float(config.step_size)
    else:
        eps = float(sampler.from_rule(eps_rule))
    del t64

    tgt = target if (dtype == torch.float64 and target.w_star.device == dev) else target.to(dev, dtype)
    w_star = tgt.w_star.to(device=dev, dtype=dtype)
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(seed))
    data_gen = torch.Generator(device=dev)
    data_gen.manual_seed(int(seed) * 1_000_003 + 17)
    batches = (EpochBatches(target.num_data, config.batch_size, data_gen, dev, plan=tgt.epoch_batches)
               if minibatch else None)
    ctx = Context(chains=chains, dim=d, w_star=w_star, nbeta=nbeta, gamma=gamma, eps=eps,
                  generator=gen, dtype=dtype, device=dev, config=config, eps_rule=eps_rule)
    if minibatch:

        def grad_noise(w: torch.Tensor, k: int = 8) -> torch.Tensor:
            """Mean over coordinates of Var(∇L_B) across k random minibatches, per row of w."""
            return minibatch_gradient_variance(tgt, w, int(config.batch_size), k, noise_gen)

        ctx.grad_noise = grad_noise
    has_prior = target.has_prior
    threshold = (float(config.divergence_threshold) if config.divergence_threshold is not None
                 else DIVERGENCE_PER_DIM * max(d, 1))
    excess_limit = threshold / nbeta  # in loss units

    steps = int(config.steps)
    use_cv = batches is not None and bool(config.control_variate)
    # raw[t] = L_B of every row at step t (the chains, then w* with the control variate); the trace
    # is L_B(w_t) − reference: L_B(w*) of the same forward pass (control variate), else L_n(w*)
    raw = torch.empty(steps, chains + (1 if use_cv else 0), dtype=dtype, device=dev)

    def excess(block: torch.Tensor) -> torch.Tensor:
        return block[:, :chains] - (block[:, chains:] if use_cv else offset)
    aux = (torch.empty(steps, chains, sampler.aux_width, dtype=dtype, device=dev)
           if sampler.aux_width else None)
    state = sampler.init(ctx)
    # all rows of one forward pass live in one buffer: the chains, then (control variate) w*
    rows = torch.empty(chains + (1 if use_cv else 0), d, dtype=dtype, device=dev)
    rows[:chains] = state.w
    if use_cv:
        rows[chains] = w_star
    state.w = w = rows[:chains]  # (chains, dim) view, updated in place by the sampler
    alive = torch.ones(chains, dtype=torch.bool, device=dev)
    alive_col = None  # set once a chain has diverged: (chains, 1) bool
    divergence_step: dict[int, int] = {}
    check_every = int(config.check_every)
    last_check = 0
    adapt_at = adaptation_steps(config) if (uses_rule and config.adapt_rounds > 0) else []
    adapt_log: list[dict] = []
    adapt_gen = torch.Generator(device=dev)
    adapt_gen.manual_seed(int(seed) + 7_919)

    pending: list[torch.Tensor] = []  # losses of the steps since the last check

    def check(upto: int) -> None:
        nonlocal alive_col, last_check
        if pending:
            torch.stack(pending, out=raw[upto - len(pending) : upto])
            pending.clear()
        if upto <= last_check:
            return
        block = excess(raw[last_check:upto])
        bad = (~torch.isfinite(block) | (block > excess_limit)).any(dim=0) & alive
        last_check = upto
        if bool(bad.any()):  # host sync, every check_every steps
            for r in bad.nonzero().flatten().tolist():
                col = block[:, r]
                hit = (~torch.isfinite(col) | (col > excess_limit)).nonzero()
                divergence_step[r] = int(upto - block.shape[0] + int(hit[0]))
            alive.logical_and_(~bad)
            with torch.no_grad():
                w[bad] = w_star
                sampler.park(state, bad, ctx)
            alive_col = alive[:, None]

    def adapt(t: int) -> None:
        """Re-set the step size from the curvature where the chains are now."""
        check(t)
        pos = w[alive] if alive_col is not None else w
        if pos.shape[0] == 0:
            return
        hs = top_hessian_eigenvalues(tgt, pos, hess_idx, config.adapt_iters, adapt_gen)
        hs = hs[torch.isfinite(hs)]
        if hs.numel() == 0:
            return
        h_top = float(hs.max())
        heat = 0.0
        if minibatch:
            heat, v = minibatch_heat(tgt, pos, nbeta, h_top, config, heat_gen)
            heat_log.append({"step": t, "heat": heat, "grad_variance": v})
        old = ctx.eps_rule
        new = float(default_step_size(h_top, nbeta, gamma, config, heat, floor=1e-30))
        new = min(new, old * config.adapt_growth)
        ctx.eps_rule = new
        if config.step_size is None:
            ctx.eps = float(sampler.from_rule(new))
        sampler.on_step_size(state, ctx, t)
        adapt_log.append({"step": t, "h_max": h_top, "h_median": float(hs.median()), "step_size": ctx.eps,
                          "rule_step_size": new})

    step_fn = sampler.step
    offset = init_loss
    next_adapt = adapt_at.pop(0) if adapt_at else -1
    # ‖w − w*‖² at every LOCALISATION_STRIDE-th post-burn-in step, for ∂λ̂/∂log γ (see _localisation)
    r2_rows: list[torch.Tensor] = []
    loc_from = int(config.burn_in) if gamma > 0 else steps
    grad_mode = torch.is_grad_enabled()
    torch.set_grad_enabled(False)  # the loop's updates need no graph (autograd re-enables it where used)
    try:
        for t in range(steps):
            if t == next_adapt:
                with torch.enable_grad():
                    adapt(t)
                next_adapt = adapt_at.pop(0) if adapt_at else -1
            idx = batches.next() if batches is not None else None
            out, g_all = tgt.loss_and_grad(rows, idx)  # ONE batched call: all chains (+ the w* row)
            pending.append(out)  # copied into raw in one kernel at the next check
            g = g_all[:chains]
            pg = None
            if has_prior:
                with torch.enable_grad():
                    wl = rows.detach().requires_grad_(True)
                    (pg_all,) = torch.autograd.grad(tgt.log_prior(wl).sum(), wl)
                pg = pg_all[:chains]
            if t >= loc_from and (t - loc_from) % LOCALISATION_STRIDE == 0:
                r2_rows.append(torch.sub(w, w_star).square_().sum(dim=1))  # ‖w_t − w*‖², same w_t as out
            step_fn(state, g, pg, ctx, t, None if aux is None else aux[t])
            if alive_col is not None:
                w.copy_(torch.where(alive_col, w, w_star))
            if (t + 1) % check_every == 0 or t + 1 == steps:
                check(t + 1)
                if progress is not None:
                    progress(t + 1, steps)
    finally:
        torch.set_grad_enabled(grad_mode)

    # ---------------------------------------------------------------- summary (one transfer)
    trace_np = excess(raw.to(torch.float64)).cpu().numpy()  # (steps, chains)
    aux_np = None if aux is None else aux.to(torch.float64).cpu().numpy()
    draws_loss = trace_np[config.burn_in :: config.thin].T  # (chains, draws): L_B(w_t) − reference
    lam_draws = nbeta * draws_loss
    alive_np = alive.cpu().numpy()
    divergent = [int(i) for i in np.flatnonzero(~alive_np)]
    warn: list[str] = []
    per_chain = [float(lam_draws[c].mean()) if alive_np[c] else float("nan") for c in range(chains)]
    good = lam_draws[alive_np]
    if divergent:
        warn.append(
            f"{len(divergent)} of {chains} chains diverged (loss NaN/inf or nβ·(L − L*) > {threshold:g}) "
            f"and were excluded from λ̂: chains {divergent}; consider a smaller step_size/step_scale")
    if good.shape[0] == 0:
        lambda_hat = float("nan")
        warn.append("all chains diverged: λ̂ is NaN")
    else:
        lambda_hat = float(good.mean())
    diagnostics = _diagnostics(good, draws_loss[alive_np])
    if r2_rows:
        at = np.arange(loc_from, steps, LOCALISATION_STRIDE)[: len(r2_rows)]
        r2 = torch.stack(r2_rows).to(torch.float64).cpu().numpy()  # (k, chains)
        diagnostics.update(_localisation(nbeta * trace_np[at][:, alive_np], r2[:, alive_np], gamma, lambda_hat))
    diagnostics["divergent_chains"] = divergent
    diagnostics["divergence_step"] = {str(k): v for k, v in sorted(divergence_step.items())}
    diagnostics["divergence_threshold"] = threshold
    diagnostics["draws_per_chain"] = int(lam_draws.shape[1])
    diagnostics["chains_used"] = int(good.shape[0])
    rhat = diagnostics.get("rhat")
    if rhat is not None and rhat > 1.1:
        warn.append(f"split R-hat of the λ trace is {rhat:.3f} > 1.1: chains disagree "
                    "(not mixed, or burn-in too short)")
    finite = np.array([x for x in per_chain if math.isfinite(x)])
    if finite.size >= 4:
        med = float(np.median(finite))
        mad = 1.4826 * float(np.median(np.abs(finite - med)))
        spread = max(5 * mad, 0.05 * abs(med), 1e-12)
        outliers = [c for c, x in enumerate(per_chain) if math.isfinite(x) and abs(x - med) > spread]
        diagnostics["outlier_chains"] = outliers
        if outliers:
            warn.append(f"chains {outliers} have per-chain λ̂ far from the median {med:.4g} of the chains "
                        f"({', '.join(f'{per_chain[c]:.4g}' for c in outliers)}): a chain stuck or heated in "
                        "another region; λ̂ (their mean) is sensitive to it")
    drift = diagnostics.get("half_means")
    if drift is not None and diagnostics.get("half_drift_z") is not None:
        z = diagnostics["half_drift_z"]
        if abs(z) > 4 and abs(drift[1] - drift[0]) > 0.05 * max(abs(lambda_hat), 1e-12):
            warn.append(f"λ trace still drifting: mean {drift[0]:.4g} in the first half of the draws, "
                        f"{drift[1]:.4g} in the second (z = {z:.1f}); increase steps and burn_in")
    se = diagnostics.get("mcse_mean")
    se = float("nan") if se is None else se

    stride = max(1, -(-lam_draws.shape[1] // int(config.trace_points)))
    loss_trace = [[_finite_or_none(x) for x in draws_loss[c, ::stride]] for c in range(chains)]
    extra = {
        "init_loss": init_loss,
        "nbeta": nbeta,
        "step_size": ctx.eps,
        "step_size_source": "config" if config.step_size is not None else "rule",
        "rule_step_size_init": eps_rule,
        "hessian_top": hess_top,
        "adaptation": adapt_log,
        "minibatch_heat": config.minibatch_heat if minibatch else None,
        "heat_log": heat_log,
        "gamma": gamma,
        "chains": chains,
        "steps": steps,
        "burn_in": int(config.burn_in),
        "thin": int(config.thin),
        "batch_size": (int(config.batch_size) if batches is not None else None),
        "batches_per_epoch": (batches.per_epoch if batches is not None else None),
        "trace_reference": "L_B(w*) same batch" if use_cv else "L_n(w*)",
        "loss_trace_stride": stride * int(config.thin),
        "dtype": config.dtype,
        "device": str(dev),
    }
    extra.update(sampler.summary(state, aux_np, ctx))
    return Estimate(
        lambda_hat=lambda_hat,
        lambda_hat_chains=per_chain,
        se=se,
        loss_trace=loss_trace,
        diagnostics=diagnostics,
        grad_evals=steps * chains,
        seconds=time.perf_counter() - t_start,
        warnings=warn,
        extra=extra,
    )


def _localisation(lam: np.ndarray, r2: np.ndarray, gamma: float, lambda_hat: float) -> dict:
    """How much the estimand moves with the localisation, from the same draws.

    For p_γ ∝ exp(−nβL − (γ/2)‖w − w*‖²), ∂E[f]/∂γ = −½·Cov(f, ‖w − w*‖²), so
    ∂λ_γ/∂log γ = −(γ/2)·Cov(nβ(L − L*), ‖w − w*‖²): estimated with the
    within-chain covariance (minibatch noise in the λ trace is independent of
    w_t, so it adds variance, not bias). A value that is a sizeable fraction
    of λ̂ says the estimand at this γ is still set by the localisation, not by
    the loss: a γ-driven (estimand) bias, not a sampler error. lam, r2:
    (draws, chains) at the same steps.
    """
    if lam.shape[0] < 8 or lam.shape[1] == 0:
        return {}
    cov = float(np.mean((lam - lam.mean(axis=0)) * (r2 - r2.mean(axis=0))))
    sens = -0.5 * gamma * cov
    rel = sens / lambda_hat if math.isfinite(lambda_hat) and lambda_hat != 0 else None
    return {"localisation_sensitivity": _finite_or_none(sens),
            "localisation_sensitivity_rel": None if rel is None else _finite_or_none(rel),
            "mean_sq_distance": _finite_or_none(float(r2.mean()))}


def _diagnostics(lam_draws: np.ndarray, draws_loss: np.ndarray) -> dict:
    """ArviZ diagnostics of the per-draw λ trace (chains × draws) of the chains kept."""
    out: dict[str, Any] = {"rhat": None, "ess_bulk": None, "ess_mean": None, "mcse_mean": None,
                           "frac_below_init": None}
    if lam_draws.size == 0:
        return out
    out["frac_below_init"] = float((draws_loss < 0).mean())
    if lam_draws.shape[1] < 4:
        return out
    import arviz as az

    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        arr = np.ascontiguousarray(lam_draws)
        try:
            out["ess_bulk"] = _finite_or_none(az.ess(arr, method="bulk"))
            out["ess_mean"] = _finite_or_none(az.ess(arr, method="mean"))
            out["mcse_mean"] = _finite_or_none(az.mcse(arr, method="mean"))
            out["rhat"] = _finite_or_none(az.rhat(arr, method="rank"))  # split-R-hat (rank-normalised)
            half = arr.shape[1] // 2
            if half >= 4:
                a, b = arr[:, :half], arr[:, half : 2 * half]
                sa, sb = az.mcse(a, method="mean"), az.mcse(b, method="mean")
                out["half_means"] = [float(a.mean()), float(b.mean())]
                denom = math.hypot(sa, sb)
                out["half_drift_z"] = _finite_or_none((b.mean() - a.mean()) / denom) if denom > 0 else None
        except Exception as exc:  # pragma: no cover - diagnostics never break an estimate
            out["diagnostics_error"] = f"{type(exc).__name__}: {exc}"
    return out
