"""Analytic polynomial potentials K(w) around w* = 0 (no data).

The loss *is* the potential: L(w) = K(w), evaluated exactly for every chain at
once from the exponent matrix A (terms × d) and the coefficients c:

    K(w) = Σ_j c_j ∏_i w_i^(A_ji).

Powers are built by repeated multiplication (a table w_i^0 … w_i^deg), so the
gradient is exact everywhere, also at w_i = 0 (``torch.pow`` with a zero
exponent would give 0·∞ there). ``n`` is nominal: it only sets the
temperature nβ* = n / log n.

An optional prior ∏ |w_i|^(h_i) (``prior_exponents``) is exposed through
``Target.log_prior`` = Σ h_i log|w_i|; the truth then accounts for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

import numpy as np
import torch

from ..target import PolynomialForm, Target
from ..truth import Truth
from .base import Family, Field

_VAR = re.compile(r"^w([1-9][0-9]*)$")


def _parse(expr: str):
    from ..truth.polynomial import parse_polynomial

    return parse_polynomial(expr)


def _var_index(name: str) -> int:
    m = _VAR.match(name)
    if m is None:
        raise ValueError(f"variables must be named w1, w2, ...; got {name!r}")
    return int(m.group(1)) - 1


def exponent_form(expr: str) -> tuple[int, list[tuple[int, ...]], list[Fraction]]:
    """(d, exponent rows, exact coefficients) of the polynomial ``expr``.

    d is the largest variable index (w1..wd); variables that do not occur
    still count as (free) parameters.
    """
    poly, _names = _parse(expr)
    gens = [str(g) for g in poly.gens]
    cols = [_var_index(g) for g in gens]
    d = max(cols) + 1 if cols else 0
    rows: list[tuple[int, ...]] = []
    coeffs: list[Fraction] = []
    for monom, coeff in poly.terms():
        row = [0] * d
        for col, e in zip(cols, monom):
            row[col] += int(e)
        rows.append(tuple(row))
        coeffs.append(Fraction(int(coeff.p), int(coeff.q)) if hasattr(coeff, "p") else Fraction(str(coeff)))
    return d, rows, coeffs


@dataclass
class PolynomialTarget(Target):
    """L(w) = K(w) for a polynomial K; exact, no data (num_data = 0)."""

    exponents: Optional[torch.Tensor] = None  # (terms, d) int64
    coeffs: Optional[torch.Tensor] = None  # (terms,) float
    prior_h: Optional[torch.Tensor] = None  # (d,) float, or None for a flat prior
    max_degree: int = 0

    def loss(self, w: torch.Tensor, idx: Optional[torch.Tensor] = None) -> torch.Tensor:
        if w.dim() != 2 or w.shape[1] != self.dim:
            raise ValueError(f"w must have shape (chains, {self.dim}), got {tuple(w.shape)}")
        coeffs = self.coeffs.to(device=w.device, dtype=w.dtype)
        exps = self.exponents.to(device=w.device)
        # powers[c, i, p] = w[c, i] ** p for p = 0..max_degree, by repeated products
        pows = [torch.ones_like(w)]
        for _ in range(self.max_degree):
            pows.append(pows[-1] * w)
        powers = torch.stack(pows, dim=-1)  # (chains, d, deg+1)
        cols = torch.arange(self.dim, device=w.device).expand_as(exps)  # (terms, d)
        factors = powers[:, cols, exps]  # (chains, terms, d)
        monomials = factors.prod(dim=-1)  # (chains, terms)
        return monomials @ coeffs

    def log_prior(self, w: torch.Tensor) -> Optional[torch.Tensor]:
        if self.prior_h is None:
            return None
        h = self.prior_h.to(device=w.device, dtype=w.dtype)
        return (h * torch.log(w.abs())).sum(dim=-1)

    @property
    def has_prior(self) -> bool:
        return self.prior_h is not None

    def polynomial(self) -> PolynomialForm:
        """The terms of K (w* = 0, so u = w) and the prior's exponents."""
        return PolynomialForm(self.exponents.reshape(-1, self.dim), self.coeffs.to(torch.float64),
                              self.prior_h)

    def quadratic_form(self) -> Optional[torch.Tensor]:
        """H if every term of K has total degree 2 (constants allowed) and there is no prior:
        H_ii = 2·c(w_i²), H_ij = H_ji = c(w_i·w_j). None otherwise."""
        if self.has_prior:
            return None
        A = self.exponents.detach().cpu().numpy().astype(np.int64).reshape(-1, self.dim)
        c = self.coeffs.detach().cpu().to(torch.float64).numpy().reshape(-1)
        deg = A.sum(axis=1)
        keep = c != 0
        if not np.all((deg[keep] == 0) | (deg[keep] == 2)) or not np.any(deg[keep] == 2):
            return None
        H = np.zeros((self.dim, self.dim))
        for row, coef in zip(A[keep], c[keep]):
            if row.sum() != 2:
                continue
            idx = np.flatnonzero(row)
            if len(idx) == 1:
                H[idx[0], idx[0]] += 2.0 * coef
            else:
                i, j = idx
                H[i, j] += coef
                H[j, i] += coef
        return torch.from_numpy(H)


def _check_expr(value) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty polynomial in w1, w2, ...")
    try:
        d, rows, _ = exponent_form(value)
    except ValueError:
        raise
    except Exception as e:  # sympy parse errors, TruthError from the parser
        raise ValueError(f"cannot parse polynomial: {e}") from None
    if d == 0 or all(sum(r) == 0 for r in rows):
        raise ValueError("polynomial has no variables")


def _check_prior(value) -> None:
    if any((not isinstance(h, int)) or h < 0 for h in value):
        raise ValueError("prior exponents must be integers >= 0")


class PolynomialFamily(Family):
    """K(w) given as a polynomial string, anchor w* = 0, nominal n."""

    name = "polynomial"
    default_n = 10_000
    default_noise_std = None
    fields = {
        "expr": Field(
            type="str",
            check=_check_expr,
            doc="polynomial K(w) in variables w1..wd (d = largest index), e.g. 'w1^2 * w2^4'",
        ),
        "prior_exponents": Field(
            type="int_list",
            default=[],
            check=_check_prior,
            doc="prior density ∏|w_i|^h_i, one h_i per variable; [] = flat prior",
        ),
    }

    def check(self, params: dict) -> None:
        h = list(params.get("prior_exponents") or [])
        if h:
            d = self.dim(params)
            if len(h) != d:
                raise ValueError(f"prior_exponents: needs {d} entries (one per variable w1..w{d}), got {len(h)}")

    def dim(self, params: dict) -> int:
        return exponent_form(params["expr"])[0]

    def truth(self, params: dict) -> Truth:
        from ..truth.polynomial import polynomial_truth

        h = list(params.get("prior_exponents") or [])
        return polynomial_truth(params["expr"], h if h else None)

    def target(self, case) -> PolynomialTarget:
        self.check(case.params)
        h = list(case.params.get("prior_exponents") or [])
        return polynomial_target(case.params["expr"], h, self.truth(case.params), case.id, int(case.n))


def polynomial_target(expr: str, prior_exponents: list[int], truth: Truth, case_id: str = "polynomial",
                      n: int = PolynomialFamily.default_n) -> PolynomialTarget:
    """The target L = K(expr) at w* = 0 (with the prior ∏|w_i|^h_i when h is non-empty)."""
    d, rows, coeffs = exponent_form(expr)
    h = list(prior_exponents or [])
    if h and len(h) != d:
        raise ValueError(f"prior_exponents: needs {d} entries, got {len(h)}")
    exps = torch.tensor(rows, dtype=torch.int64).reshape(len(rows), d)
    return PolynomialTarget(
        id=case_id,
        family=PolynomialFamily.name,
        dim=d,
        n=n,
        w_star=torch.zeros(d, dtype=torch.float64),
        truth=truth,
        num_data=0,
        info={"expr": expr, "prior_exponents": h, "n_nominal": True},
        exponents=exps,
        coeffs=torch.tensor([float(c) for c in coeffs], dtype=torch.float64),
        prior_h=torch.tensor(h, dtype=torch.float64) if h else None,
        max_degree=int(exps.max().item()) if exps.numel() else 0,
    )
