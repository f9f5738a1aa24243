"""The outlier-chain rule (``llcbench.estimators.diagnostics.outlier_chains``) and its use in SG-MCMC records."""

from __future__ import annotations

import numpy as np

from llcbench.estimators.diagnostics import OUTLIER_ALPHA, outlier_chains


def _ar1(rng, chains: int, draws: int, rho: float = 0.8) -> np.ndarray:
    """Autocorrelated draws (AR(1), unit stationary variance) of one distribution for every chain."""
    x = np.empty((chains, draws))
    x[:, 0] = rng.standard_normal(chains)
    for t in range(1, draws):
        x[:, t] = rho * x[:, t - 1] + np.sqrt(1 - rho**2) * rng.standard_normal(chains)
    return x


def test_chains_of_one_distribution_are_rarely_flagged():
    # 60 runs of 8 AR(1) chains that agree: the rule promises a family-wise false-alarm rate of at
    # most OUTLIER_ALPHA = 1e-3 per run, i.e. 0.06 flagged runs expected; allowing 2 keeps this test
    # from failing by chance (P(≥ 3 | Poisson 0.06) ≈ 4e-5). Standard errors that ignored the
    # autocorrelation (3x too small at rho = 0.8) would put the bar at ≈ 1.3 true se and flag most runs.
    rng = np.random.default_rng(20261206)
    flagged = sum(bool(outlier_chains(_ar1(rng, 8, 500))[0]) for _ in range(60))
    assert OUTLIER_ALPHA == 1e-3
    assert flagged <= 2


def test_a_chain_in_another_region_is_flagged_by_index():
    rng = np.random.default_rng(7)
    lam = _ar1(rng, 8, 500)
    lam[5] += 1.5  # the chain's mean is ~1.5 / (3/sqrt(500)) ≈ 11 of its own standard errors away
    flagged, z = outlier_chains(lam)
    assert flagged == [5]
    assert z[5] > 6 and all(abs(v) < 4 for i, v in enumerate(z) if i != 5)


def test_too_few_chains_or_draws_decide_nothing():
    rng = np.random.default_rng(1)
    assert outlier_chains(rng.standard_normal((2, 100))) == ([], [None, None])
    assert outlier_chains(rng.standard_normal((4, 5))) == ([], [None] * 4)


def test_health_counts_outlier_chains_and_an_estimate_above_d():
    from llcbench.health import problems

    wandering = {"lambda_hat": 0.37, "rhat": 1.0, "dim": 2,
                 "diagnostics": {"outlier_chains": [5], "outlier_z": [0.1] * 5 + [4.4, 0.0, 0.0]}}
    assert problems(wandering) == ["chain 5 an outlier (+4.4 se)"]
    assert problems({"lambda_hat": 16533.7, "dim": 3}) == ["λ̂ 1.653e+04 > d = 3"]
    # without a recorded d, the locality's d/γ and γ give it (d = 3 here)
    assert problems({"lambda_hat": 3.5, "locality": {"prior_sq_distance": 3 / 1.0857, "gamma": 1.0857}}) == \
        ["λ̂ 3.5 > d = 3"]
    assert problems({"lambda_hat": 1.4, "dim": 3, "diagnostics": {"outlier_chains": []}}) == []


def test_a_wild_step_is_unhealthy_never_a_sampler_verdict(tmp_path):
    # At step_size = 0.5 three of eight chains of the regular logistic model diverge and the others
    # wander to E‖w − w*‖² ≈ 1,500·d/γ, with λ̂ ≈ 16,500 against λ = 1.5 and split R-hat 1.00: a verdict
    # of "sampler" would blame the sampler's bias for what is a run that never sampled the posterior.
    import llcbench

    [record] = llcbench.run("sgld", cases=["regular/logistic-3"], config={"step_size": 0.5},
                            db=tmp_path / "s.sqlite", full=True)
    assert record["attribution"] == "unhealthy"
    assert record["lambda_hat"] > record["dim"] == 3
    from llcbench.health import problems

    assert any(p.startswith("λ̂") and "> d = 3" in p for p in problems(record))
