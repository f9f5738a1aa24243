"""Bounds on a polynomial's size before sympy expands it: degree, terms after expansion, coefficients.

The expression (already restricted to numbers, w1, w2, … and + - * / ** ^ ( ))
is parsed by Python's ``ast`` (parsing evaluates nothing) and walked bottom-up,
carrying for each sub-expression upper bounds on its total degree, on its
number of terms after expansion, and on the bits of its coefficients, plus
its exact value where it is a small constant (exponents must be). The term
bound of a product or power is the smaller of the multinomial count (a sum
of k terms to the power e has at most C(k+e−1, e) terms) and the number of
monomials of that degree in its variables, C(deg + v, v). So
``w1**1000000000``, ``(w1+…+w12)**40`` or a tower of powers is refused
in microseconds, never expanded.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from fractions import Fraction
from math import comb
from typing import Optional

from .. import limits
from ..errors import TruthError


@dataclass(frozen=True)
class _Size:
    degree: int
    terms: int
    log_l1: float  # log2 of an upper bound on the sum of the |coefficients|
    den: int  # a common denominator of the coefficients (exact; its size is checked before it grows)
    variables: frozenset
    value: Optional[Fraction] = None  # exact, for a constant small enough to hold

    def bits(self) -> float:
        """Upper bound on the bits of any coefficient's numerator over ``den``, or of ``den`` itself."""
        return max(self.log_l1 + math.log2(self.den), self.den.bit_length())


def _monomials(degree: int, nvars: int) -> int:
    """Monomials of total degree ≤ degree in nvars variables: C(degree + nvars, nvars)."""
    return comb(degree + nvars, nvars) if nvars else 1


def _log_add(x: float, y: float) -> float:
    hi, lo = max(x, y), min(x, y)
    return hi + math.log2(1 + 2 ** (lo - hi))


def _log_abs(v: Fraction) -> float:
    return math.log2(abs(v.numerator)) - math.log2(v.denominator) if v else -1e9


def _coefficient(text: str) -> str:
    return f"{text[:60]}: the size of a coefficient (bits)"


def _den_product(a: int, b: int, text: str) -> int:
    limits.check(a.bit_length() + b.bit_length(), limits.MAX_COEFFICIENT_BITS, _coefficient(text))
    return a * b // math.gcd(a, b)


def _combine(op: ast.operator, a: _Size, b: _Size, text: str) -> _Size:
    variables = a.variables | b.variables
    if isinstance(op, (ast.Add, ast.Sub)):
        value = None if a.value is None or b.value is None else (a.value + b.value if isinstance(op, ast.Add)
                                                                 else a.value - b.value)
        degree = max(a.degree, b.degree)
        return _Size(degree, min(a.terms + b.terms, _monomials(degree, len(variables))), _log_add(a.log_l1, b.log_l1),
                     _den_product(a.den, b.den, text), variables, value)
    if isinstance(op, (ast.Mult, ast.Div)):
        if isinstance(op, ast.Div):
            if b.value == 0:
                raise TruthError(f"{text}: division by zero")
            if b.value is None:  # division by a variable (not a polynomial: sympy says so) or a huge constant
                return _Size(a.degree + b.degree, a.terms, a.log_l1 + b.log_l1, a.den, variables)
            b = _Size(0, 1, _log_abs(1 / b.value), abs(b.value.numerator), b.variables, 1 / b.value)
        value = None if a.value is None or b.value is None else a.value * b.value
        degree = a.degree + b.degree
        return _Size(degree, min(a.terms * b.terms, _monomials(degree, len(variables))), a.log_l1 + b.log_l1,
                     _den_product(a.den, b.den, text), variables, value)
    if isinstance(op, ast.Pow):
        e = b.value
        if b.degree or e is None or e.denominator != 1:
            return a  # a variable or fractional exponent: not a polynomial, as sympy says
        e = int(e)
        if a.degree == 0:  # a constant to a power
            limits.check(a.bits() * abs(e), limits.MAX_COEFFICIENT_BITS, f"{text[:60]}: the size of a constant (bits)")
            value = None if a.value is None or (a.value == 0 and e < 0) else a.value ** e
            if value is None:
                return _Size(0, 1, a.log_l1 * abs(e), a.den ** abs(e), variables)
            return _Size(0, 1, _log_abs(value), value.denominator, variables, value)
        if e < 0:
            return a  # not a polynomial: sympy says so
        limits.check(a.degree * e, limits.MAX_DEGREE, f"{text[:60]}: the degree")
        degree = a.degree * e
        limits.check(a.den.bit_length() * e, limits.MAX_COEFFICIENT_BITS, _coefficient(text))
        terms = min(comb(a.terms + e - 1, e), _monomials(degree, len(variables)))
        return _Size(degree, terms, a.log_l1 * e, a.den ** e, variables)
    raise TruthError(f"{text}: unexpected operator in polynomial")


def check_polynomial_size(text: str, variables: int) -> None:
    """Refuse (TruthError, one line naming the limit) a polynomial beyond the documented limits
    (:mod:`llcbench.limits`) before it is expanded. ``variables``: the largest index i of a w_i in it."""
    limits.check(len(text), limits.MAX_EXPR_CHARS, f"{text[:40]}…: the expression's length (characters)")
    limits.check(variables, limits.MAX_VARIABLES, f"{text[:60]}: the number of variables (largest index of w_i)")
    try:
        tree = ast.parse(text.replace("^", "**"), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return  # sympy's parser says what is wrong with it
    sizes: dict[int, _Size] = {}
    # iterative post-order walk: a long sum is a deep tree, and recursion would fail on it
    stack = [(tree.body, False)]
    while stack:
        node, done = stack.pop()
        if isinstance(node, ast.BinOp):
            if not done:
                stack += [(node, True), (node.right, False), (node.left, False)]
                continue
            a, b = sizes.pop(id(node.left)), sizes.pop(id(node.right))
            op = ast.Pow() if isinstance(node.op, ast.BitXor) else node.op
            size = _combine(op, a, b, text)
        elif isinstance(node, ast.UnaryOp):
            if not done:
                stack += [(node, True), (node.operand, False)]
                continue
            a = sizes.pop(id(node.operand))
            size = _Size(a.degree, a.terms, a.log_l1, a.den, a.variables, None if a.value is None else -a.value)
        elif isinstance(node, ast.Constant) and isinstance(node.value, int):
            value = Fraction(node.value)
            size = _Size(0, 1, _log_abs(value), 1, frozenset(), value)
        elif isinstance(node, ast.Name):
            size = _Size(1, 1, 0.0, 1, frozenset([node.id]))
        else:
            return  # sympy's parser refuses it
        limits.check(size.terms, limits.MAX_TERMS, f"{text[:60]}: the number of terms after expansion (upper bound)")
        limits.check(round(size.bits()), limits.MAX_COEFFICIENT_BITS, _coefficient(text))
        sizes[id(node)] = size
    limits.check(sizes[id(tree.body)].degree, limits.MAX_DEGREE, f"{text[:60]}: the degree")
