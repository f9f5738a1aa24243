"""The tempered start (llcbench.estimators.sgmcmc.tempered_start): the chains begin the run with the
directions only the localisation confines already filled, so that the draws do not keep spreading."""

from types import SimpleNamespace

import pytest

from llcbench.catalogue import build_target, load_catalogue
from llcbench.estimators import get_estimator
from llcbench.estimators.base import make_config
from llcbench.errors import UserError
from llcbench.estimators.sgmcmc.tempered_start import RELAXATIONS, skip_reason
from llcbench.health import SPREAD_Z_MAX

from test_estimators import quadratic


def _target(case_id):
    (case,) = [c for c in load_catalogue() if c.id == case_id]
    return build_target(case)


def _run(target, overrides, seed=0, estimator="sgld"):
    spec = get_estimator(estimator)
    return spec.estimate(target, make_config(spec.config_cls, overrides), seed, "cpu")


def test_the_start_ends_the_spreading_on_a_deep_linear_network():
    # dln/4-4-4/r2/generic at seed 0, 6,000 steps, no doubling: from w* its rescalings fill in
    # 1/(εγ) ≈ 4·10⁴ steps, so E‖w − w*‖² doubles over the draws (z ≈ 5, beyond the health rule's
    # 3.09); after the tempered start the spread is flat (|z| < 1 at this seed). The bar is the health
    # rule's own: the test fails if the start stops filling those directions.
    target = _target("dln/4-4-4/r2/generic")
    plain = ["max_doublings=0", "extrapolate=none"]
    from_w_star = _run(target, plain + ["tempered_start=0"])
    started = _run(target, plain)
    assert from_w_star.diagnostics["spread_growth_z"] > SPREAD_Z_MAX
    assert from_w_star.diagnostics["spread_growth"] > 0.5
    assert abs(started.diagnostics["spread_growth_z"]) < SPREAD_Z_MAX
    assert abs(started.diagnostics["spread_growth"]) < 0.05
    rec = started.extra["tempered_start"]
    assert rec["steps"] == 2000 and rec["restarted_chains"] == 0  # None: the burn-in's 2,000 steps
    gamma, eps = started.gamma, started.extra["step_size"]
    # ε_t = RELAXATIONS/(steps·γ), nβ' = nβ·ε/ε_t, with ε the step at w* (before the burn-in adapts it)
    assert rec["step_size"][0] == pytest.approx(RELAXATIONS / (2000 * gamma), rel=1e-6)
    assert rec["nbeta"][0] == pytest.approx(started.nbeta * started.extra["rule_step_size_init"] / rec["step_size"][0],
                                            rel=1e-5)
    assert rec["nbeta"][0] < started.nbeta / 50 and eps < rec["step_size"][0]
    assert started.grad_evals == (6000 + 2000) * started.extra["chains"]


def test_a_skipped_start_leaves_the_run_as_it_was():
    # ε·γ·steps ≥ RELAXATIONS: the run's own step fills the localisation-only directions in
    # tempered_start steps, so no start runs and nothing else moves (its streams are its own)
    target = quadratic(d=3)
    kw = ["step_size=1e-3", "steps=400", "burn_in=100", "chains=3", "max_doublings=0"]
    assert _run(target, kw).extra["tempered_start"]["steps"] == 100  # None: burn_in steps
    skipped = _run(target, kw + ["tempered_start=10000"])  # ε·γ·steps = 1e-3 · 1.09 · 10⁴ ≈ 11 ≥ 5
    off = _run(target, kw + ["tempered_start=0"])
    assert skipped.extra["tempered_start"]["steps"] == 0
    assert "own step" in skipped.extra["tempered_start"]["skipped"]
    assert skipped.lambda_hat == off.lambda_hat and skipped.grad_evals == off.grad_evals
    ran = _run(target, kw + ["tempered_start=100"])  # ε·γ·steps ≈ 0.1 < 5: it runs, and moves the chains
    assert ran.extra["tempered_start"]["steps"] == 100 and ran.extra["tempered_start"]["mean_sq_distance"][0] > 0


def test_where_the_start_does_not_run():
    ctx = SimpleNamespace(gamma=1.0)
    plain = SimpleNamespace(trained_anchor=False)
    assert skip_reason(plain, ctx, 1e-4, 2000) is None
    assert skip_reason(plain, ctx, 1e-4, 0) == "tempered_start = 0"
    assert "trained anchor" in skip_reason(SimpleNamespace(trained_anchor=True), ctx, 1e-4, 2000)
    assert "no Langevin step" in skip_reason(plain, ctx, None, 2000)
    assert "γ = 0" in skip_reason(plain, SimpleNamespace(gamma=0.0), 1e-4, 2000)
    with pytest.raises(UserError, match="tempered_start must be >= 0"):
        make_config(get_estimator("sgld").config_cls, ["tempered_start=-1"])
