"""Learning coefficients of polynomial regression models y = f(w, x) + σ·ξ at a true parameter w*.

Write the model's deviation from the truth as a polynomial in the inputs x,

    f(w, x) − f(w*, x) = Σ_α h_α(w) x^α      (α over the monomials in x),

with each h_α a polynomial in u = w − w* without constant term. The
Kullback–Leibler divergence of the Gaussian model is
K(w) = E_x[(f(w, x) − f(w*, x))²]/(2σ²) = hᵀGh/(2σ²), G = E[x^α x^β]; when
the input density is positive on an open set the monomials x^α are linearly
independent there, so G is positive definite and c₁·H ≤ K ≤ c₂·H near w*
for the sum of squares

    H(u) = Σ_α h_α(u)².

Functions bounded by each other's multiples have the same zeta-function
poles, so K and H have the same λ and multiplicity m (Aoyagi 2024, Neural
Networks 172:106132, Theorem 1; Watanabe 2009, *Algebraic Geometry and
Statistical Learning Theory*). H has rational coefficients whenever f and w*
do, and its (λ, m) at u = 0, with the prior ∏|u_i|^{h_i} if the case has
one, comes from the polynomial truth engine's public entry point
(:func:`~llcbench.truth.polynomial.polynomial_truth`), which refuses what it
cannot certify; so does this module, naming H.

All arithmetic is exact (sympy rationals). The parser accepts only the
declared parameter and input names, integers and + - * / ** ^ ( ), so a
model string is never evaluated as arbitrary code.
"""

from __future__ import annotations

import functools
import io
import keyword
import re
import tokenize
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional, Sequence

import sympy
from sympy.parsing.sympy_parser import convert_xor, parse_expr, standard_transformations

from ..errors import TruthError
from . import Truth

__all__ = ["RegressionModel", "parse_model", "exact_rational", "regression_truth"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_OPS = {"+", "-", "*", "/", "**", "^", "(", ")"}
_TRANSFORMS = standard_transformations + (convert_xor,)
SOURCE = ("Aoyagi 2024, Neural Networks 172:106132, Theorem 1: K ≍ H = Σ_α h_α(w)², "
          "f(w, x) − f(w*, x) = Σ_α h_α(w)·x^α, input density positive on an open set")


def exact_rational(value) -> Fraction:
    """A number of a case file as an exact rational: integers as they are, decimals as written
    (0.1 = 1/10, via the shortest repr of the float), fractions given as strings ("1/3")."""
    if isinstance(value, bool):
        raise TruthError(f"expected a number, got {value!r}")
    if isinstance(value, (int, Fraction)):
        return Fraction(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise TruthError(f"expected a finite number, got {value!r}")
        return Fraction(repr(value))
    if isinstance(value, str):
        try:
            return Fraction(value.strip())
        except (ValueError, ZeroDivisionError):
            pass
    raise TruthError(f"expected a number, got {value!r}")


def _check_names(names: Sequence[str], what: str) -> list[str]:
    names = list(names)
    for name in names:
        if not isinstance(name, str) or not _NAME.match(name) or keyword.iskeyword(name):
            raise TruthError(f"{what}: {name!r} is not a valid name (letters, digits and _, not starting with a digit)")
    if len(set(names)) != len(names):
        raise TruthError(f"{what}: duplicate names in {names}")
    return names


@dataclass(frozen=True)
class RegressionModel:
    """A parsed model: f as a sympy expression, its parameter and input symbols, and w* exactly.

    coefficients: α (exponent tuple over the inputs) -> h_α as a sympy Poly in u (the parameter
    offsets, generators ``u``), only those that are not identically zero; alphas in sorted order.
    """

    expr: sympy.Expr
    params: tuple
    inputs: tuple
    u: tuple
    w_star: tuple  # sympy Rationals
    coefficients: dict

    @property
    def alphas(self) -> list[tuple]:
        return sorted(self.coefficients)

    def squared_coefficients(self) -> sympy.Poly:
        """H(u) = Σ_α h_α(u)² as a Poly over QQ in u."""
        total = sympy.Poly(0, *self.u, domain="QQ")
        for alpha in self.alphas:
            total = total + self.coefficients[alpha] ** 2
        return total

    def h_string(self) -> str:
        """H with u_i written w1 … wd (the polynomial engine's variable names)."""
        names = [sympy.Symbol(f"w{i + 1}") for i in range(len(self.u))]
        expr = self.squared_coefficients().as_expr().xreplace(dict(zip(self.u, names)))
        return str(sympy.expand(expr)).replace(" ", "")


def parse_model(model: str, parameters: Sequence[str], inputs: Sequence[str], w_star: Sequence) -> RegressionModel:
    """Parse f(w, x) (a polynomial in the declared parameters and inputs, rational coefficients) and
    expand f(w* + u, x) − f(w*, x) in the inputs. TruthError (one line) on anything else. Cached:
    a case is parsed when its file is checked, when its truth is computed and when its target is built."""
    try:
        key = (model, tuple(parameters), tuple(inputs), tuple(w_star))
        hash(key)
    except TypeError:
        return _parse_model(model, parameters, inputs, w_star)
    return _parse_cached(*key)


@functools.lru_cache(maxsize=256)
def _parse_cached(model, parameters, inputs, w_star) -> RegressionModel:
    return _parse_model(model, parameters, inputs, w_star)


def _parse_model(model, parameters, inputs, w_star) -> RegressionModel:
    if not isinstance(model, str) or not model.strip():
        raise TruthError("model: must be a non-empty polynomial in the parameters and inputs")
    params = _check_names(parameters, "parameters")
    ins = _check_names(inputs, "inputs")
    if not params:
        raise TruthError("parameters: at least one parameter name is needed")
    if not ins:
        raise TruthError("inputs: at least one input name is needed")
    clash = sorted(set(params) & set(ins))
    if clash:
        raise TruthError(f"inputs: {clash[0]!r} is also a parameter name")
    if len(w_star) != len(params):
        raise TruthError(f"w_star: needs {len(params)} values (one per parameter {', '.join(params)}), got {len(w_star)}")
    star = tuple(sympy.Rational(q.numerator, q.denominator) for q in map(exact_rational, w_star))
    text = model.strip()
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError) as exc:
        raise TruthError(f"model: cannot parse {text!r} ({exc})") from None
    known = set(params) | set(ins)
    for tok in toks:
        if tok.type in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT):
            continue
        if tok.type == tokenize.NAME:
            if tok.string not in known:
                raise TruthError(f"model: unknown name {tok.string!r} in {text!r} (declared parameters: "
                                 f"{', '.join(params)}; inputs: {', '.join(ins)})")
        elif tok.type == tokenize.NUMBER:
            if not tok.string.isdigit():
                raise TruthError(f"model: coefficient {tok.string} is not an exact integer (write fractions as 1/2)")
        elif not (tok.type == tokenize.OP and tok.string in _OPS):
            raise TruthError(f"model: unexpected {tok.string!r} in {text!r}")
    psyms = tuple(sympy.Symbol(name, real=True) for name in params)
    xsyms = tuple(sympy.Symbol(name, real=True) for name in ins)
    local = dict(zip(params, psyms)) | dict(zip(ins, xsyms))
    try:
        expr = parse_expr(text, local_dict=local, global_dict={"Integer": sympy.Integer, "Symbol": sympy.Symbol,
                                                                "Rational": sympy.Rational},
                          transformations=_TRANSFORMS)
    except Exception as exc:  # noqa: BLE001 - any parse failure is bad input
        raise TruthError(f"model: cannot parse {text!r} ({type(exc).__name__}: {exc})") from None
    if not isinstance(expr, sympy.Expr) or expr.has(sympy.zoo, sympy.oo, sympy.nan):
        raise TruthError(f"model: {text!r} is not a polynomial expression")
    if not expr.is_polynomial(*psyms, *xsyms):
        raise TruthError(f"model: {text!r} is not a polynomial in {', '.join(params + ins)}")
    u = tuple(sympy.Symbol(f"u{i + 1}", real=True) for i in range(len(params)))
    shifted = expr.xreplace({p: s + ui for p, s, ui in zip(psyms, star, u)})
    at_star = expr.xreplace(dict(zip(psyms, star)))
    try:
        diff = sympy.Poly(sympy.expand(shifted - at_star), *xsyms)
    except Exception as exc:  # noqa: BLE001
        raise TruthError(f"model: {text!r} is not a polynomial with rational coefficients ({exc})") from None
    coefficients = {}
    for alpha, coeff in diff.terms():
        poly = sympy.Poly(coeff, *u, domain="QQ")
        if not poly.is_zero:
            coefficients[tuple(int(a) for a in alpha)] = poly
    if not coefficients:
        raise TruthError(f"model: {text!r} does not depend on the parameters")
    used = {i for poly in coefficients.values() for mon in poly.monoms() for i, e in enumerate(mon) if e}
    flat = [params[i] for i in range(len(params)) if i not in used]
    if flat:
        raise TruthError(f"model: f does not depend on the parameter {flat[0]!r} (the loss would be flat along it)")
    return RegressionModel(expr=expr, params=tuple(params), inputs=tuple(ins), u=tuple(u), w_star=star,
                           coefficients=coefficients)


def regression_truth(model: str, parameters: Sequence[str], inputs: Sequence[str], w_star: Sequence,
                     prior_exponents: Optional[Sequence[int]] = None) -> Truth:
    """(λ, m) of the regression model at w*: those of H = Σ_α h_α² by the polynomial engine.

    Raises TruthError naming H when the engine cannot certify it (e.g. a degenerate H)."""
    from .polynomial import polynomial_truth

    parsed = parse_model(model, parameters, inputs, w_star)
    h = parsed.h_string()
    prior = list(prior_exponents) if prior_exponents else None
    try:
        core = polynomial_truth(h, prior)
    except TruthError as exc:
        raise TruthError(f"regression {model.strip()!r} at w* = ({', '.join(map(str, parsed.w_star))}): "
                         f"H = {h} (u = w − w* as w1…w{len(parsed.u)}): {exc}") from None
    return Truth(lam=core.lam, multiplicity=core.multiplicity, kind=core.kind,
                 source=f"H = {h} (u = w − w*; {SOURCE}): {core.source}")
