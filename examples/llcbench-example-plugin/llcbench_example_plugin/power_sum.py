"""A case family: the potentials K(w) = Σ_{i=1..d} w_i^(2k) at w* = 0, with their own exact truth."""

from dataclasses import dataclass
from fractions import Fraction

import torch

from llcbench.families.base import Family, Field
from llcbench.target import PolynomialForm, Target
from llcbench.truth import Truth


def power_sum_truth(d: int, k: int) -> Truth:
    single, m_single = Fraction(1, 2 * k), 1  # w^(2k) alone: λ = 1/(2k), m = 1 (the monomial rule)
    # a sum over disjoint variables adds the λ and the (m − 1) of its terms (Watanabe 2009)
    lam, m = d * single, d * (m_single - 1) + 1
    return Truth(lam, m, "exact", f"{d} × λ(w^{2 * k}) = {d} × 1/{2 * k}, the sum rule over disjoint variables "
                                  "(Watanabe 2009)")


@dataclass
class PowerSumTarget(Target):
    k: int = 1

    def loss(self, w, idx=None):  # an analytic potential: no data, so idx is ignored
        return (w - self.w_star).pow(2 * self.k).sum(dim=-1)

    def polynomial(self):  # L as a polynomial in u = w − w*: `exact` then integrates λ_nβ,γ (d ≤ 3)
        exponents = 2 * self.k * torch.eye(self.dim, dtype=torch.int64)
        return PolynomialForm(exponents, torch.ones(self.dim, dtype=torch.float64))


def _at_least_one(value):
    if value < 1:
        raise ValueError(f"must be >= 1, got {value}")


class PowerSumFamily(Family):
    """K(w) = Σ_{i=1..d} w_i^(2k) at w* = 0; no data (n is nominal)."""

    name = "power_sum"
    default_n = 10_000
    fields = {
        "d": Field("int", check=_at_least_one, doc="number of parameters"),
        "k": Field("int", default=2, check=_at_least_one, doc="K(w) = Σ w_i^(2k)"),
    }

    def dim(self, params):
        return params["d"]

    def truth(self, params):
        return power_sum_truth(params["d"], params["k"])

    def target(self, case):
        d, k = case.params["d"], case.params["k"]
        return PowerSumTarget(id=case.id, family=self.name, dim=d, n=case.n, truth=self.truth(case.params),
                              w_star=torch.zeros(d, dtype=torch.float64), info={"d": d, "k": k}, k=k)
