"""The tempered, localised posterior every LLC estimator targets, and its two knobs.

    p(w) ∝ exp(−nβ·L_n(w) − (γ/2)·‖w − w*‖²)

The four fields below are shared by the samplers and the references (sgld,
rmsprop_sgld, sgnht, exact, nuts), with the same names on the command line
and in sweeps, and resolved by the same two functions, so that a reference
is always computed at exactly the (nβ, γ) of the run it is compared with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from .base import doc

DEFAULT_GAMMA_SCALE = 1e-3  # γ = gamma_scale·nβ when gamma is None (docs/defaults.md: "Localisation")


@dataclass
class TemperatureConfig:
    """nβ and γ of the localised tempered posterior (a base of every estimator config that has them)."""

    gamma: Optional[float] = doc(
        None, "localisation strength γ of the term (γ/2)·‖w − w*‖² (absolute); None: gamma_scale·nβ")
    gamma_scale: float = doc(DEFAULT_GAMMA_SCALE, "γ = gamma_scale·nβ when gamma is None: the localisation is then a "
                             "fixed fraction of the tempered loss, nβ·[L(w) + (gamma_scale/2)·‖w − w*‖²]")
    nbeta: Optional[float] = doc(None, "inverse temperature nβ (absolute); None: nbeta_scale·n/log n")
    nbeta_scale: float = doc(1.0, "multiplier of n/log n when nbeta is None")

    def validate_temperature(self) -> None:
        if self.gamma is not None and not (self.gamma >= 0 and math.isfinite(self.gamma)):
            raise ValueError("gamma must be >= 0 (or None for gamma_scale·nβ)")
        if not (self.gamma_scale >= 0 and math.isfinite(self.gamma_scale)):
            raise ValueError("gamma_scale must be >= 0")
        if self.nbeta is not None and not (self.nbeta > 0 and math.isfinite(self.nbeta)):
            raise ValueError("nbeta must be > 0 (or None for the default)")
        if not (self.nbeta_scale > 0 and math.isfinite(self.nbeta_scale)):
            raise ValueError("nbeta_scale must be > 0")


def resolve_nbeta(target, config) -> float:
    """nβ: the config's absolute value, else nbeta_scale·n/log n."""
    return float(config.nbeta) if config.nbeta is not None else config.nbeta_scale * target.nbeta_star


def resolve_gamma(nbeta: float, config) -> float:
    """γ: the config's absolute value, else gamma_scale·nβ."""
    return float(config.gamma) if config.gamma is not None else config.gamma_scale * nbeta
