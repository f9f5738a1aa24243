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
