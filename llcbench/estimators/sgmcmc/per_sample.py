"""The per-sample LLC from the SG-MCMC draws, with running sums (no stored traces).

For training sample i with loss ℓ_i, the per-sample LLC at w* is

    λ_i = nβ·(E_p[ℓ_i(w)] − ℓ_i(w*))

under the same localised tempered posterior p as the LLC itself (the mean of
the λ_i over all samples is λ̂); it is used to find the samples a network has
memorised ("Interpreting complexity", 2025, after the LLC of Lau, Murfet &
Wei 2023, arXiv 2308.12108).

:class:`PerSampleAccumulator` evaluates ``target.sample_losses`` on a fixed
probe set at every draw that enters λ̂ (post burn-in, every ``thin``-th step,
at the same w_t as the λ trace) and adds the losses into per-chain sums, in
float64: memory is chains × probe floats whatever the number of steps. At the
end, per chain c, m_ci = (sum of ℓ_i over the chain's draws)/draws; over the
C chains that did not diverge

    λ̂_i = nβ·(mean_c m_ci − ℓ_i(w*)),   se_i = nβ·sd_c(m_ci)/√C  (sd with ddof = 1),

the between-chain standard error: each chain's mean is one independent
estimate, so the se needs no autocorrelation model (it is itself noisy with
few chains: with 8 chains a 95 % interval is ±2.36 se, Student's t at 7
degrees of freedom).

Two baselines a sceptic would try first come from the same anchor, computed
once at set-up: ℓ_i(w*) and ‖∇_w ℓ_i(w*)‖ (float64). Both carry no signal where
the anchor fits every sample (ℓ_i(w*) ≈ 0 for all i); a third survives that:
the per-sample loss under the localisation's Gaussian alone,

    loss_under_noise_i = mean_k ℓ_i(w* + ξ_k) − ℓ_i(w*),   ξ_k ~ N(0, I/γ), k = 1…noise_draws,

i.e. what λ̂_i/nβ would be if the loss played no part in the posterior (it
ranks samples by the curvature of ℓ_i around w* at the scale 1/√γ). It is
computed at the end of the run, at the run's γ (each grid point's own), in
float64, from a generator of its own seeded by the run's seed, so the chains'
random streams are untouched; None where γ = 0.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from ...errors import UnsupportedTarget
from ...target import Target
from .streams import generator

# Rows of the probe set evaluated in one call (bounds the activations: chains × PROBE_CHUNK × width).
PROBE_CHUNK = 4096
# Samples per block of the per-sample Jacobian (at most; fewer when block × dim > JACOBIAN_ENTRIES):
# jacrev back-propagates the whole block's forward once per row, so its memory grows as block².
JACOBIAN_BLOCK = 64
JACOBIAN_ENTRIES = 1 << 22


def enabled(target: Target, config) -> bool:
    """Whether the run records per-sample LLCs: ``per_sample`` if set, else on where the target
    knows its memorised samples. True on a target without per-sample losses is refused."""
    flag = getattr(config, "per_sample", None)
    if flag is None:
        return bool(target.has_sample_losses and target.memorised_samples() is not None)
    if flag and not target.has_sample_losses:
        raise UnsupportedTarget(f"per_sample=true on {target.id}: the target has no per-sample losses")
    return bool(flag)


def probe_indices(num_data: int, size: int, seed: int) -> torch.Tensor:
    """All samples when there are at most ``size``, else ``size`` of them without replacement from a
    generator of its own (the chains' generators are untouched), sorted."""
    if num_data <= size:
        return torch.arange(num_data, dtype=torch.int64)
    gen = generator("probe", seed)
    return torch.randperm(num_data, generator=gen)[:size].sort().values


def sample_losses(target: Target, w: torch.Tensor, probe: torch.Tensor) -> torch.Tensor:
    """ℓ_i(w) for the probe set, (rows of w, probe), in chunks of PROBE_CHUNK samples."""
    parts = [target.sample_losses(w, probe[s : s + PROBE_CHUNK]) for s in range(0, len(probe), PROBE_CHUNK)]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def noise_generator(seed: int) -> torch.Generator:
    """The generator of the noise baseline's ξ_k (CPU, its own stream: the chains' generators are untouched)."""
    return generator("noise_draws", seed)


def loss_under_noise(target: Target, w_star: torch.Tensor, probe: torch.Tensor, gamma: float, draws: int,
                     seed: int) -> Optional[torch.Tensor]:
    """mean_k ℓ_i(w* + ξ_k) − ℓ_i(w*) for the probe set (float64), ξ_k ~ N(0, I/γ) drawn one at a time on
    the CPU from ``noise_generator(seed)`` (the same numbers on every device); None when γ ≤ 0.
    ``target`` and ``w_star`` in float64."""
    if not gamma > 0:
        return None
    gen, scale = noise_generator(seed), 1.0 / math.sqrt(float(gamma))
    total = torch.zeros(len(probe), dtype=torch.float64, device=w_star.device)
    with torch.no_grad():
        star = sample_losses(target, w_star[None], probe)[0]
        for _ in range(int(draws)):
            xi = torch.randn(target.dim, generator=gen, dtype=torch.float64).to(w_star.device)
            total += sample_losses(target, (w_star + scale * xi)[None], probe)[0]
    return total / int(draws) - star


def gradient_norms(target: Target, w_star: torch.Tensor, probe: torch.Tensor) -> torch.Tensor:
    """‖∇_w ℓ_i(w*)‖ for the probe set (float64): rows of the per-sample Jacobian, from
    ``torch.func.jacrev`` (one vectorised backward per block of samples)."""
    from torch.func import jacrev

    block = max(1, min(JACOBIAN_BLOCK, JACOBIAN_ENTRIES // max(1, target.dim)))
    out = []
    for s in range(0, len(probe), block):
        idx = probe[s : s + block]
        jac = jacrev(lambda w: target.sample_losses(w[None], idx)[0])(w_star)  # (len(idx), dim)
        out.append(jac.norm(dim=1))
    return torch.cat(out)


class PerSampleAccumulator:
    """Per-chain running sums of ℓ_i(w_t) over the draws of λ̂, and what is read off them."""

    def __init__(self, target: Target, target64: Target, probe: torch.Tensor, chains: int, burn_in: int,
                 thin: int, device, memorised: Optional[torch.Tensor], noise_draws: int = 32, seed: int = 0):
        self.target = target  # in the run's dtype and device
        self.target64, self.noise_draws, self.seed = target64, int(noise_draws), int(seed)
        self._noise: dict = {}  # γ → loss_under_noise (a grid run's points may share a γ)
        self.probe = probe.to(device)
        self.burn_in, self.thin = int(burn_in), int(thin)
        self.sums = torch.zeros(chains, len(probe), dtype=torch.float64, device=device)
        self.draws = 0
        self.w_star64 = w_star64 = target64.w_star.to(device=device, dtype=torch.float64)
        with torch.no_grad():
            self.loss_star = sample_losses(target64, w_star64[None], self.probe)[0]
        with torch.enable_grad():
            self.grad_norm_star = gradient_norms(target64, w_star64, self.probe)
        self.memorised = memorised

    @classmethod
    def for_run(cls, target: Target, run_target: Target, config, seed: int, device,
                rows: Optional[int] = None) -> Optional["PerSampleAccumulator"]:
        """The accumulator of a run, or None when the run records no per-sample values. rows: the
        chain rows (all points' chains in a shared-chain grid run; config.chains otherwise)."""
        if not enabled(target, config):
            return None
        probe = probe_indices(target.num_data, int(config.probe_samples), seed)
        rows = int(config.chains) if rows is None else int(rows)
        return cls(run_target, target.to(device, torch.float64), probe, rows, int(config.burn_in),
                   int(config.thin), device, target.memorised_samples(), int(config.noise_draws), seed)

    def due(self, t: int) -> bool:
        """Step t's w_t is one of λ̂'s draws (the λ trace keeps trace[burn_in::thin])."""
        return t >= self.burn_in and (t - self.burn_in) % self.thin == 0

    def record(self, w: torch.Tensor) -> None:
        """Add ℓ_i(w_t) of every chain (rows of w) to the sums."""
        self.sums.add_(sample_losses(self.target, w, self.probe).to(torch.float64))
        self.draws += 1

    @property
    def nbytes(self) -> int:
        """Bytes held across the run (the sums and the baselines), independent of the steps."""
        return sum(t.numel() * t.element_size() for t in (self.sums, self.loss_star, self.grad_norm_star, self.probe))

    def noise_baseline(self, gamma: float) -> Optional[list]:
        """``loss_under_noise`` at γ (computed once per γ), as a list; None when γ ≤ 0."""
        gamma = float(gamma)
        if gamma not in self._noise:
            v = loss_under_noise(self.target64, self.w_star64, self.probe, gamma, self.noise_draws, self.seed)
            self._noise[gamma] = None if v is None else v.cpu().numpy().tolist()
        return self._noise[gamma]

    def result(self, alive: np.ndarray, nbeta: float, gamma: float) -> dict:
        """λ̂_i, se_i (between chains), the baselines (the noise baseline at γ) and the ground truth, as
        JSON-able lists."""
        means = (self.sums / max(self.draws, 1)).cpu().numpy()[alive]  # (live chains, probe)
        star = self.loss_star.cpu().numpy()
        live = means.shape[0]
        lam = nbeta * (means.mean(axis=0) - star) if live else np.full(star.shape, np.nan)
        se = nbeta * means.std(axis=0, ddof=1) / math.sqrt(live) if live >= 2 else np.full(star.shape, np.nan)
        probe = self.probe.cpu().numpy()
        out = {
            "probe": probe.tolist(),
            "lambda": lam.tolist(),
            "se": se.tolist(),
            "se_method": "between-chain: nβ·sd over the live chains of the per-chain mean of ℓ_i, / √chains",
            "loss_star": star.tolist(),
            "grad_norm_star": self.grad_norm_star.cpu().numpy().tolist(),
            "loss_under_noise": self.noise_baseline(gamma),
            "noise_draws": self.noise_draws,
            "noise_gamma": float(gamma),
            "draws_per_chain": self.draws,
            "chains_used": live,
            "memory_bytes": self.nbytes,
        }
        if self.memorised is not None:
            out["memorised"] = np.isin(probe, self.memorised.cpu().numpy()).astype(int).tolist()
        return out
