"""A target restricted to the hyperplane through w* normal to the loss gradient there.

A checkpoint of training is not a minimum: ∇L_n(w*) ≠ 0, and a sampler
localised at w* drifts down the gradient, so nβ·(L_n(w) − L_n(w*)) goes
negative. Rimsky & Vaintrob (2023) restrict the sampler to the directions
orthogonal to the gradient at the checkpoint. Here that is a target of
dimension d − 1: u ↦ w* + Q u, with Q the last d − 1 columns of the
Householder reflection H = I − 2vvᵀ that maps e₁ to ĝ = ∇L_n(w*)/‖∇L_n(w*)‖.
H is orthogonal, so ‖u‖ = ‖w − w*‖ (the localisation term is unchanged) and
Q u costs O(d) per chain without forming Q. Any sampler then runs on it
unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..target import Target


@dataclass
class HyperplaneTarget(Target):
    inner: Optional[Target] = None
    v: Optional[torch.Tensor] = None  # the Householder vector (d,), unit norm (or zero: H = I)
    anchor: Optional[torch.Tensor] = None  # the inner target's w*

    @classmethod
    def normal_to_gradient(cls, inner: Target) -> "HyperplaneTarget":
        w = inner.w_star.detach().to(torch.float64)[None].clone().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(inner.to("cpu", torch.float64).full_loss(w).sum(), w)
        g = g[0]
        norm = float(g.norm())
        e1 = torch.zeros_like(g)
        e1[0] = 1.0
        diff = g / norm - e1 if norm > 0 else torch.zeros_like(g)
        v = diff / diff.norm() if float(diff.norm()) > 1e-12 else torch.zeros_like(g)
        info = dict(inner.info, gradient_norm=norm, hyperplane="normal to ∇L_n(w*)")
        return cls(id=inner.id, family=inner.family, dim=inner.dim - 1, n=inner.n,
                   w_star=torch.zeros(inner.dim - 1, dtype=torch.float64), truth=inner.truth,
                   num_data=inner.num_data, info=info, inner=inner, v=v, anchor=inner.w_star)

    def to_inner(self, u: torch.Tensor) -> torch.Tensor:
        """w = w* + H·[0; u] for each row u."""
        z = torch.cat([torch.zeros_like(u[:, :1]), u], dim=1)
        v = self.v.to(device=u.device, dtype=u.dtype)
        return self.anchor.to(device=u.device, dtype=u.dtype) + z - 2 * (z @ v)[:, None] * v

    def to(self, device="cpu", dtype=torch.float64) -> "HyperplaneTarget":
        new = super().to(device, dtype)
        new.inner = self.inner.to(device, dtype)
        return new

    def loss(self, w: torch.Tensor, idx: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.inner.loss(self.to_inner(w), idx)

    @property
    def has_sample_losses(self) -> bool:
        return self.inner.has_sample_losses

    def sample_losses(self, w: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return self.inner.sample_losses(self.to_inner(w), idx)

    def memorised_samples(self) -> Optional[torch.Tensor]:
        return self.inner.memorised_samples()

    def chance_loss(self) -> Optional[float]:
        return self.inner.chance_loss()

    def accuracy(self, w: torch.Tensor) -> Optional[torch.Tensor]:
        return self.inner.accuracy(self.to_inner(w))

    def chance_accuracy(self) -> Optional[float]:
        return self.inner.chance_accuracy()

    @property
    def trained_anchor(self) -> bool:
        return self.inner.trained_anchor
