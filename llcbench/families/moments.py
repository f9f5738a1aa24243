"""Gaussian losses of linear maps from data moments: exact, and cheap in the batch size.

Deep linear networks, reduced-rank regression and linear regression all have
the loss

    L_B(w) = mean_{i∈B} ‖y_i − P(w) x_i‖² / (2σ²),

with P(w) an H_M×H_0 matrix (the product W_M⋯W_1, or W itself). Write the
labels as y = T x + e, T the anchor's map P(w*) and e the residual at the
anchor (e ≡ 0 for noiseless teacher labels), and D = P(w) − T. Then

    ‖y − P x‖² = ‖D x‖² − 2 eᵀD x + ‖e‖²,
    L_B(w) = (⟨D·S_xx, D⟩ − 2⟨S_ex, D⟩ + S_ee) / (2σ²),
    ∂L_B/∂P = (D·S_xx − S_ex) / σ²,

with the batch moments S_xx = mean x xᵀ, S_ex = mean e xᵀ and S_ee = mean ‖e‖²,
all read off one (b × k)ᵀ(b × k) product of the batch rows z = [x | e].
That is the same number as the per-sample loss (not an approximation); the
product is shared by all chains, so the per-chain cost no longer grows with
the batch size; and writing the loss around D avoids
the cancellation of ‖y‖² − 2yᵀPx + ‖Px‖² at w ≈ w*: at the anchor D = 0
exactly and L_B(w*) = S_ee/(2σ²).
"""

from __future__ import annotations

from typing import Optional

import torch


def residual_data(x: torch.Tensor, y: torch.Tensor, anchor_map: torch.Tensor) -> Optional[torch.Tensor]:
    """The rows z = [x | e] with e = y − T x, or None when e is identically zero (noiseless labels)."""
    e = x @ anchor_map.T
    torch.sub(y, e, out=e)  # e = y − T x in place: one n × H_M block at a time, not two
    if not bool(e.any()):
        return None
    return torch.cat([x, e], dim=1)


class BatchMoments:
    """One minibatch's moment matrix zᵀz/b, computed with the rest of its epoch
    (:func:`epoch_moments`); the targets' losses accept it in place of indices."""

    __slots__ = ("m",)

    def __init__(self, m: torch.Tensor):
        self.m = m


def batch_moments(x: torch.Tensor, z: Optional[torch.Tensor], idx) -> torch.Tensor:
    """zᵀz / b over the rows idx (all rows when idx is None; the stored matrix for a
    :class:`BatchMoments`): (k, k), k = H_0 (+ H_M with a residual)."""
    if isinstance(idx, BatchMoments):
        return idx.m
    rows = x if z is None else z
    if idx is not None:
        rows = rows.index_select(0, idx)
    return torch.mm(rows.T, rows).div_(rows.shape[0])


def epoch_moments(x: torch.Tensor, z: Optional[torch.Tensor], perm: torch.Tensor,
                  count: int) -> Optional[list]:
    """The moment matrices of all ``count`` batches of an epoch at once, or None when that does not pay.

    The batches are those of ``torch.tensor_split(perm, count)``: consecutive
    slices, the first n mod count of them one longer. One gather of the
    permuted rows and one batched product per batch length replace a gather
    and a product per step. None when a k×k moment matrix is larger than the
    b×k rows it summarises (k > b).
    """
    rows = x if z is None else z
    n, k = perm.numel(), rows.shape[1]
    size, longer = divmod(n, count)
    if size < 1 or k > size:
        return None
    data = rows.index_select(0, perm)
    plan = torch.empty(count, k, k, dtype=rows.dtype, device=rows.device)  # written in place, not concatenated
    done = 0
    for start, num, length in ((0, longer, size + 1), (longer * (size + 1), count - longer, size)):
        if num:
            block = data[start:start + num * length].view(num, length, k)
            torch.bmm(block.transpose(1, 2), block, out=plan[done:done + num]).div_(length)
            done += num
    return [BatchMoments(m) for m in plan.unbind(0)]


def _blocks(m: torch.Tensor, h0: int):
    """(S_xx, S_ex, S_ee) from a moment matrix; S_ex and S_ee are None without a residual."""
    if m.shape[0] == h0:
        return m, None, None
    return m[:h0, :h0], m[h0:, :h0], m[h0:, h0:].diagonal().sum()


def loss_from_moments(d: torch.Tensor, m: torch.Tensor, sigma: float) -> torch.Tensor:
    """L for every chain from D = P − T (chains, H_M, H_0) and a moment matrix (differentiable)."""
    sxx, sex, see = _blocks(m, d.shape[2])
    ds = torch.matmul(d, sxx)
    if sex is None:
        return (ds * d).sum(dim=(1, 2)) / (2.0 * sigma**2)
    return ((ds - 2.0 * sex) * d).sum(dim=(1, 2)).add(see) / (2.0 * sigma**2)


def loss_and_map_grad(d: torch.Tensor, m: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, ∂L/∂P) for every chain, without autograd (in place where it saves a kernel launch)."""
    sxx, sex, see = _blocks(m, d.shape[2])
    grad = torch.matmul(d, sxx)
    if sex is not None:
        grad.sub_(sex)
        loss = (grad - sex).mul_(d).sum(dim=(1, 2)).add_(see)
    else:
        loss = torch.mul(grad, d).sum(dim=(1, 2))
    if sigma != 1.0:
        grad.div_(sigma**2)
    return loss.mul_(0.5 / sigma**2), grad


def excess_from_moments(d: torch.Tensor, m: torch.Tensor, sigma: float) -> torch.Tensor:
    """L(w) − L(w*) for every chain from D = P − T and a moment matrix: the loss without its
    constant S_ee/(2σ²), so nothing large cancels (exactly 0 at D = 0)."""
    sxx, sex, _ = _blocks(m, d.shape[2])
    ds = torch.matmul(d, sxx)
    if sex is not None:
        ds = ds - 2.0 * sex
    return (ds * d).sum(dim=(1, 2)) / (2.0 * sigma**2)
