"""Full-batch localised Langevin dynamics, an LLC estimator (Lau, Murfet & Wei 2023)."""

from dataclasses import dataclass

import arviz as az
import torch

from llcbench.estimators.base import Estimate, EstimatorSpec, doc


@dataclass
class LangevinConfig:
    chains: int = doc(8, "number of chains, the rows of one (chains, dim) tensor")
    steps: int = doc(4000, "steps per chain, burn-in included")
    burn_in: int = doc(1000, "initial steps left out of every average")
    step_scale: float = doc(0.02, "step size ε = step_scale/(nβ + γ)")
    gamma_scale: float = doc(1e-3, "localisation strength γ = gamma_scale·nβ")

    def validate(self):  # called by make_config: a bad --set is a one-line error
        if self.chains < 1 or not 0 <= self.burn_in < self.steps - 4 or self.step_scale <= 0:
            raise ValueError("need chains >= 1, 0 <= burn_in < steps - 4 and step_scale > 0")


def estimate(target, config, seed, device="cpu") -> Estimate:
    target = target.to(device, torch.float64)  # w* and the data on the run's device
    gen = torch.Generator(device=device).manual_seed(seed)  # all randomness from the seed
    nbeta = target.nbeta_star  # nβ = n / log n
    gamma = config.gamma_scale * nbeta
    eps = config.step_scale / (nbeta + gamma)
    w_star = target.w_star
    loss_star = target.full_loss(w_star[None])[0]  # L_n(w*) on the full data
    w = w_star.expand(config.chains, target.dim).clone()  # every chain starts at w*
    trace = []
    for t in range(config.steps):
        loss, grad = target.loss_and_grad(w)  # idx=None: the full batch, L_n(w_t) and ∇L_n per chain
        if t >= config.burn_in:
            trace.append(loss)
        # w ← w − (ε/2)·∇[nβ·L_n(w) + (γ/2)·‖w − w*‖²] + N(0, ε·I)
        noise = torch.randn(w.shape, generator=gen, device=device, dtype=w.dtype)
        w = w - eps / 2 * (nbeta * grad + gamma * (w - w_star)) + eps**0.5 * noise
    lam = nbeta * (torch.stack(trace, dim=1) - loss_star).cpu().numpy()  # (chains, draws)
    rhat = float(az.rhat(lam, method="rank"))  # split R-hat of the λ trace
    warnings = [f"split R-hat {rhat:.3f} > 1.1: chains disagree"] if rhat > 1.1 else []
    return Estimate(
        lambda_hat=float(lam.mean()),  # λ̂ = nβ·(mean L_n(w_t) − L_n(w*))
        lambda_hat_chains=lam.mean(axis=1).tolist(),
        se=float(az.mcse(lam, method="mean")),
        diagnostics={"rhat": rhat, "ess": float(az.ess(lam, method="bulk"))},
        grad_evals=config.steps * config.chains,
        warnings=warnings,
        extra={"nbeta": nbeta, "gamma": gamma, "step_size": eps},  # (nβ, γ): the reference λ_nβ,γ
    )


SPEC = EstimatorSpec(
    name="langevin", config_cls=LangevinConfig, estimate=estimate,
    summary="full-batch localised Langevin dynamics (the example plugin)",
    supports=lambda target: "the target has a prior" if target.has_prior else None,
)
