"""Local learning coefficient of a deep linear network at a given factorisation of its teacher.

Aoyagi's formula (``truth/dln.py``) gives the *global* coefficient of
K(w) = ‖W_M⋯W_1 − T‖², the value at the most singular true parameter. At a
true parameter w* = (W*_1, …, W*_M) the local coefficient can be larger. It
depends on w* only through the ranks of its sub-chains,

    R[i][j] = rank(W*_j ⋯ W*_{i+1})   (i < j),   R[i][i] = H_i,

because these determine the chain up to the change of bases
W_j ↦ A_j W_j A_{j−1}^{-1} (A_j invertible; the interval decomposition of a
representation of the linearly oriented quiver A_{M+1}, Gabriel 1972). That
change is linear in w and multiplies K by factors between two positive
constants, so it keeps the local (λ, m) (``local_truth``).

The rules, each exact:

1. **Canonical class** (Aoyagi 2024). Every layer has the rank r of the product:
   then the chain is [[I_r, 0], [0, 0]] in every layer after a change of bases,
   and the local value is Aoyagi's (global) one for these widths and r.
2. **Absorbing a full-rank layer.** If W*_j is injective (rank H_{j−1}), choose
   g(W_j) = [W_j | C]^{-1} (C a fixed complement), analytic near W*_j, with
   g W_j = [I; 0]. The coordinates (W_j, W_{j+1}·g^{-1}) make the product
   independent of W_j and of the last H_j − H_{j−1} columns of W_{j+1}·g^{-1}:
   K is that of the chain with vertex j removed, whose layer is the first
   H_{j−1} columns of W_{j+1}·g^{-1} (= W*_{j+1}W*_j at w*). A surjective
   W*_j (rank H_j) removes vertex j−1 the same way, transposed. Only hidden
   vertices go (j < M, resp. j > 1): a g acting on the inputs or outputs
   would move the teacher T with w (an injective last layer constrains
   where its image may turn), so those layers stay.
   The free coordinates add nothing to (λ, m); the sub-chain ranks of the
   shorter chain are those of the original without the removed vertex.
3. **One layer** (M = 1): K = ‖W − T‖², λ = H_0·H_1/2, m = 1.
4. **Two layers** (M = 2) with a = R01 − R02 = 0 (no input direction that
   W*_1 keeps and W*_2 kills) or, transposed, b = R12 − R02 = 0. With a = 0
   and r = R02: in bases where W*_2 = [[I_{R12}, 0], [0, 0]], normalise the
   top R12 rows of W_2 to [I 0] by g ∈ GL(H_1) acting on the hidden layer (rule 2's
   device). The product is [[Q], [Y·W_1']] with Q the top R12 rows of W_1'
   (free coordinates: Q − T_top is regular), and on Q = T_top the bottom
   block is [Y_r + Y_c·W'_{c,r}, Y_c·W'_{c,rest}]: a regular block of
   (H_2 − R12)·r coordinates and a product Y_c·W'_c of free matrices at 0
   through the c_1 = H_1 − R12 hidden directions W*_2 kills. Equal ideals
   give equal (λ, m), so

       λ = [R12·H_0 + (H_2 − R12)·r]/2 + λ_0(H_0 − r, H_1 − R12, H_2 − R12),

   with λ_0 the reduced-rank-regression coefficient at 0 (Aoyagi & Watanabe
   2005; Aoyagi's formula with r = 0, and 0 if a width is 0), m its
   multiplicity. At the canonical point (R01 = R12 = r) this is the
   reduced-rank formula itself (checked in tests/test_truth_dln_local.py).

Anything else (three or more layers, none of full rank, layer ranks not all
equal) is not certified here: ``local_truth`` raises ``TruthError`` saying so,
with the bounds max(global, rank dP/2) ≤ λ_local (the global value is the
minimum of the local ones; rank dP/2 is the Hessian's rank over two).

The rank of the product map's differential at w* follows from the same
ranks: dP(δ) = Σ_k L_k δ_k R_k with L_k = W*_M⋯W*_{k+1}, R_k = W*_{k−1}⋯W*_1;
the images im L_k grow and the row spaces of R_k shrink with k, so their
tensor products form a staircase of area Σ_k (u_k − u_{k−1})·v_k, with
u_k = rank L_k (u_M = H_M, u_0 = 0), v_k = rank R_k (v_1 = H_0).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence

from ..errors import TruthError
from . import Truth
from .dln import dln_truth

__all__ = ["generic_chain_ranks", "local_truth", "differential_rank", "reduce_chain"]


def generic_chain_ranks(widths: Sequence[int], layer_ranks: Sequence[int]) -> list[list[int]]:
    """R[i][j] for a chain in general position: rank of a sub-chain = the smallest layer rank in it.

    True with probability one for layers drawn with independent Gaussian entries and then
    restricted to leading rows or columns (leading coordinate projections compose to the
    smaller one, and a Gaussian matrix's image meets a fixed kernel generically)."""
    h = [int(x) for x in widths]
    r = [int(x) for x in layer_ranks]
    m = len(h) - 1
    if len(r) != m:
        raise ValueError(f"{len(r)} layer ranks for {m} layers")
    table = [[0] * (m + 1) for _ in range(m + 1)]
    for i in range(m + 1):
        table[i][i] = h[i]
        low = None
        for j in range(i + 1, m + 1):
            low = r[j - 1] if low is None else min(low, r[j - 1])
            table[i][j] = low
    return table


def differential_rank(widths: Sequence[int], ranks: Sequence[Sequence[int]]) -> int:
    """rank of dP at w* (the staircase area in the module docstring)."""
    m = len(widths) - 1
    total, prev_u = 0, 0
    for k in range(1, m + 1):
        u = ranks[k][m] if k < m else widths[m]
        v = ranks[0][k - 1] if k > 1 else widths[0]
        total += (u - prev_u) * v
        prev_u = u
    return total


def _drop(widths: list[int], ranks: list[list[int]], v: int) -> tuple[list[int], list[list[int]]]:
    keep = [i for i in range(len(widths)) if i != v]
    return [widths[i] for i in keep], [[ranks[i][j] for j in keep] for i in keep]


def reduce_chain(widths: Sequence[int], ranks: Sequence[Sequence[int]]):
    """Rule 2 until no layer has full rank (or one layer is left): (widths, ranks, removed vertices)."""
    w = [int(x) for x in widths]
    t = [list(row) for row in ranks]
    removed: list[int] = []
    labels = list(range(len(w)))
    while len(w) > 2:
        last = len(w) - 1
        for j in range(1, last + 1):
            if j < last and t[j - 1][j] == w[j - 1]:  # injective layer j: hidden vertex j goes
                v = j
                break
            if j > 1 and t[j - 1][j] == w[j]:  # surjective layer j: hidden vertex j − 1 goes
                v = j - 1
                break
        else:
            break
        removed.append(labels.pop(v))
        w, t = _drop(w, t, v)
    return w, t, removed


def _rrr_at_zero(c0: int, c1: int, c2: int) -> tuple[Fraction, int]:
    if min(c0, c1, c2) == 0:
        return Fraction(0), 1
    t = dln_truth([c0, c1, c2], 0)
    return t.lam, t.multiplicity


def _two_layers(h: list[int], t: list[list[int]]) -> tuple[Fraction, int] | None:
    r, r01, r12 = t[0][2], t[0][1], t[1][2]
    if r01 == r:  # a = 0
        h0, h1, h2, s = h[0], h[1], h[2], r12
    elif r12 == r:  # b = 0: the transposed chain
        h0, h1, h2, s = h[2], h[1], h[0], r01
    else:
        return None
    lam0, m0 = _rrr_at_zero(h0 - r, h1 - s, h2 - s)
    return Fraction(s * h0 + (h2 - s) * r, 2) + lam0, m0


def local_truth(widths: Sequence[int], ranks: Sequence[Sequence[int]]) -> Truth:
    """(λ, m) at w* from its sub-chain ranks R (see the module docstring); TruthError where no rule applies."""
    h = [int(x) for x in widths]
    m_layers = len(h) - 1
    r = ranks[0][m_layers]
    glob = dln_truth(h, r)
    rw, rt, removed = reduce_chain(h, ranks)
    steps = f"full-rank layers absorbed (vertices {removed} removed): widths {tuple(rw)}" if removed else \
        "no full-rank layer"
    k = len(rw) - 1
    layer_ranks = [rt[j - 1][j] for j in range(1, k + 1)]
    if k == 1:
        lam, mult = Fraction(rw[0] * rw[1], 2), 1
        rule = "one layer left: regular, lambda = H_0*H_1/2"
    elif all(x == r for x in layer_ranks):
        t = dln_truth(rw, r)
        lam, mult = t.lam, t.multiplicity
        rule = f"canonical class: Aoyagi 2024 at widths {tuple(rw)}, r = {r}"
    elif k == 2 and (two := _two_layers(rw, rt)) is not None:
        lam, mult = two
        rule = ("two layers, one side without kept-then-killed directions: regular block plus "
                "reduced-rank regression at 0 (Aoyagi & Watanabe 2005)")
    else:
        low = max(glob.lam, Fraction(differential_rank(h, ranks), 2))
        raise TruthError(
            f"dln at this factorisation: local lambda not certified ({steps}; layer ranks {layer_ranks} "
            f"of {k} layers, not all equal to r = {r}); bounds {low} <= lambda_local, global (Aoyagi) "
            f"{glob.lam}")
    low = max(glob.lam, Fraction(differential_rank(h, ranks), 2))
    if lam < low:  # both bounds are theorems: a value below them is a bug here, never a truth
        raise AssertionError(f"dln_local: lambda {lam} below its lower bound {low} for widths {h}")
    return Truth(lam, mult, "exact",
                 f"local coefficient at the teacher's factorisation (llcbench.truth.dln_local): {steps}; {rule}; "
                 f"global value (Aoyagi 2024) {glob.lam}")


def local_bounds(widths: Sequence[int], ranks: Sequence[Sequence[int]]) -> tuple[Fraction, Fraction]:
    """(global λ, lower bound max(global, rank dP/2)) for any chain."""
    h = [int(x) for x in widths]
    glob = dln_truth(h, ranks[0][len(h) - 1]).lam
    return glob, max(glob, Fraction(differential_rank(h, ranks), 2))
