"""Many-chain Metropolis-corrected HMC on the localised tempered posterior (the ``hmc`` reference).

Target density: exactly the SG-MCMC estimators' (same config names and
defaults, resolved by the same functions, so a reference is of the same
posterior as the run it is compared with):

    p(w) ∝ exp(−U(w)),  U(w) = nβ·(L_n(w) − L_n(w*)) + (γ/2)·‖w − w*‖²,

with nβ = nbeta_scale·n/log n and γ = gamma_scale·nβ by default. Gradients
are exact and full-batch (``target.loss_and_grad(w, None)``): the Gaussian
families (deep linear networks, reduced-rank and linear regression) compute
the full-data loss from precomputed moments at the cost of a minibatch one.
The λ draw of a state is nβ·(L_n(w) − L_n(w*)), from
``target.full_excess_loss`` where the target has it (no cancellation of two
large losses; shared with the gradient by ``loss_grad_and_excess``), else
full loss − L_n(w*) in the run's dtype (float64 by default).

Algorithm (Neal 2011, "MCMC using Hamiltonian dynamics", Handbook of MCMC
ch. 5; adaptation as in Hoffman & Gelman 2014, JMLR 15:1593, §3.2, and
Stan's windowed metric adaptation):

- all ``chains`` chains in ONE (chains, d) tensor: every leapfrog step is one
  batched gradient call for all of them;
- static trajectories of velocity-Verlet steps with a diagonal inverse mass
  matrix M⁻¹: ``leapfrog_steps`` until the first metric update, then
  L = min(leapfrog_steps, ⌈trajectory_length/ε⌉), ε the median step in the
  metric's units, re-set at each metric update and at the end of warm-up
  (see "Trajectory length" below); the step of each chain is jittered
  uniformly by ±``step_jitter`` per iteration (Neal 2011 §5.4.2.2), so that
  no fixed trajectory length resonates with a periodic orbit;
- Metropolis correction with the energy error ΔH; a transition is divergent
  when the energy error anywhere on the trajectory exceeds
  ``DIVERGENCE_ENERGY`` (1000, as Stan and Pyro) or is not finite; a divergent
  proposal is rejected, and divergences after warm-up are counted per chain;
- warm-up: per-chain step sizes by dual averaging towards ``target_accept``
  (Hoffman & Gelman 2014, Algorithm 5 / §3.2: γ = 0.05, t₀ = 10, κ = 0.75,
  μ = log 10ε₀, restarted after each metric update; ε₀ from the doubling /
  halving heuristic of their Algorithm 4, per chain); M⁻¹ from the pooled
  draws of ALL chains in Stan's windows (a fast initial buffer, slow windows
  that double, a fast terminal buffer), regularised towards the posterior's
  natural scale 1/(nβ + γ) as Stan regularises towards 1;
- chains start at w* + N(0, init_scale²/(nβ + γ)·I), dispersed so that
  split R-hat across chains means something;
- after warm-up it samples in blocks and, after each, computes the ArviZ
  diagnostics of the (chains, draws) λ trace
  (:func:`~llcbench.estimators.diagnostics.trace_diagnostics`: rank-normalised
  split R-hat, bulk and tail ESS, MCSE); it stops when the written standard
  is met (``max_rhat``, ``min_ess_bulk``, ``min_ess_tail``,
  ``max_divergences``, ``max_rel_se``), or when ``max_draws`` /
  ``max_seconds`` is spent. Divergences cannot be sampled away: when a block
  has more than ``max_divergences``, the draws are discarded, the
  acceptance target is raised halfway to 1 (a smaller step; Stan's advice
  for divergences, automated) and the steps are re-adapted for
  ``escalation_warmup`` iterations from the current states, at most
  ``max_escalations`` times; only the draws of the last, fixed kernel count.
  Measured at the defaults: rrr/2-1-2/r0 and the deep rank-0 networks
  diverge at 0.9 and meet the standard after 1–5 escalations
  (dln/2-2-2-2-2/r0 at 0.997); dln/1-1-1-1/r0, a cubic funnel, still has 1
  divergent transition in 264,640 after 6 (target 0.998) and is reported as
  not meeting the standard. The next block is sized from the ESS deficit
  (draws × needed/achieved, at least ``block``, at most the budget). A run
  that stops without the standard says which criteria failed
  (``extra["standard_failed"]`` and a warning): it is then not a reference.

Trajectory length: λ is (nβ times) the potential energy, the statistic HMC
mixes worst: on a Gaussian with a good metric, a trajectory of length π/2
(in the metric's units) carries U to the refreshed kinetic energy, which is
independent of U, while lengths near multiples of π return it (Neal 2011
§5.4.2). Measured with 64 chains × (1000 warm-up + 1000 draws), target 0.9,
as sampling gradients per bulk ESS of λ at L = 3 / 6 / 12 / 24 fixed:
poly/sum-squares-4 9.6 / 12.9 / 35.6 / 80.9; regular/linear-5x4 4.6 / 72.8
(resonant) / 52.6 / 81.4; rrr/5-3-5/r0 10.7 (51 divergences) / 18.3 (2) /
29.9 / 61.8; dln/3-2-3/r1 67.3 (R-hat 1.02) / 36.5 / 40.0 / 69.4. Regular
posteriors adapt ε ≈ 0.5–0.8 and want L ≈ 3; singular ones adapt
ε ≈ 0.005–0.1 (the metric's scale is set by their wide directions) and want
the full 12. The rule L = min(12, ⌈2/ε⌉) picks each.

Why hand-written: no maintained torch library vectorises HMC across chains
(Pyro runs NUTS one chain at a time in Python, see ``nuts``), and a JAX
sampler would need a second implementation of every loss. A static-length
HMC with adapted steps is a few dozen lines whose correctness the tests
check against ``exact`` (quadrature and Gaussian closed forms) and, on deep
linear networks and reduced-rank regressions, against long Pyro NUTS runs.

Determinism: momenta, jitter and the Metropolis uniforms come from one
``torch.Generator`` on ``device`` seeded with ``seed``; same target, config,
seed, device and torch thread count give a bit-identical λ̂, unless the run
is stopped by ``max_seconds`` (wall time; ``extra["stopped_by"]`` says so).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..errors import UnsupportedTarget
from ..target import Target
from .base import Estimate, EstimatorSpec, doc
from .diagnostics import finite_or_none, trace_diagnostics
from .temperature import TemperatureConfig, resolve_gamma, resolve_nbeta

DTYPES = {"float32": torch.float32, "float64": torch.float64}
DEFAULT_MAX_DIM = 5000  # dln/50-50-50-50-50/r10 (d = 10,000): 22 ms per 64-chain gradient, the warm-up alone ≈ 4.5 min
DIVERGENCE_ENERGY = 1000.0  # energy error that marks a divergent transition (Stan's and Pyro's threshold)

# Dual averaging constants (Hoffman & Gelman 2014, §3.2.1: "γ = 0.05, t0 = 10, κ = 0.75")
DA_GAMMA, DA_T0, DA_KAPPA = 0.05, 10.0, 0.75
# Stan's windowed adaptation: initial fast buffer, first slow window, terminal fast buffer (Stan's 50, or a
# fifth of the warm-up if longer: per-chain dual averaging is noisy, and on linear-5x4 at target 0.8 a
# 200-iteration final buffer gave acceptance 0.86 where 50 gave 0.90)
INIT_BUFFER, BASE_WINDOW, TERM_BUFFER, TERM_FRACTION = 75, 25, 50, 0.2


@dataclass
class HMCConfig(TemperatureConfig):
    """Many-chain Metropolis-corrected HMC. Every field: see ``llcbench estimators``."""

    chains: int = doc(64, "number of chains, vectorised in one tensor")
    leapfrog_steps: int = doc(12, "leapfrog steps per trajectory until the first metric update, and at most this "
                              "many after it (one batched full-data gradient each)")
    trajectory_length: Optional[float] = doc(
        2.0, "from the first metric update on, L = min(leapfrog_steps, ceil(trajectory_length/ε)) steps, ε the median step "
        "(in the metric's units, where the posterior's marginal sd is 1): well-scaled (regular) posteriors then run "
        "≈ a quarter period (π/2) instead of several; None: always leapfrog_steps")
    step_jitter: float = doc(0.2, "each iteration scales a chain's step by U(1 − j, 1 + j): no resonant "
                             "trajectory length")
    warmup: int = doc(1000, "warm-up iterations (step-size and mass-matrix adaptation), excluded from λ̂")
    block: int = doc(1000, "draws per chain in the first sampling block and at least in each later one "
                     "(diagnostics and the standard are checked after every block)")
    max_draws: int = doc(20000, "budget: at most this many post-warm-up draws per chain")
    max_seconds: float = doc(300.0, "budget: start no new block after this many seconds (wall time; a run stopped "
                             "by it is not reproducible draw for draw)")
    target_accept: float = doc(0.9, "mean Metropolis acceptance the dual averaging aims at")
    init_scale: float = doc(1.0, "chains start at w* + N(0, init_scale²/(nβ + γ)) per coordinate")
    max_rhat: float = doc(1.01, "standard: rank-normalised split R-hat of the λ trace at most this")
    min_ess_bulk: float = doc(400.0, "standard: bulk ESS of the λ trace at least this")
    min_ess_tail: float = doc(400.0, "standard: tail ESS (5 %/95 % quantiles) of the λ trace at least this")
    max_divergences: int = doc(0, "standard: at most this many divergent transitions after warm-up (all chains)")
    max_escalations: int = doc(6, "on divergences after warm-up: discard the draws, raise target_accept halfway "
                               "to 1, re-adapt the steps for escalation_warmup iterations, sample again; at most "
                               "this many times")
    escalation_warmup: int = doc(500, "step-size re-adaptation iterations of each escalation (metric kept)")
    max_rel_se: Optional[float] = doc(0.005, "standard: se at most this fraction of |λ̂| (None: no such criterion)")
    max_dim: int = doc(DEFAULT_MAX_DIM, "refuse targets with more parameters than this")
    dtype: str = doc("float64", "precision of the chains and the loss: float64 or float32")
    trace_points: int = doc(200, "at most this many loss-trace points per chain in the record")

    def validate(self) -> None:
        self.validate_temperature()
        for name in ("chains", "leapfrog_steps", "block", "max_draws", "max_dim", "trace_points"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.warmup < 0:
            raise ValueError("warmup must be >= 0")
        for name in ("max_divergences", "max_escalations", "escalation_warmup"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not (0 <= self.step_jitter < 1):
            raise ValueError("step_jitter must be in [0, 1)")
        if not (0 < self.target_accept < 1):
            raise ValueError("target_accept must be in (0, 1)")
        if self.trajectory_length is not None and not (self.trajectory_length > 0):
            raise ValueError("trajectory_length must be > 0 (or None)")
        if not (self.max_seconds > 0):
            raise ValueError("max_seconds must be > 0")
        if not (self.init_scale >= 0 and math.isfinite(self.init_scale)):
            raise ValueError("init_scale must be >= 0")
        if not (self.max_rhat >= 1):
            raise ValueError("max_rhat must be >= 1")
        if self.min_ess_bulk < 0 or self.min_ess_tail < 0:
            raise ValueError("min_ess_bulk and min_ess_tail must be >= 0")
        if self.max_rel_se is not None and not (self.max_rel_se > 0):
            raise ValueError("max_rel_se must be > 0 (or None)")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")

    def standard(self) -> dict:
        """The convergence standard a run must meet to be a reference (stored in ``extra``)."""
        return {"max_rhat": float(self.max_rhat), "min_ess_bulk": float(self.min_ess_bulk),
                "min_ess_tail": float(self.min_ess_tail), "max_divergences": int(self.max_divergences),
                "max_rel_se": None if self.max_rel_se is None else float(self.max_rel_se)}


def _refusal(target: Target, max_dim: int) -> Optional[str]:
    if target.has_prior:
        return (f"hmc: {target.id} has a prior; the reference sampler is for the flat-prior localised posterior "
                "(a prior |w_i|^h has an infinite potential at w_i = 0, which leapfrog steps cannot cross)")
    if target.dim > max_dim:
        return (f"hmc: {target.id} has d = {target.dim} > max_dim = {max_dim} parameters: too large for the "
                "reference budget; raise max_dim to force it")
    return None


def supports(target: Target) -> Optional[str]:
    """None if ``hmc`` (default max_dim) can run on the target, else why not."""
    return _refusal(target, DEFAULT_MAX_DIM)


class _Potential:
    """U, ∇U and the excess loss L_n(w) − L_n(w*) for a batch of chains (one full-data gradient call)."""

    def __init__(self, target: Target, w_star: torch.Tensor, nbeta: float, gamma: float, init_loss: float):
        self.target, self.w_star, self.nbeta, self.gamma = target, w_star, nbeta, gamma
        self.init_loss = init_loss
        self.excess_form = bool(target.has_full_excess_loss)
        self.calls = 0  # batched calls; grad evals = calls × chains

    def __call__(self, w: torch.Tensor):
        self.calls += 1
        if self.excess_form:
            _, g, e = self.target.loss_grad_and_excess(w, None)
        else:
            loss, g = self.target.loss_and_grad(w, None)
            e = loss - self.init_loss
        diff = w - self.w_star
        u = self.nbeta * e + (0.5 * self.gamma) * diff.square().sum(dim=1)
        grad = self.nbeta * g + self.gamma * diff
        return u, grad, e


@dataclass
class _State:
    w: torch.Tensor  # (chains, d)
    u: torch.Tensor  # (chains,)
    g: torch.Tensor  # (chains, d)
    e: torch.Tensor  # (chains,) excess loss


def _kinetic(p: torch.Tensor, minv: torch.Tensor) -> torch.Tensor:
    return 0.5 * (p.square() * minv).sum(dim=1)


def _leapfrog(pot: _Potential, s: _State, p: torch.Tensor, eps: torch.Tensor, minv: torch.Tensor, steps: int,
              h0: torch.Tensor):
    """``steps`` velocity-Verlet steps from (s.w, p), step eps per chain: (proposal, end momentum,
    divergent (chains,) bool: the energy error exceeded DIVERGENCE_ENERGY or was not finite anywhere)."""
    e_col = eps[:, None]
    step = e_col * minv
    half = 0.5 * e_col
    w, g = s.w, s.g
    p = p - half * g
    divergent = torch.zeros_like(h0, dtype=torch.bool)
    u = e = None
    for i in range(steps):
        w = w + step * p
        u, g, e = pot(w)
        p = p - half * g
        err = u + _kinetic(p, minv) - h0
        divergent |= ~(err <= DIVERGENCE_ENERGY)  # NaN compares False: divergent
        if i + 1 < steps:
            p = p - half * g
    return _State(w, u, g, e), p, divergent


def _transition(pot, s: _State, eps: torch.Tensor, minv: torch.Tensor, steps: int, jitter: float,
                gen: torch.Generator):
    """One HMC iteration for every chain: (new state, acceptance statistic (chains,), divergent (chains,))."""
    chains, d = s.w.shape
    z = torch.randn(chains, d, generator=gen, dtype=s.w.dtype, device=s.w.device)
    p = z / minv.sqrt()  # p ~ N(0, M), M = diag(1/minv)
    h0 = s.u + 0.5 * z.square().sum(dim=1)
    if jitter > 0:
        eps = eps * (1 + jitter * (2 * torch.rand(chains, generator=gen, dtype=s.w.dtype, device=s.w.device) - 1))
    prop, p_end, divergent = _leapfrog(pot, s, p, eps, minv, steps, h0)
    log_alpha = h0 - (prop.u + _kinetic(p_end, minv))
    log_alpha = torch.where(divergent | ~torch.isfinite(log_alpha), torch.full_like(log_alpha, -math.inf),
                            log_alpha.clamp(max=0.0))
    alpha = log_alpha.exp()
    uni = torch.rand(chains, generator=gen, dtype=s.w.dtype, device=s.w.device)
    accept = uni.log() < log_alpha
    col = accept[:, None]
    new = _State(torch.where(col, prop.w, s.w), torch.where(accept, prop.u, s.u), torch.where(col, prop.g, s.g),
                 torch.where(accept, prop.e, s.e))
    return new, alpha, divergent


def _initial_step_size(pot, s: _State, eps: torch.Tensor, minv: torch.Tensor, gen: torch.Generator,
                       max_rounds: int = 40) -> torch.Tensor:
    """Per-chain ε₀ by doubling or halving until the one-step acceptance crosses 0.8 (Hoffman & Gelman
    2014, Algorithm 4, with Stan's 0.8), all chains at once; chains that have crossed stop moving."""
    chains, d = s.w.shape
    log08 = math.log(0.8)

    def log_accept(e):
        z = torch.randn(chains, d, generator=gen, dtype=s.w.dtype, device=s.w.device)
        p = z / minv.sqrt()
        h0 = s.u + 0.5 * z.square().sum(dim=1)
        prop, p_end, _ = _leapfrog(pot, s, p, e, minv, 1, h0)
        la = h0 - (prop.u + _kinetic(p_end, minv))
        return torch.where(torch.isfinite(la), la, torch.full_like(la, -math.inf))

    eps = eps.clone()
    up = log_accept(eps) > log08  # True: grow the step, False: shrink it
    active = torch.ones_like(up)
    for _ in range(max_rounds):
        trial = torch.where(active, torch.where(up, eps * 2, eps / 2), eps)
        la = log_accept(trial)
        crossed = torch.where(up, ~(la > log08), ~(la < log08)) & active
        eps = torch.where(active, trial, eps)  # a chain keeps the step at which it crossed (as Algorithm 4)
        active = active & ~crossed
        if not bool(active.any()):
            break
    return eps


class _DualAveraging:
    """Per-chain dual averaging of log ε (Hoffman & Gelman 2014, §3.2.1), vectorised over chains."""

    def __init__(self, eps: torch.Tensor, delta: float):
        self.delta = delta
        self.restart(eps)

    def restart(self, eps: torch.Tensor) -> None:
        self.mu = torch.log(10 * eps)
        self.hbar = torch.zeros_like(eps)
        self.log_bar = torch.zeros_like(eps)
        self.t = 0

    def update(self, alpha: torch.Tensor) -> torch.Tensor:
        self.t += 1
        t = self.t
        w = 1.0 / (t + DA_T0)
        self.hbar = (1 - w) * self.hbar + w * (self.delta - alpha)
        log_eps = self.mu - (math.sqrt(t) / DA_GAMMA) * self.hbar
        eta = t ** (-DA_KAPPA)
        self.log_bar = eta * log_eps + (1 - eta) * self.log_bar
        return log_eps.exp()

    def final(self) -> torch.Tensor:
        return self.log_bar.exp()


def _adapt_step_sizes(pot, s: _State, eps: torch.Tensor, minv: torch.Tensor, steps: int, jitter: float,
                      gen: torch.Generator, delta: float, iters: int):
    """Dual averaging of the per-chain steps alone (metric fixed) for ``iters`` iterations towards
    acceptance ``delta``: (the final steps, {"state": the last state, "divergent": per-chain counts})."""
    da = _DualAveraging(eps, delta)
    divergent = torch.zeros(eps.shape[0], dtype=torch.long, device=eps.device)
    for _ in range(iters):
        s, alpha, div = _transition(pot, s, eps, minv, steps, jitter, gen)
        divergent += div
        eps = da.update(alpha)
    return (da.final() if iters else eps), {"state": s, "divergent": divergent}


def adaptation_windows(warmup: int) -> list[tuple[int, int]]:
    """Stan's slow windows [start, end) of the metric adaptation within ``warmup`` iterations: a fast
    initial buffer, windows that double from BASE_WINDOW, the last stretched to the terminal buffer
    (at least a fifth of the warm-up).
    Short warm-ups scale the three parts to 15 % / 75 % / 10 % (as Stan); fewer than 20: none."""
    if warmup < 20:
        return []
    if warmup < INIT_BUFFER + BASE_WINDOW + TERM_BUFFER:
        init, term = int(0.15 * warmup), int(0.1 * warmup)
        base = warmup - init - term
    else:
        init, term, base = INIT_BUFFER, max(TERM_BUFFER, int(TERM_FRACTION * warmup)), BASE_WINDOW
    end_slow = warmup - term
    windows = []
    start, size = init, base
    while start < end_slow:
        end = start + size
        if end + 2 * size > end_slow:  # the next (doubled) window would not fit: stretch this one
            end = end_slow
        windows.append((start, end))
        start, size = end, 2 * size
    return windows


def _steps_for(eps: torch.Tensor, max_steps: int, trajectory_length: Optional[float]) -> int:
    """Leapfrog steps for a trajectory of ``trajectory_length`` (metric units) at the median step, at most
    ``max_steps`` (all of them when trajectory_length is None)."""
    if trajectory_length is None:
        return max_steps
    return max(1, min(max_steps, int(math.ceil(float(trajectory_length) / float(eps.median())))))


def _standard_failures(diag: dict, divergences: int, lambda_hat: float, cfg: HMCConfig) -> list[str]:
    """The criteria of the standard that the draws fail, in words ([] when it is met)."""
    failed = []
    rhat, bulk, tail, se = (diag.get(k) for k in ("rhat", "ess_bulk", "ess_tail", "mcse_mean"))
    if rhat is None or not rhat <= cfg.max_rhat:
        failed.append(f"split R-hat {'n/a' if rhat is None else f'{rhat:.4f}'} > {cfg.max_rhat:g}")
    if bulk is None or not bulk >= cfg.min_ess_bulk:
        failed.append(f"bulk ESS {'n/a' if bulk is None else f'{bulk:.0f}'} < {cfg.min_ess_bulk:g}")
    if tail is None or not tail >= cfg.min_ess_tail:
        failed.append(f"tail ESS {'n/a' if tail is None else f'{tail:.0f}'} < {cfg.min_ess_tail:g}")
    if divergences > cfg.max_divergences:
        failed.append(f"{divergences} divergent transitions > {cfg.max_divergences}")
    if cfg.max_rel_se is not None:
        rel = se / abs(lambda_hat) if se is not None and lambda_hat and math.isfinite(lambda_hat) else None
        if rel is None or not rel <= cfg.max_rel_se:
            shown = "n/a" if rel is None else f"{100 * rel:.3g} %"
            failed.append(f"se {shown} of λ̂ > {100 * cfg.max_rel_se:g} %")
    return failed


def _next_block(diag: dict, lambda_hat: float, draws: int, cfg: HMCConfig) -> int:
    """Draws per chain for the next block: enough for the ESS-type criteria if ESS grows linearly
    (with 10 % to spare), at least ``block``, at most 4× the draws so far."""
    need = 1.0
    for have, want in ((diag.get("ess_bulk"), cfg.min_ess_bulk), (diag.get("ess_tail"), cfg.min_ess_tail)):
        if have and have > 0:
            need = max(need, want / have)
    se = diag.get("mcse_mean")
    if cfg.max_rel_se is not None and se and lambda_hat:
        need = max(need, (se / (cfg.max_rel_se * abs(lambda_hat))) ** 2)
    extra = int(math.ceil(1.1 * draws * (need - 1)))
    return max(int(cfg.block), min(extra, 4 * draws))


def estimate(target: Target, config: HMCConfig, seed: int = 0, device: str = "cpu",
             progress: Optional[Callable[[int, int], None]] = None) -> Estimate:
    """λ̂ by many-chain HMC (see the module doc)."""
    t_start = time.perf_counter()
    config.validate()
    reason = _refusal(target, int(config.max_dim))
    if reason is not None:
        raise UnsupportedTarget(reason)
    dev = torch.device(device)
    dtype = DTYPES[config.dtype]
    chains, d, L = int(config.chains), int(target.dim), int(config.leapfrog_steps)
    nbeta = resolve_nbeta(target, config)
    gamma = resolve_gamma(nbeta, config)

    t64 = target.to(dev, torch.float64)
    w_star64 = t64.w_star.to(device=dev, dtype=torch.float64).reshape(1, -1)
    with torch.no_grad():
        init_loss = float(t64.full_loss(w_star64)[0])
    tgt = t64 if dtype == torch.float64 else target.to(dev, dtype)
    del t64
    w_star = w_star64.to(dtype)

    gen = torch.Generator(device=dev)
    gen.manual_seed(int(seed))
    scale2 = 1.0 / (nbeta + gamma)  # the posterior's natural variance per coordinate
    init_sd = float(config.init_scale) * math.sqrt(scale2)
    grad_mode = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    try:
        pot = _Potential(tgt, w_star, nbeta, gamma, init_loss)
        w0 = w_star + init_sd * torch.randn(chains, d, generator=gen, dtype=dtype, device=dev)
        s = _State(w0, *pot(w0))
        bad = ~(torch.isfinite(s.u) & torch.isfinite(s.g).all(dim=1))
        if bool(bad.any()):  # a start where the potential is not finite: start that chain at w* instead
            w0 = torch.where(bad[:, None], w_star.expand_as(w0), w0)
            s = _State(w0, *pot(w0))
            if not bool((torch.isfinite(s.u) & torch.isfinite(s.g).all(dim=1)).all()):
                raise UnsupportedTarget(f"hmc: the potential or its gradient is not finite at w* of {target.id}")
        minv = torch.full((d,), scale2, dtype=dtype, device=dev)
        jitter = float(config.step_jitter)

        # ---- warm-up
        warmup = int(config.warmup)
        L_warmup = L
        eps = _initial_step_size(pot, s, torch.ones(chains, dtype=dtype, device=dev), minv, gen)
        da = _DualAveraging(eps, float(config.target_accept))
        windows = adaptation_windows(warmup)
        window_end = {end: start for start, end in windows}
        in_window = {t for a, b in windows for t in range(a, b)}
        acc_sum = acc_sq = None
        acc_n = 0
        warm_div = torch.zeros(chains, dtype=torch.long, device=dev)
        metric_log = []
        for t in range(warmup):
            s, alpha, div = _transition(pot, s, eps, minv, L, jitter, gen)
            warm_div += div
            eps = da.update(alpha)
            if t in in_window:
                w64 = s.w.to(torch.float64)
                if acc_sum is None:
                    acc_sum, acc_sq = torch.zeros(d, dtype=torch.float64, device=dev), torch.zeros(
                        d, dtype=torch.float64, device=dev)
                acc_sum += w64.sum(dim=0)
                acc_sq += w64.square().sum(dim=0)
                acc_n += chains
            if t + 1 in window_end:
                mean = acc_sum / acc_n
                var = (acc_sq / acc_n - mean.square()).clamp(min=0) * (acc_n / max(acc_n - 1, 1))
                # Stan's regularisation, towards the natural scale 1/(nβ + γ) instead of 1
                minv = ((acc_n / (acc_n + 5.0)) * var + 1e-3 * (5.0 / (acc_n + 5.0)) * scale2).to(dtype)
                acc_sum = acc_sq = None
                acc_n = 0
                eps = _initial_step_size(pot, s, da.final() if da.t else eps, minv, gen)
                da.restart(eps)
                L = _steps_for(eps, L_warmup, config.trajectory_length)  # the rest of warm-up at that length too
                metric_log.append({"iteration": t + 1, "minv_min": float(minv.min()), "minv_max": float(minv.max()),
                                   "minv_median": float(minv.median()), "step_size_median": float(eps.median()),
                                   "leapfrog_steps": _steps_for(eps, L_warmup, config.trajectory_length)})
            if progress is not None and (t + 1) % 100 == 0:
                progress(t + 1, warmup + int(config.block))
        if warmup > 0:
            eps = da.final()
        warmup_calls = pot.calls
        L = _steps_for(eps, L_warmup, config.trajectory_length)

        # ---- sampling in blocks until the standard is met or the budget is spent
        delta = float(config.target_accept)
        escalations: list[dict] = []
        max_draws = int(config.max_draws)
        blocks = []
        while True:
            lam_blocks: list[torch.Tensor] = []
            acc_total = torch.zeros(chains, dtype=torch.float64, device=dev)
            div = torch.zeros(chains, dtype=torch.long, device=dev)
            draws = 0
            size = min(int(config.block), max_draws)
            while True:
                block = torch.empty(size, chains, dtype=torch.float64, device=dev)
                for i in range(size):
                    s, alpha, dv = _transition(pot, s, eps, minv, L, jitter, gen)
                    acc_total += alpha.to(torch.float64)
                    div += dv
                    block[i] = s.e.to(torch.float64)
                lam_blocks.append(block)
                draws += size
                lam = (nbeta * torch.cat(lam_blocks).T).cpu().numpy()  # (chains, draws)
                lambda_hat = float(lam.mean())
                diag = trace_diagnostics(lam, tail=True)
                total_div = int(div.sum())
                failed = _standard_failures(diag, total_div, lambda_hat, config)
                elapsed = time.perf_counter() - t_start
                blocks.append({"draws": draws, "target_accept": delta, "lambda_hat": lambda_hat,
                               "rhat": diag.get("rhat"), "ess_bulk": diag.get("ess_bulk"),
                               "ess_tail": diag.get("ess_tail"), "se": diag.get("mcse_mean"),
                               "divergences": total_div, "seconds": elapsed})
                if progress is not None:
                    progress(warmup + draws, warmup + draws + (0 if not failed else int(config.block)))
                if not failed:
                    stopped_by = "standard"
                elif total_div > config.max_divergences:
                    stopped_by = "divergences"
                elif draws >= max_draws:
                    stopped_by = "max_draws"
                elif elapsed >= float(config.max_seconds):
                    stopped_by = "max_seconds"
                else:
                    size = min(_next_block(diag, lambda_hat, draws, config), max_draws - draws)
                    continue
                break
            if (stopped_by != "divergences" or len(escalations) >= int(config.max_escalations)
                    or time.perf_counter() - t_start >= float(config.max_seconds)):
                break
            # divergences cannot be sampled away: discard these draws, aim at a higher acceptance (a
            # smaller step) and re-adapt the step sizes from the current (posterior) states, metric kept
            delta = 1.0 - 0.5 * (1.0 - delta)
            escalations.append({"after_draws": draws, "divergences": total_div, "target_accept": delta})
            eps, wd = _adapt_step_sizes(pot, s, eps, minv, L, jitter, gen, delta, int(config.escalation_warmup))
            s = wd["state"]
            warm_div += wd["divergent"]
    finally:
        torch.set_grad_enabled(grad_mode)

    seconds = time.perf_counter() - t_start
    draws_loss = lam / nbeta
    per_chain = [float(x) for x in lam.mean(axis=1)]
    acc_chain = (acc_total / draws).cpu().numpy()
    divergences = [int(x) for x in div.cpu()]
    step_sizes = [float(x) for x in eps.cpu()]
    diagnostics = dict(diag)
    diagnostics.update({
        "frac_below_init": float((draws_loss < 0).mean()),
        "acceptance_rate": [float(x) for x in acc_chain],
        "acceptance_rate_mean": float(acc_chain.mean()),
        "divergences": divergences,
        "divergent_chains": [c for c, k in enumerate(divergences) if k > 0],
        "warmup_divergences": int(warm_div.sum()),
        "step_sizes": step_sizes,
        "draws_per_chain": draws,
        "chains_used": chains,
    })
    standard_met = not failed
    warn: list[str] = []
    if not standard_met:
        warn.append(f"hmc: the reference standard was not met ({'; '.join(failed)}; stopped by {stopped_by} after "
                    f"{draws} draws per chain): not a reference")
    if total_div:
        warn.append(f"{total_div} divergent HMC transitions after warm-up (per chain max {max(divergences)}, "
                    f"{len(diagnostics['divergent_chains'])} of {chains} chains; target_accept raised to {delta:.4g} "
                    f"{len(escalations)} times): the draws may be biased (a stiff region the steps cannot enter)")
    se = diag.get("mcse_mean")
    stride = max(1, -(-draws // int(config.trace_points)))
    loss_trace = [[finite_or_none(x) for x in draws_loss[c, ::stride]] for c in range(chains)]
    return Estimate(
        lambda_hat=lambda_hat,
        lambda_hat_chains=per_chain,
        se=float("nan") if se is None else float(se),
        loss_trace=loss_trace,
        diagnostics=diagnostics,
        grad_evals=int(pot.calls) * chains,
        seconds=seconds,
        warnings=warn,
        nbeta=nbeta,
        gamma=gamma,
        extra={
            "nbeta": nbeta,
            "gamma": gamma,
            "init_loss": init_loss,
            "chains": chains,
            "draws_per_chain": draws,
            "warmup": warmup,
            "leapfrog_steps": L,
            "leapfrog_steps_warmup": L_warmup,
            "trajectory_length": (None if config.trajectory_length is None else float(config.trajectory_length)),
            "step_jitter": jitter,
            "target_accept": float(config.target_accept),
            "target_accept_final": delta,
            "escalations": escalations,
            "standard": config.standard(),
            "standard_met": standard_met,
            "standard_failed": failed,
            "stopped_by": stopped_by,
            "blocks": blocks,
            "metric_adaptation": metric_log,
            "inverse_mass": {"min": float(minv.min()), "median": float(minv.median()), "max": float(minv.max())},
            "warmup_grad_evals": int(warmup_calls) * chains,
            "grad_evals_per_draw": pot.calls / max(1, warmup + draws),
            "excess_form": "full_excess_loss" if pot.excess_form else "full loss − L_n(w*)",
            "loss_trace_stride": stride,
            "seconds": seconds,
            "dtype": config.dtype,
            "device": str(dev),
        },
    )


SPEC = EstimatorSpec(
    name="hmc",
    config_cls=HMCConfig,
    estimate=estimate,
    summary="many-chain Metropolis-corrected HMC, full-batch, self-extending to a convergence standard: "
            "the sampling reference",
    supports=supports,
)
