"""Deep linear networks f(x) = W_M ⋯ W_1 x (bias-free), teacher-student.

Parameters: the flattened layer matrices W_1 (H_1×H_0), …, W_M (H_M×H_{M−1}),
each row-major, in that order. Data from ``case.seed``: x ~ N(0, I_{H_0}),
y = f*(x) + σ·ξ with ξ ~ N(0, I_{H_M}). Loss (mean per-sample NLL, the constant
½·H_M·log 2πσ² dropped): L_n(w) = mean ‖y − f_w(x)‖² / (2σ²).
noise_std = 0 (the default) gives noiseless labels; the loss is then scaled
with σ = 1, so L_n(w) = mean ‖f*(x) − f_w(x)‖²/2 is the empirical K_n(w) ≥ 0,
minimised exactly at the teacher. Noiseless labels are y = T x with T the
teacher's product map as the student computes it (``product_matrix`` at
w*), so L_n(w*) = 0 exactly, and the target holds no labels at all: the loss
reads only the moments of x (``moments.py``). (Labels computed layer by
layer through the data differ from T x by rounding, ~10⁻¹⁴; that residual
used to be kept as [x | e], doubling the data a protocol teacher holds.)

Why noiseless by default: the anchor w* is the teacher itself (a true
parameter). With σ > 0 it is not the empirical minimum of L_n, and even a
perfect sampler then reports about λ·(1 − 1/log n) (for a regular model the
gap nβ·(L_n(w*) − min L_n) is χ²_d/(2 log n), mean λ/log n: −9 % at n = 1e5),
which would be charged to the estimator. Set noise_std > 0 to study that. Two teachers, chosen so that the stated truth is the *local*
coefficient at w* (Aoyagi's formula gives the global coefficient, the value at
the most singular true parameter; at another factorisation of the same teacher
the local one can be larger):

- ``canonical``: every layer is the block [[I_r, 0], [0, 0]] (w* = 0 when
  r = 0). Truth: Aoyagi's formula (local = global value there).
- ``generic``: a point where the product map w ↦ W_M⋯W_1 is a submersion,
  so w* is a regular point of the fibre and λ = H_0·H_M / 2, m = 1.
  Built from seeded small-integer matrices scaled by powers of two (so the
  float64 w* is the integer construction exactly); the rank conditions are
  certified exactly by elimination modulo a prime (rank mod p ≤ rank over Q,
  so full rank mod p proves full rank).
- ``protocol``: the random teacher of the published deep-linear-network
  benchmark (Furman & Lau 2024): Xavier-normal layers (std √(2/(fan_in +
  fan_out))) from ``case.seed``, layer j keeping only its first ``keep[j]``
  inputs (when H_{j−1} ≤ H_j) or outputs (otherwise), −1 = the whole layer.
  The teacher is regenerated from the seed and this recipe, never stored.
  Truth: the local coefficient at that factorisation where
  ``truth/dln_local.py`` certifies it (its rules need only the sub-chain
  ranks, which for these Gaussian layers are the minima of the layer ranks
  with probability one); elsewhere the family refuses (``TruthError``) and a
  case states Aoyagi's global value as an asserted truth.

``inputs = "uniform"`` draws x uniform on [−10, 10]^{H_0} (the published
protocol's inputs) instead of N(0, I).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from fractions import Fraction
from typing import Optional, Sequence

import numpy as np
import torch

from ..errors import TruthError
from ..target import Rescaling, Target
from ..truth import Truth
from . import moments
from .base import Family, Field

VARIANTS = ("canonical", "generic", "protocol")
INPUTS = ("normal", "uniform")
UNIFORM_BOUND = 10.0  # inputs = "uniform": x ~ U[−10, 10] per coordinate (the published protocol)
_PROTOCOL_TAG = 0xD1A7EAC4  # stream of the protocol teacher's layers, apart from the data's
_PRIME = 2_147_483_647  # 2^31 − 1: products of two residues fit in int64


# --------------------------------------------------------------------------- shapes


def layer_shapes(widths: Sequence[int]) -> list[tuple[int, int]]:
    """Shapes (H_j, H_{j−1}) of W_1 … W_M."""
    return [(int(widths[j + 1]), int(widths[j])) for j in range(len(widths) - 1)]


def dln_dim(widths: Sequence[int]) -> int:
    return sum(a * b for a, b in layer_shapes(widths))


@lru_cache(maxsize=256)
def _layout(widths: tuple) -> tuple:
    """((rows, cols, offset), …) of the layers in a flat parameter vector."""
    out, start = [], 0
    for rows, cols in layer_shapes(widths):
        out.append((rows, cols, start))
        start += rows * cols
    return tuple(out)


def unflatten(w: torch.Tensor, widths: Sequence[int]) -> list[torch.Tensor]:
    """Views (chains, H_j, H_{j−1}) of the layers of a batch w: (chains, dim).

    One ``as_strided`` per layer (the samplers call this twice per step, and
    slicing plus reshaping costs twice as many tiny kernel launches)."""
    layout = _layout(tuple(int(h) for h in widths))
    chains = w.shape[0]
    if w.dim() == 2 and w.stride(1) == 1:
        s0, base = w.stride(0), w.storage_offset()
        return [w.as_strided((chains, r, c), (s0, c, 1), base + off) for r, c, off in layout]
    return [w[:, off : off + r * c].reshape(chains, r, c) for r, c, off in layout]


def product_matrix(w: torch.Tensor, widths: Sequence[int]) -> torch.Tensor:
    """W_M ⋯ W_1 for each chain: (chains, H_M, H_0)."""
    layers = unflatten(w, widths)
    p = layers[0]
    for layer in layers[1:]:
        p = torch.bmm(layer, p)
    return p


def goes_through(widths: Sequence[int], b: int) -> bool:
    """Whether :func:`forward` on b rows goes layer by layer through the batch (fewer
    multiplications than forming the product matrix first)."""
    shapes = layer_shapes(widths)
    h0, hm = int(widths[0]), int(widths[-1])
    cost_through = b * sum(r * c for r, c in shapes)
    cost_product = sum(r * c * h0 for r, c in shapes[1:]) + b * h0 * hm
    return not cost_product < cost_through


def forward(w: torch.Tensor, widths: Sequence[int], x: torch.Tensor) -> torch.Tensor:
    """f_w(x) for every chain: w (chains, dim), x (batch, H_0) -> (chains, batch, H_M).

    Takes whichever order of products needs fewer multiplications: layer by
    layer through the batch, or the product matrix first.
    """
    if not goes_through(widths, x.shape[0]):
        p = product_matrix(w, widths)  # (chains, H_M, H_0)
        return torch.matmul(x, p.transpose(1, 2))  # (chains, batch, H_M)
    layers = unflatten(w, widths)
    h = torch.matmul(x, layers[0].transpose(1, 2))  # (chains, batch, H_1)
    for layer in layers[1:]:
        h = torch.bmm(h, layer.transpose(1, 2))
    return h


# --------------------------------------------------------------------------- exact ranks


def rank_mod_p(m: np.ndarray, p: int = _PRIME) -> int:
    """Rank of an integer matrix over GF(p) (a lower bound of its rank over Q)."""
    a = np.array(m, dtype=np.int64) % p
    rows, cols = a.shape
    rank = 0
    for c in range(cols):
        if rank == rows:
            break
        nz = np.nonzero(a[rank:, c])[0]
        if nz.size == 0:
            continue
        piv = rank + int(nz[0])
        if piv != rank:
            a[[rank, piv]] = a[[piv, rank]]
        inv = pow(int(a[rank, c]), p - 2, p)
        a[rank] = (a[rank] * inv) % p
        others = np.nonzero(a[:, c])[0]
        others = others[others != rank]
        if others.size:
            f = a[others, c][:, None]
            a[others] = (a[others] - (f * a[rank][None, :]) % p) % p
        rank += 1
    return rank


def _matmul_mod(a: np.ndarray, b: np.ndarray, p: int = _PRIME) -> np.ndarray:
    """(a @ b) mod p for integer matrices, exactly in int64 (b split into 16-bit halves)."""
    a = np.asarray(a, dtype=np.int64) % p
    b = np.asarray(b, dtype=np.int64) % p
    if a.shape[1] >= 1 << 16:
        raise ValueError("inner dimension too large for exact int64 products")
    lo, hi = b & 0xFFFF, b >> 16  # a·lo terms < 2^47, at most 2^16 of them: no overflow
    r_lo = (a @ lo) % p
    r_hi = (a @ hi) % p
    return (r_lo + (r_hi << 16) % p) % p


# --------------------------------------------------------------------------- teachers


def canonical_layers(widths: Sequence[int], r: int) -> list[torch.Tensor]:
    """Every layer [[I_r, 0], [0, 0]] (all zero when r = 0)."""
    layers = []
    for rows, cols in layer_shapes(widths):
        m = torch.zeros(rows, cols, dtype=torch.float64)
        m[:r, :r] = torch.eye(r, dtype=torch.float64)
        layers.append(m)
    return layers


def generic_side(widths: Sequence[int]) -> Optional[str]:
    """Which regular-point construction exists: "input" (all hidden widths ≥ H_0:
    the first M−1 layers can have a product of rank H_0), "output" (all hidden
    widths ≥ H_M), or None."""
    hidden = list(widths[1:-1])
    if all(h >= widths[0] for h in hidden):
        return "input"
    if all(h >= widths[-1] for h in hidden):
        return "output"
    return None


def _scale_exp(fan_in: int, var: float) -> int:
    """k with 2^k ≈ sqrt(var · fan_in), so that Z / 2^k has entries of variance ≈ 1/fan_in."""
    return int(round(0.5 * np.log2(max(var * fan_in, 1.0))))


def generic_layers(widths: Sequence[int], r: int, seed: int, attempts: int = 20):
    """Integer teacher at a regular point of the product map, certified exactly.

    Returns (layers as float64 tensors, info dict). The layer that carries the
    rank deficiency (last for side "input", first for side "output") is
    B·C with inner dimension r; the other layers are random in {−2..2}.
    Raises TruthError when no such point exists for these widths.
    """
    widths = [int(h) for h in widths]
    side = generic_side(widths)
    if side is None:
        raise TruthError(
            f"dln generic variant: no regular point for widths {widths}: needs every hidden "
            f"width >= the input width {widths[0]} or >= the output width {widths[-1]}"
        )
    shapes = layer_shapes(widths)
    h0, hm = widths[0], widths[-1]
    rng = np.random.default_rng([int(seed), 0x5EED_D1A])
    for attempt in range(attempts):
        ints = [rng.integers(-2, 3, size=s).astype(np.int64) for s in shapes]
        defect = -1 if side == "input" else 0
        rows, cols = shapes[defect]
        bmat = rng.integers(-2, 3, size=(rows, r)).astype(np.int64)
        cmat = rng.integers(-2, 3, size=(r, cols)).astype(np.int64)
        ints[defect] = bmat @ cmat if r > 0 else np.zeros((rows, cols), dtype=np.int64)
        # certify: the product of the full layers has full column (row) rank,
        # and the whole product has rank exactly r (≤ r by construction).
        if side == "input":
            q = ints[0]
            for z in ints[1:-1]:
                q = _matmul_mod(z, q)
            full = rank_mod_p(q) == h0
        else:
            q = ints[-1]
            for z in reversed(ints[1:-1]):
                q = _matmul_mod(q, z)
            full = rank_mod_p(q) == hm
        prod = ints[0]
        for z in ints[1:]:
            prod = _matmul_mod(z, prod)
        if full and rank_mod_p(prod) == r:
            # scale by powers of two (exact in float64, ranks unchanged): entries of
            # {-2..2} have variance 2, those of B·C variance 4r
            layers = []
            for j, ((_, fan_in), z) in enumerate(zip(shapes, ints)):
                var = 4.0 * max(r, 1) if j == defect % len(shapes) else 2.0
                layers.append(torch.tensor(z, dtype=torch.float64) / float(2 ** _scale_exp(fan_in, var)))
            return layers, {"side": side, "attempt": attempt}
    raise TruthError(
        f"dln generic variant: could not certify a regular point for widths {widths}, rank {r} "
        f"in {attempts} attempts"
    )


def _reduces_inputs(rows: int, cols: int) -> bool:
    """The published rule: a layer is rank-reduced along its smaller side (inputs on a tie)."""
    return cols <= rows


def protocol_layer(widths: Sequence[int], keep: Sequence[int], seed: int, j: int) -> np.ndarray:
    """Layer j (from 0) of the protocol teacher: Xavier normal, then zeroed past keep[j]; its own
    stream, so any layer is made without the others (float64, H_{j+1} × H_j)."""
    rows, cols = int(widths[j + 1]), int(widths[j])
    rng = np.random.default_rng([int(seed), _PROTOCOL_TAG, j])
    m = rng.standard_normal((rows, cols)) * np.sqrt(2.0 / (rows + cols))
    k = int(keep[j])
    if k >= 0:
        if _reduces_inputs(rows, cols):
            m[:, k:] = 0.0
        else:
            m[k:, :] = 0.0
    return m


def protocol_layer_ranks(widths: Sequence[int], keep: Sequence[int]) -> list[int]:
    """Rank of each protocol layer (with probability one): min(H_j, H_{j−1}, keep[j])."""
    out = []
    for (rows, cols), k in zip(layer_shapes(widths), keep):
        full = min(rows, cols)
        out.append(full if k < 0 else min(full, int(k)))
    return out


def protocol_layers(widths: Sequence[int], keep: Sequence[int], seed: int) -> list[torch.Tensor]:
    return [torch.from_numpy(protocol_layer(widths, keep, seed, j)) for j in range(len(widths) - 1)]


def numerical_chain_ranks(layers: Sequence[np.ndarray], gap: float = 1e6) -> list[list[int]]:
    """R[i][j] = rank(W_j ⋯ W_{i+1}) from the float64 layers (SVD), refusing a rank whose singular
    values show no gap of ``gap`` between the kept and the dropped ones (checks the generic ranks)."""
    m = len(layers)
    widths = [layers[0].shape[1]] + [a.shape[0] for a in layers]
    table = [[0] * (m + 1) for _ in range(m + 1)]
    for i in range(m + 1):
        table[i][i] = widths[i]
        p = None
        for j in range(i + 1, m + 1):
            p = layers[j - 1] if p is None else layers[j - 1] @ p
            s = np.linalg.svd(p, compute_uv=False)
            top = s[0] if s.size else 0.0
            tol = max(p.shape) * np.finfo(np.float64).eps * top
            rank = int(np.sum(s > tol))
            if 0 < rank < s.size and s[rank - 1] < gap * max(s[rank], tol):
                raise TruthError(f"dln protocol teacher: rank of layers {i + 1}..{j} not resolved "
                                 f"(singular values {s[rank - 1]:.3g} and {s[rank]:.3g})")
            table[i][j] = rank
    return table


# --------------------------------------------------------------------------- target


@dataclass
class DLNTarget(Target):
    """Teacher-student deep linear network with Gaussian noise.

    The loss is evaluated from batch moments of [x | y − T x] (``moments.py``):
    the same number as the per-sample mean, at a per-chain cost independent of
    the batch size, and ``loss_and_grad`` back-propagates through the product
    W_M⋯W_1 by hand (no autograd graph in the samplers' hot loop).
    """

    widths: tuple = ()
    x: Optional[torch.Tensor] = None  # (num_data, H_0)
    y: Optional[torch.Tensor] = None  # (num_data, H_M); None for noiseless labels (y = T x)
    sigma: float = 1.0  # σ used in the loss scale 1/(2σ²)
    teacher: Optional[torch.Tensor] = None  # T = W*_M ⋯ W*_1, (H_M, H_0)
    z: Optional[torch.Tensor] = None  # [x | y − T x], or None for noiseless labels
    full_moments: Optional[torch.Tensor] = None  # zᵀz/n over all the data

    def _check(self, w: torch.Tensor) -> None:
        if w.dim() != 2 or w.shape[1] != self.dim:
            raise ValueError(f"w must have shape (chains, {self.dim}), got {tuple(w.shape)}")

    def _moments(self, idx, like: torch.Tensor) -> torch.Tensor:
        if self.x is None:
            raise RuntimeError(f"{self.id}: a target built without its data (DLNFamily.support_target) has no loss")
        m = self.full_moments if idx is None else moments.batch_moments(self.x, self.z, idx)
        return _like(m, like)

    def epoch_batches(self, perm: torch.Tensor, count: int) -> list:
        """The epoch's batch moments, computed at once (see ``moments.epoch_moments``)."""
        plan = moments.epoch_moments(self.x, self.z, perm, count)
        return plan if plan is not None else super().epoch_batches(perm, count)

    def _teacher(self, like: torch.Tensor) -> torch.Tensor:
        return _like(self.teacher, like)

    def loss(self, w: torch.Tensor, idx: Optional[torch.Tensor] = None) -> torch.Tensor:
        self._check(w)
        d = product_matrix(w, self.widths) - self._teacher(w)
        return moments.loss_from_moments(d, self._moments(idx, w), self.sigma)

    def full_loss(self, w: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
        return self.loss(w)  # the full-data moments are precomputed: no pass over the data

    def loss_and_grad(self, w: torch.Tensor, idx: Optional[torch.Tensor] = None):
        """(L, ∇L) by hand: prefixes Q_k = W_k⋯W_1, then G ← ∂L/∂P back through the layers,
        ∂L/∂W_k = (W_M⋯W_{k+1})ᵀ·G·Q_{k−1}ᵀ, written straight into the flat gradient."""
        loss, grad, _ = self._loss_grad(w, idx, excess=False)
        return loss, grad

    @property
    def has_full_excess_loss(self) -> bool:
        return True

    def full_excess_loss(self, w: torch.Tensor) -> torch.Tensor:
        self._check(w)
        d = product_matrix(w, self.widths) - self._teacher(w)
        return moments.excess_from_moments(d, self._moments(None, w), self.sigma)

    def loss_grad_and_excess(self, w: torch.Tensor, idx=None):
        """``loss_and_grad`` and the full-data excess from the same product W_M⋯W_1."""
        return self._loss_grad(w, idx, excess=True)

    def _loss_grad(self, w: torch.Tensor, idx, excess: bool):
        self._check(w)
        w = w.detach()
        layers = unflatten(w, self.widths)
        prefix = [layers[0]]
        for layer in layers[1:]:
            prefix.append(torch.bmm(layer, prefix[-1]))
        d = prefix[-1] - self._teacher(w)
        full = moments.excess_from_moments(d, self._moments(None, w), self.sigma) if excess else None
        loss, back = moments.loss_and_map_grad(d, self._moments(idx, w), self.sigma)
        grad = torch.empty_like(w)
        grads = unflatten(grad, self.widths)
        for k in range(len(layers) - 1, 0, -1):
            torch.bmm(back, prefix[k - 1].transpose(1, 2), out=grads[k])
            back = torch.bmm(layers[k].transpose(1, 2), back)
        grads[0].copy_(back)
        return loss, grad, full

    def rescalings(self) -> list:
        """Every hidden vertex i: (W_i, W_{i+1}) → (A·W_i, W_{i+1}·A⁻¹) leaves W_M⋯W_1, so the loss, unchanged."""
        layout = _layout(tuple(int(h) for h in self.widths))
        return [Rescaling(width=rows, fan_in=cols, fan_out=layout[i + 1][0], in_offset=offset,
                          out_offset=layout[i + 1][2])
                for i, (rows, cols, offset) in enumerate(layout[:-1])]

    def labels(self, idx: Optional[torch.Tensor] = None) -> torch.Tensor:
        """y of the rows idx (all rows when None): the stored noisy labels, or T x for noiseless
        ones (computed on demand, never held)."""
        x = self.x if idx is None else self.x.index_select(0, idx)
        if self.y is None:
            return x @ self.teacher.to(x.dtype).T
        return self.y if idx is None else self.y.index_select(0, idx)

    def product(self, w: torch.Tensor) -> torch.Tensor:
        """W_M ⋯ W_1 for each chain (chains, H_M, H_0)."""
        return product_matrix(w, self.widths)


def _like(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """t on like's device and dtype (no call at all when it already is: this runs every step)."""
    if t.dtype == like.dtype and t.device == like.device:
        return t
    return t.to(device=like.device, dtype=like.dtype)


def _sigma(case, default: float) -> tuple[float, float]:
    """(σ of the label noise, σ of the loss scale)."""
    s = default if case.noise_std is None else float(case.noise_std)
    if s < 0 or not np.isfinite(s):
        raise ValueError(f"noise_std must be >= 0, got {s}")
    return s, (s if s > 0 else 1.0)


def data_bytes(n: int, widths: Sequence[int], noisy: bool) -> int:
    """Bytes of the float64 data a DLN target holds: x; with noisy labels also y and [x | e]."""
    h0, hm = int(widths[0]), int(widths[-1])
    return 8 * n * (2 * (h0 + hm) if noisy else h0)


DTYPE_BYTES = {"float32": 4, "float64": 8}


def memory_terms(n: int, widths: Sequence[int], noisy: bool, batch_size: Optional[int] = None,
                 dtype: str = "float64", batch_draw: str = "epoch", hessian_points: int = 4096) -> dict:
    """Bytes of the copies of the data a DLN run holds, by term (read off ``build_dln_target``,
    the SG-MCMC driver and ``moments.epoch_moments``); k = H_0 (+ H_M with noisy labels), the
    width of the rows a batch moment is taken of, s = 4 or 8 bytes for ``dtype``.

    - ``data``: x in float64, and with noisy labels y and [x | e] (:func:`data_bytes`), held by
      the target for the whole run (noiseless labels are T x: none are held);
    - ``build`` (noisy labels only): the most the build holds beyond the data: the residual
      e = y − T x (n × H_M, with its boolean mask e ≠ 0 while it is tested, n × H_M bytes, before
      [x | e] exists), or the two widest consecutive activations n × (H_j + H_{j+1}) beside x
      when the labels are computed layer by layer (:func:`goes_through`); the label noise
      (n × H_M) is held only before e, as large;
    - ``rule``: the step-size rule's fixed subset (when n > ``hessian_points``): a permutation of
      all n indices (int64, freed at once), then the subset's rows (``hessian_points`` × k,
      float64); bounded by their sum;
    - ``sampling copy``: the run's own copy of the data in float32 (the data at 4 bytes; none in
      float64, where the run samples on the target itself);
    - ``epoch moments`` (minibatches, ``batch_size`` < n): while an epoch's batch moments are
      made, the index permutation (n' int64, n' = n for 'epoch' draws, count × b for 'iid'),
      the gathered rows (n' × k) and the count = ceil(n / b) moment matrices (count × k × k,
      at most n' × k; the previous epoch's are released first). A target whose k exceeds the
      batch length makes no epoch plan: then the permutation and one batch's rows.

    The loop's per-step batches (the trace, the heat's k minibatches, the Hessian subset) are
    at most a batch_size or hessian_points rows of k, below the epoch moments' n' rows. The
    chains' copies and the traces are :func:`llcbench.limits.run_size_bytes`.
    """
    h0, hm = int(widths[0]), int(widths[-1])
    k = h0 + hm if noisy else h0
    s = DTYPE_BYTES[dtype]
    data = data_bytes(n, widths, noisy)
    hidden = [int(h) for h in widths[1:]]
    build = max(
        # the labels layer by layer: x and two consecutive activations
        8 * n * (h0 + max(a + b for a, b in zip(hidden, hidden[1:]))) if goes_through(widths, n) else 0,
        8 * n * (h0 + 2 * hm) + n * hm,  # x, y, e and the boolean copy e ≠ 0 that e.any() reads
        8 * n * (2 * h0 + 3 * hm),  # x, y, e and [x | e]
    ) - data if noisy else 0  # noiseless: x is all the build draws
    rule = 8 * n + 8 * int(hessian_points) * k if n > hessian_points else 0
    copy = data // 2 if s == 4 else 0
    epoch = 0
    if batch_size is not None and 0 < batch_size < n:
        count = -(-n // batch_size)
        rows = n if batch_draw == "epoch" else count * batch_size
        epoch = 8 * rows + (s * rows * k + s * count * k * k if k <= rows // count else s * batch_size * k)
    return {"data": data, "build": build, "rule": rule, "sampling copy": copy, "epoch moments": epoch}


def run_data_bytes(n: int, widths: Sequence[int], noisy: bool, batch_size: Optional[int] = None,
                   dtype: str = "float64", batch_draw: str = "epoch", hessian_points: int = 4096) -> int:
    """The peak of :func:`memory_terms`: data + the largest of build, rule and sampling copy +
    epoch moments (the build's transients are gone before the rule runs, and the rule's before
    the sampling copy is made). ``batch_size`` None: full-batch (no epoch moments)."""
    t = memory_terms(n, widths, noisy, batch_size, dtype, batch_draw, hessian_points)
    return t["data"] + max(t["build"], t["rule"], t["sampling copy"] + t["epoch moments"])


def check_data_memory(case, widths: Sequence[int], noisy: bool) -> None:
    """Refuse, before allocating, a build whose data (and their transients) would not fit in half
    the memory available. A run's own copies are checked with its config (:func:`config_data_bytes`)."""
    from .. import limits
    from ..errors import UserError

    t = memory_terms(int(case.n), widths, noisy)
    need = t["data"] + t["build"] + 8 * 3 * dln_dim(widths)
    free = limits.available_memory()
    if limits.enforced() and free is not None and need > limits.MEMORY_FRACTION * free:
        raise UserError(f"{case.file}: case '{case.id}': n = {case.n:,} data points at widths H_0 = {widths[0]}, "
                        f"H_M = {widths[-1]} and d = {dln_dim(widths):,} need ≈ {need / 2**30:.3g} GiB, more than half "
                        f"the memory available ({free / 2**30:.3g} GiB) (docs/limits.md; --force-size if you "
                        "really mean it)")


def config_data_bytes(case, widths: Sequence[int], default_noise: float, config, device: str = "cpu") -> int:
    """:func:`run_data_bytes` of a case under an estimator's config: its batch_size (runs without
    one, or with batch_size >= n, use the full data), dtype (float64 unless it says) and batch_draw.
    On another device than the CPU the run's copies are made there: the host holds the data and
    their build."""
    n = int(case.n)
    if device != "cpu":
        t = memory_terms(n, widths, _sigma(case, default_noise)[0] > 0)
        return t["data"] + t["build"]
    batch = getattr(config, "batch_size", None)
    dtype = getattr(config, "dtype", "float64")
    return run_data_bytes(n, widths, _sigma(case, default_noise)[0] > 0,
                          batch_size=batch if isinstance(batch, int) and not isinstance(batch, bool) else None,
                          dtype=dtype if dtype in DTYPE_BYTES else "float32",
                          batch_draw=getattr(config, "batch_draw", "epoch"),
                          hessian_points=int(getattr(config, "hessian_points", 4096) or 4096))


def build_dln_target(case, family: str, widths: Sequence[int], r: int, variant: str, truth: Truth,
                     default_noise: float, keep: Sequence[int] = (), inputs: str = "normal",
                     data: bool = True) -> DLNTarget:
    """The target of a case; ``data=False``: everything but the data (w*, the teacher, truth, info),
    what an estimator's ``supports`` reads (:meth:`DLNFamily.support_target`); its losses refuse."""
    widths = tuple(int(h) for h in widths)
    noise, scale = _sigma(case, default_noise)
    if data:
        check_data_memory(case, widths, noise > 0)
    x_text = "x ~ N(0, I)" if inputs == "normal" else f"x ~ U[-{UNIFORM_BOUND:g}, {UNIFORM_BOUND:g}]^H_0"
    info = {"widths": list(widths), "rank": r, "variant": variant, "noise_std": noise,
            "loss_sigma": scale, "seed": case.seed,
            "data": f"{x_text}, y = f*(x) + noise_std·N(0, I); loss mean ||y - f(x)||^2/(2σ^2)"}
    if variant == "canonical":
        layers = canonical_layers(widths, r)
    elif variant == "protocol":
        layers = protocol_layers(widths, keep, case.seed)
        info["keep"] = list(keep)
    else:
        layers, extra = generic_layers(widths, r, case.seed)
        info.update(extra)
    w_star = torch.cat([m.reshape(-1) for m in layers])
    n = int(case.n)
    if not data:
        return DLNTarget(id=case.id, family=family, dim=dln_dim(widths), n=n, w_star=w_star, truth=truth,
                         num_data=n, info=info, widths=widths, sigma=scale,
                         teacher=product_matrix(w_star[None], widths)[0])
    gen = torch.Generator().manual_seed(int(case.seed))
    if inputs == "uniform":
        x = torch.rand(n, widths[0], generator=gen, dtype=torch.float64).mul_(2 * UNIFORM_BOUND).sub_(UNIFORM_BOUND)
    else:
        x = torch.randn(n, widths[0], generator=gen, dtype=torch.float64)
    teacher = product_matrix(w_star[None], widths)[0]
    y = z = None  # noiseless: y = T x, e ≡ 0, nothing held beyond x
    if noise > 0:
        y = forward(w_star[None], widths, x)[0]
        y.add_(torch.randn(n, widths[-1], generator=gen, dtype=torch.float64).mul_(noise))  # in place: one n × H_M block less
        z = moments.residual_data(x, y, teacher)
    return DLNTarget(
        id=case.id, family=family, dim=dln_dim(widths), n=n, w_star=w_star, truth=truth,
        num_data=n, info=info, widths=widths, x=x, y=y, sigma=scale, teacher=teacher, z=z,
        full_moments=moments.batch_moments(x, z, None),
    )


# --------------------------------------------------------------------------- family


def _check_widths(value) -> None:
    if len(value) < 3:
        raise ValueError("needs at least 3 widths (input, hidden..., output)")
    if any((not isinstance(h, int)) or h < 1 for h in value):
        raise ValueError("widths must be integers >= 1")


def _check_rank(value) -> None:
    if not isinstance(value, int) or value < 0:
        raise ValueError("rank must be an integer >= 0")


def _check_variant(value) -> None:
    if value not in VARIANTS:
        raise ValueError(f"must be one of {', '.join(VARIANTS)}")


def _check_keep(value) -> None:
    if any(k < -1 for k in value):
        raise ValueError("entries must be -1 (the whole layer) or a count >= 0")


def _check_inputs(value) -> None:
    if value not in INPUTS:
        raise ValueError(f"must be one of {', '.join(INPUTS)}")


def canonical_truth(widths: Sequence[int], r: int) -> Truth:
    from ..truth.dln import dln_truth

    t = dln_truth(list(widths), r)
    return Truth(
        t.lam, t.multiplicity, "exact",
        f"{t.source}; anchor: canonical block factorisation, where the local value equals the global one",
    )


def generic_truth(widths: Sequence[int], r: int) -> Truth:
    side = generic_side(widths)
    if side is None:
        raise TruthError(
            f"dln generic variant: no regular point for widths {list(widths)}: needs every hidden "
            f"width >= the input width or >= the output width"
        )
    h0, hm = int(widths[0]), int(widths[-1])
    which = "W_{M-1}...W_1 has rank H_0" if side == "input" else "W_M...W_2 has rank H_M"
    return Truth(
        Fraction(h0 * hm, 2), 1, "exact",
        f"regular point: {which} at w*, so w -> W_M...W_1 is a submersion and the fibre has "
        f"codimension H_0*H_M = {h0 * hm}; lambda = {h0}*{hm}/2, m = 1",
    )


def protocol_truth(widths: Sequence[int], keep: Sequence[int]) -> Truth:
    """The local (λ, m) at the protocol teacher (``truth/dln_local.py``); TruthError where not certified."""
    from ..truth.dln_local import generic_chain_ranks, local_truth

    ranks = generic_chain_ranks(widths, protocol_layer_ranks(widths, keep))
    t = local_truth(widths, ranks)
    return Truth(t.lam, t.multiplicity, t.kind,
                 f"{t.source}; sub-chain ranks: minima of the layer ranks (Gaussian layers, probability one)")


class DLNFamily(Family):
    """Bias-free deep linear network, teacher of rank r, at a chosen factorisation."""

    name = "dln"
    default_n = 100_000
    default_noise_std = 0.0  # noiseless labels: see the module docstring
    fields = {
        "widths": Field(type="int_list", check=_check_widths,
                        doc="layer widths H_0 (input), H_1, ..., H_M (output); at least 3"),
        "rank": Field(type="int", check=_check_rank,
                      doc="rank r of the teacher's product map, 0 <= r <= min(widths)"),
        "variant": Field(type="str", default="canonical", check=_check_variant,
                         doc="teacher factorisation: 'canonical' (identity blocks, Aoyagi's value), "
                             "'generic' (a regular point, lambda = H_0*H_M/2) or 'protocol' (the published "
                             "benchmark's random Xavier-normal teacher from seed and keep; local truth)"),
        "keep": Field(type="int_list", default=[], check=_check_keep, key_default=True,
                      doc="variant 'protocol': per layer, how many leading inputs (H_{j-1} <= H_j) or outputs "
                          "(otherwise) the layer keeps, the rest zeroed; -1 = the whole layer"),
        "inputs": Field(type="str", default="normal", check=_check_inputs, key_default=True,
                        doc="input distribution: 'normal' (x ~ N(0, I)) or 'uniform' (x ~ U[-10, 10] per "
                            "coordinate, the published protocol's)"),
    }

    def _spec(self, params: dict) -> tuple[list[int], int, str]:
        return [int(h) for h in params["widths"]], int(params["rank"]), params.get("variant", "canonical")

    def check(self, params: dict) -> None:
        widths, r, variant = self._spec(params)
        keep = list(params.get("keep") or [])
        if variant == "protocol":
            shapes = layer_shapes(widths)
            if len(keep) != len(shapes):
                raise ValueError(f"keep: variant 'protocol' needs one entry per layer ({len(shapes)}), got {len(keep)}")
            for j, ((rows, cols), k) in enumerate(zip(shapes, keep)):
                if k > min(rows, cols):
                    raise ValueError(f"keep: entry {j + 1} is {k}, above the layer's smaller side {min(rows, cols)}")
            product_rank = min(protocol_layer_ranks(widths, keep))
            if r != product_rank:
                raise ValueError(f"rank: the protocol teacher's product has rank {product_rank} (the smallest layer "
                                 f"rank), got {r}")
        elif keep:
            raise ValueError(f"keep: only variant 'protocol' takes it (variant is {variant!r})")
        if r > min(widths):
            raise ValueError(f"rank: must be <= min(widths) = {min(widths)}, got {r}")
        if variant == "generic" and generic_side(widths) is None:
            raise ValueError(
                "variant: 'generic' needs every hidden width >= the input width or >= the output width "
                f"(widths {widths} have no regular point)"
            )

    def dim(self, params: dict) -> int:
        return dln_dim(self._spec(params)[0])

    def run_data_bytes(self, case, config, device: str = "cpu") -> int:
        return config_data_bytes(case, self._spec(case.params)[0], self.default_noise_std, config, device)

    def truth(self, params: dict) -> Truth:
        widths, r, variant = self._spec(params)
        if r > min(widths):
            raise TruthError(f"dln: rank {r} exceeds min(widths) = {min(widths)}")
        if variant == "generic":
            return generic_truth(widths, r)
        if variant == "protocol":
            return protocol_truth(widths, params["keep"])
        return canonical_truth(widths, r)

    def target(self, case, data: bool = True) -> DLNTarget:
        self.check(case.params)
        widths, r, variant = self._spec(case.params)
        return build_dln_target(case, self.name, widths, r, variant, self.truth(case.params),
                                self.default_noise_std, keep=case.params.get("keep") or (),
                                inputs=case.params.get("inputs", "normal"), data=data)

    def support_target(self, case) -> DLNTarget:
        """The target without its data: n × H_0 numbers (GiBs on the scale tiers) that no estimator's
        ``supports`` reads."""
        return self.target(case, data=False)
