"""Speed of the two-variable engine (adapted coordinates; pytest-benchmark, not a timed unit test).

Run:  python -m pytest benchmarks/test_plane_speed.py -n0 --benchmark-enable -s

(a) Time against degree: K_k = w1² + w2^(2k) after the change of coordinates
    w1 → w1 + w2 + w2² (non-zero Jacobian at 0, so λ = 1/2 + 1/(2k), m = 1 by
    invariance), total degree 4k, and the iterated cusp ((w2 − w1²)² − w1^(2k+1))²
    (λ = (1/2 + 1/(2k+1))/2 in v = w2 − w1²), total degree 4k + 2; both are
    degenerate for the Newton rule, so every call runs the plane engine (the cache
    of ``polynomial_truth`` is bypassed: ``plane_value`` is called).
(b) Every two-variable catalogue case the Newton rule cannot certify: its truth,
    uncached, must take under a second.
"""

from __future__ import annotations

import time
from fractions import Fraction

import pytest
import sympy

from llcbench.catalogue import case_truth, load_catalogue, select
from llcbench.truth.plane import plane_value

W1, W2 = sympy.symbols("w1 w2")


def substituted(k: int) -> str:
    return str(sympy.expand((W1 + W2 + W2**2) ** 2 + W2 ** (2 * k)))


def iterated_cusp(k: int) -> str:
    return str(sympy.expand(((W2 - W1**2) ** 2 - W1 ** (2 * k + 1)) ** 2))


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6, 8])
def test_time_against_degree_substituted(benchmark, k):
    expr = substituted(k)
    lam, m, _ = benchmark(plane_value, expr)
    assert (lam, m) == (Fraction(1, 2) + Fraction(1, 2 * k), 1)
    benchmark.extra_info["total_degree"] = 4 * k


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6, 8])
def test_time_against_degree_iterated_cusp(benchmark, k):
    expr = iterated_cusp(k)
    lam, m, _ = benchmark(plane_value, expr)
    assert (lam, m) == ((Fraction(1, 2) + Fraction(1, 2 * k + 1)) / 2, 1)
    benchmark.extra_info["total_degree"] = 4 * k + 2


def _plane_cases():
    out = []
    for case in select(load_catalogue(), family="polynomial"):
        if case_truth(case).source.startswith("adapted coordinates"):
            out.append(case)
    return out


def test_every_catalogue_case_under_a_second(benchmark):
    cases = _plane_cases()
    assert len(cases) >= 9

    def all_cases():
        times = {}
        for case in cases:
            t0 = time.perf_counter()
            plane_value(case.params["expr"], case.params.get("prior_exponents") or None)
            times[case.id] = time.perf_counter() - t0
        return times

    times = benchmark.pedantic(all_cases, rounds=1, iterations=1)
    for cid, sec in sorted(times.items(), key=lambda kv: -kv[1]):
        print(f"{cid:42s} {sec * 1000:8.1f} ms")
    benchmark.extra_info["seconds"] = times
    assert max(times.values()) < 1.0, times
