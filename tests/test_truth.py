"""The truth engine against published test vectors — polynomial potentials (Watanabe 2009;
Lau, Murfet & Wei 2023; the Newton-polyhedron rule of Varchenko 1976 and Lin 2011), regular
models, reduced-rank regression (Aoyagi & Watanabe 2005) and deep linear networks (Aoyagi 2024)
— plus property tests of the separable rules."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings, assume
from hypothesis import strategies as st

from llcbench.errors import TruthError
from llcbench.truth import Truth
from llcbench.truth.dln import dln_truth
from llcbench.truth.polynomial import (
    monomial_truth,
    newton_value,
    parse_polynomial,
    polynomial_truth,
    power_rule,
    product_rule,
    sum_rule,
)
from llcbench.truth.regular import regular_truth
from llcbench.truth.rrr import rrr_truth

F = Fraction

# ---------------------------------------------------------------- polynomial potentials
POLY_VECTORS = [
    # (K, λ, m): monomials, sums and products over disjoint variables, powers, Newton-polyhedron cases
    ("w1**2", F(1, 2), 1),
    ("w1**2 + w2**2", F(1), 1),
    ("(w1*w2)**2", F(1, 2), 2),
    ("w1**2*w2**4", F(1, 4), 1),
    ("w1**4*w2**4", F(1, 4), 2),
    ("w1**2*w2**6", F(1, 6), 1),
    ("w1**4 + w2**4", F(1, 2), 1),
    ("w1**2 + w2**4", F(3, 4), 1),
    ("(w1*w2*w3)**2", F(1, 2), 3),
    ("w1**2 + w2**2*w3**2", F(1), 2),
    ("(w1**2 + w2**2)**2", F(1, 2), 1),
    ("(w1**2 + w2**2)**4", F(1, 4), 1),
]
POLY_VECTORS += [(f"w1**{2 * k}", F(1, 2 * k), 1) for k in range(1, 7)]  # w^(2k)
POLY_VECTORS += [  # w1^2 + … + wd^2
    (" + ".join(f"w{i}**2" for i in range(1, d + 1)), F(d, 2), 1) for d in range(1, 9)
]


@pytest.mark.parametrize("expr,lam,m", POLY_VECTORS)
def test_polynomial_vectors(expr, lam, m):
    t = polynomial_truth(expr)
    assert isinstance(t, Truth)
    assert isinstance(t.lam, Fraction)
    assert (t.lam, t.multiplicity) == (lam, m)
    assert t.kind == "exact"
    assert "Newton" in t.source
    assert newton_value(expr) == (lam, m)


# Lau, Murfet, Wei (2023): (f; prior exponents h) with K = f^2
LAU_VECTORS = [
    ("(w1**3*w2)**2", (1, 1), F(1, 3), 1),
    ("(w1**2*w2)**2", (2, 2), F(3, 4), 1),
    ("(w1**4*w2)**2", (6, 3), F(7, 8), 1),
    ("(w1*w2)**2", (1, 1), F(1), 2),
]


@pytest.mark.parametrize("expr,h,lam,m", LAU_VECTORS)
def test_lau_prior_weighted(expr, h, lam, m):
    t = polynomial_truth(expr, h)
    assert t.lam == lam
    assert t.multiplicity == m
    assert t.kind == "exact"
    # the separable monomial rule agrees
    exps = [int(e) for e in parse_polynomial(expr)[0].monoms()[0]]
    mt = monomial_truth(exps, h)
    assert (mt.lam, mt.multiplicity) == (lam, m)


# degenerate inputs in more than two variables: refused, and the Newton value is an upper bound
# on the published λ (two-variable ones are decided by adapted coordinates: tests/test_truth_plane.py)
DEGENERATE = [
    ("(w1*w2 + w3*w4)**2", F(1, 2)),
    ("(w1 - w2)**2 + w3**2", F(1)),
]


@pytest.mark.parametrize("expr,published", DEGENERATE)
def test_degenerate_refused(expr, published):
    with pytest.raises(TruthError) as info:
        polynomial_truth(expr)
    msg = str(info.value)
    assert "degenerate" in msg
    assert "upper bound" in msg
    assert "\n" not in msg
    bound, _m = newton_value(expr)
    assert bound >= published


def test_degenerate_message_names_face():
    with pytest.raises(TruthError, match=r"w1\*\*2 - 2\*w1\*w2 \+ w2\*\*2.*1/t\* = 3/2 is only an upper bound"):
        polynomial_truth("(w1 - w2)**2 + w3**2")
    assert newton_value("(w1 - w2)**2") == (F(1), 1)
    assert newton_value("(w1**2 - w2**3)**2")[0] == F(5, 12)
    assert newton_value("(w1*w2 + w3*w4)**2")[0] == F(1)


@pytest.mark.parametrize(
    "expr",
    ["w1*w2", "w1**2 - w2**2", "w1 + w2**2", "-w1**2", "w1**3", "w1*w2 + w3**2"],
)
def test_uncertifiable_refused(expr):
    with pytest.raises(TruthError, match="degenerate|cannot certify|not a potential"):
        polynomial_truth(expr)


@pytest.mark.parametrize(
    "expr,lam,m",
    [
        # bad terms strictly above the Newton boundary do not matter
        ("w1**2*(1 - w2)", F(1, 2), 1),
        ("w1**2 + w2**2 - w1*w2**3", F(1), 1),
        ("w1**2 + w2**2 + 7*w1*w2*w3**5", F(1), 1),
        ("3*w1**2/2 + 5*w2**4", F(3, 4), 1),
        ("w1**2*w2**2 + w1**4 + w2**4 + w3**2", F(1), 1),
    ],
)
def test_bad_terms_off_compact_faces(expr, lam, m):
    t = polynomial_truth(expr)
    assert (t.lam, t.multiplicity) == (lam, m)


@pytest.mark.parametrize(
    "expr,needle",
    [
        ("w1**2 + w3**2", "w2 does not appear"),
        ("x**2", "unknown symbol"),
        ("w0**2", "unknown symbol"),
        ("w1/w2", "not a polynomial"),
        ("w1**(1/2)", "not a polynomial"),
        ("w1**2 + 1", "constant term"),
        ("w1 - w1", "zero polynomial"),
        ("0.5*w1**2", "not an exact integer"),
        ("__import__('os').system('true')", "unknown symbol"),
        ("sqrt(w1)", "unknown symbol"),
        ("", "empty"),
        ("w1**2 +", "cannot parse"),
    ],
)
def test_parse_errors(expr, needle):
    with pytest.raises(TruthError, match=needle):
        polynomial_truth(expr)


def test_parse_polynomial():
    poly, names = parse_polynomial("w1^2 + w2**2*w3**2")
    assert names == ["w1", "w2", "w3"]
    assert sorted(poly.monoms()) == [(0, 2, 2), (2, 0, 0)]


def test_prior_validation():
    with pytest.raises(TruthError, match="prior exponents"):
        polynomial_truth("w1**2 + w2**2", (1,))
    with pytest.raises(TruthError, match="> −1"):
        polynomial_truth("w1**2", (-1,))
    # zero prior is the flat prior
    assert polynomial_truth("w1**2 + w2**4", (0, 0)).lam == F(3, 4)


def test_polynomial_truth_cached():
    a = polynomial_truth("w1**2 + w2**4 + w3**2*w4**2")
    b = polynomial_truth("w1**2 + w2**4 + w3**2*w4**2")
    assert a is b


# separable rules on the polynomial vectors
def test_rules_on_vectors():
    w2 = monomial_truth([2])
    assert (w2.lam, w2.multiplicity) == (F(1, 2), 1)
    s = sum_rule(w2, w2)  # w1^2 + w2^2
    assert (s.lam, s.multiplicity) == (F(1), 1)
    p = product_rule(w2, w2)  # (w1 w2)^2
    assert (p.lam, p.multiplicity) == (F(1, 2), 2)
    # w1^2 + w2^2 w3^2
    t = sum_rule(w2, monomial_truth([2, 2]))
    assert (t.lam, t.multiplicity) == (F(1), 2)
    # (w1^2 + w2^2)^4
    q = power_rule(polynomial_truth("w1**2 + w2**2"), 4)
    assert (q.lam, q.multiplicity) == (F(1, 4), 1)
    # w1^2 + w2^4
    u = sum_rule(monomial_truth([2]), monomial_truth([4]))
    assert (u.lam, u.multiplicity) == (F(3, 4), 1)
    assert monomial_truth([4, 4]).multiplicity == 2
    assert monomial_truth([2, 6]).lam == F(1, 6)


@pytest.mark.parametrize("exps", [[3], [2, 1], [0, 2], [], [2, -2]])
def test_monomial_rule_refuses(exps):
    with pytest.raises(TruthError):
        monomial_truth(exps)


def test_rule_kinds_and_validation():
    exact = regular_truth(2)
    hard = Truth(F(1, 2), 1, "hard", "x")
    theory = Truth(F(3), 1, "theory", "y")
    assert sum_rule(exact, hard).kind == "hard"
    assert product_rule(hard, theory).kind == "theory"
    with pytest.raises(TruthError):
        power_rule(exact, 0)
    with pytest.raises(TruthError):
        sum_rule(exact, 1)


# ---------------------------------------------------------------- regular models (λ = d/2)
@pytest.mark.parametrize("d", [1, 2, 5, 11])
def test_regular(d):
    t = regular_truth(d)
    assert (t.lam, t.multiplicity, t.kind) == (F(d, 2), 1, "exact")
    assert "Watanabe" in t.source


@pytest.mark.parametrize("d", [0, -1, 1.5, True])
def test_regular_refuses(d):
    with pytest.raises(TruthError):
        regular_truth(d)


# ---------------------------------------------------------------- reduced-rank regression
RRR_VECTORS = [
    ((5, 3, 5, 0), F(13, 2), 2, "case 1"),
    ((5, 4, 5, 0), F(8), 1, "case 1"),
    ((4, 3, 8, 0), F(6), 1, "case 2"),
    ((8, 3, 4, 0), F(6), 1, "case 3"),
    ((3, 8, 4, 0), F(6), 1, "case 4"),
    ((10, 5, 10, 2), F(29), 2, "case 1"),
    ((8, 3, 5, 3), F(15), 1, "case"),
    ((2, 1, 2, 0), F(1), 2, "case 1"),
    ((1, 1, 1, 1), F(1, 2), 1, "case 1"),
]


@pytest.mark.parametrize("args,lam,m,case", RRR_VECTORS)
def test_rrr_vectors(args, lam, m, case):
    t = rrr_truth(*args)
    assert (t.lam, t.multiplicity) == (lam, m)
    assert t.kind == "exact"
    assert "Aoyagi" in t.source and case in t.source


@pytest.mark.parametrize("args", [(0, 1, 1, 0), (2, 2, 2, -1), (2, 1, 2, 2), (2, 2.0, 2, 0), (1, 1, 1, True)])
def test_rrr_refuses(args):
    with pytest.raises(TruthError):
        rrr_truth(*args)


# ---------------------------------------------------------------- deep linear networks
BIG = (185, 259, 286, 885, 235, 204, 274, 252)
DLN_VECTORS = [
    ((2, 2, 2), 0, F(3, 2), 1),
    ((3, 2, 3), 1, F(7, 2), 2),
    ((1, 1, 1, 1), 0, F(1, 2), 3),
    ((2, 2, 2, 2, 2), 0, F(3, 2), 5),
    ((3, 3, 3, 3), 1, F(4), 3),
    ((4, 6, 3, 5, 7), 2, F(10), 1),
    ((10, 20, 20, 10), 0, F(50), 1),
    ((10, 20, 20, 10), 5, F(50), 1),
    ((5, 5, 5, 5), 2, F(11), 1),
    (BIG, 0, F(30165, 2), 5),
    (BIG, 50, F(18464), 4),
    (BIG, 150, F(22468), 1),
    (BIG, 185, F(23310), 1),
]


@pytest.mark.parametrize("widths,r,lam,m", DLN_VECTORS)
def test_dln_vectors(widths, r, lam, m):
    t = dln_truth(widths, r)
    assert (t.lam, t.multiplicity) == (lam, m)
    assert t.kind == "exact"
    assert "Aoyagi 2024" in t.source


def test_dln_three_widths_equals_rrr_all_1808():
    n = 0
    for M in range(1, 9):
        for H in range(1, 9):
            for N in range(1, 9):
                for r in range(min(M, H, N) + 1):
                    a = rrr_truth(M, H, N, r)
                    b = dln_truth([M, H, N], r)
                    assert (a.lam, a.multiplicity) == (b.lam, b.multiplicity), (M, H, N, r)
                    n += 1
    assert n == 1808


def test_dln_two_widths_is_regular():
    for h0 in range(1, 6):
        for h1 in range(1, 6):
            for r in range(min(h0, h1) + 1):
                t = dln_truth([h0, h1], r)
                assert (t.lam, t.multiplicity) == (F(h0 * h1, 2), 1)


@pytest.mark.parametrize("widths,r", [([3], 0), ([2, 2, 2], 3), ([2, 0, 2], 0), ([2, 2, 2], -1), ([2, 2.5, 2], 0), (None, 0)])
def test_dln_refuses(widths, r):
    with pytest.raises(TruthError):
        dln_truth(widths, r)


# ---------------------------------------------------------------- properties
@settings(deadline=None, max_examples=60)
@given(
    st.lists(st.integers(1, 12), min_size=2, max_size=7),
    st.integers(0, 12),
)
def test_dln_lambda_bounds(widths, r):
    r = min(r, min(widths))
    t = dln_truth(widths, r)
    d = sum(a * b for a, b in zip(widths, widths[1:]))
    assert 0 <= t.lam <= F(d, 2)
    assert 1 <= t.multiplicity <= d


@settings(deadline=None, max_examples=60)
@given(st.integers(1, 10), st.integers(1, 10), st.integers(1, 10), st.integers(0, 10))
def test_dln_three_widths_equals_rrr(M, H, N, r):
    r = min(r, M, H, N)
    a = rrr_truth(M, H, N, r)
    b = dln_truth([M, H, N], r)
    assert (a.lam, a.multiplicity) == (b.lam, b.multiplicity)
    assert 0 <= a.lam <= F(H * (M + N), 2)


def _mono(exps, offset=0):
    return "*".join(f"w{i + 1 + offset}**{e}" for i, e in enumerate(exps) if e)


def _poly_str(monos, offset=0):
    return " + ".join(_mono(e, offset) for e in monos)


even_exps = st.sampled_from([2, 4, 6])
priors = st.integers(0, 3)


@st.composite
def monomial(draw, min_vars=1, max_vars=3):
    k = draw(st.integers(min_vars, max_vars))
    exps = draw(st.lists(even_exps, min_size=k, max_size=k))
    h = draw(st.lists(priors, min_size=k, max_size=k))
    return exps, h


@st.composite
def even_sum(draw, max_vars=3, max_terms=3):
    """A sum of even monomials (positive coefficients) in w1..wk, every variable used."""
    k = draw(st.integers(1, max_vars))
    n = draw(st.integers(1, max_terms))
    monos = draw(
        st.lists(st.lists(st.sampled_from([0, 2, 4]), min_size=k, max_size=k), min_size=n, max_size=n)
    )
    monos = [m for m in monos if any(m)]
    assume(monos)
    assume(all(any(m[i] for m in monos) for i in range(k)))
    return k, [tuple(m) for m in monos]


@settings(deadline=None, max_examples=40)
@given(monomial(max_vars=4))
def test_monomial_rule_matches_newton(mh):
    exps, h = mh
    a = monomial_truth(exps, h)
    b = polynomial_truth(_mono(exps), h)
    assert (a.lam, a.multiplicity) == (b.lam, b.multiplicity)


@settings(deadline=None, max_examples=30)
@given(monomial(), monomial())
def test_sum_and_product_rules_match_newton_monomials(m1, m2):
    (e1, h1), (e2, h2) = m1, m2
    t1, t2 = monomial_truth(e1, h1), monomial_truth(e2, h2)
    k1 = len(e1)
    s = polynomial_truth(f"{_mono(e1)} + {_mono(e2, k1)}", h1 + h2)
    assert (s.lam, s.multiplicity) == (sum_rule(t1, t2).lam, sum_rule(t1, t2).multiplicity)
    p = polynomial_truth(f"{_mono(e1)} * {_mono(e2, k1)}", h1 + h2)
    assert (p.lam, p.multiplicity) == (product_rule(t1, t2).lam, product_rule(t1, t2).multiplicity)


@settings(deadline=None, max_examples=30)
@given(even_sum(max_vars=2), even_sum(max_vars=2))
def test_sum_and_product_rules_match_newton_sums(s1, s2):
    (k1, p1), (k2, p2) = s1, s2
    t1 = polynomial_truth(_poly_str(p1))
    t2 = polynomial_truth(_poly_str(p2))
    k1_str, k2_str = _poly_str(p1), _poly_str(p2, k1)
    s = polynomial_truth(f"{k1_str} + {k2_str}")
    assert (s.lam, s.multiplicity) == (sum_rule(t1, t2).lam, sum_rule(t1, t2).multiplicity)
    p = polynomial_truth(f"({k1_str}) * ({k2_str})")
    assert (p.lam, p.multiplicity) == (product_rule(t1, t2).lam, product_rule(t1, t2).multiplicity)


@settings(deadline=None, max_examples=30)
@given(even_sum(max_vars=3, max_terms=3), st.integers(2, 3))
def test_power_rule_matches_newton(s, k):
    _, monos = s
    base = _poly_str(monos)
    t = polynomial_truth(base)
    pk = polynomial_truth(f"({base})**{k}")
    assert (pk.lam, pk.multiplicity) == (power_rule(t, k).lam, power_rule(t, k).multiplicity)
    assert 0 < t.lam <= F(len(monos[0]), 2)


def _dual_newton(points, v):
    """Independent reference for newton_value: enumerate the vertices of the dual
    LP  max z  s.t. ⟨n, a_j⟩ ≥ z, ⟨n, v⟩ = 1, n ≥ 0.  t* is the optimum; the
    optimal set is the normal cone slice of the face through t*·v, whose
    dimension is m − 1."""
    import itertools

    import sympy

    d = len(v)
    # constraints as (coefficients on (n, z), rhs) for equality when active
    cons = [([*a, -1], 0) for a in points] + [([1 if k == i else 0 for k in range(d)] + [0], 0) for i in range(d)]
    verts = []
    for combo in itertools.combinations(range(len(cons)), d):
        rows = [cons[c][0] for c in combo] + [[*v, 0]]
        rhs = [cons[c][1] for c in combo] + [1]
        M = sympy.Matrix(rows)
        if M.det() == 0:
            continue
        sol = M.LUsolve(sympy.Matrix(rhs))
        n, z = [Fraction(str(x)) for x in sol[:d]], Fraction(str(sol[d]))
        if any(x < 0 for x in n):
            continue
        if any(sum(ni * ai for ni, ai in zip(n, a)) < z for a in points):
            continue
        verts.append((z, tuple(n)))
    best = max(z for z, _ in verts)
    opt = sorted({n for z, n in verts if z == best})
    rank = sympy.Matrix([[x - y for x, y in zip(o, opt[0])] for o in opt[1:]] or [[0] * d]).rank()
    return 1 / best, 1 + rank


@settings(deadline=None, max_examples=40)
@given(
    st.integers(2, 3).flatmap(
        lambda d: st.tuples(
            st.lists(st.tuples(*[st.integers(0, 6)] * d), min_size=1, max_size=5, unique=True),
            st.lists(st.integers(0, 2), min_size=d, max_size=d),
        )
    )
)
def test_newton_value_matches_dual_enumeration(data):
    points, h = data
    d = len(h)
    assume(all(any(p) for p in points))
    assume(all(any(p[i] for p in points) for i in range(d)))
    expr = " + ".join("*".join(f"w{i + 1}**{e}" for i, e in enumerate(p) if e) for p in points)
    v = [hi + 1 for hi in h]
    assert newton_value(expr, h) == _dual_newton(points, v)
