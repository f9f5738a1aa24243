"""Targets declare what the ``exact`` estimator needs (``Target.quadratic_form``,
``Target.polynomial``); exact asks for those capabilities, never for a family type, so a target
written outside llcbench's families gets the same methods when it declares them."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

import numpy as np
import pytest
import torch

from llcbench.errors import UnsupportedTarget
from llcbench.estimators import exact
from llcbench.families.polynomial import polynomial_target
from llcbench.target import PolynomialForm, Target
from llcbench.truth import Truth

H = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)


@dataclass
class _Quadratic(Target):
    """A user's target: L(w) = ½(w − w*)ᵀH(w − w*), optionally declaring it."""

    declare: bool = True

    def loss(self, w, idx=None):
        u = w - self.w_star
        return 0.5 * ((u @ H) * u).sum(dim=-1)

    def quadratic_form(self) -> Optional[torch.Tensor]:
        return H.clone() if self.declare else None


@dataclass
class _Quartic(Target):
    """A user's target: L(w) = w1⁴ + 3·w1²·w2², stated as a polynomial in w − w*."""

    def loss(self, w, idx=None):
        u = w - self.w_star
        return u[:, 0] ** 4 + 3 * u[:, 0] ** 2 * u[:, 1] ** 2

    def polynomial(self) -> PolynomialForm:
        return PolynomialForm(torch.tensor([[4, 0], [2, 2]]), torch.tensor([1.0, 3.0], dtype=torch.float64))


def _truth(lam: str) -> Truth:
    return Truth(Fraction(lam), 1, "exact", "test")


def _config(**kw):
    return exact.ExactConfig(**kw)


def test_a_declared_quadratic_form_gets_the_closed_form():
    target = _Quadratic(id="user/quad", family="user", dim=2, n=10_000,
                        w_star=torch.tensor([0.3, -1.0], dtype=torch.float64), truth=_truth("1"))
    assert exact.supports(target) is None
    est = exact.estimate(target, _config(gamma=1.0))
    assert est.extra["method"] == "gaussian"
    eigs = np.linalg.eigvalsh(H.numpy())
    assert est.lambda_hat == pytest.approx(exact.gaussian_lambda(eigs, target.nbeta_star, 1.0), rel=1e-14)


def test_a_declared_polynomial_gets_the_quadrature_of_the_same_family_polynomial():
    """Same K, once as a user target (anchor away from 0, terms in u = w − w*) and once from the
    polynomial family: the same λ_nβ,γ."""
    expr = "w1**4 + 3*w1**2*w2**2"
    family = polynomial_target(expr, [], _truth("1/4"))
    user = _Quartic(id="user/quartic", family="user", dim=2, n=family.n,
                    w_star=torch.tensor([1.5, -2.0], dtype=torch.float64), truth=family.truth)
    assert exact.supports(user) is None
    a = exact.estimate(user, _config())
    b = exact.estimate(family, _config())
    assert a.extra["method"] == b.extra["method"] == "quadrature"
    assert a.lambda_hat == pytest.approx(b.lambda_hat, rel=1e-12)


def test_a_target_declaring_nothing_is_refused_with_the_reason():
    target = _Quadratic(id="user/quiet", family="user", dim=2, n=10_000,
                        w_star=torch.zeros(2, dtype=torch.float64), truth=_truth("1"), declare=False)
    reason = exact.supports(target)
    assert reason is not None and "user/quiet" in reason
    assert "quadratic_form()" in reason and "polynomial()" in reason
    with pytest.raises(UnsupportedTarget, match="declares neither"):
        exact.estimate(target, _config())


def test_family_targets_declare_their_capabilities(catalogue_targets):
    linear, logistic, dln, quad, quartic = catalogue_targets
    assert linear.quadratic_form().shape == (linear.dim, linear.dim)
    assert logistic.quadratic_form() is None and logistic.polynomial() is None
    assert dln.quadratic_form() is None and dln.polynomial() is None
    assert torch.equal(quad.quadratic_form(), torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64))
    assert quartic.quadratic_form() is None and quartic.polynomial() is not None


@pytest.fixture
def catalogue_targets():
    from llcbench.catalogue import build_target, load_catalogue, select

    cases = load_catalogue()
    pick = lambda cid: build_target(select(cases, [cid])[0])  # noqa: E731
    polys = [polynomial_target(e, [], _truth("1")) for e in ("w1**2 + w1*w2 + w2**2", "w1**2 + w2**4")]
    return [pick("regular/linear-2x1"), pick("regular/logistic-3"), pick("dln/2-2-2/r0"), *polys]
