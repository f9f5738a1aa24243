"""Speed of `llcbench sweep` against one default run of the same cases (pytest-benchmark).

Run:  python -m pytest benchmarks/test_sweep_speed.py -n0 --benchmark-enable -s

The target: the default 27-point grid (step_scale × nbeta_scale × gamma_scale)
in at most 8× the time of one default run over the same cases; 27 runs one
after another would take ≈ 27× (``--independent``). The grid points of a case
share one chain tensor (llcbench.estimators.sgmcmc.grid), which is what
makes the difference on the catalogue's small models. Measured side by side in one process, on a
subset of the catalogue (one case per family, so the run is minutes, not an
hour), each into a fresh store, the sweep with --jobs 2 (this machine has 2
cores). With benchmarks disabled (the default) the same code runs once on a
2-point grid with short chains.
"""

from __future__ import annotations

import time

import pytest

from llcbench.cli import main

SUBSET = ["poly/w1^4", "regular/linear-5x4", "dln/3-2-3/r1", "rrr/5-3-5/r0"]


def timed(argv) -> float:
    start = time.perf_counter()
    assert main(argv) == 0
    return time.perf_counter() - start


def test_default_grid_against_one_run(benchmark, tmp_path, capsys):
    disabled = getattr(benchmark, "disabled", False)
    cases = [a for c in SUBSET for a in ("--case", c)]
    quick = ["--set", "steps=200", "--set", "burn_in=50"] if disabled else []
    grid = ["--grid", "step_scale=0.1,0.2"] if disabled else []
    one = timed(["run", "--estimator", "sgld", *cases, *quick, "--db", str(tmp_path / "one.sqlite"), "--quiet"])
    sweep = timed(["sweep", "--estimator", "sgld", *cases, *grid, *quick, "--jobs", "2",
                   "--db", str(tmp_path / "sweep.sqlite"), "--quiet"])
    capsys.readouterr()
    points = 2 if disabled else 27
    benchmark.extra_info.update(one_run_seconds=one, sweep_seconds=sweep, points=points, ratio=sweep / one)
    with capsys.disabled():
        print(f"\none default run of {len(SUBSET)} cases: {one:.1f} s; {points}-point sweep (--jobs 2): "
              f"{sweep:.1f} s = {sweep / one:.1f}× (target ≤ 8×; serial would be ≈ {points}×)")
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
