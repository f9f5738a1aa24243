"""Regular models: λ = d/2, m = 1.

Source: Watanabe 2009, *Algebraic Geometry and Statistical Learning Theory*
(regular case: the Fisher information at the point is non-singular).
"""

from __future__ import annotations

from fractions import Fraction

from ..errors import TruthError
from . import Truth

__all__ = ["regular_truth"]


def regular_truth(d: int) -> Truth:
    """λ = d/2, m = 1 for a model whose Fisher information at the point is
    non-singular, d = number of parameters (Watanabe 2009, regular models)."""
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise TruthError(f"regular model: the number of parameters d must be a positive integer, got {d!r}")
    return Truth(
        lam=Fraction(d, 2),
        multiplicity=1,
        kind="exact",
        source=f"regular model, λ = d/2 with d = {d} (Watanabe 2009)",
    )
