"""The asv suite: its configuration, its separation from the pytest-benchmark suite, and that its step
benchmark runs the driver's own loop (a run taken in pieces is the run taken whole)."""

from __future__ import annotations

import importlib
import importlib.util

import pytest
import torch

from conftest import ROOT


def test_asv_configuration_points_at_the_asv_suite_only():
    import asv.config

    conf = asv.config.Config.load(str(ROOT / "asv.conf.json"))
    bench = ROOT / "benchmarks" / "asv_bench"
    assert conf.benchmark_dir == str(bench.relative_to(ROOT)) and (bench / "__init__.py").is_file()
    assert not list(bench.glob("test_*.py"))  # nothing there looks like a pytest module
    spec = importlib.util.spec_from_file_location("benchmarks_conftest", ROOT / "benchmarks" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert "asv_bench" in mod.collect_ignore  # `pytest benchmarks` leaves the asv suite alone


@pytest.mark.parametrize("estimator", ["sgld", "rmsprop_sgld", "sgnht"])
def test_the_driver_loop_in_pieces_is_the_loop_whole(estimator):
    from llcbench.catalogue import build_target, load_catalogue
    from llcbench.estimators import get_estimator
    from llcbench.estimators.base import make_config
    from llcbench.estimators.sgmcmc import driver

    (case,) = [c for c in load_catalogue() if c.id == "dln/3-2-3/r1"]
    target = build_target(case)
    spec = get_estimator(estimator)
    cfg = make_config(spec.config_cls, ["steps=250", "burn_in=60", "chains=4", "warmup=20"]
                      if estimator == "rmsprop_sgld" else ["steps=250", "burn_in=60", "chains=4"])
    sampler = importlib.import_module(f"llcbench.estimators.{estimator}").SAMPLER
    whole = driver._setup(target, cfg, 0, "cpu", sampler)
    driver._sample(whole, cfg, None)
    pieces = driver._setup(target, cfg, 0, "cpu", sampler)
    for start, stop in ((0, 30), (30, 31), (31, 199), (199, 200), (200, None)):
        driver._sample(pieces, cfg, None, start, stop)
    assert torch.equal(whole.ctx.positions, pieces.ctx.positions)
    assert torch.equal(whole.trace.raw, pieces.trace.raw)
    assert not torch.equal(whole.ctx.positions, whole.ctx.w_star.expand_as(whole.ctx.positions))  # it moved
