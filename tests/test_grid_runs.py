"""Shared-chain grid runs (llcbench.estimators.sgmcmc.grid): several sgld configs of one case in one
chain tensor, with per-row ε, nβ and γ."""

from __future__ import annotations

import math

import pytest
import torch

from llcbench.catalogue import build_target, load_catalogue
from llcbench.estimators import get_estimator
from llcbench.estimators.base import make_config
from llcbench.estimators.sgmcmc.grid import shareable

SGLD = get_estimator("sgld")
GRID_SAMPLERS = ["sgld", "rmsprop_sgld", "sgnht"]
CASES = {c.id: c for c in load_catalogue()}
# the plain λ̂(ε): sgld's default extrapolates, and an extrapolated config is a grid run of its own
SHORT = ["steps=1500", "burn_in=500", "chains=4", "extrapolate=none"]


def configs(*points):
    return [make_config(SGLD.config_cls, SHORT + list(p)) for p in points]


pytestmark = pytest.mark.usefixtures("one_thread")  # bit-identical comparisons need one thread


@pytest.mark.parametrize("case", ["poly/w1^4", "regular/linear-5x4", "dln/3-2-3/r1"])
def test_a_one_point_grid_is_the_independent_run(case):
    # One point: the same noise draws (scaled after drawing instead of while drawing), the same batches
    # and the same rule, so the same λ̂ up to float32 rounding of the update.
    target = build_target(CASES[case])
    (cfg,) = configs(["step_scale=0.2"])
    solo = SGLD.estimate(target, cfg, 3, "cpu")
    (grid,) = SGLD.estimate_grid(target, [cfg], 3, "cpu")
    assert grid.lambda_hat == pytest.approx(solo.lambda_hat, rel=1e-4)
    assert grid.extra["step_size"] == pytest.approx(solo.extra["step_size"], rel=1e-5)


@pytest.mark.parametrize("name", ["rmsprop_sgld", "sgnht"])
def test_a_one_point_grid_is_the_independent_run_for_the_other_samplers(name):
    # As for sgld; on this quadratic case even SGNHT's momentum dynamics stay on the same path
    # (elsewhere float32 rounding of the per-row step h can grow along a deterministic trajectory).
    spec = get_estimator(name)
    target = build_target(CASES["regular/linear-5x4"])
    cfg = make_config(spec.config_cls, SHORT)
    solo = spec.estimate(target, cfg, 2, "cpu")
    (grid,) = spec.estimate_grid(target, [cfg], 2, "cpu")
    assert grid.lambda_hat == pytest.approx(solo.lambda_hat, rel=1e-4)
    assert grid.extra["step_size"] == pytest.approx(solo.extra["step_size"], rel=1e-5)


@pytest.mark.parametrize("name", GRID_SAMPLERS)
def test_every_point_has_the_independent_runs_rule_at_the_anchor(name):
    spec = get_estimator(name)
    target = build_target(CASES["poly/w1^4"])
    cfgs = [make_config(spec.config_cls, ["steps=400", "burn_in=200", "chains=2"] + p)
            for p in (["step_scale=0.1"], ["nbeta_scale=3"], ["gamma_scale=0.01"])]
    grid = spec.estimate_grid(target, cfgs, 0, "cpu")
    for cfg, g in zip(cfgs, grid):
        s = spec.estimate(target, cfg, 0, "cpu")
        for key in ("nbeta", "gamma", "rule_step_size_init"):
            assert g.extra[key] == pytest.approx(s.extra[key], rel=1e-12), key
        assert isinstance(g.extra["step_size"], float) and g.extra["step_size"] > 0


def test_each_point_keeps_its_own_temperature_localisation_and_rule():
    target = build_target(CASES["regular/linear-5x4"])  # λ = 10, minibatches: the heat term is in the rule
    cfgs = configs(["step_scale=0.1"], ["step_scale=0.2", "nbeta_scale=2"], ["gamma_scale=0.01"])
    solo = [SGLD.estimate(target, c, 0, "cpu") for c in cfgs]
    grid = SGLD.estimate_grid(target, cfgs, 0, "cpu")
    for s, g in zip(solo, grid):
        for key in ("nbeta", "gamma", "rule_step_size_init", "hessian_top"):  # measured at w*, as the solo run does
            assert g.extra[key] == pytest.approx(s.extra[key], rel=1e-12), key
        assert g.extra["shared_chains"]["points"] == 3 and g.extra["chains"] == 4
        # other noise draws than the solo run: the two estimates agree within their errors (4σ of the
        # combined MCMC standard error; seed fixed)
        assert abs(g.lambda_hat - s.lambda_hat) < 4 * math.hypot(g.se, s.se), (g.lambda_hat, s.lambda_hat)
        assert abs(g.lambda_hat - 10.0) < 0.1 * 10.0  # and the truth (λ = d/2 = 10) within 10 %


def test_a_diverging_point_does_not_touch_the_others():
    target = build_target(CASES["poly/w1^4"])
    cfgs = configs(["step_scale=0.2"], ["step_scale=0.2", "nbeta_scale=2"])
    bad = make_config(SGLD.config_cls, SHORT + ["step_scale=5000"])
    grid = SGLD.estimate_grid(target, [cfgs[0], bad, cfgs[1]], 0, "cpu")
    assert len(grid[1].diagnostics["divergent_chains"]) == 4 and math.isnan(grid[1].lambda_hat)
    assert grid[0].diagnostics["divergent_chains"] == [] and grid[2].diagnostics["divergent_chains"] == []
    assert all(0.15 < g.lambda_hat < 0.35 for g in (grid[0], grid[2]))  # λ = 1/4


def test_grid_runs_are_reproducible():
    target = build_target(CASES["dln/3-2-3/r1"])
    cfgs = configs(["step_scale=0.1"], ["nbeta_scale=0.5"])
    a = SGLD.estimate_grid(target, cfgs, 1, "cpu")
    b = SGLD.estimate_grid(target, cfgs, 1, "cpu")
    assert [e.lambda_hat for e in a] == [e.lambda_hat for e in b]


def test_only_eps_nbeta_gamma_may_differ():
    assert shareable(configs(["step_scale=0.1"], ["gamma=3.0"])) is None
    assert "batch_size" in shareable(configs([], ["batch_size=64"]))
    with pytest.raises(ValueError, match="differ in chains"):
        SGLD.estimate_grid(build_target(CASES["poly/w1^4"]), configs([], ["chains=2"]), 0, "cpu")


@pytest.mark.slow  # ~45 s on an idle core: the memorisation anchor's training and its locality pilot
def test_per_sample_values_are_per_point():
    # the memorisation family records per-sample λ̂_i by default; in a grid run each point reads its own
    # chains at its own nβ, and a one-point grid gives the independent run's values
    (case,) = [c for c in load_catalogue() if c.id == "memorisation/threshold-16/k16/s0"]
    target = build_target(case)
    cfgs = configs([], ["nbeta_scale=2"])
    solo = SGLD.estimate(target, cfgs[0], 0, "cpu")
    (one,) = SGLD.estimate_grid(target, cfgs[:1], 0, "cpu")
    assert one.per_sample["lambda"] == pytest.approx(solo.per_sample["lambda"], rel=1e-4, abs=1e-3)
    two = SGLD.estimate_grid(target, cfgs, 0, "cpu")
    assert [e.per_sample["chains_used"] for e in two] == [4, 4]
    assert len(two[1].per_sample["lambda"]) == len(solo.per_sample["lambda"])
