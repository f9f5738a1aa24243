"""Ground truth: exact learning coefficients (λ, m) with their sources.

Every value is computed by code in exact rational arithmetic
(``fractions.Fraction``), never typed in; the tests check the engine against
published test vectors (Watanabe 2009; Aoyagi & Watanabe 2005; Aoyagi 2024;
Lau, Murfet & Wei 2023: see each module and tests/test_truth.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

KINDS = ("exact", "theory", "hard", "asserted")


@dataclass(frozen=True)
class Truth:
    """A learning coefficient with its multiplicity and provenance.

    lam: λ as an exact rational.
    multiplicity: m, the order of the pole (volume ~ ε^λ (−log ε)^(m−1)).
    kind: "exact" (a theorem applies at this anchor), "theory" (an
        approximate theory value), "hard" (exact, but estimators are not
        expected to reach it at practical n) or "asserted" (stated by the
        case from a publication, not certified by the engine).
    source: the formula and publication the value comes from.
    """

    lam: Fraction
    multiplicity: int
    kind: str
    source: str

    def __post_init__(self):
        if not isinstance(self.lam, Fraction):
            object.__setattr__(self, "lam", Fraction(self.lam))
        if self.kind not in KINDS:
            raise ValueError(f"truth kind must be one of {KINDS}, got {self.kind!r}")
        if self.multiplicity < 1:
            raise ValueError("multiplicity must be >= 1")

    @property
    def lam_str(self) -> str:
        return str(self.lam)

    @property
    def lam_float(self) -> float:
        return float(self.lam)
