"""The Hessian-rank negative control (the ``hessian`` estimator): λ̂ = rank(∇²L_n(w*))/2.

This is what the LLC would be if every model were regular (the BIC's d/2
with d replaced by the number of non-flat directions at w*). It is right
for regular models (linear and logistic regression: λ = d/2) and wrong for
singular ones — e.g. w1^4 + w2^4 and w1^2·w2^4 both have a zero Hessian at
0 (λ̂ = 0) but λ = 1/2 and 1/4, and w1^2 + w2^4 has rank 1 (λ̂ = 1/2) but
λ = 3/4. Putting it in the same report as the samplers shows why the LLC is
needed at all. A prior φ of the target is ignored (the control treats the
model as regular with a flat prior; it says so in a warning).

Computation: the full-data Hessian of L_n at w* in float64 (``target.to``
float64, the batched ``full_loss`` of one row), row blocks by batched
Hessian-vector products (``torch.autograd.grad(..., is_grads_batched=True)``
on the gradient graph, ``batch`` rows at a time), symmetrised, eigenvalues by
``torch.linalg.eigvalsh``.

Rank: #{i : |h_i| > rtol·max_j |h_j|}, rtol = 1e-8 by default; rank 0 (λ̂ = 0)
if max |h| = 0. Why 1e-8: in float64 the Hessian is exact up to round-off
~1e-16 of its largest entries, so directions that are flat at w* come out at
≲ 1e-15 of the largest eigenvalue, while genuine curvature is a modest
fraction of it. Measured over the whole built-in catalogue (every case with
d ≤ 1000): the largest "zero" eigenvalue was 5.2e-16 of the largest
(dln/4-4-4/r2/generic), the smallest genuine one 6.6e-5
(dln/5-5-5-5/r2/generic; ≥ 1e-2 in every other case). 1e-8 sits in that
gap with about 7 decades of margin above round-off and 4 below the
smallest genuine curvature seen; ``rtol`` is a config field, and the record
carries the largest dropped and smallest kept |h| (``gap_ratio``) so that a
borderline rank is visible.

Dimension: the dense d×d Hessian costs d Hessian-vector products and an
O(d³) eigendecomposition; d ≤ ``max_dim`` = 3000 (72 MB) is
accepted (measured: d = 1000 linear regression 9 s, d = 800 deep linear network
28 s on one busy CPU core; d = 3000 takes minutes), bigger targets are refused.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Optional

import torch

from ..errors import UnsupportedTarget
from ..target import Target
from .base import Estimate, EstimatorSpec, doc

DEFAULT_MAX_DIM = 3000


@dataclass
class HessianConfig:
    """λ̂ = rank(∇²L_n(w*))/2 (negative control). Every field: see ``llcbench estimators``."""

    rtol: float = doc(1e-8, "an eigenvalue h counts towards the rank when |h| > rtol·max|h|")
    max_dim: int = doc(DEFAULT_MAX_DIM, "refuse targets with more parameters than this (dense d×d Hessian)")
    batch: int = doc(64, "Hessian rows computed per batched Hessian-vector product")
    top: int = doc(10, "how many of the largest-|h| eigenvalues to report (and the smallest kept one)")

    def validate(self) -> None:
        if not (0 < self.rtol < 1):
            raise ValueError("rtol must be in (0, 1)")
        for name in ("max_dim", "batch", "top"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


def _refusal(target: Target, max_dim: int) -> Optional[str]:
    if target.dim > max_dim:
        return (f"hessian: {target.id} has d = {target.dim} > max_dim = {max_dim}: the dense d×d Hessian "
                f"({target.dim}² float64 values) and its eigendecomposition are too large")
    return None


def supports(target: Target) -> Optional[str]:
    """None if ``hessian`` (default max_dim) can run on the target, else why not."""
    return _refusal(target, DEFAULT_MAX_DIM)


def full_hessian(target: Target, w: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """∇²L_n(w) (float64, d×d, symmetrised) of ``target`` (already float64) at w (d,)."""
    d = w.numel()
    x = w.detach().clone().reshape(1, d).requires_grad_(True)
    loss = target.full_loss(x)[0]
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    g = g.reshape(d)
    H = torch.zeros(d, d, dtype=w.dtype, device=w.device)
    if g.grad_fn is None:  # the gradient does not depend on w: zero Hessian
        return H
    eye = torch.eye(d, dtype=w.dtype, device=w.device)
    for s in range(0, d, batch):
        e = eye[s:s + batch]
        try:
            (rows,) = torch.autograd.grad(g, x, grad_outputs=e, retain_graph=True, is_grads_batched=True,
                                          allow_unused=True)
            rows = torch.zeros(e.shape[0], 1, d, dtype=w.dtype) if rows is None else rows
            H[s:s + batch] = rows.reshape(e.shape[0], d)
        except RuntimeError:  # an op without a batching rule: one row at a time
            for i in range(e.shape[0]):
                (row,) = torch.autograd.grad(g, x, grad_outputs=e[i], retain_graph=True, allow_unused=True)
                H[s + i] = 0.0 if row is None else row.reshape(d)
    return 0.5 * (H + H.T)


def estimate(target: Target, config: HessianConfig, seed: int = 0, device: str = "cpu") -> Estimate:
    """λ̂ = rank(∇²L_n(w*))/2 (see the module doc); ``seed`` is unused (nothing is random)."""
    t0 = time.perf_counter()
    config.validate()
    reason = _refusal(target, int(config.max_dim))
    if reason is not None:
        raise UnsupportedTarget(reason)
    dev = torch.device(device)
    t64 = target.to(dev, torch.float64)
    w_star = t64.w_star.to(device=dev, dtype=torch.float64).reshape(-1)
    H = full_hessian(t64, w_star, int(config.batch))
    eigs = torch.linalg.eigvalsh(H).cpu()
    mags = eigs.abs()
    hmax = float(mags.max()) if eigs.numel() else 0.0
    if hmax > 0 and math.isfinite(hmax):
        kept = mags > config.rtol * hmax
    else:
        kept = torch.zeros_like(mags, dtype=torch.bool)
    rank = int(kept.sum())
    order = torch.argsort(mags, descending=True)
    top = [float(eigs[i]) for i in order[: int(config.top)]]
    smallest_kept = float(mags[kept].min()) if rank else None
    largest_dropped = float(mags[~kept].max()) if rank < len(mags) else None
    warnings = []
    if target.has_prior:
        warnings.append("the target's prior is ignored: the Hessian control treats the model as regular")
    negative = int((eigs < -config.rtol * hmax).sum()) if hmax > 0 else 0
    if negative:
        warnings.append(f"the Hessian at w* has {negative} negative eigenvalues: w* is not a minimum")
    return Estimate(
        lambda_hat=rank / 2.0,
        lambda_hat_chains=[rank / 2.0],
        se=0.0,
        diagnostics={},
        grad_evals=int(target.dim),
        seconds=time.perf_counter() - t0,
        warnings=warnings,
        extra={
            "rank": rank,
            "dim": int(target.dim),
            "rtol": float(config.rtol),
            "eigenvalues_top": top,
            "eigenvalue_max_abs": hmax,
            "smallest_kept_abs": smallest_kept,
            "largest_dropped_abs": largest_dropped,
            "gap_ratio": (largest_dropped / smallest_kept) if (smallest_kept and largest_dropped is not None)
            else None,
        },
    )


SPEC = EstimatorSpec(
    name="hessian",
    config_cls=HessianConfig,
    estimate=estimate,
    summary="negative control: λ̂ = rank(Hessian of L at w*)/2, right only for regular models",
    supports=supports,
)
