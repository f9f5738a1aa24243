"""Reduced-rank regression: Aoyagi & Watanabe 2005, *Neural Networks* 18(7).

y = B A x with A: H×M, B: N×H (M inputs, H hidden, N outputs), true rank r.
The four cases (mutually exclusive) of their main theorem:

1. N+r ≤ M+H, M+r ≤ N+H, H+r ≤ M+N: with
   B0 = 2(H+r)(M+N) − (M−N)² − (H+r)²,
   λ = B0/8, m = 1 if M+H+N+r is even; λ = (B0+1)/8, m = 2 if odd.
2. M+H < N+r: λ = (HM − Hr + Nr)/2, m = 1.
3. N+H < M+r: λ = (HN − Hr + Mr)/2, m = 1.
4. M+N < H+r: λ = MN/2, m = 1.
"""

from __future__ import annotations

from fractions import Fraction

from ..errors import TruthError
from . import Truth

__all__ = ["rrr_truth"]

SOURCE = "Aoyagi & Watanabe 2005, Neural Networks 18(7), reduced-rank regression"


def _check_int(name: str, x, minimum: int) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise TruthError(f"reduced-rank regression: {name} must be an integer, got {x!r}")
    if x < minimum:
        raise TruthError(f"reduced-rank regression: {name} = {x} must be ≥ {minimum}")
    return x


def rrr_truth(M: int, H: int, N: int, r: int) -> Truth:
    """Global (λ, m) of reduced-rank regression (Aoyagi & Watanabe 2005).

    M inputs, H hidden units (inner dimension), N outputs, r = rank of the
    true map, 0 ≤ r ≤ min(M, H, N). The source string names the case.
    """
    M = _check_int("M (inputs)", M, 1)
    H = _check_int("H (hidden)", H, 1)
    N = _check_int("N (outputs)", N, 1)
    r = _check_int("r (true rank)", r, 0)
    if r > min(M, H, N):
        raise TruthError(f"reduced-rank regression: true rank r = {r} exceeds min(M, H, N) = {min(M, H, N)}")
    dims = f"M={M}, H={H}, N={N}, r={r}"
    if N + r <= M + H and M + r <= N + H and H + r <= M + N:
        B0 = 2 * (H + r) * (M + N) - (M - N) ** 2 - (H + r) ** 2
        if (M + H + N + r) % 2 == 0:
            lam, m, case = Fraction(B0, 8), 1, "case 1 (M+H+N+r even)"
        else:
            lam, m, case = Fraction(B0 + 1, 8), 2, "case 1 (M+H+N+r odd)"
    elif M + H < N + r:
        lam, m, case = Fraction(H * M - H * r + N * r, 2), 1, "case 2 (M+H < N+r)"
    elif N + H < M + r:
        lam, m, case = Fraction(H * N - H * r + M * r, 2), 1, "case 3 (N+H < M+r)"
    elif M + N < H + r:
        lam, m, case = Fraction(M * N, 2), 1, "case 4 (M+N < H+r)"
    else:  # pragma: no cover - the four cases are exhaustive
        raise TruthError(f"reduced-rank regression {dims}: no case of Aoyagi & Watanabe 2005 applies")
    return Truth(lam=lam, multiplicity=m, kind="exact", source=f"{SOURCE}, {case}, {dims}")
