"""Speed of the SG-MCMC hot loop (pytest-benchmark; not a timed unit test).

Run:  python -m pytest benchmarks -n0 --benchmark-enable -s

Case: deep linear network 5-5-5-5, teacher rank 2 (λ = 11), n = 100,000,
batch 256, 8 chains, CPU, float32 — a case with a published speed to compare with
(devinterp 2.0.1: 0.47–0.62 ms per chain-step, 4–5× a bare forward+backward).

Two figures, measured side by side in one run (interleaved repeats, best of
each, so that both see the same machine load):

(a) ms per chain-step of ``sgld``: the MARGINAL cost of a step, i.e.
    (T(N2 steps) − T(N1 steps)) / (N2 − N1) / chains for two complete
    ``estimate`` calls (so the fixed costs — L_n(w*) on the full data, the
    ArviZ diagnostics — cancel); explicit step_size (no step-size rule).
    Target ≤ 0.03 ms per chain-step (≤ 0.24 ms per step for 8 chains).
(b) that step over a bare batched forward+backward of the same 8 chains on
    batches of 256 (``target.loss_and_grad(w, batch)``, the same gradient
    path the sampler uses — for the DLN family the moment form with
    hand-written back-propagation, and batch moments computed once per epoch
    by ``target.epoch_batches``). Target ≤ 1.3×. For reference the autograd
    forward+backward of ``target.loss`` on index minibatches is reported too. The sampler's step includes the
    full-data λ trace (the DLN's excess loss from the same product W_M⋯W_1), the update, the trace record
    and the minibatch bookkeeping; the same sampler with the gradient's own batch as trace (one forward with
    a w* row, biased under label noise) is timed beside it, so the cost of the unbiased trace shows.

Both are reported for 1 and 2 torch threads (the machine has 2 cores; for
small matmuls the thread pool's overhead can exceed its gain), in
``benchmark.extra_info`` and on stdout. With benchmarks disabled (the
default test run) every function still runs once, on few steps.
"""

from __future__ import annotations

import time
from fractions import Fraction

import pytest
import torch

from llcbench.estimators import get_estimator
from llcbench.estimators.base import make_config
from llcbench.estimators.sgmcmc import EpochBatches
from llcbench.truth import Truth

CHAINS, BATCH = 8, 256
STEP_SIZE = 1e-7  # explicit: no Hessian power iterations in the timing


def dln_target():
    """The catalogue's DLN 5-5-5-5 r2 target (float64 master copy)."""
    try:
        from llcbench.catalogue import build_target, load_catalogue

        case = next(c for c in load_catalogue() if c.id == "dln/5-5-5-5/r2")
        return build_target(case)
    except Exception:  # truth engine or catalogue not available: the family directly
        from llcbench.case import Case
        from llcbench.families.dln import build_dln_target

        case = Case(id="dln/5-5-5-5/r2", family="dln", params={"widths": [5, 5, 5, 5], "rank": 2}, n=100_000)
        return build_dln_target(case, "dln", [5, 5, 5, 5], 2, "canonical",
                                Truth(Fraction(11), 1, "exact", "Aoyagi 2024"), 1.0)


@pytest.fixture(scope="module")
def target():
    return dln_target()


def sgld_seconds(target, steps: int, trace_batch: str = "auto") -> float:
    spec = get_estimator("sgld")
    cfg = make_config(spec.config_cls, {"step_size": STEP_SIZE, "chains": CHAINS, "batch_size": BATCH,
                                        "steps": steps, "burn_in": steps // 10, "dtype": "float32",
                                        "trace_batch": trace_batch, "max_doublings": 0,
                                        "start": "w_star"})  # the steps asked for, from w*
    t0 = time.perf_counter()
    spec.estimate(target, cfg, seed=0, device="cpu")
    return time.perf_counter() - t0


def bare_seconds(target32, steps: int, autograd: bool = False) -> float:
    """`steps` bare batched forward+backward passes of CHAINS chains on batches of BATCH
    (the target's loss_and_grad, or autograd on its loss)."""
    w = target32.w_star.expand(CHAINS, target32.dim).clone()
    # the sampler's minibatch path: the target's epoch plan (for the DLN, batch moments per epoch)
    plan = None if autograd else target32.epoch_batches
    batches = EpochBatches(target32.num_data, BATCH, torch.Generator().manual_seed(0), plan=plan)
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = batches.next()
        if autograd:
            wl = w.detach().requires_grad_(True)
            torch.autograd.grad(target32.loss(wl, idx).sum(), wl)
        else:
            target32.loss_and_grad(w, idx)
    return time.perf_counter() - t0


def side_by_side(target, n1: int, n2: int, repeats: int) -> dict:
    target32 = target.to("cpu", torch.float32)
    bare_seconds(target32, 20)  # warm-up
    sgld_seconds(target, 20)
    best = {"sgld_n1": float("inf"), "sgld_n2": float("inf"), "bare": float("inf"), "autograd": float("inf"),
            "same_n1": float("inf"), "same_n2": float("inf")}
    for _ in range(repeats):  # interleaved: all see the same load
        best["sgld_n1"] = min(best["sgld_n1"], sgld_seconds(target, n1))
        best["sgld_n2"] = min(best["sgld_n2"], sgld_seconds(target, n2))
        # the gradient's own batch as trace (biased with noisy labels): what the full-data trace costs
        best["same_n1"] = min(best["same_n1"], sgld_seconds(target, n1, "same"))
        best["same_n2"] = min(best["same_n2"], sgld_seconds(target, n2, "same"))
        best["bare"] = min(best["bare"], bare_seconds(target32, n2 - n1))
        best["autograd"] = min(best["autograd"], bare_seconds(target32, n2 - n1, autograd=True))
    step_ms = (best["sgld_n2"] - best["sgld_n1"]) / (n2 - n1) * 1e3
    bare_ms = best["bare"] / (n2 - n1) * 1e3
    return {
        "autograd_fwd_bwd_ms_per_step": best["autograd"] / (n2 - n1) * 1e3,
        "sgld_ms_per_step": step_ms,
        "sgld_ms_per_chain_step": step_ms / CHAINS,
        "sgld_same_batch_trace_ms_per_chain_step": (best["same_n2"] - best["same_n1"]) / (n2 - n1) * 1e3 / CHAINS,
        "bare_fwd_bwd_ms_per_step": bare_ms,
        "ratio_step_over_bare": step_ms / bare_ms,
        "steps_compared": [n1, n2],
        "repeats": repeats,
    }


@pytest.mark.parametrize("threads", [1, 2])
def test_sgld_step_vs_bare_forward_backward(benchmark, target, threads):
    disabled = getattr(benchmark, "disabled", False)
    n1, n2, repeats = (20, 60, 1) if disabled else (500, 2500, 5)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        figures = side_by_side(target, n1, n2, repeats)
        figures["threads"] = threads
        benchmark.extra_info.update(figures)
        print(f"\n[threads={threads}] sgld {figures['sgld_ms_per_chain_step']:.4f} ms per chain-step "
              f"({figures['sgld_ms_per_step']:.3f} ms per step of {CHAINS} chains); bare fwd+bwd "
              f"{figures['bare_fwd_bwd_ms_per_step']:.3f} ms; ratio {figures['ratio_step_over_bare']:.2f}x; "
              f"autograd fwd+bwd of target.loss {figures['autograd_fwd_bwd_ms_per_step']:.3f} ms; "
              f"sgld with the gradient-batch trace {figures['sgld_same_batch_trace_ms_per_chain_step']:.4f} ms "
              "per chain-step")
        # the timed quantity of pytest-benchmark: one SGLD estimate of n2 steps
        benchmark.pedantic(sgld_seconds, args=(target, n2), rounds=1 if disabled else 3, iterations=1)
    finally:
        torch.set_num_threads(old)
