"""Deep linear networks: Aoyagi 2024, *Neural Networks* 172:106132.

Widths H_0 (input), H_1, …, H_M (output); r = rank of the true product map.
Δ_j = H_j − r. The unique Σ ⊆ {0..M}, |Σ| = ℓ+1, ℓ ≥ 1, with
(i) max_{j∈Σ} Δ_j < min_{k∉Σ} Δ_k, (ii) Σ_{j∈Σ} Δ_j ≥ ℓ·max_{j∈Σ} Δ_j,
(iii) Σ_{j∈Σ} Δ_j < ℓ·min_{k∉Σ} Δ_k ((i), (iii) void when Σ is everything)
is found by sorting Δ ascending and taking the first prefix of size 2, 3, …
that satisfies all three. With S = Σ_{j∈Σ} Δ_j, M̄ = ⌈S/ℓ⌉, a = S − (M̄−1)ℓ:

λ = (−r² + r(H_0 + H_M))/2 + a(ℓ−a)/(4ℓ) − ℓ(ℓ−1)/4·(S/ℓ)² + ½ Σ_{i<j∈Σ} Δ_iΔ_j
m = a(ℓ−a) + 1

(The first term is −r², not +r²: one public re-implementation has that sign
error.) For three widths this equals the reduced-rank formula of Aoyagi &
Watanabe 2005; for two widths it reduces to the regular value H_0·H_1/2.
This is the GLOBAL coefficient (the most singular true parameter), which is
the local one only at suitable factorisations of the teacher: at other true
parameters the local coefficient can be larger (widths (2,2,2), r = 0: 3/2 at
w* = 0 but 2 at A = 0, B = I, where locally K ≈ ‖A'‖²).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence

from ..errors import TruthError
from . import Truth

__all__ = ["dln_truth"]

SOURCE = "Aoyagi 2024, Neural Networks 172:106132, deep linear network"


def _sigma(delta: list[int]):
    """Indices of Σ (sorted ascending by Δ) and ℓ, by the prefix rule."""
    order = sorted(range(len(delta)), key=lambda j: delta[j])
    for size in range(2, len(delta) + 1):
        inside = [delta[j] for j in order[:size]]
        outside = [delta[j] for j in order[size:]]
        ell = size - 1
        S = sum(inside)
        if outside and not max(inside) < min(outside):
            continue
        if not S >= ell * max(inside):
            continue
        if outside and not S < ell * min(outside):
            continue
        return order[:size], ell
    return None, None


def dln_truth(widths: Sequence[int], r: int) -> Truth:
    """Global (λ, m) of a deep linear network (Aoyagi 2024).

    widths: H_0 (input) … H_M (output), at least two positive integers;
    r: rank of the true product map, 0 ≤ r ≤ min(widths).
    """
    try:
        H = list(widths)
    except TypeError:
        raise TruthError(f"deep linear network: widths must be a sequence of integers, got {widths!r}") from None
    if len(H) < 2:
        raise TruthError(f"deep linear network: need at least 2 widths (input and output), got {len(H)}")
    for j, h in enumerate(H):
        if isinstance(h, bool) or not isinstance(h, int) or h < 1:
            raise TruthError(f"deep linear network: width H_{j} must be a positive integer, got {h!r}")
    if isinstance(r, bool) or not isinstance(r, int) or r < 0:
        raise TruthError(f"deep linear network: true rank r must be a non-negative integer, got {r!r}")
    if r > min(H):
        raise TruthError(f"deep linear network: true rank r = {r} exceeds the narrowest width {min(H)}")
    delta = [h - r for h in H]
    sigma, ell = _sigma(delta)
    if sigma is None:  # the theorem guarantees existence; kept as a guard
        raise TruthError(f"deep linear network {H}, r = {r}: no subset Σ satisfies Aoyagi's conditions")
    ds = [delta[j] for j in sigma]
    S = sum(ds)
    Mbar = -(-S // ell)  # ⌈S/ℓ⌉
    a = S - (Mbar - 1) * ell
    pair_sum = sum(ds[i] * ds[k] for i in range(len(ds)) for k in range(i + 1, len(ds)))
    lam = (
        Fraction(-r * r + r * (H[0] + H[-1]), 2)
        + Fraction(a * (ell - a), 4 * ell)
        - Fraction(ell * (ell - 1), 4) * Fraction(S, ell) ** 2
        + Fraction(pair_sum, 2)
    )
    m = a * (ell - a) + 1
    src = (
        f"{SOURCE}, widths {tuple(H)}, r = {r}: Σ = {{{', '.join(str(j) for j in sorted(sigma))}}}, "
        f"ℓ = {ell}, S = {S}, a = {a} (global coefficient)"
    )
    return Truth(lam=lam, multiplicity=m, kind="exact", source=src)
