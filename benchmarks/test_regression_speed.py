"""Speed of the regression family's gradient (pytest-benchmark; not a timed unit test).

Run:  python -m pytest benchmarks/test_regression_speed.py -n0 --benchmark-enable -s

Case: the catalogue's reg/(w1+w2)*x+w1^2*x^2+w2^2*x^3 (3 monomials in x, n = 10⁴), 8 chains, minibatches
of 1024 (their moments computed per epoch, as the sampler does), float32. Measured side by side in
one run (interleaved repeats, best of each):

(a) ``loss_and_grad`` — the closed form (batch moments, ∇ = Jᵀ∂L/∂h);
(b) ``Target.loss_and_grad`` — the default: autograd through the same moment loss;
(c) autograd through the per-sample loss mean (y − f(w, x))²/(2σ²) on the batch's rows.

Reported as µs per call and the ratios (b)/(a), (c)/(a) in ``benchmark.extra_info`` and on stdout.
With benchmarks disabled (the default test run) every path still runs once.
"""

from __future__ import annotations

import time

import pytest
import torch

from llcbench.catalogue import build_target, load_catalogue, select
from llcbench.target import Target

CASE, CHAINS, BATCH, REPEATS = "reg/(w1+w2)*x+w1^2*x^2+w2^2*x^3", 8, 1024, 200


@pytest.fixture(scope="module")
def setup():
    (case,) = select(load_catalogue(), [CASE])
    target = build_target(case).to("cpu", torch.float32)
    perm = torch.randperm(target.num_data, generator=torch.Generator().manual_seed(0))
    count = target.num_data // BATCH
    plans, slices = target.epoch_batches(perm, count), torch.tensor_split(perm, count)
    w = target.w_star + 0.05 * torch.randn(CHAINS, target.dim, generator=torch.Generator().manual_seed(1))
    return target, plans, slices, w


def per_sample(target, w, idx):
    """Autograd through the loss written per sample: r_i = e_i − h(w)·φ(x_i)."""
    with torch.enable_grad():
        wl = w.detach().requires_grad_(True)
        h = target.coefficient_map.value(wl - target.w_star)
        r = target.z[idx, -1] - h @ target.features[idx].T
        loss = (r.square() / (2 * target.sigma**2)).mean(dim=1)
        (g,) = torch.autograd.grad(loss.sum(), wl)
    return loss.detach(), g


def best_us(fn, plans, n) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(n):
            fn(plans[i % len(plans)])
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def test_regression_gradient_speed(benchmark, setup):
    target, plans, slices, w = setup
    ways = {
        "closed form": (lambda p: target.loss_and_grad(w, p), plans),
        "autograd (moments)": (lambda p: Target.loss_and_grad(target, w, p), plans),
        "autograd (per sample)": (lambda s: per_sample(target, w, s), slices),
    }
    for fn, items in ways.values():  # the same numbers (float32)
        torch.testing.assert_close(fn(items[0])[1], ways["closed form"][0](plans[0])[1], rtol=1e-4, atol=1e-5)
    us = {name: best_us(fn, items, REPEATS) for name, (fn, items) in ways.items()}
    benchmark.pedantic(lambda: target.loss_and_grad(w, plans[0]), rounds=1, iterations=1)
    base = us["closed form"]
    benchmark.extra_info.update({f"{k} us": v for k, v in us.items()})
    benchmark.extra_info.update({f"{k} / closed form": v / base for k, v in us.items()})
    print("\n" + "; ".join(f"{k}: {v:.1f} µs ({v / base:.2f}×)" for k, v in us.items()))
