"""The adaptive length (llcbench.estimators.sgmcmc.settle): a run whose draws have not settled runs on
as one Markov chain, a settled run is the run without it, and what it reads is what the run is judged on."""

import pytest

from llcbench.catalogue import build_target, load_catalogue
from llcbench.estimators import get_estimator
from llcbench.estimators.base import make_config
from llcbench.estimators.sgmcmc.extrapolate import settling_problems
from llcbench.estimators.sgmcmc.settle import problems, window


def _target(case_id):
    (case,) = [c for c in load_catalogue() if c.id == case_id]
    return build_target(case)


def _run(target, overrides, seed=0, estimator="sgld"):
    spec = get_estimator(estimator)
    return spec.estimate(target, make_config(spec.config_cls, overrides), seed, "cpu")


# sgld at a fixed step without adaptation: its kernel does not depend on steps or burn_in, so a run
# that doubles once must be, draw for draw, the run planned twice as long
FIXED = ["chains=3", "extrapolate=none", "adapt_rounds=0", "step_size=2e-5", "hessian_iters=5", "start=w_star"]


def test_a_run_that_doubles_is_the_longer_run():
    target = _target("dln/3-2-3/r1")
    doubled = _run(target, FIXED + ["steps=300", "burn_in=100", "max_doublings=1"])
    settling = doubled.extra["settling"]
    assert settling["doublings"] == 1, settling  # 200 draws of 3 chains: not settled (ESS < 100)
    assert settling["history"][0]["problems"] and settling["history"][0]["steps"] == 300
    assert (doubled.extra["steps"], doubled.extra["burn_in"]) == (600, 200)
    assert doubled.grad_evals == 600 * 3
    longer = _run(target, FIXED + ["steps=600", "burn_in=200", "max_doublings=0"])
    assert "settling" not in longer.extra
    assert doubled.lambda_hat == longer.lambda_hat  # bit for bit
    assert doubled.se == longer.se
    assert doubled.diagnostics["rhat"] == longer.diagnostics["rhat"]
    assert doubled.diagnostics["spread_growth"] == longer.diagnostics["spread_growth"]
    assert doubled.lambda_hat_chains == longer.lambda_hat_chains


def test_a_settled_run_is_the_run_without_the_adaptive_length():
    # the regular model mixes within its planned 1,500 steps (R-hat ≈ 1.0, ESS in the hundreds):
    # nothing to cure, so max_doublings changes nothing but the record's settling object
    target = _target("regular/linear-5x4")
    short = ["chains=4", "steps=1500", "burn_in=500", "hessian_iters=5"]
    on = _run(target, short + ["max_doublings=2"], seed=3)
    off = _run(target, short + ["max_doublings=0"], seed=3)
    assert on.extra["settling"]["doublings"] == 0 and on.extra["settling"]["settled"] is True
    assert on.lambda_hat == off.lambda_hat and on.se == off.se
    assert on.grad_evals == off.grad_evals


def test_the_richardson_run_doubles_its_two_points_together():
    target = _target("dln/3-2-3/r1")
    e = _run(target, ["chains=3", "steps=300", "burn_in=100", "hessian_iters=5", "max_doublings=1",
                      "extrapolate=richardson", "start=w_star"])
    assert e.extra["extrapolation"]["applied"] is True
    assert e.extra["settling"]["doublings"] == 1
    assert e.grad_evals == 2 * 600 * 3  # both points, doubled


def _summary(rhat=1.0, ess=500.0, outliers=(), divergent=(), lam=1.0):
    return {"lambda_hat": lam, "diagnostics": {"rhat": rhat, "ess_bulk": ess, "outlier_chains": list(outliers),
                                              "outlier_z": [0.0] * 8, "divergent_chains": list(divergent)}}


def test_what_doubles_a_run():
    assert problems([_summary()]) == []
    assert problems([_summary(rhat=1.3), _summary(ess=50)]) == ["R-hat 1.30 > 1.1", "ESS 50 < 100"]
    # a point with a diverged chain is unhealthy however long it runs: its problems do not extend the run
    assert problems([_summary(rhat=1.3, divergent=[2])]) == []


def test_richardson_is_judged_as_its_record_is():
    fine, coarse = _summary(), _summary(outliers=[3])
    assert settling_problems([fine, coarse]) == []  # the record carries the fine point's outlier test
    assert settling_problems([fine, _summary(rhat=1.2)]) == ["R-hat 1.20 > 1.1"]  # and the worse R-hat
    # a chain diverged at 2ε: the run reports λ̂(ε), judged on the fine point alone
    assert settling_problems([_summary(ess=40), _summary(rhat=1.5, divergent=[0])]) == ["ESS 40 < 100"]
    assert settling_problems([_summary(ess=40, divergent=[1]), _summary()]) == []


def test_window_doubles_steps_and_burn_in():
    cfg = make_config(get_estimator("sgld").config_cls, ["steps=600", "burn_in=200"])
    assert (window(cfg, 0).steps, window(cfg, 2).steps, window(cfg, 2).burn_in) == (600, 2400, 800)


def test_max_doublings_must_not_be_negative():
    from llcbench.errors import UserError

    with pytest.raises(UserError, match="max_doublings must be >= 0"):
        make_config(get_estimator("sgld").config_cls, ["max_doublings=-1"])


def test_runs_with_per_sample_probes_keep_their_planned_length():
    # the per-sample sums cover the planned window, so such a run never doubles (short: it would)
    target = _target("reg/w1*x+w2^2*x^2")
    e = _run(target, ["chains=3", "steps=300", "burn_in=100", "hessian_iters=5", "extrapolate=none",
                      "per_sample=true", "probe_samples=16", "noise_draws=4", "max_doublings=2"])
    assert "settling" not in e.extra and e.extra["steps"] == 300
    assert e.per_sample is not None
