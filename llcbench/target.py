"""The target contract: what a family turns a case into, and all an estimator sees.

Like Inference Gym's targets, a target carries its ground truth and its
provenance. Every loss is *batched over chains*: parameters of shape
``(chains, dim)`` give losses of shape ``(chains,)``, so an estimator runs all
its chains with one batched forward/backward per step.

Losses are mean per-sample negative log-likelihoods L_n(w). Additive
constants that do not depend on w (e.g. ½·log 2πσ² of a Gaussian) are
dropped: they cancel in L_n(w) − L_n(w*), the only thing an LLC estimate uses.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Optional

import torch

from .truth import Truth


@dataclass(frozen=True)
class PolynomialForm:
    """L(w* + u) = Σ_j c_j ∏_i u_i^{A_ji} exactly; the prior density (if any) is ∏_i |u_i|^{h_i}.

    exponents: A, (terms, d) int64. coeffs: c, (terms,) float64.
    prior_exponents: h, (d,) float64, or None for a flat prior.
    """

    exponents: torch.Tensor
    coeffs: torch.Tensor
    prior_exponents: Optional[torch.Tensor] = None


@dataclass(frozen=True)
class Rescaling:
    """A hidden vertex of a chain of linear maps, x ↦ W_out·W_in·x, whose rescalings
    (W_in, W_out) → (A·W_in, W_out·A⁻¹), A ∈ GL(width), leave the loss unchanged: W_in is
    width × fan_in, W_out is fan_out × width, each row-major at its offset in w."""

    width: int
    fan_in: int
    fan_out: int
    in_offset: int
    out_offset: int

    def incoming(self, w: torch.Tensor) -> torch.Tensor:
        """W_in of every row of w (rows, dim), a view (rows, width, fan_in)."""
        return w[:, self.in_offset:self.in_offset + self.width * self.fan_in].unflatten(1, (self.width, self.fan_in))

    def outgoing(self, w: torch.Tensor) -> torch.Tensor:
        """W_out of every row of w, a view (rows, fan_out, width)."""
        return w[:, self.out_offset:self.out_offset + self.fan_out * self.width].unflatten(1, (self.fan_out, self.width))


@dataclass
class Target(ABC):
    """Base class of every target.

    id: the case id it was built from; family: the family's name.
    dim: number of parameters d.  w_star: the anchor w* (float64, shape (d,)).
    n: sample size; sets the default inverse temperature nβ* = n / log n.
        For analytic potentials (no data) it is nominal.
    truth: λ, m, kind and source at w*.
    num_data: number of data points the loss averages over; 0 means an
        analytic potential (no minibatches: every evaluation is exact).
    """

    id: str
    family: str
    dim: int
    n: int
    w_star: torch.Tensor
    truth: Truth
    num_data: int = 0
    info: dict = field(default_factory=dict)  # family-specific provenance (σ, widths, seed, ...)

    @abstractmethod
    def loss(self, w: torch.Tensor, idx: Optional[torch.Tensor] = None) -> torch.Tensor:
        """L(w) for a batch of parameter vectors.

        w: (chains, dim). idx: indices of the data points to average over
        (a minibatch shared by all chains), or None for the full data.
        Returns (chains,). Analytic potentials ignore idx.
        """

    def epoch_batches(self, perm: torch.Tensor, count: int) -> list:
        """One epoch's minibatches: ``perm`` (a permutation of the data) split into ``count``
        near-equal consecutive slices, as ``torch.tensor_split`` does. Each item is what ``loss``
        and ``loss_and_grad`` take as ``idx`` for that step. This default returns the index slices;
        a family may return per-batch statistics computed for the whole epoch at once instead (the
        same numbers, fewer operations per step), which its ``loss`` then accepts as ``idx``."""
        return list(torch.tensor_split(perm, count))

    def loss_and_grad(self, w: torch.Tensor, idx: Optional[torch.Tensor] = None):
        """(L(w), ∇L(w)) detached, shapes (chains,) and (chains, dim): what a gradient sampler needs
        per step. This default runs autograd on ``loss``; families with a cheaper closed form
        override it (and their tests check it against this default)."""
        with torch.enable_grad():
            wl = w.detach().requires_grad_(True)
            out = self.loss(wl, idx)
            (grad,) = torch.autograd.grad(out.sum(), wl)
        return out.detach(), grad

    @property
    def has_full_excess_loss(self) -> bool:
        """Whether :meth:`full_excess_loss` is available (at about the cost of a minibatch loss)."""
        return False

    def full_excess_loss(self, w: torch.Tensor) -> torch.Tensor:
        """L_n(w) − L_n(w*) over ALL the data, batched over the rows of w, computed without the
        cancellation of two large losses; only where ``has_full_excess_loss`` (e.g. Gaussian
        losses of linear maps, from precomputed data moments). The SG-MCMC λ trace uses it: a
        minibatch loss at w_t on a batch the chain has not just stepped on overstates L_n(w_t)."""
        raise NotImplementedError(f"{type(self).__name__} has no cheap full-data excess loss")

    def loss_grad_and_excess(self, w: torch.Tensor, idx=None):
        """(L_B(w), ∇L_B(w), L_n(w) − L_n(w*)): one sampler step's gradient and the full-data λ
        trace; families with ``has_full_excess_loss`` may share work between the two."""
        loss, grad = self.loss_and_grad(w, idx)
        return loss, grad, self.full_excess_loss(w)

    def log_prior(self, w: torch.Tensor) -> Optional[torch.Tensor]:
        """log prior density (up to a constant) at w, shape (chains,), or None for a flat prior."""
        return None

    @property
    def has_prior(self) -> bool:
        return False

    # Capabilities an estimator may ask for instead of testing the target's type. Each answers None
    # unless the target states it *exactly* (never from probing the loss numerically): an estimator
    # that relies on one gives a wrong number if it is only approximately true.
    def quadratic_form(self) -> Optional[torch.Tensor]:
        """H (float64, d×d, CPU) if L(w) − L(w*) = ½(w − w*)ᵀH(w − w*) for every w, else None: the
        localised tempered posterior is then Gaussian and λ_nβ,γ has a closed form (``exact``)."""
        return None

    def polynomial(self) -> Optional[PolynomialForm]:
        """L as a polynomial in u = w − w* (and the prior as ∏|u_i|^h_i), else None: ``exact``
        integrates such a posterior by quadrature when d is small."""
        return None

    # Per-sample observables (the per-sample LLC λ̂_i = nβ·(E[ℓ_i(w)] − ℓ_i(w*))) need each sample's
    # loss; families that have memorised samples planted by construction also state which they are.
    @property
    def has_sample_losses(self) -> bool:
        """Whether :meth:`sample_losses` is available."""
        return False

    def sample_losses(self, w: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """ℓ_i(w) for the data points ``idx`` (a 1-D index tensor), batched over the rows of w:
        shape (chains, len(idx)); the mean over all i of ℓ_i(w) is L_n(w). Only where
        ``has_sample_losses``."""
        raise NotImplementedError(f"{type(self).__name__} has no per-sample losses")

    def memorised_samples(self) -> Optional[torch.Tensor]:
        """Indices (1-D int64) of the training samples known by construction to be memorised (e.g.
        planted random labels): the ground truth that per-sample scores are measured against.
        None where the family does not know."""
        return None

    # Locality (llcbench.locality): what a chance-level predictor scores on the training data, and for
    # classifiers the train accuracy; None where the family defines none. They let a run say whether
    # its posterior stayed near the anchor's solution or wandered off to chance.
    def chance_loss(self) -> Optional[float]:
        """L_n of a predictor that ignores its input (uniform logits for cross-entropy, the best
        constant for squared loss), in the units of ``loss``; None where the family defines none."""
        return None

    def accuracy(self, w: torch.Tensor) -> Optional[torch.Tensor]:
        """Train accuracy (chains,) of every row of w, for classifiers; None otherwise."""
        return None

    def chance_accuracy(self) -> Optional[float]:
        """Train accuracy of the chance-level predictor of ``chance_loss``; None for non-classifiers."""
        return None

    def rescalings(self) -> list:
        """The :class:`Rescaling` symmetries of the loss (hidden vertices of linear layers), which the
        orbit start moves the chains along (``llcbench.estimators.sgmcmc.orbit_start``); [] where the
        family declares none."""
        return []

    @property
    def trained_anchor(self) -> bool:
        """Whether w* was found by training (not placed by construction, with no exact truth there): the
        SG-MCMC estimators then choose γ by the localisation pilot (``llcbench.locality``)."""
        return False

    @property
    def nbeta_star(self) -> float:
        """The default inverse temperature n·β* = n / log n (Watanabe's WBIC temperature)."""
        return self.n / math.log(self.n)

    def full_loss(self, w: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
        """L_n(w) over all the data, in chunks so that memory stays bounded."""
        if self.num_data == 0:
            return self.loss(w)
        total = torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
        for start in range(0, self.num_data, chunk):
            idx = torch.arange(start, min(start + chunk, self.num_data), device=w.device)
            total = total + self.loss(w, idx) * len(idx)
        return total / self.num_data

    def to(self, device="cpu", dtype=torch.float64) -> "Target":
        """A copy whose tensors (w*, data) live on ``device`` with ``dtype``."""
        new = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                setattr(new, name, value.to(device=device, dtype=dtype))
            elif isinstance(value, torch.Tensor):
                setattr(new, name, value.to(device=device))
        return new

    def summary(self) -> dict:
        t = self.truth
        return {
            "id": self.id,
            "family": self.family,
            "dim": self.dim,
            "n": self.n,
            "lambda": t.lam_str,
            "lambda_float": t.lam_float,
            "multiplicity": t.multiplicity,
            "kind": t.kind,
            "source": t.source,
        }
