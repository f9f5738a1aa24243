"""Volume sampling: λ̂ from the scaling of the volume of a sub-level set (EleutherAI "tyche";
Scherlis & Belrose 2025, arXiv 2501.18812), with its failure modes made visible.

The estimand. For ε > 0 let R_ε = {w : L(w) − L(w*) < ε} (L on the full data, or on a fixed subset:
``max_data``), localised to the ball ‖w − w*‖ ≤ ``max_radius`` (the LLC is local, and some regions,
e.g. (w1·w2)² < ε, are unbounded). Its volume scales as V(ε) ~ c·ε^λ·(−log ε)^(m−1) as ε → 0.

Directions. u = P·g/‖P·g‖ with g ~ N(0, I_D) from a ``torch.Generator`` seeded with ``seed`` (all
directions drawn at once, float64), P = diag(p) with det P = 1 (p divided by its geometric mean).
The SAME directions serve every ε. ``preconditioner``:

- ``"identity"``: p = 1, u uniform on the sphere; every importance weight is 1.
- ``"hessian_diag"`` (the default): p_i ∝ 1/√(h_ii + δ), h_ii the diagonal of the Hessian of L at w* (exact, by
  double back-propagation through the batched loss, D rows at a time; negative entries clipped
  to 0), δ = ``damping`` · mean(h). Directions are stretched along flat coordinates, where the
  region is long. All h_ii = 0 (e.g. a deep linear network at w* = 0) gives the identity, with a
  warning.
- ``"fisher"``: the same with the diagonal squared-gradient estimate F_ii = mean_b (∂_i L_B(w*))²
  over ``fisher_batches`` seeded minibatches of ``fisher_batch_size`` points (the empirical
  Fisher, as Adam's second moments in tyche). Analytic potentials have no data: "fisher" falls
  back to "hessian_diag" there, with a warning. At a true parameter with noiseless labels every
  per-sample gradient is 0, so F = 0 and the identity is used (warning).

Radius to the edge, per (direction, ε) pair, all pairs of an iteration in ONE batched loss call
(split into ``eval_batch`` rows for memory): from ``initial_radius`` double the radius while the
point is inside (up to ``max_radius``: such a ray is "capped", R = max_radius) and halve it while
outside (down to ``min_radius``: below that R = 0, counted as a "zero ray"), then bisect at the
geometric midpoint in float64 until hi/lo ≤ 1 + ``rtol``. The returned radius is ``lo``, a radius
that WAS evaluated inside (tyche's bug returned the next multiplier); a NaN/±inf loss counts as
OUTSIDE (tyche's search silently ended there). With ``scan_points`` > 0 a coarse scan along each ray
first evaluates L at ``scan_points`` radii log-spaced from 1e-6·max_radius to max_radius; for each
ε the bracket is the FIRST outside scan point and the scan point before it (the first crossing),
and a ray with an inside scan point beyond its first crossing "crossed back in" (the region is
not star-shaped around w*; counted, per ε and overall).

Log-volume (log space throughout: gammaln, logsumexp). With A_D = 2π^(D/2)/Γ(D/2) the area of
the unit sphere, V = A_D · E_{u uniform}[ρ(u)·I(R(u))] with the radial integral
I(R) = ∫_0^R r^(a−1) g(r) dr:

- Lebesgue (``prior_std`` None): g = 1, I = R^a/a, so for a flat prior each direction contributes
  log V_D + D·log R(u) (V_D = π^(D/2)/Γ(D/2 + 1)), as in tyche;
- Gaussian prior N(w*, prior_std² I) (``prior_std`` set): g = (2πs²)^(−D/2)·exp(−r²/2s²) and
  I = (2πs²)^(−D/2)·½(2s²)^(a/2)·Γ(a/2)·P(a/2, R²/2s²) (P = scipy.special.gammainc, taken in log
  space with a series where it underflows), i.e. the prior mass of the ray's segment; the volume is
  then the prior probability of the region;
- polynomial targets with a prior ∏|w_i|^(h_i) (``prior_exponents``): the measure is that prior,
  a = D + Σh_i and ρ(u) = ∏|u_i|^(h_i); other targets with a prior are unsupported.
  (Without such a prior a = D and ρ = 1.)

Importance weights: the angular-central-Gaussian proposal has density ‖P⁻¹u‖^(−D) relative to the
uniform law on the sphere when det P = 1, so the weight is ‖P⁻¹u‖^D, exactly normalised
(E_q[weight] = 1). The volume is therefore the PLAIN (unbiased) importance-sampling average
log V = log A_D + logsumexp_i(log weight_i + log ρ_i + log I_i) − log N — not self-normalised:
self-normalisation is only needed when weights are known up to a constant, and it would add the
noise of Σ weight_i (with a perfect preconditioner, e.g. P ∝ H^(−1/2) on a quadratic, the plain
average has zero variance, the self-normalised one does not).

Effective sample size at every ε: Kish's (Σt)²/Σt² of the per-direction contributions
t_i = weight_i·ρ_i·I_i (the self-normalised weights of the target law ∝ I(R(u)) on the sphere):
it counts the directions that carry the volume. ESS ≈ 1 means one direction dominates (tyche's
problem (1)): a warning is added below ``ess_warn``. The ESS of the raw proposal weights is in
``extra["ess_proposal_weights"]``.

λ̂: weighted least squares over the ``num_eps`` log-spaced values of ε in [``eps_min``,
``eps_max``] (absolute values of L − L(w*)) of log V = α + λ·log ε + (m−1)·log(−log ε), weights
the ESS at each ε (the delta-method variance of log V̂ is ≈ 1/ESS − 1/N); m = ``multiplicity``
(None: 1, a pure power law), or (m−1) fitted freely with ``fit_multiplicity``. The confidence
interval comes from ``bootstrap`` resamples of whole directions (seeded; same fit, weights held
fixed), so it contains the direction-sampling variability: se = bootstrap sd, ci95 = 2.5/97.5 %
percentiles. ``lambda_hat_chains``: the local slopes d log V/d log ε between consecutive ε
(smallest ε first) — a drift along the list shows a fit outside its asymptotic regime, or the
finite direction set taking over.

The high-dimension failure, visible: for any finite set of directions each log R(u) scales like
(1/k)·log ε, k the order of L along a generic ray (k = 2 where the Hessian is non-degenerate
along it), so as ε → 0 the slope tends to a·(typical d log R/d log ε) — D/2 for quadratic
directions — and the true λ < D/2 lives in exponentially rare directions (tyche's problem (4)).
``diagnostics["direction_slope"]`` is a × the median over directions of d log R/d log ε between
the two smallest ε (the slope a single dominant direction gives as ε → 0); a warning says so when D ≥ 16
or when λ̂ is within 10 % of it with a small ESS. Outside a large ESS (small D, many directions,
a good preconditioner) the volume is a LOWER bound.

Determinism: directions and bootstrap from generators seeded with ``seed`` (and seed + 1), data
subset and Fisher minibatches from generators seeded with 0 and seed + 2; same target, config, seed
give the same λ̂ on CPU. ``grad_evals`` counts loss evaluations (one per point, forward only;
the Hessian/Fisher set-up adds its rows).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from scipy.special import gammainc, gammaln, logsumexp

from ..errors import UnsupportedTarget
from ..target import Target
from .base import Estimate, EstimatorSpec, doc

PRECONDITIONERS = ("identity", "hessian_diag", "fisher")
MAX_DIM = 4096  # supports() declines larger targets (the estimator itself still runs on them)
HIGH_DIM = 16  # D at or above which the "slope → D/2" warning is always given
SCAN_RANGE = 1e-6  # the scan covers [SCAN_RANGE·max_radius, max_radius]
DATA_BUDGET = 1 << 22  # rows × data points per loss call (memory bound)


# --------------------------------------------------------------------------- config


@dataclass
class VolumeConfig:
    """Volume sampling (tyche-style), λ̂ from the volume scaling over several ε decades."""

    directions: int = doc(4096, "number N of random directions (the same directions at every ε)")
    preconditioner: str = doc(
        "hessian_diag", "direction preconditioner P (det P = 1): identity, hessian_diag (P_ii ∝ 1/√(h_ii + δ)), "
        "fisher (P_ii ∝ 1/√(F_ii + δ), empirical Fisher from minibatch gradients; hessian_diag for "
        "analytic potentials)")
    damping: float = doc(1e-2, "δ of the preconditioner, relative: δ = damping · mean of the diagonal")
    fisher_batches: int = doc(32, "minibatches for the Fisher diagonal")
    fisher_batch_size: int = doc(64, "points per minibatch for the Fisher diagonal")
    eps_min: float = doc(1e-6, "smallest ε (absolute, in units of L − L(w*))")
    eps_max: float = doc(1e-2, "largest ε (absolute)")
    num_eps: int = doc(9, "number of log-spaced ε values in [eps_min, eps_max] for the fit")
    eps_ref: Optional[float] = doc(None, "ε of extra['log_volume_at_eps_ref']; None: eps_max")
    multiplicity: Optional[int] = doc(None, "m in the fit term (m−1)·log(−log ε); None: m = 1")
    fit_multiplicity: bool = doc(False, "fit (m−1) as a free coefficient (ignores multiplicity)")
    rtol: float = doc(1e-5, "relative tolerance of the bisection (hi/lo ≤ 1 + rtol)")
    initial_radius: float = doc(1e-2, "first radius of the doubling/halving bracket search")
    max_radius: float = doc(1.0, "localisation: the region is cut at ‖w − w*‖ ≤ max_radius (rays there are capped)")
    min_radius: float = doc(1e-12, "halving stops below this radius (R = 0: a zero ray)")
    scan_points: int = doc(0, "coarse scan points per ray (log-spaced, 1e-6·max_radius..max_radius) to take "
                              "the first crossing and count rays crossing back in; 0 = off")
    prior_std: Optional[float] = doc(None, "Gaussian prior N(w*, s²I) of scale s: volume = prior mass; "
                                           "None: Lebesgue volume")
    bootstrap: int = doc(200, "bootstrap resamples of whole directions for se and ci95")
    ess_warn: float = doc(10.0, "warn when the importance ESS at some ε is below this")
    eval_batch: int = doc(16384, "points per loss call (memory bound; results do not depend on it beyond rounding)")
    max_data: Optional[int] = doc(None, "use a fixed subset (seed 0) of this many data points for every "
                                        "loss evaluation, L(w*) included; None: all data. Safe only where w* "
                                        "also minimises the subset loss (noiseless teachers)")

    def validate(self) -> None:
        if self.directions < 2:
            raise ValueError("directions must be >= 2")
        if self.preconditioner not in PRECONDITIONERS:
            raise ValueError(f"preconditioner must be one of {', '.join(PRECONDITIONERS)}, "
                             f"got {self.preconditioner!r}")
        for name in ("damping", "eps_min", "eps_max", "rtol", "initial_radius", "max_radius", "min_radius",
                     "ess_warn"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if self.fisher_batches < 1 or self.fisher_batch_size < 1:
            raise ValueError("fisher_batches and fisher_batch_size must be >= 1")
        if self.num_eps < 2:
            raise ValueError("num_eps must be >= 2 (a slope needs two ε)")
        if not self.eps_min < self.eps_max:
            raise ValueError(f"eps_min must be < eps_max (got {self.eps_min}, {self.eps_max})")
        if self.fit_multiplicity and self.num_eps < 3:
            raise ValueError("fit_multiplicity needs num_eps >= 3")
        if self.eps_ref is not None and not (math.isfinite(self.eps_ref) and self.eps_ref > 0):
            raise ValueError("eps_ref must be > 0 (or None)")
        if self.multiplicity is not None and self.multiplicity < 1:
            raise ValueError("multiplicity must be >= 1 (or None)")
        if (self.fit_multiplicity or (self.multiplicity or 1) > 1) and self.eps_max >= 1:
            raise ValueError("the (m−1)·log(−log ε) term needs eps_max < 1")
        if self.rtol > 0.1:
            raise ValueError("rtol must be <= 0.1")
        if not self.min_radius < self.initial_radius <= self.max_radius:
            raise ValueError("need min_radius < initial_radius <= max_radius")
        if self.scan_points < 0 or self.scan_points == 1:
            raise ValueError("scan_points must be 0 (off) or >= 2")
        if self.prior_std is not None and not (math.isfinite(self.prior_std) and self.prior_std > 0):
            raise ValueError("prior_std must be > 0 (or None)")
        if self.bootstrap < 0 or self.bootstrap == 1:
            raise ValueError("bootstrap must be 0 (off) or >= 2")
        if self.eval_batch < 1:
            raise ValueError("eval_batch must be >= 1")
        if self.max_data is not None and self.max_data < 1:
            raise ValueError("max_data must be >= 1 (or None)")


# --------------------------------------------------------------------------- loss access


def _data_subset(target: Target, max_data: Optional[int], device) -> Optional[torch.Tensor]:
    """Indices of a fixed data subset (permutation seeded with 0), or None for all the data."""
    if target.num_data == 0 or max_data is None or target.num_data <= max_data:
        return None
    g = torch.Generator().manual_seed(0)
    return torch.sort(torch.randperm(target.num_data, generator=g)[:max_data]).values.to(device)


class LossEvaluator:
    """L(w) for a batch of points (rows), on the full data or a fixed subset, in bounded memory."""

    def __init__(self, target: Target, idx: Optional[torch.Tensor], eval_batch: int):
        self.target = target
        self.idx = idx
        self.eval_batch = int(eval_batch)
        self.evals = 0

    @property
    def num_points(self) -> int:
        if self.target.num_data == 0:
            return 0
        return self.target.num_data if self.idx is None else len(self.idx)

    def _rows(self, w: torch.Tensor) -> torch.Tensor:
        n = self.num_points
        if n == 0:
            return self.target.loss(w)
        chunk = max(1, DATA_BUDGET // max(1, w.shape[0]))
        total = torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
        all_idx = self.idx if self.idx is not None else None
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            idx = (all_idx[start:stop] if all_idx is not None
                   else torch.arange(start, stop, device=w.device))
            total = total + self.target.loss(w, idx) * (stop - start)
        return total / n

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        """Losses (rows,) of points w (rows, dim), float64."""
        self.evals += int(w.shape[0])
        out = [self._rows(w[s:s + self.eval_batch]) for s in range(0, w.shape[0], self.eval_batch)]
        return torch.cat(out) if out else torch.zeros(0, dtype=w.dtype, device=w.device)


# --------------------------------------------------------------------------- radii


@dataclass
class RayRadii:
    """Radii to the edge of R_ε along each ray (directions × ε).

    radius: (N, K) float64, an evaluated inside radius (0 for a zero ray, max_radius when capped).
    capped / zero: (N, K) bool. crossed_back: (N, K) bool, or None when no scan was made.
    evals: points evaluated.
    """

    radius: torch.Tensor
    capped: torch.Tensor
    zero: torch.Tensor
    crossed_back: Optional[torch.Tensor]
    evals: int


def ray_radii(excess: Callable[[torch.Tensor], torch.Tensor], w_star: torch.Tensor, u: torch.Tensor,
              eps: torch.Tensor, config: VolumeConfig) -> RayRadii:
    """Radius to the edge of {w : excess(w) < ε} along w* + r·u, for every direction u (rows) and ε.

    excess(points (rows, D)) -> L(points) − L(w*), (rows,). A non-finite excess counts as outside.
    All (direction, ε) pairs still searching are evaluated in one call per iteration.
    """
    N, D = u.shape
    K = eps.shape[0]
    dev, dt = u.device, torch.float64
    eps = eps.to(device=dev, dtype=dt)
    P = N * K
    dir_of = torch.arange(N, device=dev).repeat_interleave(K)  # pair p = (i, k) -> i
    eps_of = eps.repeat(N)  # pair p -> ε_k
    evals = 0
    r_max, r_min = float(config.max_radius), float(config.min_radius)

    step = max(1, int(config.eval_batch))

    def excess_along(dirs: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """excess at w* + r·u[dirs], the points built ``eval_batch`` rows at a time (bounded memory)."""
        nonlocal evals
        evals += int(dirs.numel())
        if dirs.numel() <= step:
            return excess(w_star[None, :] + r[:, None] * u[dirs])
        return torch.cat([excess(w_star[None, :] + r[s:s + step, None] * u[dirs[s:s + step]])
                          for s in range(0, dirs.numel(), step)])

    def inside(pairs: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        ex = excess_along(dir_of[pairs], r)
        return torch.isfinite(ex) & (ex < eps_of[pairs])

    lo = torch.zeros(P, dtype=dt, device=dev)
    hi = torch.full((P,), math.inf, dtype=dt, device=dev)
    has_lo = torch.zeros(P, dtype=torch.bool, device=dev)
    has_hi = torch.zeros(P, dtype=torch.bool, device=dev)
    crossed = None

    if config.scan_points > 0:
        S = int(config.scan_points)
        grid = torch.logspace(math.log10(SCAN_RANGE * r_max), math.log10(r_max), S, dtype=dt, device=dev)
        grid[-1] = r_max
        pts_r = grid.repeat(N)  # (N·S,)
        dirs = torch.arange(N, device=dev).repeat_interleave(S)
        ex = excess_along(dirs, pts_r).reshape(N, S)
        ins = torch.isfinite(ex)[:, :, None] & (ex[:, :, None] < eps[None, None, :])  # (N, S, K)
        out = ~ins
        any_out = out.any(dim=1)  # (N, K)
        first = torch.where(any_out, out.to(torch.int8).argmax(dim=1), torch.full_like(any_out, S, dtype=torch.long))
        pos = torch.arange(S, device=dev)[None, :, None]
        crossed = (ins & (pos > first[:, None, :])).any(dim=1)  # (N, K)
        first = first.reshape(P)
        any_out = any_out.reshape(P)
        has_hi = any_out.clone()
        hi = torch.where(any_out, grid[first.clamp(max=S - 1)], hi)
        has_lo = first > 0
        lo = torch.where(has_lo, grid[(first - 1).clamp(min=0)], lo)
    else:
        all_pairs = torch.arange(P, device=dev)
        r0 = torch.full((P,), float(config.initial_radius), dtype=dt, device=dev)
        ok = inside(all_pairs, r0)
        lo = torch.where(ok, r0, lo)
        hi = torch.where(ok, hi, r0)
        has_lo, has_hi = ok, ~ok

    # bracket: double up while inside (to max_radius), halve down while outside (to min_radius)
    for _ in range(4096):
        up = has_lo & ~has_hi & (lo < r_max)
        down = ~has_lo & has_hi & (hi * 0.5 >= r_min)
        active = up | down
        if not bool(active.any()):
            break
        pairs = torch.nonzero(active).squeeze(1)
        r_try = torch.where(up[pairs], torch.clamp(2.0 * lo[pairs], max=r_max), 0.5 * hi[pairs])
        ok = inside(pairs, r_try)
        lo[pairs] = torch.where(ok, r_try, lo[pairs])
        has_lo[pairs] = has_lo[pairs] | ok
        hi[pairs] = torch.where(ok, hi[pairs], r_try)
        has_hi[pairs] = has_hi[pairs] | ~ok

    # bisect at the geometric midpoint until hi/lo <= 1 + rtol; lo is always an evaluated inside point
    both = has_lo & has_hi
    for _ in range(4096):
        active = both & (hi > lo * (1.0 + config.rtol))
        if not bool(active.any()):
            break
        pairs = torch.nonzero(active).squeeze(1)
        mid = torch.sqrt(lo[pairs] * hi[pairs])
        ok = inside(pairs, mid)
        lo[pairs] = torch.where(ok, mid, lo[pairs])
        hi[pairs] = torch.where(ok, hi[pairs], mid)

    zero = ~has_lo
    capped = has_lo & ~has_hi
    radius = torch.where(zero, torch.zeros_like(lo), lo)
    return RayRadii(
        radius=radius.reshape(N, K), capped=capped.reshape(N, K), zero=zero.reshape(N, K),
        crossed_back=crossed, evals=evals,
    )


# --------------------------------------------------------------------------- preconditioner


def hessian_diagonal(loss_fn: Callable[[torch.Tensor], torch.Tensor], w_star: torch.Tensor,
                     rows_per_pass: int = 256) -> torch.Tensor:
    """Exact diagonal of the Hessian of a batched loss at w*: row i of a batch of copies of w*
    gives ∂²L/∂w_i² by double back-propagation (rows are independent in a batched loss)."""
    D = w_star.shape[0]
    out = torch.empty(D, dtype=torch.float64, device=w_star.device)
    for s in range(0, D, rows_per_pass):
        k = min(rows_per_pass, D - s)
        w = w_star.detach().to(torch.float64).expand(k, D).clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss_fn(w).sum(), w, create_graph=True)
        cols = torch.arange(s, s + k, device=w.device)
        rows = torch.arange(k, device=w.device)
        picked = g[rows, cols]
        if not picked.requires_grad:  # the loss is linear (or constant) in these coordinates
            out[s:s + k] = 0.0
            continue
        (h,) = torch.autograd.grad(picked.sum(), w, allow_unused=True)
        out[s:s + k] = 0.0 if h is None else h[rows, cols].detach()
    return out


def _target_hessian_diag(target: Target, ev: LossEvaluator) -> torch.Tensor:
    w_star = target.w_star
    n = ev.num_points
    if n == 0:
        return hessian_diagonal(lambda w: target.loss(w), w_star)
    D = w_star.shape[0]
    rows = max(1, min(256, D))
    chunk = max(1, DATA_BUDGET // (16 * rows))
    total = torch.zeros(D, dtype=torch.float64, device=w_star.device)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        idx = ev.idx[start:stop] if ev.idx is not None else torch.arange(start, stop, device=w_star.device)
        total += hessian_diagonal(lambda w: target.loss(w, idx), w_star, rows) * (stop - start)
    ev.evals += D * (-(-n // chunk))
    return total / n


def _target_fisher_diag(target: Target, ev: LossEvaluator, config: VolumeConfig, seed: int) -> torch.Tensor:
    dev = target.w_star.device
    pool = ev.idx if ev.idx is not None else torch.arange(target.num_data, device=dev)
    gen = torch.Generator().manual_seed(int(seed) + 2)
    acc = torch.zeros(target.dim, dtype=torch.float64, device=dev)
    for _ in range(config.fisher_batches):
        pick = torch.randperm(len(pool), generator=gen)[: config.fisher_batch_size].to(dev)
        w = target.w_star.detach().to(torch.float64)[None].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(target.loss(w, pool[pick]).sum(), w)
        acc += g[0].square()
        ev.evals += 1
    return acc / config.fisher_batches


def preconditioner_diag(target: Target, ev: LossEvaluator, config: VolumeConfig, seed: int,
                        warnings: list[str]) -> tuple[torch.Tensor, str, dict]:
    """(p with prod p = 1, the preconditioner actually used, info)."""
    D = target.dim
    ones = torch.ones(D, dtype=torch.float64, device=target.w_star.device)
    kind = config.preconditioner
    if kind == "identity":
        return ones, "identity", {}
    if kind == "fisher" and target.num_data == 0:
        warnings.append("preconditioner 'fisher' needs data; this analytic potential uses 'hessian_diag'")
        kind = "hessian_diag"
    if kind == "hessian_diag":
        diag = _target_hessian_diag(target, ev)
    else:
        diag = _target_fisher_diag(target, ev, config, seed)
    diag = torch.clamp(torch.nan_to_num(diag, nan=0.0, posinf=0.0), min=0.0)
    scale = float(diag.mean())
    info = {"diag_min": float(diag.min()), "diag_max": float(diag.max()), "diag_mean": scale}
    if not (scale > 0 and math.isfinite(scale)):
        warnings.append(f"preconditioner '{kind}': the diagonal is 0 at w* (e.g. a true parameter of a "
                        f"noiseless or degenerate model); identity used")
        return ones, f"{kind}->identity", info
    p = 1.0 / torch.sqrt(diag + config.damping * scale)
    p = p / torch.exp(torch.log(p).mean())  # det P = 1
    info.update({"p_min": float(p.min()), "p_max": float(p.max())})
    return p, kind, info


# --------------------------------------------------------------------------- log-volume


def log_gammainc(a: float, x: np.ndarray) -> np.ndarray:
    """log P(a, x) (regularised lower incomplete gamma), accurate where gammainc underflows."""
    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.shape, -np.inf)
    pos = x > 0
    with np.errstate(divide="ignore"):
        p = gammainc(a, np.where(pos, x, 1.0))
        direct = pos & (p > 1e-280)
        out[direct] = np.log(p[direct])
    small = pos & ~direct  # then x << a: the series x^a e^-x / Γ(a+1) · Σ_k x^k / ((a+1)…(a+k)) converges fast
    if small.any():
        xs = x[small]
        term = np.ones_like(xs)
        total = np.ones_like(xs)
        for k in range(1, 2000):
            term = term * xs / (a + k)
            total = total + term
            if np.all(term < 1e-17 * total):
                break
        out[small] = a * np.log(xs) - xs - gammaln(a + 1.0) + np.log(total)
    return out


def log_radial_integral(radius: np.ndarray, a: float, D: int, prior_std: Optional[float]) -> np.ndarray:
    """log ∫_0^R r^(a−1) g(r) dr (g = 1, or the N(0, s²I) density in D dimensions along a ray)."""
    radius = np.asarray(radius, dtype=np.float64)
    with np.errstate(divide="ignore"):
        if prior_std is None:
            return a * np.log(radius) - math.log(a)
        s2 = float(prior_std) ** 2
        const = -0.5 * D * math.log(2 * math.pi * s2) + 0.5 * a * math.log(2 * s2) - math.log(2.0) + gammaln(a / 2)
        return const + log_gammainc(a / 2, radius**2 / (2 * s2))


def kish_ess(log_terms: np.ndarray, axis: int = 0) -> np.ndarray:
    """(Σt)²/Σt² from log t, along an axis (0 where every t is 0)."""
    with np.errstate(invalid="ignore"):
        ess = np.exp(2 * logsumexp(log_terms, axis=axis) - logsumexp(2 * log_terms, axis=axis))
    return np.nan_to_num(ess, nan=0.0)


# --------------------------------------------------------------------------- fit


def _design(log_eps: np.ndarray, fit_m: bool) -> np.ndarray:
    cols = [np.ones_like(log_eps), log_eps]
    if fit_m:
        cols.append(np.log(-log_eps))
    return np.stack(cols, axis=1)


def fit_operator(log_eps: np.ndarray, weights: np.ndarray, fit_m: bool) -> np.ndarray:
    """Matrix M with coef = M @ y for the weighted least squares of y on the design."""
    X = _design(log_eps, fit_m)
    sw = np.sqrt(weights)[:, None]
    return np.linalg.pinv(X * sw) * sw.T


# --------------------------------------------------------------------------- estimate


def _polynomial_prior_h(target: Target) -> Optional[torch.Tensor]:
    h = getattr(target, "prior_h", None)
    return h if isinstance(h, torch.Tensor) else None


def _prior_problem(target: Target) -> Optional[str]:
    if target.has_prior and _polynomial_prior_h(target) is None:
        return "volume sampling handles a flat prior or a polynomial target's monomial prior only"
    return None


def supports(target: Target) -> Optional[str]:
    """Flat-prior targets, and polynomial targets with a monomial prior ∏|w_i|^(h_i), of dimension
    at most MAX_DIM (beyond it the directions' ESS is 1 and the cost N·D per ε·iteration is large;
    run with an explicit estimate() call to see the failure anyway)."""
    problem = _prior_problem(target)
    if problem is not None:
        return problem
    if target.dim > MAX_DIM:
        return f"dimension {target.dim} > {MAX_DIM}: volume sampling is uninformative (ESS ≈ 1) and costly there"
    return None


def estimate(target: Target, config: VolumeConfig, seed: int, device: str = "cpu") -> Estimate:
    t0 = time.perf_counter()
    config.validate()
    problem = _prior_problem(target)  # (a large dimension is declined by supports() only)
    if problem is not None:
        raise UnsupportedTarget(f"volume on {target.id}: {problem}")
    dev = torch.device(device)
    target = target.to(dev, torch.float64)
    D, N = int(target.dim), int(config.directions)
    warnings: list[str] = []

    ev = LossEvaluator(target, _data_subset(target, config.max_data, dev), config.eval_batch)
    w_star = target.w_star.to(dev, torch.float64)
    with torch.no_grad():
        L0 = float(ev(w_star[None])[0])
    if not math.isfinite(L0):
        raise UnsupportedTarget(f"volume on {target.id}: L(w*) is not finite ({L0})")

    p, precond_used, precond_info = preconditioner_diag(target, ev, config, seed, warnings)

    # directions u = P g / |P g|, log importance weight D·log|P^-1 u| (det P = 1)
    gen = torch.Generator().manual_seed(int(seed))
    g = torch.randn(N, D, generator=gen, dtype=torch.float64).to(dev)
    v = g * p[None, :]
    u = v / v.norm(dim=1, keepdim=True)
    log_w = D * torch.log((u / p[None, :]).norm(dim=1))

    # ε grid (and eps_ref if it is not on it)
    eps_fit = np.logspace(math.log10(config.eps_min), math.log10(config.eps_max), config.num_eps)
    eps_ref = float(config.eps_max if config.eps_ref is None else config.eps_ref)
    ref_on_grid = np.isclose(eps_fit, eps_ref, rtol=1e-12, atol=0.0)
    eps_all = eps_fit if ref_on_grid.any() else np.append(eps_fit, eps_ref)
    ref_col = int(np.argmax(ref_on_grid)) if ref_on_grid.any() else len(eps_fit)
    K = len(eps_fit)

    def excess(points: torch.Tensor) -> torch.Tensor:
        return ev(points) - L0

    with torch.no_grad():
        rays = ray_radii(excess, w_star, u, torch.as_tensor(eps_all, dtype=torch.float64), config)

    # per-direction log contributions (N, K_all)
    h = _polynomial_prior_h(target)
    a = float(D + (float(h.sum()) if h is not None else 0.0))
    R = rays.radius.cpu().numpy()
    log_rho = np.zeros(N)
    if h is not None:
        with np.errstate(divide="ignore"):
            log_rho = (h.cpu().numpy()[None, :] * np.log(np.abs(u.cpu().numpy()))).sum(axis=1)
    log_terms = log_w.cpu().numpy()[:, None] + log_rho[:, None] + log_radial_integral(R, a, D, config.prior_std)
    log_area = math.log(2.0) + 0.5 * D * math.log(math.pi) - gammaln(D / 2)
    log_vol_all = log_area + logsumexp(log_terms, axis=0) - math.log(N)
    ess_all = kish_ess(log_terms, axis=0)
    log_vol, ess = log_vol_all[:K], ess_all[:K]
    ess_proposal = float(kish_ess(log_w.cpu().numpy()))

    # fit over the finite ε
    log_eps = np.log(eps_fit)
    m_fixed = 1 if config.multiplicity is None else int(config.multiplicity)
    ok = np.isfinite(log_vol)
    lam_hat, alpha, m_hat = math.nan, math.nan, None
    boot = np.zeros(0)
    if ok.sum() >= (3 if config.fit_multiplicity else 2):
        le = log_eps[ok]
        y = log_vol[ok]
        if not config.fit_multiplicity and m_fixed > 1:
            y = y - (m_fixed - 1) * np.log(-le)
        M = fit_operator(le, np.maximum(ess[ok], 1e-12), config.fit_multiplicity)
        coef = M @ y
        alpha, lam_hat = float(coef[0]), float(coef[1])
        if config.fit_multiplicity:
            m_hat = float(coef[2]) + 1.0
        if config.bootstrap >= 2:
            bgen = torch.Generator().manual_seed(int(seed) + 1)
            idx = torch.randint(0, N, (config.bootstrap, N), generator=bgen).numpy()
            cols = np.nonzero(ok)[0]
            yb = np.empty((config.bootstrap, len(cols)))
            for j, c in enumerate(cols):
                yb[:, j] = log_area + logsumexp(log_terms[idx, c], axis=1) - math.log(N)
            if not config.fit_multiplicity and m_fixed > 1:
                yb = yb - (m_fixed - 1) * np.log(-le)[None, :]
            with np.errstate(invalid="ignore"):
                boot = (yb @ M.T)[:, 1]
    else:
        warnings.append("fewer than two ε with a non-zero volume: no fit (λ̂ = NaN)")

    boot_ok = boot[np.isfinite(boot)]
    se = float(np.std(boot_ok, ddof=1)) if len(boot_ok) >= 2 else math.nan
    ci95 = ([float(np.percentile(boot_ok, 2.5)), float(np.percentile(boot_ok, 97.5))]
            if len(boot_ok) >= 2 else [math.nan, math.nan])
    with np.errstate(invalid="ignore"):
        local_slopes = np.diff(log_vol) / np.diff(log_eps)

    # typical per-direction slope a·median(d log R / d log ε) between the two smallest ε: the slope that
    # a single dominant direction gives as ε → 0 (rays capped or zero there are left out)
    cap_np = rays.capped.cpu().numpy()
    R01 = R[:, :2]
    clean = (R01 > 0).all(axis=1) & ~cap_np[:, :2].any(axis=1)
    if clean.any():
        s = (np.log(R01[clean, 1]) - np.log(R01[clean, 0])) / (log_eps[1] - log_eps[0])
        direction_slope = float(a * np.median(s))
    else:
        direction_slope = math.nan

    capped = rays.capped.cpu().numpy()
    zero = rays.zero.cpu().numpy()
    crossed = None if rays.crossed_back is None else rays.crossed_back.cpu().numpy()

    # warnings that make the failure modes visible
    ess_min = float(ess.min())
    low = [f"{e:.1e}" for e, s_ in zip(eps_fit, ess) if s_ < config.ess_warn]
    if low:
        warnings.append(
            f"importance ESS below {config.ess_warn:g} at ε = {', '.join(low)} (min {ess_min:.2f} of {N} "
            f"directions): a few directions carry the volume; λ̂ is unreliable and the volume a lower bound")
    if D >= HIGH_DIM or (ess_min < config.ess_warn and math.isfinite(direction_slope)
                         and abs(lam_hat - direction_slope) <= 0.1 * abs(direction_slope)):
        typical = (f"; the typical-direction slope here is {direction_slope:.4g}"
                   if math.isfinite(direction_slope) else "")
        warnings.append(
            f"D = {D}: with finite direction samples each log R(u) scales like (1/k)·log ε, k the order of L "
            f"along a generic ray, so the fitted slope tends to D/k — D/2 = {D / 2:g} where L is quadratic along "
            f"generic rays{typical} — while the true λ lives in exponentially rare directions")
    if capped[:, :K].any():
        warnings.append(f"{int(capped[:, :K].any(axis=1).sum())} of {N} rays reached max_radius = "
                        f"{config.max_radius:g} at some ε (volume cut there: local by construction)")
        full = [f"{e:.1e}" for e, c in zip(eps_fit, capped[:, :K].mean(axis=0)) if c > 0.5]
        if full:
            warnings.append(f"most rays are capped at ε = {', '.join(full)}: the region fills the ball of radius "
                            f"max_radius there, the volume saturates and the slope is flattened (a large ESS "
                            f"there means nothing); lower eps_max or raise max_radius")
    if zero[:, :K].any():
        warnings.append(f"{int(zero[:, :K].any(axis=1).sum())} of {N} rays found no inside point down to "
                        f"min_radius = {config.min_radius:g} at some ε (R = 0 there)")
    if crossed is not None and crossed[:, :K].any():
        warnings.append(f"{int(crossed[:, :K].any(axis=1).sum())} of {N} rays crossed back into the region "
                        f"beyond their first crossing: the region is not star-shaped (first crossings used)")

    diagnostics = {
        "eps": [float(e) for e in eps_fit],
        "log_volume": [float(x) for x in log_vol],
        "ess_per_eps": [float(x) for x in ess],
        "ess_min": ess_min,
        "ess": ess_min,
        "ci95": ci95,
        "local_slopes": [float(x) for x in local_slopes],
        "direction_slope": direction_slope,
        "rays_crossed_back": None if crossed is None else int(crossed[:, :K].any(axis=1).sum()),
        "rays_crossed_back_per_eps": None if crossed is None else [int(x) for x in crossed[:, :K].sum(axis=0)],
        "rays_capped_per_eps": [int(x) for x in capped[:, :K].sum(axis=0)],
        "rays_zero_per_eps": [int(x) for x in zero[:, :K].sum(axis=0)],
        "bootstrap": int(len(boot_ok)),
    }
    extra = {
        "preconditioner": precond_used,
        "preconditioner_info": precond_info,
        "directions": N,
        "dim": D,
        "measure": "lebesgue" if config.prior_std is None else f"gaussian(std={config.prior_std:g})",
        "radial_exponent": a,
        "estimator": "plain importance sampling, exactly normalised weights |P^-1 u|^D (det P = 1)",
        "eps_ref": eps_ref,
        "log_volume_at_eps_ref": float(log_vol_all[ref_col]),
        "ess_at_eps_ref": float(ess_all[ref_col]),
        "ess_proposal_weights": ess_proposal,
        "alpha": alpha,
        "multiplicity_used": None if config.fit_multiplicity else m_fixed,
        "multiplicity_hat": m_hat,
        "loss_at_w_star": L0,
        "loss_evals": ev.evals,
        "data_points": ev.num_points,
    }
    return Estimate(
        lambda_hat=lam_hat,
        lambda_hat_chains=[float(x) for x in local_slopes],
        se=se,
        diagnostics=diagnostics,
        grad_evals=int(ev.evals),
        seconds=time.perf_counter() - t0,
        warnings=warnings,
        extra=extra,
    )


SPEC = EstimatorSpec(
    name="volume",
    config_cls=VolumeConfig,
    estimate=estimate,
    summary="volume sampling (tyche): λ̂ from log-volume scaling of {L − L(w*) < ε} over ε decades",
    supports=supports,
)
