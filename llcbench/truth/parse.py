"""Reading a polynomial potential K(w): the text parser (variables w1, w2, …, rational
coefficients) and the checks shared by the truth engines (K(0) = 0, prior exponents > −1).

A leaf of ``llcbench.truth``: the Newton-polyhedron engine (``polynomial``) and the plane engine
(``plane``) both read their input through it.
"""

from __future__ import annotations

import io
import math
import re
import tokenize
from fractions import Fraction

import sympy
from sympy.parsing.sympy_parser import convert_xor, parse_expr, standard_transformations

from .. import limits
from ..errors import TruthError
from .size import check_polynomial_size

_VAR_RE = re.compile(r"w([1-9][0-9]*)\Z")
_OPS = {"+", "-", "*", "/", "**", "^", "(", ")"}
_TRANSFORMS = standard_transformations + (convert_xor,)
_MAX_DIGITS = int(limits.MAX_COEFFICIENT_BITS * math.log10(2)) + 1  # a number of at most MAX_COEFFICIENT_BITS bits


def parse_polynomial(expr: str):
    """Parse a polynomial potential K(w) in the variables w1, w2, ….

    Returns ``(poly, names)``: a ``sympy.Poly`` over QQ in the generators
    w1 … wd and the list ``["w1", …, "wd"]``; d is the largest index used.
    Refused (TruthError): names other than w1, w2, … (only numbers, the
    variables and + - * / ** ^ ( ) are allowed, so nothing else is ever
    evaluated), non-exact numbers (0.5: write 1/2), non-polynomials, the zero
    polynomial, a nonzero constant term (K(0) must be 0), and a variable
    w_i (i ≤ d) that does not appear (K would be flat along it).
    """
    if not isinstance(expr, str):
        raise TruthError(f"polynomial must be given as a string, got {type(expr).__name__}")
    text = expr.strip()
    if not text:
        raise TruthError("empty polynomial expression")
    limits.check(len(text), limits.MAX_EXPR_CHARS, f"{text[:40]}…: the expression's length (characters)")
    indices = set()
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError) as exc:
        raise TruthError(f"{text}: cannot parse polynomial ({exc})") from None
    for tok in toks:
        if tok.type in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT):
            continue
        if tok.type == tokenize.NAME:
            mt = _VAR_RE.match(tok.string)
            if not mt:
                raise TruthError(
                    f"{text}: unknown symbol {tok.string!r} (variables must be w1, w2, …, numbered from 1)"
                )
            indices.add(int(mt.group(1)))
        elif tok.type == tokenize.NUMBER:
            limits.check(len(tok.string), _MAX_DIGITS, f"{text[:60]}: the digits of the number {tok.string[:20]}…")
            if not tok.string.isdigit():
                raise TruthError(
                    f"{text}: coefficient {tok.string} is not an exact integer (write fractions as 1/2)"
                )
        elif tok.type == tokenize.OP and tok.string in _OPS:
            continue
        else:
            raise TruthError(f"{text}: unexpected {tok.string!r} in polynomial")
    if not indices:
        raise TruthError(f"{text}: no variables w1, w2, … in the polynomial")
    d = max(indices)
    check_polynomial_size(text, d)  # before sympy builds or expands anything
    names = [f"w{i}" for i in range(1, d + 1)]
    syms = sympy.symbols(names)
    local = {name: s for name, s in zip(names, syms)}
    try:
        e = parse_expr(text, local_dict=local, global_dict={"Integer": sympy.Integer, "Symbol": sympy.Symbol,
                                                             "Rational": sympy.Rational, "Float": sympy.Float},
                       transformations=_TRANSFORMS)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a user error
        raise TruthError(f"{text}: cannot parse polynomial ({type(exc).__name__}: {exc})") from None
    if not isinstance(e, sympy.Expr):
        raise TruthError(f"{text}: not a polynomial expression")
    if e.has(sympy.zoo, sympy.oo, sympy.nan):
        raise TruthError(f"{text}: division by zero")
    if not e.is_polynomial(*syms):
        raise TruthError(f"{text}: not a polynomial in {', '.join(names)} (negative or fractional powers, division by a variable)")
    try:
        poly = sympy.Poly(e, *syms, domain="QQ")
    except Exception as exc:  # noqa: BLE001
        raise TruthError(f"{text}: not a polynomial with rational coefficients ({exc})") from None
    if poly.is_zero:
        raise TruthError(f"{text}: the zero polynomial is not a potential (K must vanish only near 0)")
    const = poly.as_dict().get((0,) * d, 0)
    if const != 0:
        raise TruthError(f"{text}: constant term {const} is not zero (K(0) must be 0)")
    degs = poly.degree_list()
    for i, dg in enumerate(degs):
        if dg == 0:
            raise TruthError(
                f"{text}: variable w{i + 1} does not appear, so K is flat along it "
                f"(number the variables w1 … w{d} without gaps)"
            )
    return poly, names


def _as_poly(expr_or_poly):
    """(poly, label) from a string or a sympy Poly/expression."""
    if isinstance(expr_or_poly, str):
        poly, _ = parse_polynomial(expr_or_poly)
        return poly, expr_or_poly.strip()
    if isinstance(expr_or_poly, sympy.Poly):
        poly = expr_or_poly
    elif isinstance(expr_or_poly, sympy.Expr):
        syms = sorted(
            expr_or_poly.free_symbols,
            key=lambda s: (re.sub(r"\d+", "", s.name), int(re.sub(r"\D", "", s.name) or 0)),
        )
        if not syms:
            raise TruthError(f"{expr_or_poly}: no variables in the polynomial")
        poly = sympy.Poly(expr_or_poly, *syms, domain="QQ")
    else:
        raise TruthError(f"expected a polynomial string or sympy Poly, got {type(expr_or_poly).__name__}")
    if poly.is_zero:
        raise TruthError(f"{poly.as_expr()}: the zero polynomial is not a potential")
    if poly.as_dict().get((0,) * len(poly.gens), 0) != 0:
        raise TruthError(f"{poly.as_expr()}: constant term is not zero (K(0) must be 0)")
    return poly, str(poly.as_expr())


def _to_fraction(x, what: str) -> Fraction:
    if isinstance(x, bool):
        raise TruthError(f"{what}: expected a number, got {x!r}")
    if isinstance(x, (int, Fraction)):
        return Fraction(x)
    if isinstance(x, float):
        if x.is_integer():
            return Fraction(int(x))
        raise TruthError(f"{what}: {x!r} is not exact; give an integer or a Fraction")
    if isinstance(x, sympy.Rational):
        return Fraction(int(x.p), int(x.q))
    if isinstance(x, str):
        try:
            return Fraction(x.strip())
        except ValueError:
            pass
    raise TruthError(f"{what}: expected an integer or a fraction, got {x!r}")


def _prior_vector(prior_exponents, d: int, label: str):
    if prior_exponents is None:
        return [Fraction(0)] * d
    h = list(prior_exponents)
    if len(h) != d:
        raise TruthError(f"{label}: {len(h)} prior exponents given for {d} variables")
    out = []
    for i, x in enumerate(h):
        f = _to_fraction(x, f"{label}: prior exponent h{i + 1}")
        if f <= -1:
            raise TruthError(f"{label}: prior exponent h{i + 1} = {f} must be > −1 (integrable prior)")
        out.append(f)
    return out
