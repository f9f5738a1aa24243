"""Exact learning coefficients of two-variable polynomial potentials, degenerate ones included.

The Newton rule (:mod:`llcbench.truth.polynomial`) is exact only when every
compact face of the Newton polygon is non-degenerate. In two variables the
degenerate case is solved by *adapted coordinates*:

Theorem (Varchenko 1976; Phong, Stein & Sturm 1999, "On the growth and
stability of real-analytic functions", Amer. J. Math. 121; an elementary
proof through Puiseux series: Ikromov & Müller 2011, "On adapted coordinate
systems", Trans. AMS 363). Let f be real analytic near 0 ∈ R², f(0) = 0. Call f
*normalised* when, on every compact edge of its Newton polygon, every real
root of the edge polynomial (in z = y/x^q, or x/y^p) has multiplicity at most
the Newton distance d(f). Every f becomes normalised after an analytic change
of coordinates (x, y) → (x, y − P(x)) or (x − P(y), y), P a power series of
positive order built term by term from the roots b of multiplicity > d on the
main edge (y → y − b·x^q; the edge then has integer slope), and then
λ(f) = 1/d(f) (flat prior; f ≥ 0 here, so λ is the real log canonical
threshold of f at 0). Sergeant-Perthuis, Tsigaridas & Tsukahara (2026, "Exact
algebraic computation of learning coefficients for two-dimensional singular
models") make this an algorithm with a termination bound.

This module runs the same construction chart by chart, which also gives the
multiplicity m and a monomial prior ∏|w_i|^h_i (h_i > −1), and proves K ≥ 0
near 0 instead of assuming it. The quantity computed: ζ(z) = ∫ K(w)^z
∏|w_i|^{h_i} dw over a neighbourhood of 0 has its largest pole at z = −λ,
of order m (Watanabe 2009: the learning coefficient and its multiplicity).
Steps:

1. Split R² into its four closed quadrants (the integral is their sum, so
   (λ, m) is the minimum over them, m the largest among those attaining
   it: the integrands are positive, nothing cancels). On a quadrant,
   substitute the signs so it is {x, y > 0}, with weights k = h + 1.
2. Factor K over Q into irreducibles (sympy), K = c·x^a·y^b·∏ g_i^{e_i};
   each g_i is carried through the charts separately (it stays square-free,
   and the factors stay coprime), so that multiplicities are exact.
3. On a quadrant with F = x^{ℓ1} y^{ℓ2} ∏ g_i^{e_i} (units at 0 dropped) and
   weights (k1, k2), let the rays be the normals a = (p, q) of the compact
   edges of the Newton polygon Γ of F, and (1, 0), (0, 1); ℓ(a) = min over Γ
   of ⟨a, ·⟩. The Newton candidate is min_a ⟨a, k⟩/ℓ(a) (= 1/t*, Varchenko;
   Lin 2011 with a prior), of multiplicity 2 when two rays attain it (the
   point t*·k is a vertex), else 1. A toric chart for the ray a,
   x = u^p w^r, y = u^q w^s (ps − qr = 1, r, s ≥ 0: a diffeomorphism of
   the open quadrant, w = y^p/x^q), turns F into u^{ℓ(a)}·w^c·G(u, w) with
   G(0, w) the edge polynomial; the only points of the resolution the
   Newton candidate does not see are the positive real roots w = b of the
   edge polynomials. Near such a point, with w = b ± v, the problem is again
   a quadrant problem: F' = u^{ℓ(a)} ∏ G_i(u, b ± v)^{e_i} with weights
   (⟨a, k⟩, 1) (the Jacobian is u^{p+q−1}·(a unit)). For an edge of slope
   1/q (p = 1) this chart is exactly the normalising change y → y − b·x^q
   followed by y = x^q·v; for q = 1 it is x → x − b·y^p: both axes and the
   x ↔ y symmetric case are one rule here.
4. The quadrant's (λ, m) is the minimum of the Newton candidate and of the
   local values at every root (m the largest among those attaining it).

Why this is exact: the charts of step 3 over the (regular) fan of Γ are a
toric modification; at every point of it except the roots, F is a monomial
times a unit in coordinates (normal crossings), where ζ is explicit. Two
lemmas close the recursion. (i) At a root of total multiplicity μ with
μ < ℓ(a)/⟨a, k⟩, the local value is ⟨a, k⟩/ℓ(a) with m = 1 (Weierstrass
preparation in v and Hölder's inequality bound the v-integral uniformly in
u when sμ < 1). Such a root is settled without a chart when every factor
through it has an even power (K ≥ 0 near it then follows from the edge
polynomial); with ``VERIFY_LEMMA`` it is charted anyway and the recursion's
value is asserted to be this one (the tests do so). This lemma is the
content of the normalisation theorem above: with a flat prior and every
root multiplicity ≤ d = t*, no root goes below 1/d. (ii) When a
single factor g vanishes at 0, g is smooth with ∂g/∂v ≠ 0 (or ∂g/∂u ≠ 0),
there is no monomial in v (u) and no prior in v (u), the coordinate change
v' = g(u, v) is analytic with non-zero Jacobian and F = u^{ℓ1}·g^e becomes
normal crossing: if the curve g = 0 enters the open quadrant, the quadrant
lies between a quadrant and a half-plane in the new coordinates, both with
(λ, m) = (min(k1/ℓ1, 1/e), number attaining); if it does not, the edge of g
has no positive root and step 3 ends. (ii) stops the recursion along a
smooth branch y = φ(x) with φ an infinite power series (K = (y − x/(1 − x))²
·(1 − x)², say); everywhere else the toric charts separate the branches and
resolve them in finitely many steps (Newton–Puiseux), so the recursion ends
(a depth guard turns a runaway into a refusal, never into a value).

K ≥ 0 is checked on the way, in every quadrant and every chart: each vertex
of each Newton polygon must have a positive coefficient (with the signs of
the dropped units) and each positive root of each edge polynomial an even
total multiplicity; together with the recursion at every root not settled
by lemma (i) this proves K ≥ 0 near 0, and a polynomial that fails it is
refused (NotAPotential).

Exact arithmetic: coefficients live in Q or in one real algebraic extension
Q(b) (sympy ``QQ.algebraic_field`` with b a ``CRootOf``, which fixes the real
embedding). Rational roots stay in Q. An irrational real root b of an edge
polynomial over Q opens Q(b); a root that would need a second extension over
Q(b) (a tower) is refused with a TruthError, never approximated, unless
lemma (i) settles it (then it needs no chart). Signs of
elements of Q(b) are read from a 50-digit evaluation of a non-zero number
(decided exactly to be non-zero first) and refused if it is below 1e-40.
Non-real roots are not singular directions for the real integral and are
skipped.
"""

from __future__ import annotations

from fractions import Fraction
from math import comb, gcd

import sympy
from sympy import QQ

from ..errors import TruthError
from . import Truth
from .parse import _as_poly, _prior_vector

__all__ = ["plane_truth", "plane_value", "PLANE_SOURCE", "NotAPotential"]

PLANE_SOURCE = (
    "adapted coordinates in the plane: Newton polygon and toric charts along the real roots of its edge "
    "polynomials (Varchenko 1976; Phong, Stein & Sturm 1999; Sergeant-Perthuis, Tsigaridas & Tsukahara 2026)"
)

_MAX_DEPTH = 40
# True: chart every root, also those lemma (i) settles, and assert the lemma there (the tests do)
VERIFY_LEMMA = False
_Z = sympy.Symbol("z")


class _Refused(Exception):
    """A reason to refuse, completed with the polynomial's label by the caller."""


class _Negative(_Refused):
    """K takes negative values near 0."""


class NotAPotential(TruthError):
    """K takes negative values arbitrarily close to 0, so it is not a potential."""


class _Stats:
    def __init__(self):
        self.charts = 0
        self.max_depth = 0
        self.extensions = set()


# ----------------------------------------------------------------- exact field helpers
def _sign(K, c) -> int:
    if not c:
        return 0
    if K == QQ:
        return 1 if c > 0 else -1
    val = K.to_sympy(c).evalf(50)
    if abs(val) < sympy.Float("1e-40"):
        raise _Refused(f"cannot decide the sign of the algebraic number {K.to_sympy(c)} at 50 digits")
    return 1 if val > 0 else -1


def _convert(L, K, poly):
    if L == K:
        return poly
    return {mon: L.convert_from(c, K) for mon, c in poly.items()}


# ----------------------------------------------------------------- Newton polygon of one factor
def _hull(poly):
    """Vertices of the Newton polygon's compact boundary, from the v-axis to the u-axis.

    poly vanishes at 0 and is divisible by neither u nor v, so it has points
    (0, j0) and (i0, 0); the compact boundary runs between them.
    """
    lowest = {}
    for i, j in poly:
        if i not in lowest or j < lowest[i]:
            lowest[i] = j
    i0 = min(i for (i, j) in poly if j == 0)
    pts = sorted((i, j) for i, j in lowest.items() if i <= i0)
    chain = []
    for pt in pts:
        if chain and pt[1] >= chain[-1][1]:
            continue  # not below the previous vertex: inside Γ
        while len(chain) >= 2:
            (a1, b1), (a2, b2) = chain[-2], chain[-1]
            # keep only strictly convex turns of the lower-left boundary
            if (a2 - a1) * (pt[1] - b1) - (b2 - b1) * (pt[0] - a1) <= 0:
                chain.pop()
            else:
                break
        chain.append(pt)
    return chain


def _normals(chain):
    out = []
    for (i1, j1), (i2, j2) in zip(chain, chain[1:]):
        p, q = j1 - j2, i2 - i1
        g = gcd(p, q)
        out.append((p // g, q // g))
    return out


def _ell(poly, a) -> int:
    return min(a[0] * i + a[1] * j for i, j in poly)


def _vertex_coeff(poly, d):
    best = min(poly, key=lambda mon: d[0] * mon[0] + d[1] * mon[1])
    return poly[best]


# ----------------------------------------------------------------- univariate roots
def _positive_roots(K, coeffs):
    """Positive real roots of Σ coeffs[t] z^t over the field K, with multiplicities.

    Returns {key: (mult, field, root)}; the key identifies a root across
    polynomials (a rational, or an irreducible factor over Q and the index of
    its real root, or an element of K).
    """
    f = sympy.Poly.from_dict({(t,): c for t, c in coeffs.items()}, _Z, domain=K)
    _lc, factors = f.factor_list()
    out = {}
    for fac, mult in factors:
        fac = fac.monic()
        if fac.degree() == 1:
            rep = fac.rep.to_list()
            b = -rep[1]
            if _sign(K, b) > 0:
                key = ("q", Fraction(int(b.numerator), int(b.denominator))) if K == QQ else ("k", b)
                out[key] = (mult, K, b)
            continue
        if K == QQ:
            nreal = fac.count_roots()
            for idx in range(nreal):
                r = sympy.CRootOf(fac.as_expr(), idx)
                if r.evalf(30) <= 0:
                    continue
                L = QQ.algebraic_field(r)
                key = ("r", tuple(fac.rep.to_list()), idx)
                out[key] = (mult, L, L.from_sympy(r))
            continue
        norm = fac.norm().sqf_part()  # CRootOf counts repeated roots repeatedly
        if any(sympy.CRootOf(norm.as_expr(), i).evalf(30) > 0 for i in range(norm.count_roots())):
            # its positive real roots (if any: the norm's may belong to conjugates) lie in a tower
            # Q(b)(c); they are kept as one group, which the caller may settle by lemma (i)
            out[("t", tuple(fac.rep.to_list()))] = (mult, None, fac.as_expr())
    return out


# ----------------------------------------------------------------- the quadrant problem
def _strip(poly):
    """(poly / u^t1 v^t2, (t1, t2))."""
    t1 = min(i for i, _ in poly)
    t2 = min(j for _, j in poly)
    if t1 == 0 and t2 == 0:
        return poly, (0, 0)
    return {(i - t1, j - t2): c for (i, j), c in poly.items()}, (t1, t2)


def _combine(results):
    """(λ, m) of a sum of positive integrals: the least λ, the largest m attaining it."""
    results = [r for r in results if r[0] is not None]
    if not results:
        return (None, 0)
    lam = min(r[0] for r in results)
    return lam, max(r[1] for r in results if r[0] == lam)


def _monomial_value(mono, k):
    vals = [kk / ll for kk, ll in zip(k, mono) if ll > 0]
    if not vals:
        return (None, 0)
    lam = min(vals)
    return lam, sum(1 for v in vals if v == lam)


def _quadrant(K, factors, mono, k, sgn, depth, stats):
    """(λ, m) of ∫ over {u, v > 0} near 0 of |F|^{-s} u^{k1−1} v^{k2−1}; F = sgn·u^ℓ1 v^ℓ2 ∏ g^e.

    λ is None when F is a unit (no pole). Raises _Refused for K < 0 near 0,
    a tower of extensions, or a runaway recursion.
    """
    stats.max_depth = max(stats.max_depth, depth)
    if depth > _MAX_DEPTH:
        raise _Refused(f"the chart recursion did not end within {_MAX_DEPTH} levels")
    mono = list(mono)
    live = []
    for g, e in factors:
        g, (t1, t2) = _strip(g)
        mono[0] += e * t1
        mono[1] += e * t2
        c0 = g.get((0, 0))
        if c0:
            sgn *= _sign(K, c0) ** e
        else:
            live.append((g, e))
    if not live:
        if sgn < 0:
            raise _Negative("K is negative near 0")
        return _monomial_value(mono, k)

    hulls = [_hull(g) for g, _ in live]
    normals = sorted({a for h in hulls for a in _normals(h)}, key=lambda a: Fraction(a[1], a[0]))

    # K ≥ 0: the coefficient of every vertex of Γ (one direction inside each cone of the fan)
    rays = [(1, 0)] + normals + [(0, 1)]
    for a1, a2 in zip(rays, rays[1:]):
        d = (a1[0] + a2[0], a1[1] + a2[1])
        s = sgn
        for (g, e) in live:
            s *= _sign(K, _vertex_coeff(g, d)) ** e
        if s < 0:
            raise _Negative("K is negative near 0 (a vertex of its Newton polygon has a negative coefficient)")

    def ell(a):
        return a[0] * mono[0] + a[1] * mono[1] + sum(e * _ell(g, a) for g, e in live)

    # the terminal normal-crossing case (lemma (ii))
    if len(live) == 1:
        g, e = live[0]
        for axis in (0, 1):  # axis 0: the new coordinate replaces v; axis 1: it replaces u
            lin = g.get((0, 1) if axis == 0 else (1, 0))
            other = 1 - axis
            if not lin or mono[other] != 0 or k[other] != 1:
                continue
            if axis == 0:
                c = min(((i, c) for (i, j), c in g.items() if j == 0))[1]
            else:
                c = min(((j, c) for (i, j), c in g.items() if i == 0))[1]
            if _sign(K, c) != _sign(K, lin):  # the curve g = 0 enters the open quadrant
                if e % 2:
                    raise _Negative("K changes sign near 0 (a real branch of an odd power)")
                val = [(k[axis] / mono[axis]) if mono[axis] else None, Fraction(1, e)]
                vals = [x for x in val if x is not None]
                lam = min(vals)
                return lam, sum(1 for x in vals if x == lam)

    results = []
    cands = [((1, 0), ell((1, 0))), ((0, 1), ell((0, 1)))] + [(a, ell(a)) for a in normals]
    vals = [Fraction(a[0] * k[0] + a[1] * k[1]) / la for a, la in cands if la > 0]
    lam_n = min(vals)
    results.append((lam_n, sum(1 for x in vals if x == lam_n)))

    for a in normals:
        p, q = a
        s_ = pow(p, -1, q) if q > 1 else 1
        r_ = (p * s_ - 1) // q
        charted = []
        edge = {}
        for g, e in live:
            tg = {}
            for (i, j), c in g.items():
                tg[(p * i + q * j, r_ * i + s_ * j)] = c
            lu = min(i for i, _ in tg)
            lw = min(j for _, j in tg)
            tg = {(i - lu, j - lw): c for (i, j), c in tg.items()}
            charted.append((tg, e))
            for key, (mult, L, b) in _positive_roots(K, {j: c for (i, j), c in tg.items() if i == 0}).items():
                mu0, odd0, _, _ = edge.get(key, (0, False, L, b))
                edge[key] = (mu0 + e * mult, odd0 or e % 2 == 1, L, b)
        if not edge:
            continue
        la = ell(a)
        ka = Fraction(p * k[0] + q * k[1])
        for key, (mu, odd, L, b) in edge.items():
            if mu % 2:
                raise _Negative("K changes sign near 0 (an edge polynomial has a real root of odd multiplicity)")
            if mu * ka < la and not odd and not VERIFY_LEMMA:
                # lemma (i) settles (λ, m) here, and every factor through the point has an even power,
                # so K ≥ 0 near it (the edge polynomial is ≥ 0 around the root): no chart needed
                results.append((ka / la, 1))
                continue
            if L is None:
                raise _Refused(
                    f"an edge polynomial has the factor {b} over {K}, whose real roots would need a second "
                    f"algebraic extension (a tower), which this engine does not construct"
                )
            if L != K:
                stats.extensions.add(str(L))
            pows = [L.one]
            for _ in range(max(j for tg, _ in charted for _, j in tg)):
                pows.append(pows[-1] * b)
            local = []
            for sigma in (1, -1):
                stats.charts += 1
                child = []
                for tg, e in charted:
                    tg = _convert(L, K, tg)
                    out = {}
                    for (i, j), c in tg.items():
                        for t in range(j + 1):
                            term = c * L.convert(comb(j, t)) * pows[j - t]
                            if sigma < 0 and t % 2:
                                term = -term
                            key2 = (i, t)
                            out[key2] = out.get(key2, L.zero) + term
                    child.append(({m: c for m, c in out.items() if c}, e))
                local.append(_quadrant(L, child, (la, 0), (ka, Fraction(1)), sgn, depth + 1, stats))
            res = _combine(local)
            if mu * ka < la:  # lemma (i): the root cannot change λ or m
                assert res == (ka / la, 1), (res, ka / la)
            results.append(res)
    return _combine(results)


# ----------------------------------------------------------------- entry points
def _prepared(expr_or_poly, prior_exponents):
    poly, label = _as_poly(expr_or_poly)
    if len(poly.gens) != 2:
        raise TruthError(f"{label}: the plane engine needs exactly two variables, got {len(poly.gens)}")
    h = _prior_vector(prior_exponents, 2, label)
    return poly, label, h


def plane_value(expr_or_poly, prior_exponents=None):
    """(λ, m, stats) of a two-variable K ≥ 0 with K(0) = 0; see the module docstring.

    stats: a dict with the number of charts, the recursion depth and the
    algebraic extensions used. Raises TruthError (with the reason) where the
    engine refuses.
    """
    poly, label, h = _prepared(expr_or_poly, prior_exponents)
    const, factors = poly.factor_list()
    const = QQ.from_sympy(const)
    mono0 = [0, 0]
    rest = []
    for fac, e in factors:
        d = fac.as_dict(native=True)
        if len(d) == 1:
            (mon,) = d
            mono0[0] += e * mon[0]
            mono0[1] += e * mon[1]
            const *= list(d.values())[0] ** e
            continue
        rest.append((d, e))
    k = (h[0] + 1, h[1] + 1)
    stats = _Stats()
    quads = []
    try:
        for s1 in (1, -1):
            for s2 in (1, -1):
                sgn = (1 if const > 0 else -1) * (s1 ** mono0[0]) * (s2 ** mono0[1])
                flipped = [
                    ({(i, j): (c if (s1 ** i) * (s2 ** j) > 0 else -c) for (i, j), c in d.items()}, e)
                    for d, e in rest
                ]
                quads.append(_quadrant(QQ, flipped, tuple(mono0), k, sgn, 0, stats))
    except _Negative as exc:
        raise NotAPotential(f"{label}: {exc}, so it is not a potential") from None
    except _Refused as exc:
        raise TruthError(f"{label}: {exc}") from None
    lam, m = _combine(quads)
    if lam is None:  # cannot happen for K(0) = 0; kept as a guard
        raise TruthError(f"{label}: K does not vanish at 0")
    info = {"charts": stats.charts, "depth": stats.max_depth, "extensions": sorted(stats.extensions)}
    return Fraction(lam), int(m), info


def plane_truth(expr_or_poly, prior_exponents=None) -> Truth:
    """Exact (λ, m) of a two-variable polynomial potential at 0 by adapted coordinates.

    Any K ∈ Q[w1, w2] with K(0) = 0 and K ≥ 0 near 0 (checked), with an
    optional prior ∏|w_i|^{h_i}, h_i > −1 rational; see the module docstring
    for the theorem, its hypotheses and references.
    """
    lam, m, info = plane_value(expr_or_poly, prior_exponents)
    _poly, _label, h = _prepared(expr_or_poly, prior_exponents)
    src = PLANE_SOURCE + (f"; {info['charts']} charts to depth {info['depth']}" if info["charts"] else "; no chart needed")
    if info["extensions"]:
        src += f", over {', '.join(info['extensions'])}"
    if any(h):
        src += f", prior ∏|w_i|^h_i with h = ({', '.join(str(x) for x in h)})"
    return Truth(lam=lam, multiplicity=m, kind="exact", source=src)
