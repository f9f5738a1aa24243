"""Theory values of λ for one-layer networks on modular arithmetic (approximate, kind "theory").

Rimsky & Vaintrob (Melbourne SLT hackathon, 2023, "Investigating the
learning coefficient of modular addition"):

- a network that *generalises* on addition mod p implements Fourier
  circuits; the minimal effective dimension of one circuit in this
  architecture is 4p, so λ ≈ c·p with the single-circuit value c = 4 —
  their SGLD estimates lie near 8p (about two circuits' worth);
- a network trained on a random commutative operation can only *memorise*:
  λ ≈ the number of memorised training pairs, train_fraction·p².

These are scaling laws with a stated factor-of-two uncertainty, not exact
values: score them by the log-log slope of λ̂ in p (≈ 1 against ≈ 2) and by
the ordering memorising > generalising at equal p, not by bias.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

SINGLE_CIRCUIT = 4  # c in λ ≈ c·p for one circuit (Rimsky & Vaintrob 2023)
OBSERVED_CIRCUIT = 8  # the slope of their SGLD estimates (≈ 8p, "2 × 4p")
SOURCE = "Rimsky & Vaintrob 2023 (Melbourne SLT hackathon), one-layer modular-arithmetic networks"
# the log-log slope of λ in p that each regime predicts
SLOPE = {"add": 1, "random": 2}


@dataclass(frozen=True)
class ModularTheory:
    lam: Fraction  # the theory value the case states as its λ
    regime: str  # "generalising" or "memorising"
    slope: int  # predicted d log λ / d log p
    observed: Fraction | None  # the published estimate's scale, where it differs from lam
    source: str


def modular_theory(p: int, task: str, train_fraction: float) -> ModularTheory:
    """λ ≈ 4p (one circuit; observed ≈ 8p) for ``add``; λ ≈ train_fraction·p² for ``random``."""
    if task == "add":
        return ModularTheory(Fraction(SINGLE_CIRCUIT * p), "generalising", SLOPE["add"],
                             Fraction(OBSERVED_CIRCUIT * p),
                             f"{SOURCE}: generalising, λ ≈ c·p; single-circuit theory c = {SINGLE_CIRCUIT} "
                             f"(λ = {SINGLE_CIRCUIT * p}), their SGLD observed c ≈ {OBSERVED_CIRCUIT} "
                             f"(≈ {OBSERVED_CIRCUIT * p}); slope 1 in p")
    if task == "random":
        lam = Fraction(str(train_fraction)) * p * p
        return ModularTheory(lam, "memorising", SLOPE["random"], None,
                             f"{SOURCE}: memorising a random commutative operation, λ ≈ train_fraction·p² "
                             f"= {float(lam):g} (the number of memorised pairs); slope 2 in p")
    raise ValueError(f"unknown task {task!r}")
