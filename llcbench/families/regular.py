"""Regular models: linear and logistic regression at their empirical optimum.

Data from ``case.seed`` (x ~ N(0, I_in); teacher weights ~ N(0, 1/in), so the
teacher's outputs have variance ≈ 1):

- ``linear``: W is out×in (row-major), no bias; y = W0 x + σ·ξ, ξ ~ N(0, I_out),
  σ = noise_std (default 1). Loss L_n(W) = mean ‖y − W x‖² / (2σ²); the
  constant ½·out·log 2πσ² is dropped. noise_std = 0 gives noiseless labels
  and a loss scaled with σ = 1. Anchor: the least-squares optimum (float64
  normal equations + one refinement step, bit-for-bit reproducible), so L_n
  is an exact quadratic around w*.
- ``logistic``: binary, no bias, one weight vector w (out_features = 1);
  y ~ Bernoulli(sigmoid(w0·x)). Loss: mean binary cross-entropy with logits.
  Anchor: the MLE by Newton's method in float64 to gradient norm < 1e-10,
  certified by a positive-definite Hessian (it fails clearly on separable data).

Truth: λ = d/2, m = 1 (the Fisher information is non-singular at w*; checked).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from ..errors import TruthError
from ..target import Target
from ..truth import Truth
from . import moments
from .base import Family, Field

MODELS = ("linear", "logistic")


@dataclass
class RegularTarget(Target):
    """Linear or logistic regression without bias.

    The linear loss is evaluated from batch moments of [x | y − W* x]
    (``moments.py``; the same number as the per-sample mean, at a per-chain
    cost independent of the batch size), with a closed-form gradient.
    """

    model: str = "linear"
    in_features: int = 1
    out_features: int = 1
    x: Optional[torch.Tensor] = None  # (num_data, in)
    y: Optional[torch.Tensor] = None  # (num_data, out) for linear, (num_data,) in {0, 1} for logistic
    sigma: float = 1.0  # loss scale for linear
    z: Optional[torch.Tensor] = None  # linear: [x | y − W* x] (None when the residual is zero)
    full_moments: Optional[torch.Tensor] = None  # linear: zᵀz/n over all the data

    def _check(self, w: torch.Tensor) -> None:
        if w.dim() != 2 or w.shape[1] != self.dim:
            raise ValueError(f"w must have shape (chains, {self.dim}), got {tuple(w.shape)}")

    def _linear_parts(self, w: torch.Tensor, idx: Optional[torch.Tensor]):
        """(D = W − W*, the moment matrix) for the linear model, in w's dtype and device."""
        d = (w - self.w_star.to(device=w.device, dtype=w.dtype)).reshape(
            w.shape[0], self.out_features, self.in_features)
        m = self.full_moments if idx is None else moments.batch_moments(self.x, self.z, idx)
        return d, m.to(device=w.device, dtype=w.dtype)

    def epoch_batches(self, perm: torch.Tensor, count: int) -> list:
        """Linear: the epoch's batch moments, computed at once (``moments.epoch_moments``)."""
        plan = moments.epoch_moments(self.x, self.z, perm, count) if self.model == "linear" else None
        return plan if plan is not None else super().epoch_batches(perm, count)

    def loss(self, w: torch.Tensor, idx: Optional[torch.Tensor] = None) -> torch.Tensor:
        self._check(w)
        if self.model == "linear":
            return moments.loss_from_moments(*self._linear_parts(w, idx), self.sigma)
        x, y = (self.x, self.y) if idx is None else (self.x[idx], self.y[idx])
        x = x.to(device=w.device, dtype=w.dtype)
        y = y.to(device=w.device, dtype=w.dtype)
        z = w @ x.T  # (chains, batch)
        return F.binary_cross_entropy_with_logits(z, y.expand_as(z), reduction="none").mean(dim=-1)

    def full_loss(self, w: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
        if self.model == "linear":
            return self.loss(w)  # precomputed full-data moments: no pass over the data
        return super().full_loss(w, chunk)

    def quadratic_form(self) -> Optional[torch.Tensor]:
        """Linear regression at its least-squares optimum is exactly quadratic:
        H = I_out ⊗ XᵀX/(n·σ²) (W row-major out×in). Logistic regression is not (None)."""
        if self.model != "linear":
            return None
        x = self.x.detach().cpu().to(torch.float64)
        gram = x.T @ x / (x.shape[0] * float(self.sigma) ** 2)
        return torch.kron(torch.eye(int(self.out_features), dtype=torch.float64), gram)

    def loss_and_grad(self, w: torch.Tensor, idx: Optional[torch.Tensor] = None):
        if self.model != "linear":
            # logistic: ∇L = Xᵀ(σ(Xw) − y)/b in closed form, the logits shared with the loss (autograd
            # through the full-data loss costs about 7× as much: a full-batch sampler's hot loop)
            self._check(w)
            x, y = (self.x, self.y) if idx is None else (self.x[idx], self.y[idx])
            x = x.to(device=w.device, dtype=w.dtype)
            y = y.to(device=w.device, dtype=w.dtype)
            z = w.detach() @ x.T  # (chains, batch)
            loss = F.binary_cross_entropy_with_logits(z, y.expand_as(z), reduction="none").mean(dim=-1)
            grad = (torch.sigmoid(z) - y) @ x / x.shape[0]
            return loss, grad
        self._check(w)
        loss, grad = moments.loss_and_map_grad(*self._linear_parts(w.detach(), idx), self.sigma)
        return loss, grad.reshape(w.shape[0], -1)

    @property
    def has_full_excess_loss(self) -> bool:
        return self.model == "linear"

    def full_excess_loss(self, w: torch.Tensor) -> torch.Tensor:
        if self.model != "linear":
            return super().full_excess_loss(w)
        self._check(w)
        return moments.excess_from_moments(*self._linear_parts(w.detach(), None), self.sigma)


def _least_squares(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """argmin_W ||y - x W||² (W: in×out) in float64: Cholesky of the Gram matrix plus one step of
    iterative refinement. Used instead of ``torch.linalg.lstsq``, whose CPU driver gave results
    differing in the last bits from call to call (the anchor must be bit-for-bit reproducible)."""
    chol = torch.linalg.cholesky(x.T @ x)
    w = torch.cholesky_solve(x.T @ y, chol)
    return w + torch.cholesky_solve(x.T @ (y - x @ w), chol)


def _logistic_mle(x: torch.Tensor, y: torch.Tensor, tol: float = 1e-10, max_iter: int = 100) -> torch.Tensor:
    """MLE of bias-free logistic regression (float64 Newton with step halving)."""
    n, d = x.shape

    def loss(w):
        return F.binary_cross_entropy_with_logits(x @ w, y).item()

    w = torch.zeros(d, dtype=torch.float64)
    cur = loss(w)
    for _ in range(max_iter):
        p = torch.sigmoid(x @ w)
        g = x.T @ (p - y) / n
        if g.norm().item() < tol:
            break
        h = (x * (p * (1 - p))[:, None]).T @ x / n
        try:
            step = torch.linalg.solve(h, g)
        except RuntimeError:
            step = torch.linalg.lstsq(h, g).solution
        t = 1.0
        while t > 1e-12:
            new = w - t * step
            new_loss = loss(new)
            if new_loss <= cur + 1e-15 * abs(cur):
                break
            t *= 0.5
        w, cur = new, new_loss
        if w.norm().item() > 1e4:
            break
    p = torch.sigmoid(x @ w)
    g = x.T @ (p - y) / n
    h = (x * (p * (1 - p))[:, None]).T @ x / n
    min_eig = torch.linalg.eigvalsh(h).min().item()
    if not (g.norm().item() < tol) or w.norm().item() > 1e4 or min_eig < 1e-8:
        raise TruthError(
            f"logistic regression: no finite MLE (gradient norm {g.norm().item():.2e}, |w| "
            f"{w.norm().item():.2e}, smallest Hessian eigenvalue {min_eig:.2e}); the data are "
            f"(nearly) separable: increase n or reduce in_features"
        )
    return w


def _check_model(value) -> None:
    if value not in MODELS:
        raise ValueError(f"must be one of {', '.join(MODELS)}")


def _check_pos(value) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError("must be an integer >= 1")


class RegularFamily(Family):
    """Linear / logistic regression at the empirical optimum: λ = d/2, m = 1."""

    name = "regular"
    default_n = 10_000
    default_noise_std = 1.0
    fields = {
        "model": Field(type="str", check=_check_model, doc="'linear' (Gaussian noise) or 'logistic' (binary)"),
        "in_features": Field(type="int", check=_check_pos, doc="number of inputs (x ~ N(0, I))"),
        "out_features": Field(type="int", default=1, check=_check_pos,
                              doc="number of outputs (linear only; logistic needs 1)"),
    }

    def check(self, params: dict) -> None:
        if params["model"] == "logistic" and int(params.get("out_features", 1)) != 1:
            raise ValueError("out_features: logistic regression is binary, needs out_features = 1")

    def dim(self, params: dict) -> int:
        return int(params["in_features"]) * int(params.get("out_features", 1))

    def truth(self, params: dict) -> Truth:
        from ..truth.regular import regular_truth

        return regular_truth(self.dim(params))

    def target(self, case) -> RegularTarget:
        params = case.params
        self.check(params)
        model = params["model"]
        d_in, d_out = int(params["in_features"]), int(params.get("out_features", 1))
        n = int(case.n)
        if n < d_in:
            raise TruthError(f"regular: n = {n} < in_features = {d_in}: the optimum is not unique")
        gen = torch.Generator().manual_seed(int(case.seed))
        teacher = torch.randn(d_out, d_in, generator=gen, dtype=torch.float64) / d_in**0.5
        x = torch.randn(n, d_in, generator=gen, dtype=torch.float64)
        info = {"model": model, "in_features": d_in, "out_features": d_out, "seed": case.seed,
                "teacher_std": f"1/sqrt({d_in})"}
        gram_min = torch.linalg.eigvalsh(x.T @ x / n).min().item()
        if gram_min < 1e-8:
            raise TruthError(f"regular: the inputs' Gram matrix is singular (min eigenvalue {gram_min:.1e})")
        if model == "linear":
            noise = self.default_noise_std if case.noise_std is None else float(case.noise_std)
            if noise < 0:
                raise ValueError(f"noise_std must be >= 0, got {noise}")
            scale = noise if noise > 0 else 1.0
            y = x @ teacher.T + noise * torch.randn(n, d_out, generator=gen, dtype=torch.float64)
            w_star = _least_squares(x, y).T.contiguous().reshape(-1)  # (out·in,)
            anchor_map = w_star.reshape(d_out, d_in)
            z = moments.residual_data(x, y, anchor_map)
            linear_moments = {"z": z, "full_moments": moments.batch_moments(x, z, None)}
            info.update({"noise_std": noise, "loss_sigma": scale,
                         "loss": "mean ||y - W x||^2 / (2 sigma^2), constant dropped",
                         "anchor": "least-squares optimum"})
        else:
            u = torch.rand(n, generator=gen, dtype=torch.float64)
            y = (u < torch.sigmoid(x @ teacher[0])).to(torch.float64)
            w_star = _logistic_mle(x, y)
            scale = 1.0
            linear_moments = {}
            info.update({"loss": "mean binary cross-entropy with logits", "anchor": "MLE (Newton)"})
        return RegularTarget(
            id=case.id, family=self.name, dim=d_in * d_out, n=n, w_star=w_star,
            truth=self.truth(params), num_data=n, info=info, model=model, in_features=d_in,
            out_features=d_out, x=x, y=y, sigma=scale, **linear_moments,
        )
