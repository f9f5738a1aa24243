"""Speed of listing a case (pytest-benchmark; not a timed unit test).

Run:  python -m pytest benchmarks -n0 --benchmark-enable -s

``llcbench cases`` computes every case's dimension and exact truth without
building its data, so that listing the catalogue stays cheap however big a
case is. Timed: dim and truth of the largest deep linear network with a
published value (widths 185-259-286-885-235-204-274-252, r = 50; Aoyagi
2024), which should take well under a second. tests/test_families.py checks
that no data are generated.
"""

from __future__ import annotations

from fractions import Fraction

from llcbench.families import FAMILIES

PARAMS = {"widths": [185, 259, 286, 885, 235, 204, 274, 252], "rank": 50, "variant": "canonical"}


def dim_and_truth():
    family = FAMILIES["dln"]
    return family.dim(PARAMS), family.truth(PARAMS)


def test_big_dln_dim_and_truth(benchmark):
    d, truth = benchmark(dim_and_truth)
    assert d == sum(a * b for a, b in zip(PARAMS["widths"][:-1], PARAMS["widths"][1:]))
    assert truth.lam == Fraction(18464)
