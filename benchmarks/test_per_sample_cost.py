"""Cost of the per-sample LLC over a plain run (pytest-benchmark; not a timed unit test).

Run:  python -m pytest benchmarks/test_per_sample_cost.py -n0 --benchmark-enable -s

Case: the largest shipped memorisation case (n × d largest; ties: the first),
sgld at its defaults (8 chains, 6000 steps of which 4000 are draws, full
batch: n = 512 ≤ batch_size), CPU, float32, one torch thread. Side by side in
one run (interleaved repeats, best of each, so that both see the same machine
load):

(a) seconds of a whole ``estimate`` with ``per_sample=true`` and with
    ``per_sample=false`` (the same chains and λ̂: the accumulator draws no
    random numbers), and their ratio;
(b) memory: the accumulator's own bytes (its running sums and baselines,
    independent of the number of steps: exact), and the peak resident set
    size (``ru_maxrss``) of fresh processes running each configuration, the
    least and the most of the repeats (it varies by hundreds of MiB between
    identical runs here, so only a difference beyond that range would mean
    anything).

With benchmarks disabled (the default test run) every function still runs
once, on few steps.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch

from llcbench.catalogue import build_target, builtin_files, case_dim, load_file
from llcbench.estimators import get_estimator
from llcbench.estimators.base import make_config


def largest_case():
    path = next(p for p in builtin_files() if p.name == "memorisation.toml")
    return max(load_file(path), key=lambda c: (c.n * case_dim(c), -ord(c.id[-1])))


def seconds(target, per_sample: bool, steps: int) -> tuple[float, object]:
    spec = get_estimator("sgld")
    cfg = make_config(spec.config_cls, {"per_sample": per_sample, "steps": steps, "burn_in": steps // 3,
                                        "max_doublings": 0, "start": "w_star"})  # both runs exactly `steps` long
    start = time.perf_counter()
    est = spec.estimate(target, cfg, 0, "cpu")
    return time.perf_counter() - start, est


PEAK = """
import json, resource, sys, torch
torch.set_num_threads(1)
from llcbench.catalogue import build_target, load_catalogue
from llcbench.estimators import get_estimator
from llcbench.estimators.base import make_config
case = next(c for c in load_catalogue() if c.id == sys.argv[1])
target = build_target(case)
spec = get_estimator("sgld")
cfg = make_config(spec.config_cls, {"per_sample": sys.argv[2] == "1", "steps": int(sys.argv[3]),
                                    "burn_in": int(sys.argv[3]) // 3, "max_doublings": 0,
                                    "start": "w_star"})
spec.estimate(target, cfg, 0, "cpu")
print(json.dumps({"maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def peak_rss_kib(case_id: str, per_sample: bool, steps: int) -> int:
    out = subprocess.run([sys.executable, "-c", PEAK, case_id, "1" if per_sample else "0", str(steps)],
                         capture_output=True, text=True, check=True, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])["maxrss_kib"]


def test_per_sample_cost_side_by_side(benchmark):
    disabled = getattr(benchmark, "disabled", False)
    steps, repeats = (300, 1) if disabled else (6000, 3)
    case = largest_case()
    target = build_target(case)  # trains (or reads the cached) anchor before any timing
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        best = {True: float("inf"), False: float("inf")}
        ests = {}
        for _ in range(repeats):
            for flag in (False, True):
                s, ests[flag] = seconds(target, flag, steps)
                best[flag] = min(best[flag], s)
        assert ests[True].lambda_hat == ests[False].lambda_hat  # the same chains
        # peak RSS of a fresh process varies by hundreds of MiB between identical runs on this machine
        # (860 and 560 MiB were both seen for one plain config): the least and the most of `repeats`
        # fresh processes each, interleaved
        peaks = {True: [], False: []}
        for _ in range(repeats):
            for flag in (False, True):
                peaks[flag].append(peak_rss_kib(case.id, flag, steps) / 1024)
        figures = {
            "case": case.id, "n": case.n, "dim": case_dim(case), "steps": steps, "chains": 8,
            "seconds_plain": best[False], "seconds_per_sample": best[True], "ratio": best[True] / best[False],
            "accumulator_bytes": ests[True].per_sample["memory_bytes"],
            "peak_rss_mib_plain": [min(peaks[False]), max(peaks[False])],
            "peak_rss_mib_per_sample": [min(peaks[True]), max(peaks[True])],
        }
        benchmark.extra_info.update(figures)
        print("\nper-sample LLC cost:", json.dumps(figures, indent=1))
        benchmark.pedantic(seconds, args=(target, True, steps), rounds=1, iterations=1)
    finally:
        torch.set_num_threads(old)
