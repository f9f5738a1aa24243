"""Full-batch NUTS on the localised tempered posterior (the ``nuts`` reference estimator).

Target density (the same as every SG-MCMC estimator's, with the same config
names and defaults: nβ = nbeta_scale·n/log n, γ = gamma_scale·nβ = 10⁻³·nβ):

    p(w) ∝ exp(−U(w)),  U(w) = nβ·(L_n(w) − L_n(w*)) + (γ/2)·‖w − w*‖² − log φ(w)

(φ the target's prior, if any), sampled with Pyro's No-U-Turn Sampler
(Hoffman & Gelman 2014; ``pyro.infer.mcmc.NUTS(potential_fn=U)``) in float64
on exact full-data gradients: ``U`` calls ``target.loss`` directly (no second
implementation of any loss). Warm-up is Pyro's: dual-averaging step-size
adaptation to ``target_accept`` (default 0.95, see below) and windowed
diagonal (or, with ``full_mass``, dense) mass-matrix adaptation, as in Stan.

λ̂ per draw = nβ·(L_n(w) − L_n(w*)) (float64, full data); λ̂ = mean over all
post-warm-up draws of all chains; se = MCSE of the mean, with ESS and split
R-hat, from ArviZ (``az.mcse``, ``az.ess``, ``az.rhat``) on the
(chains, draws) array of per-draw λ. Divergent transitions (Pyro's
diagnostics: energy error > 1000) are counted per chain and reported as a
warning.

Chains: Pyro runs chains one after another in this process (one ``MCMC``
object per chain, ``num_chains=1``): NUTS trees have data-dependent lengths,
so Pyro cannot vectorise chains in one tensor, and its multi-process mode
is not used (it would not be deterministic and competes for the cores).
Chain c starts at w* + N(0, init_scale²/(nβ + γ)·I) (seeded), so that R-hat
across chains means something and priors |w_i|^h (infinite potential at
w_i = 0) are avoided.

Determinism: everything random comes from torch's global generator, which
Pyro uses; each chain runs inside ``torch.random.fork_rng`` after
``pyro.set_rng_seed(seed·1000003 + chain)`` (Python's and NumPy's global
states are saved and restored too), so the same seed gives the same λ̂ and
the caller's random state is untouched.

Speed (measured with this module, float64, one torch thread, max_tree_depth
= 10, warm-up included, on a shared 2-core CPU machine at load ≈ 1–2; ms per
iteration, with leapfrog steps per iteration in brackets; default
target_accept = 0.95 / Pyro's usual 0.8):
  - d = 2 polynomial w1^2 + w2^4 (γ = 10⁻³nβ, nβ = n/log n): 11.8 (8.2) / 8.1 (5.4);
  - d = 2 singular (w1·w2)^2: 31.8 (24.4) / 12.6 (9.2);
  - regular/linear-5x4 (d = 20, n = 10,000): 30.8 (14.2) / 17.0 (7.5);
  - regular/linear-10x10 (d = 100): 59.2 (16.4) / 46.2 (13.2);
  - dln/2-2-2/r0 (d = 8 but n = 100,000 and a singular posterior): ≈ 330 ms
    per iteration already in early warm-up (9 ms per full-data gradient).
Why 0.95: at 0.8 the singular polynomials diverge (tens to hundreds of
divergent transitions per 1,000 draws) and λ̂ came out 7–10 % low against
``exact`` (4 chains × 1,000 draws: (w1·w2)² z = −1.7, w1²·w2⁴ z = −2.6); at
0.95 the same runs agree (z = +0.1, −0.3).
Of a NUTS step (≈ 2 ms for the d = 2 polynomial, ≈ 3.3 ms for linear-5x4,
measured together at load ≈ 3), the potential and its gradient alone are
≈ 0.8 and ≈ 1.5 ms; the rest is Pyro's Python-level tree building. NumPyro/BlackJAX compile the whole trajectory
and are 4–25× faster per step in published comparisons, but they would need
a JAX twin of every loss — a second implementation that could silently
disagree with the torch loss every other estimator uses. Pyro reuses
``target.loss`` as it is, which is what a reference needs.

Dimension: NUTS needs ~d^(1/4) more steps per draw as d grows (more on
singular posteriors, whose curvature varies by orders of magnitude), each a
full-data gradient; ``max_dim`` (default 200) keeps a default run
(4 chains × 1,500 iterations) of a regular target within minutes to tens of
minutes on one CPU core at the catalogue's data sizes. Bigger targets are
refused (raise ``max_dim`` to force it); the deep-network cases with
n = 100,000 are expensive even below it (see above).
"""

from __future__ import annotations

import math
import random
import time
import warnings as _warnings
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from ..errors import UnsupportedTarget, UserError
from ..target import Target
from .base import Estimate, EstimatorSpec, doc
from .diagnostics import finite_or_none, trace_diagnostics
from .temperature import TemperatureConfig, resolve_gamma, resolve_nbeta

DEFAULT_MAX_DIM = 200


@dataclass
class NUTSConfig(TemperatureConfig):
    """Full-batch NUTS (Pyro). Every field: see ``llcbench estimators``."""

    chains: int = doc(4, "number of chains (run one after another: Pyro cannot vectorise NUTS chains)")
    warmup: int = doc(500, "warm-up (adaptation) iterations per chain, excluded from every average")
    samples: int = doc(1000, "post-warm-up draws per chain")
    max_tree_depth: int = doc(10, "NUTS maximum tree depth (at most 2^depth leapfrog steps per draw)")
    target_accept: float = doc(0.95, "target acceptance probability of the step-size adaptation (0.95, not "
                               "Pyro's 0.8: singular posteriors diverge and bias λ̂ low at 0.8)")
    full_mass: bool = doc(False, "adapt a dense mass matrix (else diagonal)")
    init_scale: float = doc(1.0, "chains start at w* + N(0, init_scale²/(nβ + γ)) per coordinate")
    max_dim: int = doc(DEFAULT_MAX_DIM, "refuse targets with more parameters than this")
    trace_points: int = doc(200, "at most this many loss-trace points per chain in the record")

    def validate(self) -> None:
        self.validate_temperature()
        for name in ("chains", "samples", "max_tree_depth", "max_dim", "trace_points"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.warmup < 0:
            raise ValueError("warmup must be >= 0")
        if not (0 < self.target_accept < 1):
            raise ValueError("target_accept must be in (0, 1)")
        if not (self.init_scale >= 0 and math.isfinite(self.init_scale)):
            raise ValueError("init_scale must be >= 0")


def _refusal(target: Target, max_dim: int) -> Optional[str]:
    if target.dim > max_dim:
        return (f"nuts: {target.id} has d = {target.dim} > max_dim = {max_dim} parameters: full-batch NUTS "
                f"(Pyro, chains in sequence) is a reference for small models; raise max_dim to force it")
    if target.has_prior:
        from ..families.polynomial import PolynomialTarget

        if isinstance(target, PolynomialTarget) and target.prior_h is not None:
            A = target.exponents.cpu().numpy()
            h = target.prior_h.cpu().numpy()
            odd = [i + 1 for i in range(target.dim) if h[i] > 0 and np.any(A[:, i] % 2 == 1)]
            if odd:
                return (f"nuts: the prior |w_i|^h of {target.id} puts an infinite potential barrier at w_i = 0 "
                        f"(chains cannot cross it) and K is not even in w{odd[0]}, so one orthant is not "
                        f"representative")
    return None


def supports(target: Target) -> Optional[str]:
    """None if ``nuts`` (default max_dim) can run on the target, else why not."""
    return _refusal(target, DEFAULT_MAX_DIM)


def _import_pyro():
    try:
        import pyro
        from pyro.infer.mcmc import MCMC, NUTS
    except ImportError:  # pragma: no cover - depends on the environment
        raise UserError("nuts: needs the pyro-ppl package (pip install 'pyro-ppl>=1.8')") from None
    return pyro, MCMC, NUTS


def _batched_full_loss(target: Target, w: torch.Tensor, rows: int = 64) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for s in range(0, w.shape[0], rows):
            out.append(target.full_loss(w[s:s + rows]))
    return torch.cat(out)


def estimate(target: Target, config: NUTSConfig, seed: int = 0, device: str = "cpu",
             progress: Optional[Callable[[int, int], None]] = None) -> Estimate:
    """λ̂ by full-batch NUTS (see the module doc)."""
    t_start = time.perf_counter()
    config.validate()
    reason = _refusal(target, int(config.max_dim))
    if reason is not None:
        raise UnsupportedTarget(reason)
    pyro, MCMC, NUTS = _import_pyro()

    dev = torch.device(device)
    t64 = target.to(dev, torch.float64)
    w_star = t64.w_star.to(device=dev, dtype=torch.float64).reshape(-1)
    d = int(target.dim)
    nbeta = resolve_nbeta(target, config)
    gamma = resolve_gamma(nbeta, config)
    with torch.no_grad():
        init_loss = float(t64.full_loss(w_star[None])[0])
    has_prior = target.has_prior
    counter = [0]

    def potential(params: dict) -> torch.Tensor:
        w = params["w"]
        counter[0] += 1
        row = w.reshape(1, d)
        u = nbeta * (t64.loss(row)[0] - init_loss)
        if gamma:
            u = u + 0.5 * gamma * (w - w_star).square().sum()
        if has_prior:
            u = u - t64.log_prior(row)[0]
        return u

    chains, samples, warmup = int(config.chains), int(config.samples), int(config.warmup)
    init_sd = float(config.init_scale) / math.sqrt(nbeta + gamma)
    draws = torch.empty(chains, samples, d, dtype=torch.float64)
    divergences: list[int] = []
    accept: list[Optional[float]] = []
    step_sizes: list[float] = []
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        for c in range(chains):
            with torch.random.fork_rng(devices=[]):
                pyro.set_rng_seed(int(seed) * 1_000_003 + c)
                gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + c)
                w0 = w_star.cpu() + init_sd * torch.randn(d, generator=gen, dtype=torch.float64)
                kernel = NUTS(potential_fn=potential, adapt_step_size=True, adapt_mass_matrix=True,
                              full_mass=bool(config.full_mass), max_tree_depth=int(config.max_tree_depth),
                              target_accept_prob=float(config.target_accept))
                mcmc = MCMC(kernel, num_samples=samples, warmup_steps=warmup,
                            initial_params={"w": w0.to(dev)}, num_chains=1, disable_progbar=True)
                with _warnings.catch_warnings():
                    _warnings.simplefilter("ignore")
                    mcmc.run()
                draws[c] = mcmc.get_samples()["w"].detach().to("cpu", torch.float64).reshape(samples, d)
                with _warnings.catch_warnings():
                    _warnings.simplefilter("ignore")
                    diag = mcmc.diagnostics()  # {"divergences": {"chain 0": [...]}, "acceptance rate": {...}}
                divergences.append(len(diag.get("divergences", {}).get("chain 0", [])))
                acc = diag.get("acceptance rate", {}).get("chain 0")
                accept.append(finite_or_none(acc) if acc is not None else None)
                step_sizes.append(float(kernel.step_size))
            if progress is not None:
                progress(c + 1, chains)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)

    loss = _batched_full_loss(t64, draws.reshape(-1, d).to(dev)).cpu().reshape(chains, samples)
    draws_loss = (loss - init_loss).numpy()
    lam = nbeta * draws_loss
    per_chain = [float(x) for x in lam.mean(axis=1)]
    lambda_hat = float(lam.mean())
    diagnostics = trace_diagnostics(lam, rhat_method="rank" if lam.shape[0] >= 2 else "split")
    diagnostics.update({
        "frac_below_init": float((draws_loss < 0).mean()),
        "divergences": divergences,
        "divergent_chains": [c for c, k in enumerate(divergences) if k > 0],
        "acceptance_rate": accept,
        "draws_per_chain": samples,
        "chains_used": chains,
    })
    warn: list[str] = []
    total_div = sum(divergences)
    if total_div:
        warn.append(f"{total_div} divergent NUTS transitions after warm-up (per chain {divergences}): "
                    "the draws may be biased; raise target_accept or warmup")
    rhat = diagnostics.get("rhat")
    if rhat is not None and rhat > 1.05:
        warn.append(f"split R-hat of the λ trace is {rhat:.3f} > 1.05: chains disagree (raise warmup/samples)")
    se = diagnostics.get("mcse_mean")
    stride = max(1, -(-samples // int(config.trace_points)))
    loss_trace = [[finite_or_none(x) for x in draws_loss[c, ::stride]] for c in range(chains)]
    grad_evals = int(counter[0])
    return Estimate(
        lambda_hat=lambda_hat,
        lambda_hat_chains=per_chain,
        se=float("nan") if se is None else float(se),
        loss_trace=loss_trace,
        diagnostics=diagnostics,
        grad_evals=grad_evals,
        seconds=time.perf_counter() - t_start,
        warnings=warn,
        nbeta=nbeta,
        gamma=gamma,
        extra={
            "nbeta": nbeta,
            "gamma": gamma,
            "init_loss": init_loss,
            "chains": chains,
            "warmup": warmup,
            "samples": samples,
            "max_tree_depth": int(config.max_tree_depth),
            "target_accept": float(config.target_accept),
            "full_mass": bool(config.full_mass),
            "step_size_adapted": step_sizes,
            "grad_evals_per_draw": grad_evals / max(1, chains * (samples + warmup)),
            "loss_trace_stride": stride,
            "library": f"pyro-ppl {pyro.__version__}",
            "device": str(dev),
        },
    )


SPEC = EstimatorSpec(
    name="nuts",
    config_cls=NUTSConfig,
    estimate=estimate,
    summary="full-batch NUTS (Pyro) on the localised tempered posterior: the sampling reference for small d",
    supports=supports,
)
