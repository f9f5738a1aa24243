"""Exact learning coefficients of polynomial potentials K(w) at w = 0.

Rules (all in exact rational arithmetic, ``fractions.Fraction``):

* Newton-polyhedron rule (Varchenko 1976; S. Lin, arXiv 1003.5338 and PhD
  thesis 2011): with Γ = conv(exponent vectors of K) + R≥0^d and a prior
  ∏|w_i|^{h_i}, v = (h_1 + 1, …, h_d + 1), t* = min{t : t·v ∈ Γ}:
  λ = 1/t*, m = codimension of the smallest face of Γ containing t*·v.
  Exact when K is non-degenerate; always an upper bound on λ otherwise.
* Monomial, sum, product and power rules (Watanabe 2009, *Algebraic Geometry
  and Statistical Learning Theory*; Lau, Murfet, Wei 2023; Lin 2011).
* In two variables, where the Newton rule cannot certify K: adapted
  coordinates (:mod:`llcbench.truth.plane`; Varchenko 1976; Phong, Stein &
  Sturm 1999), exact for every K ≥ 0.

Linear programs are solved by a small exact simplex method (Fractions, Bland's
rule, so it always terminates). ``sympy.solvers.simplex.linprog`` (sympy
1.14) was the first choice but did not return within minutes on a 3×8
program of exactly this kind (every vertex is degenerate here), and fails on
equality-only programs (A=None gives a dimension mismatch), so it is not used.

Non-degeneracy is certified conservatively: every compact face of Γ must have
a face polynomial that is a sum of even monomials with positive coefficients
(then it is > 0 on the real torus). Equivalently: no term of K with a
non-positive coefficient or an odd exponent lies on a compact face; that is
decided exactly by a few small LPs per such term. Anything else is refused
with a :class:`~llcbench.errors.TruthError` — as "degenerate" when a real zero
off the coordinate hyperplanes was found, as "cannot certify" otherwise —
never reported as exact.
"""

from __future__ import annotations

import functools
import random
import time
from fractions import Fraction
from typing import Optional, Sequence

import sympy

from ..errors import TruthError
from . import Truth
from .parse import _as_poly, _prior_vector, _to_fraction, parse_polynomial

__all__ = [
    "parse_polynomial",
    "newton_value",
    "polynomial_truth",
    "monomial_truth",
    "sum_rule",
    "product_rule",
    "power_rule",
]

NEWTON_SOURCE = "Newton polyhedron (Varchenko 1976; Lin 2011, arXiv 1003.5338)"


# ======================================================================
# exact linear programming
# ======================================================================
class _Infeasible(Exception):
    pass


class _Unbounded(Exception):
    pass


def _pivot(rows, obj, r, col):
    prow = rows[r]
    p = prow[col]
    if p != 1:
        inv = 1 / p
        prow = [x * inv if x else x for x in prow]
        rows[r] = prow
    nz = [k for k, x in enumerate(prow) if x]
    for i, row in enumerate(rows):
        if i != r:
            f = row[col]
            if f:
                for k in nz:
                    row[k] -= f * prow[k]
    f = obj[col]
    if f:
        for k in nz:
            obj[k] -= f * prow[k]


def _run_simplex(rows, obj, basis, allowed):
    """Bland's-rule simplex on a tableau; obj holds reduced costs and −z last."""
    while True:
        enter = -1
        for j in allowed:
            if obj[j] < 0:
                enter = j
                break
        if enter < 0:
            return
        best = None
        leave = -1
        for i, row in enumerate(rows):
            a = row[enter]
            if a > 0:
                ratio = row[-1] / a
                if best is None or ratio < best or (ratio == best and basis[i] < basis[leave]):
                    best, leave = ratio, i
        if leave < 0:
            raise _Unbounded()
        _pivot(rows, obj, leave, enter)
        basis[leave] = enter


def _lp_min(c, A=(), b=(), A_ub=(), b_ub=()):
    """min c·x s.t. A x = b, A_ub x ≤ b_ub, x ≥ 0, exactly (Fractions).

    Returns (value, x). Raises _Infeasible or _Unbounded. Two-phase simplex
    with Bland's rule (always terminates); the slacks of inequality rows with
    b_ub ≥ 0 start in the basis, every other row gets an artificial variable.
    """
    n = len(c)
    m_ub = len(A_ub)
    specs = [(list(r), Fraction(v), None) for r, v in zip(A, b)]
    specs += [(list(r), Fraction(v), k) for k, (r, v) in enumerate(zip(A_ub, b_ub))]
    n_art = sum(1 for row, rhs, k in specs if k is None or rhs < 0)
    width = n + m_ub + n_art
    rows, basis, art_rows = [], [], []
    art = n + m_ub
    for row, rhs, k in specs:
        full = [Fraction(x) for x in row] + [Fraction(0)] * (m_ub + n_art)
        if k is not None:
            full[n + k] = Fraction(1)
        if rhs < 0:
            full = [-x for x in full]
            rhs = -rhs
        if k is not None and full[n + k] == 1:
            basis.append(n + k)
        else:
            full[art] = Fraction(1)
            basis.append(art)
            art_rows.append(len(rows))
            art += 1
        rows.append(full + [rhs])
    struct = range(n + m_ub)
    if art_rows:
        # phase 1: minimise the sum of the artificials
        obj = [Fraction(0)] * (width + 1)
        for i in art_rows:
            row = rows[i]
            for k in struct:
                if row[k]:
                    obj[k] -= row[k]
            obj[-1] -= row[-1]
        _run_simplex(rows, obj, basis, struct)
        if obj[-1] != 0:  # −z ≠ 0: the artificials cannot all be zero
            raise _Infeasible()
        # drive the artificials (now at level zero) out of the basis
        i = 0
        while i < len(rows):
            if basis[i] >= n + m_ub:
                row = rows[i]
                col = next((k for k in struct if row[k] != 0), -1)
                if col < 0:  # redundant equation
                    del rows[i]
                    del basis[i]
                    continue
                _pivot(rows, obj, i, col)
                basis[i] = col
            i += 1
        rows = [row[: n + m_ub] + [row[-1]] for row in rows]
    else:
        rows = [row[: n + m_ub] + [row[-1]] for row in rows]
    # phase 2
    cf = [Fraction(x) for x in c] + [Fraction(0)] * m_ub
    obj = cf + [Fraction(0)]
    for i, row in enumerate(rows):
        cb = cf[basis[i]]
        if cb:
            for k in range(n + m_ub + 1):
                if row[k]:
                    obj[k] -= cb * row[k]
    _run_simplex(rows, obj, basis, struct)
    x = [Fraction(0)] * (n + m_ub)
    for i, row in enumerate(rows):
        x[basis[i]] = row[-1]
    return -obj[-1], x[:n]


def _rank(vectors) -> int:
    """Exact rank of a list of rational vectors (Gaussian elimination)."""
    rows = [[Fraction(x) for x in v] for v in vectors]
    rows = [r for r in rows if any(r)]
    if not rows:
        return 0
    ncols = len(rows[0])
    rank = 0
    for col in range(ncols):
        piv = next((i for i in range(rank, len(rows)) if rows[i][col] != 0), None)
        if piv is None:
            continue
        rows[rank], rows[piv] = rows[piv], rows[rank]
        p = rows[rank]
        for i in range(rank + 1, len(rows)):
            f = rows[i][col] / p[col]
            if f:
                rows[i] = [a - f * q for a, q in zip(rows[i], p)]
        rank += 1
        if rank == len(rows):
            break
    return rank


# ======================================================================
# Newton polyhedron
# ======================================================================
def _smallest_face(points, p):
    """Smallest face F of Γ containing the point p ∈ Γ.

    Returns (vertex indices, recession directions): the exponent points a_k
    and unit vectors e_i that lie in F. Computed from the normal cone
    C = {n ≥ 0 : ⟨n, a_k − p⟩ ≥ 0 ∀k} of F: for n in the relative interior
    of C, F = {x ∈ Γ : ⟨n, x⟩ = ⟨n, p⟩}, so a_k ∈ F iff ⟨n, a_k − p⟩ = 0
    for every n ∈ C, and e_i ∈ rec F iff n_i = 0 for every n ∈ C. Each LP
    (over the slice Σ n_i = 1) maximises the constraints not yet seen strict,
    so every round finds a new strict one or stops; solutions add up, as C is
    a convex cone. If C = {0}, F = Γ.
    """
    d = len(p)
    N = len(points)
    # variables n_0..n_{d-1};  ⟨n, p − a_k⟩ ≤ 0 (slack σ_k = ⟨n, a_k − p⟩)
    A_ub = [[p[i] - points[k][i] for i in range(d)] for k in range(N)]
    b_ub = [0] * N
    # maximise Σ_{rest} σ_k + Σ_{rest} n_i: σ_k = ⟨n, a_k − p⟩ is linear in n
    strict_pts, pos_dirs = set(), set()
    while True:
        cost = [Fraction(0)] * d
        rest_pts = [k for k in range(N) if k not in strict_pts]
        rest_dirs = [i for i in range(d) if i not in pos_dirs]
        if not rest_pts and not rest_dirs:
            break
        for k in rest_pts:
            for i in range(d):
                cost[i] -= points[k][i] - p[i]
        for i in rest_dirs:
            cost[i] -= 1
        try:
            val, x = _lp_min(cost, [[1] * d], [1], A_ub, b_ub)
        except _Infeasible:
            return list(range(N)), list(range(d))  # C = {0}: the face is Γ
        if val >= 0:
            break
        new_pts = {k for k in rest_pts if sum(x[i] * (points[k][i] - p[i]) for i in range(d)) > 0}
        new_dirs = {i for i in rest_dirs if x[i] > 0}
        if not new_pts and not new_dirs:  # cannot happen (val < 0); guard against looping
            break
        strict_pts |= new_pts
        pos_dirs |= new_dirs
    verts = [k for k in range(N) if k not in strict_pts]
    rec = [i for i in range(d) if i not in pos_dirs]
    return verts, rec


def _newton(points, v):
    """t*, the smallest face (vertex indices, recession directions), and m.

    points: list of exponent tuples (ints); v: list of positive Fractions.
    """
    d = len(v)
    N = len(points)
    # variables: c_0..c_{N-1}, s_0..s_{d-1}, t;  Σ c_j a_j + s − t v = 0, Σ c = 1; min t
    A = []
    for i in range(d):
        A.append([points[j][i] for j in range(N)] + [1 if k == i else 0 for k in range(d)] + [-v[i]])
    A.append([1] * N + [0] * d + [0])
    b = [0] * d + [1]
    c = [0] * (N + d) + [1]
    tstar, x = _lp_min(c, A, b)
    if tstar <= 0:  # impossible for K(0) = 0, kept as a guard
        raise TruthError("Newton polyhedron contains the origin (K(0) ≠ 0?)")
    p = [tstar * vi for vi in v]
    verts, rec = _smallest_face(points, p)
    j0 = verts[0]
    vecs = [[points[j][i] - points[j0][i] for i in range(d)] for j in verts[1:]]
    vecs += [[1 if k == i else 0 for k in range(d)] for i in rec]
    dim = _rank(vecs)
    return tstar, d - dim, verts, rec


def newton_value(expr_or_poly, prior_exponents=None):
    """Newton-polyhedron value (Varchenko 1976; Lin 2011, arXiv 1003.5338).

    Returns ``(Fraction(1/t*), m)`` with t* = min{t : t·(h+1) ∈ Γ(K)} and m
    the codimension of the smallest face of Γ containing t*·(h+1). No
    non-degeneracy check: 1/t* is exact for non-degenerate K and an upper
    bound on λ in general (the multiplicity is then not certified either).
    """
    poly, label = _as_poly(expr_or_poly)
    d = len(poly.gens)
    h = _prior_vector(prior_exponents, d, label)
    v = [hi + 1 for hi in h]
    points = [tuple(int(e) for e in mon) for mon in poly.monoms()]
    tstar, m, _, _ = _newton(points, v)
    return 1 / tstar, m


# ======================================================================
# non-degeneracy
# ======================================================================
def _compact_face_containing(points, pts):
    """Smallest face of Γ containing all of the given points, if it is compact.

    Returns the sorted list of exponent-point indices on it, or None when that
    face is not compact. Applied to one exponent point a_j this decides exactly
    whether a_j lies on some compact face: the union of the compact faces of
    Γ = conv(A) + R≥0^d is its set of Pareto-minimal points, and a_j is
    Pareto-minimal iff its smallest face has no recession direction.
    """
    d = len(points[0])
    centre = [sum(Fraction(points[j][i]) for j in pts) / len(pts) for i in range(d)]
    verts, rec = _smallest_face(points, centre)
    if rec:
        return None
    return verts


def _positive_even(mon, coeff) -> bool:
    return coeff > 0 and all(e % 2 == 0 for e in mon)


def _eval_terms(terms, pt):
    total = Fraction(0)
    for mon, c in terms:
        val = Fraction(c)
        for i, e in enumerate(mon):
            if e:
                val *= pt[i] ** e
        total += val
    return total


def _eval_float(terms, pt):
    total = 0.0
    scale = 0.0
    for mon, c in terms:
        val = float(c)
        for i, e in enumerate(mon):
            if e:
                val *= pt[i] ** e
        total += val
        scale += abs(val)
    return total, scale


_MAGS = [Fraction(1), Fraction(2), Fraction(3), Fraction(1, 2), Fraction(1, 3), Fraction(3, 2), Fraction(2, 3)]


def _find_torus_zero(terms, gens, deadline=None):
    """Look for a real zero of a face polynomial with all coordinates non-zero.

    Each irreducible factor is sampled at rational points in every orthant of
    the variables it uses (screened in floating point, every witness then
    re-checked exactly): an exact zero, or a sign change within one orthant
    (connected, so the factor vanishes in between), is a witness. Returns a
    short description, or None when nothing was found (which proves nothing).
    """
    d = len(gens)
    poly = sympy.Poly.from_dict({m: sympy.Rational(c.numerator, c.denominator) for m, c in terms}, *gens)
    try:
        _, factors = sympy.factor_list(poly)
    except Exception:  # noqa: BLE001 - factoring is only a heuristic here
        factors = [(poly, 1)]
    rng = random.Random(20240601)
    for fac, _mult in factors:
        fac = sympy.Poly(fac, *gens)
        fterms = [(tuple(int(e) for e in mon), Fraction(int(c.p), int(c.q))) for mon, c in fac.terms()]
        used = sorted({i for mon, _ in fterms for i in range(d) if mon[i]})
        if len(fterms) < 2 or not used:
            continue  # monomial factors never vanish on the torus
        per_orthant = max(4, min(25, 4000 // 2 ** len(used)))
        samples = [[Fraction(1)] * len(used)] + [
            [rng.choice(_MAGS) for _ in used] for _ in range(per_orthant - 1)
        ]
        for signs in range(2 ** len(used)):
            if deadline is not None and time.monotonic() > deadline:
                return None
            pos = neg = None
            for mag in samples:
                pt = [Fraction(1)] * d
                for k, i in enumerate(used):
                    pt[i] = -mag[k] if (signs >> k) & 1 else mag[k]
                fv, scale = _eval_float(fterms, [float(x) for x in pt])
                tol = 1e-9 * scale
                if abs(fv) <= tol:
                    if _eval_terms(fterms, pt) == 0:
                        desc = ", ".join(f"{gens[i]} = {pt[i]}" for i in used)
                        return f"vanishes at {desc}, off the coordinate hyperplanes"
                    continue
                if fv > 0 and pos is None:
                    pos = pt
                if fv < 0 and neg is None:
                    neg = pt
                if pos is not None and neg is not None:
                    if _eval_terms(fterms, pos) > 0 and _eval_terms(fterms, neg) < 0:
                        dp = ", ".join(f"{gens[i]} = {pos[i]}" for i in used)
                        dn = ", ".join(f"{gens[i]} = {neg[i]}" for i in used)
                        return (
                            f"changes sign within one orthant (positive at {dp}, negative at {dn}), "
                            f"so it vanishes off the coordinate hyperplanes"
                        )
                    pos = neg = None
    return None


_WITNESS_SECONDS = 2.0
_MAX_WITNESS_FACES = 40


def _check_nondegenerate(poly, label, bound, witness=True):
    """Raise TruthError unless every compact-face polynomial is certified > 0 on the torus.

    Certified iff no "bad" term (non-positive coefficient or an odd exponent)
    lies on a compact face of Γ. When one does, a few compact faces through
    the bad terms (their smallest faces, then the smallest faces through a bad
    term and one other term) are searched for a real zero off the coordinate
    hyperplanes, to say "degenerate" rather than "cannot certify".
    """
    gens = poly.gens
    d = len(gens)
    terms = [(tuple(int(e) for e in mon), Fraction(int(c.p), int(c.q))) for mon, c in poly.terms()]
    points = [m for m, _ in terms]
    N = len(points)
    bad = [j for j, (m, c) in enumerate(terms) if not _positive_even(m, c)]

    def face_expr(face):
        return sympy.Poly.from_dict(
            {terms[k][0]: sympy.Rational(terms[k][1].numerator, terms[k][1].denominator) for k in face}, *gens
        ).as_expr()

    seen = []
    budget = _MAX_WITNESS_FACES
    deadline = time.monotonic() + _WITNESS_SECONDS

    def try_face(face):
        nonlocal budget
        if face is None or face in seen or budget <= 0 or time.monotonic() > deadline:
            return None
        seen.append(face)
        budget -= 1
        fterms = [terms[k] for k in face]
        if all(_positive_even(m, c) for m, c in fterms):
            return None
        return _find_torus_zero(fterms, gens, deadline)

    bad_on = []  # (bad term index, smallest compact face through it)
    w = None
    if not witness:  # only certify; the caller decides the rest
        bad = [j for j in bad if _compact_face_containing(points, [j]) is not None]
        if bad:
            raise TruthError(f"{label}: a compact face of the Newton polygon has a term with a non-positive "
                             f"coefficient or an odd exponent, so 1/t* = {bound} is only an upper bound on λ")
        return
    for j in bad:
        a = points[j]
        # quick rejection: a point above another one is never on a compact face
        if any(k != j and all(points[k][i] <= a[i] for i in range(d)) for k in range(N)):
            continue
        face = _compact_face_containing(points, [j])
        if face is None:
            continue
        bad_on.append((j, face))
        w = try_face(face)
        if w or budget <= 0:
            break
    if not bad_on:
        return  # certified: every compact face consists of positive even terms
    if not w:
        for j, _ in bad_on:
            for k in range(N):
                if budget <= 0:
                    break
                if k != j:
                    w = try_face(_compact_face_containing(points, [j, k]))
                    if w:
                        break
            if w or budget <= 0:
                break
    if w:
        raise TruthError(
            f"{label}: degenerate for the Newton rule: face polynomial {face_expr(seen[-1])} {w}, "
            f"so 1/t* = {bound} is only an upper bound on λ"
        )
    raise TruthError(
        f"{label}: cannot certify non-degeneracy for the Newton rule: face polynomial {face_expr(bad_on[0][1])} "
        f"is not a sum of even monomials with positive coefficients and no real zero off the coordinate "
        f"hyperplanes was found, so 1/t* = {bound} is only an upper bound on λ"
    )


def _check_potential(poly, label) -> None:
    """Refuse (NotAPotential) a K that takes negative values arbitrarily close to 0 because a vertex
    of its Newton polyhedron has a negative coefficient or an odd exponent (w1**3, w1**2 - w2**2):
    a vertex a is exposed by a weight ω > 0, and along w_i = ±t^ω_i (t → 0+) the term c·w^a dominates
    K, with the sign chosen by the signs of the w_i (Varchenko 1976; Arnold, Gusein-Zade & Varchenko,
    *Singularities of Differentiable Maps* II, 1988)."""
    from .plane import NotAPotential

    terms = [(tuple(int(e) for e in mon), Fraction(int(c.p), int(c.q))) for mon, c in poly.terms()]
    points = [m for m, _ in terms]
    d = len(points[0])
    for j, (a, c) in enumerate(terms):
        if _positive_even(a, c):
            continue
        if any(k != j and all(points[k][i] <= a[i] for i in range(d)) for k in range(len(points))):
            continue  # above another exponent: not a vertex
        if _compact_face_containing(points, [j]) != [j]:
            continue
        odd = [f"w{i + 1}" for i, e in enumerate(a) if e % 2]
        why = "a negative coefficient" if c < 0 else f"an odd power of {odd[0]}"
        term = sympy.Poly.from_dict({a: sympy.Rational(c.numerator, c.denominator)}, *poly.gens).as_expr()
        raise NotAPotential(f"{label}: the term {term} is a vertex of the Newton polyhedron with {why}, so K takes "
                            "negative values arbitrarily close to 0: it is not a potential")


@functools.lru_cache(maxsize=1024)
def _polynomial_truth_cached(expr: str, prior: Optional[tuple]) -> Truth:
    poly, _ = parse_polynomial(expr)
    label = expr.strip()
    d = len(poly.gens)
    h = _prior_vector(prior, d, label)
    v = [hi + 1 for hi in h]
    points = [tuple(int(e) for e in mon) for mon in poly.monoms()]
    _check_potential(poly, label)
    tstar, m, _, _ = _newton(points, v)
    lam = 1 / tstar
    try:
        _check_nondegenerate(poly, label, lam, witness=d != 2)
    except TruthError:
        if d != 2:
            raise
        # two variables: adapted coordinates decide what the Newton rule cannot
        from .plane import NotAPotential, plane_truth

        try:
            return plane_truth(expr, prior)
        except NotAPotential:
            raise
        except TruthError as exc:
            reason = str(exc).split(": ", 1)[-1]
            raise TruthError(f"{label}: {reason} (the Newton value 1/t* = {lam} is only an upper bound on λ)") from None
    src = f"{NEWTON_SOURCE}, non-degenerate (every compact-face polynomial a positive sum of even monomials)"
    if any(h):
        src += f", prior ∏|w_i|^h_i with h = ({', '.join(str(x) for x in h)})"
    return Truth(lam=lam, multiplicity=int(m), kind="exact", source=src)


def polynomial_truth(expr: str, prior_exponents=None) -> Truth:
    """Exact (λ, m) of K(w) = expr at w = 0 by the Newton-polyhedron rule.

    Source: Varchenko 1976; S. Lin, arXiv 1003.5338 / PhD thesis 2011 (RLCT of
    a non-degenerate function with a monomial prior ∏|w_i|^{h_i}). The Newton
    rule is the fast path in any dimension; a two-variable K it cannot
    certify goes to adapted coordinates (:mod:`llcbench.truth.plane`), which
    decide every two-variable K ≥ 0. Truth.source names the method that
    certified the value. Otherwise TruthError. Results are cached on
    (expr, prior).
    """
    if not isinstance(expr, str):
        raise TruthError(f"polynomial must be given as a string, got {type(expr).__name__}")
    prior = None
    if prior_exponents is not None:
        prior = tuple(_to_fraction(x, f"{expr.strip()}: prior exponent") for x in prior_exponents)
    return _polynomial_truth_cached(expr, prior)


# ======================================================================
# separable rules
# ======================================================================
_KIND_ORDER = {"exact": 0, "hard": 1, "theory": 2}


def _combined_kind(*truths: Truth) -> str:
    return max((t.kind for t in truths), key=lambda k: _KIND_ORDER[k])


def _check_truth(t, what):
    if not isinstance(t, Truth):
        raise TruthError(f"{what}: expected a Truth, got {type(t).__name__}")


def monomial_truth(exponents: Sequence[int], prior_exponents=None) -> Truth:
    """K = ∏ w_i^{e_i} with every e_i even and ≥ 2, prior ∏|w_i|^{h_i}.

    λ = min_i (h_i + 1)/e_i, m = number of i attaining the minimum
    (Watanabe 2009, *Algebraic Geometry and Statistical Learning Theory*;
    Lau, Murfet, Wei 2023). An odd exponent (K changes sign) or a zero
    exponent (K flat along that variable, which the benchmark refuses, as
    parse_polynomial does) raises TruthError.
    """
    e = list(exponents)
    if not e:
        raise TruthError("monomial: no exponents given")
    label = "monomial " + "*".join(f"w{i + 1}**{x}" for i, x in enumerate(e))
    for i, x in enumerate(e):
        if isinstance(x, bool) or not isinstance(x, int):
            raise TruthError(f"{label}: exponent of w{i + 1} must be an integer, got {x!r}")
        if x < 0:
            raise TruthError(f"{label}: exponent of w{i + 1} is negative")
        if x == 0:
            raise TruthError(
                f"{label}: exponent of w{i + 1} is 0, so K is flat along w{i + 1} (every variable must appear)"
            )
        if x % 2:
            raise TruthError(f"{label}: exponent of w{i + 1} is odd ({x}), so K changes sign (not a potential)")
    h = _prior_vector(prior_exponents, len(e), label)
    ratios = [(hi + 1) / Fraction(x) for hi, x in zip(h, e)]
    lam = min(ratios)
    m = sum(1 for r in ratios if r == lam)
    src = "monomial rule λ = min_i (h_i+1)/e_i (Watanabe 2009; Lau, Murfet, Wei 2023)"
    if any(h):
        src += f", prior h = ({', '.join(str(x) for x in h)})"
    return Truth(lam=lam, multiplicity=m, kind="exact", source=src)


def sum_rule(t1: Truth, t2: Truth) -> Truth:
    """K1(u) + K2(v) over disjoint variables: λ = λ1 + λ2, m = m1 + m2 − 1
    (Watanabe 2009; Lin 2011)."""
    _check_truth(t1, "sum rule")
    _check_truth(t2, "sum rule")
    return Truth(
        lam=t1.lam + t2.lam,
        multiplicity=t1.multiplicity + t2.multiplicity - 1,
        kind=_combined_kind(t1, t2),
        source=f"sum rule over disjoint variables (Watanabe 2009; Lin 2011) of [{t1.source}] and [{t2.source}]",
    )


def product_rule(t1: Truth, t2: Truth) -> Truth:
    """K1(u)·K2(v) over disjoint variables: λ = min(λ1, λ2); m = m1 + m2 if
    λ1 = λ2, else the m of the minimiser (Watanabe 2009; Lin 2011)."""
    _check_truth(t1, "product rule")
    _check_truth(t2, "product rule")
    if t1.lam == t2.lam:
        lam, m = t1.lam, t1.multiplicity + t2.multiplicity
    elif t1.lam < t2.lam:
        lam, m = t1.lam, t1.multiplicity
    else:
        lam, m = t2.lam, t2.multiplicity
    return Truth(
        lam=lam,
        multiplicity=m,
        kind=_combined_kind(t1, t2),
        source=f"product rule over disjoint variables (Watanabe 2009; Lin 2011) of [{t1.source}] and [{t2.source}]",
    )


def power_rule(t: Truth, k: int) -> Truth:
    """K^k: λ = λ(K)/k, same m (Watanabe 2009; Lin 2011)."""
    _check_truth(t, "power rule")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise TruthError(f"power rule: exponent k must be a positive integer, got {k!r}")
    return Truth(
        lam=t.lam / k,
        multiplicity=t.multiplicity,
        kind=t.kind,
        source=f"power rule λ(K^{k}) = λ(K)/{k} (Watanabe 2009; Lin 2011) of [{t.source}]",
    )
