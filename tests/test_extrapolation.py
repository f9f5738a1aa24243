"""Step-size (Richardson) extrapolation of the SG-MCMC λ̂ (llcbench.estimators.sgmcmc.extrapolate)."""

from __future__ import annotations

import math

import pytest
import torch

from test_estimators import quadratic, run

from llcbench.errors import UserError
from llcbench.estimators import get_estimator
from llcbench.estimators.base import Estimate, config_dict, make_config
from llcbench.estimators.sgmcmc.extrapolate import combine, points
from llcbench.estimators.sgmcmc.grid import shareable


pytestmark = pytest.mark.usefixtures("one_thread")  # bit-identical comparisons need one thread


def test_combine_is_the_richardson_combination_with_its_se():
    coarse = Estimate(lambda_hat=5.5, lambda_hat_chains=[5.4, 5.6], se=0.03, loss_trace=[[1.0, 2.0], [3.0, None]],
                      grad_evals=10, extra={"step_size": 0.2}, diagnostics={"rhat": 1.01})
    fine = Estimate(lambda_hat=5.25, lambda_hat_chains=[5.2, 5.3], se=0.05, loss_trace=[[1.5, 2.5], [3.5, 4.0]],
                    grad_evals=10, extra={"step_size": 0.1}, diagnostics={"rhat": 1.03})
    out = combine(coarse, fine)
    assert out.lambda_hat == pytest.approx(5.0)
    assert out.lambda_hat_chains == pytest.approx([5.0, 5.0])
    assert out.se == pytest.approx(math.sqrt(4 * 0.05**2 + 0.03**2))
    assert out.loss_trace == [[2.0, 3.0], [4.0, None]]
    assert out.grad_evals == 20 and out.diagnostics["rhat"] == 1.03  # the worse point's R-hat
    assert out.extra["step_size"] == 0.1  # the record is the run's own (fine) point's
    assert out.extra["extrapolation"]["step_bias"] == pytest.approx(0.25)


@pytest.mark.parametrize("name", ["sgld", "rmsprop_sgld", "sgnht"])
def test_the_coarse_point_doubles_the_step_scale_and_nothing_else(name):
    spec = get_estimator(name)
    cfg = make_config(spec.config_cls, ["extrapolate=richardson", "step_scale=0.3"])
    fine, coarse = points(cfg)
    assert coarse.extrapolate == fine.extrapolate == "none"
    assert (fine.step_scale, coarse.step_scale) == (0.3, 0.6)
    assert shareable([coarse, fine]) is None  # one shared-chain run
    assert shareable([cfg, cfg]) is not None  # an extrapolated config is never a point of a sweep's grid


def test_the_option_is_keyed_only_when_used_and_validated():
    sgnht = get_estimator("sgnht")
    assert "extrapolate" not in config_dict(make_config(sgnht.config_cls, []))  # its default 'none': old keys kept
    assert config_dict(make_config(sgnht.config_cls, ["extrapolate=richardson"]))["extrapolate"] == "richardson"
    spec = get_estimator("sgld")
    with pytest.raises(UserError, match="extrapolate must be one of"):
        make_config(spec.config_cls, ["extrapolate=romberg"])
    with pytest.raises(UserError, match="leave step_size"):
        make_config(spec.config_cls, ["extrapolate=richardson", "step_size=1e-4"])


@pytest.mark.parametrize("name", ["sgld", "rmsprop_sgld"])
def test_the_default_extrapolates_where_the_rule_sets_the_step(name):
    """sgld and rmsprop_sgld default to extrapolate='auto': Richardson with the rule's step, the plain
    λ̂(ε) with a step_size given by hand. The default is always in the run key, so a stored run of the
    plain estimator (no such field in its key) is never served for it; 'none' is keyed too."""
    cls = get_estimator(name).config_cls
    default = make_config(cls, [])
    assert default.extrapolate == "auto" and default.extrapolation() == "richardson"
    assert config_dict(default)["extrapolate"] == "auto"
    assert config_dict(make_config(cls, ["extrapolate=none"]))["extrapolate"] == "none"
    assert make_config(cls, ["step_size=1e-4"]).extrapolation() == "none"
    ladder = make_config(get_estimator("ladder").config_cls, [])  # extrapolates in nβ, its rungs share chains
    assert ladder.extrapolation() == "none" and "extrapolate" not in config_dict(ladder)


def test_the_default_run_is_the_extrapolated_one():
    """A default sgld run is bit-identical to one with extrapolate='richardson' and differs from the
    plain λ̂(ε); a hand-set step runs plain."""
    target = quadratic(d=4, a=2.0)
    kw = dict(steps=400, burn_in=100, chains=2)
    default, rich, plain = (run("sgld", target, seed=0, **kw, **x) for x in ({}, {"extrapolate": "richardson"},
                                                                          {"extrapolate": "none"}))
    assert default.lambda_hat == rich.lambda_hat and default.extra["extrapolation"]["applied"] is True
    assert default.lambda_hat != plain.lambda_hat and default.grad_evals == 2 * plain.grad_evals
    eps = plain.extra["step_size"]
    by_hand = run("sgld", target, seed=0, step_size=eps, **kw)
    assert "extrapolation" not in by_hand.extra and by_hand.grad_evals == plain.grad_evals


def test_a_sweep_runs_the_plain_estimate_on_shared_chains():
    """The sweep's points share one chain tensor: a sweep of an estimator whose default extrapolates
    runs extrapolate='none' unless told otherwise."""
    from llcbench.plan import sweep_base

    assert sweep_base(get_estimator("sgld")) == ["extrapolate=none"]
    assert sweep_base(get_estimator("sgnht")) == []


@pytest.mark.parametrize("name", ["sgld", "rmsprop_sgld"])
def test_richardson_removes_the_step_size_bias_on_a_quadratic(name):
    """L = Σ w_i² (a = 2, d = 10), exact gradients: at step_scale 0.3 the rule gives ε·k = 0.3 in
    every coordinate (k = nβ·a + γ), and the discretised SGLD chain's stationary variance is
    1/(k(1 − εk/4)): +8.1 %. The combination 2·λ̂(ε) − λ̂(2ε) leaves
    2/(1 − 0.075) − 1/(1 − 0.15) − 1 = −1.4 % (O(ε²)). Asserted: plain λ̂ above λ_nβ,γ by more than
    4 % and 3 se; the extrapolated one within 2 se + 2 % of it (its se is an upper bound, the
    remainder −1.4 %; measured −1.7 % ± 1.8 % sgld, −1.3 % rmsprop_sgld, where λ̂(ε) alone is +6.4 %
    and fails this); the coarse step exactly 2ε for sgld."""
    target = quadratic(d=10, a=2.0)
    kw = dict(step_scale=0.3, steps=3000, burn_in=500)
    plain = run(name, target, seed=0, extrapolate="none", **kw)
    rich = run(name, target, seed=0, extrapolate="richardson", **kw)
    nb, g = plain.extra["nbeta"], plain.extra["gamma"]
    exact = 5 * 2 * nb / (2 * nb + g)
    assert plain.lambda_hat - exact > max(0.04 * exact, 3 * plain.se)
    assert abs(rich.lambda_hat - exact) <= 2 * rich.se + 0.02 * exact
    fine, coarse = rich.extra["extrapolation"]["points"]
    if name == "sgld":
        assert coarse["step_size"] == pytest.approx(2 * fine["step_size"], rel=1e-6)
    assert rich.grad_evals == 2 * plain.grad_evals


def test_a_diverged_coarse_point_leaves_the_plain_estimate_with_a_warning():
    """At 2ε the chains may diverge where ε is stable: the run then reports λ̂(ε) as it is (a mean
    over the surviving chains at 2ε would be biased) and says so. SGLD on a quadratic contracts by
    1 − ε·k/2 per step: at step_scale 2.5 (ε·k = 2.5) the ε chains are stable, the 2ε ones (factor
    −1.5) diverge."""
    target = quadratic(d=4, a=2.0)
    est = run("sgld", target, seed=0, extrapolate="richardson", step_scale=2.5, steps=600, burn_in=200)
    plain = run("sgld", target, seed=0, extrapolate="none", step_scale=2.5, steps=600, burn_in=200)
    assert est.extra["extrapolation"]["applied"] is False
    assert any("not applied" in w for w in est.warnings)
    assert math.isfinite(est.lambda_hat) and est.extra["step_size"] == pytest.approx(plain.extra["step_size"])


def test_the_coarse_step_is_twice_the_fine_one_after_adaptation():
    # poly/w1^4 at the defaults: the rule's curvature, re-measured at the chains during the burn-in, is a
    # maximum over noisy chains; measured on each point's own chains it left "2ε" at 1.81ε here and at
    # 1.03ε at the default length (seed 0). Both points now take the fine point's curvature: 2 to rounding.
    from llcbench.catalogue import build_target, load_catalogue
    from llcbench.estimators import get_estimator
    from llcbench.estimators.base import make_config

    (case,) = [c for c in load_catalogue() if c.id == "poly/w1^4"]
    spec = get_estimator("sgld")
    e = spec.estimate(build_target(case), make_config(spec.config_cls, ["max_doublings=0", "steps=2000",
                                                                       "burn_in=1000"]), 0, "cpu")
    fine, coarse = e.extra["extrapolation"]["points"]
    assert len(e.extra["adaptation"]) == 4  # the rule did re-measure
    assert coarse["step_size"] / fine["step_size"] == pytest.approx(2.0, rel=1e-6)
