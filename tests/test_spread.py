"""The spread test (trace.spread_growth, health's "still spreading"): chains whose E‖w − w*‖² still
grows after the burn-in are caught, stationary ones are not, and the deep linear network at the
sgld defaults is the case that shows it."""

import numpy as np
import pytest

from llcbench.estimators.sgmcmc.trace import spread_growth
from llcbench.health import SPREAD_GROWTH_MIN, SPREAD_Z_MAX, problems


def _ou_r2(rng, draws, chains, dim, rho, start_var, var=1.0):
    """‖x_t‖² of a d-dimensional AR(1) (an Ornstein–Uhlenbeck chain) started from variance start_var:
    (draws, chains). With start_var = var the spread is stationary."""
    x = rng.normal(size=(chains, dim)) * np.sqrt(start_var)
    out = np.empty((draws, chains))
    s = np.sqrt(var * (1 - rho**2))
    for t in range(draws):
        x = rho * x + s * rng.normal(size=x.shape)
        out[t] = (x**2).sum(axis=1)
    return out


def test_a_stationary_spread_is_rarely_flagged():
    # 200 runs of 8 chains × 600 draws of a stationary AR(1) spread (ρ = 0.95: strongly correlated draws).
    # The bar is a one-sided 10⁻³ false-alarm rate, so 0.2 runs are expected; 3 or more has probability
    # ≈ 10⁻³ under Poisson(0.2) if ArviZ's MCSE were exact — the tolerance 2 allows for that and no more.
    rng = np.random.default_rng(0)
    flagged = 0
    for _ in range(200):
        out = spread_growth(_ou_r2(rng, 600, 8, 5, 0.95, 1.0))
        flagged += out["spread_growth_z"] > SPREAD_Z_MAX and out["spread_growth"] > SPREAD_GROWTH_MIN
    assert flagged <= 2


def test_a_spread_still_relaxing_is_flagged():
    # started at the anchor (variance 0.02 of the stationary 1) with a relaxation time of 2,000 draws
    # against 600 recorded: the spread roughly doubles between the thirds, as on the deep linear networks
    rng = np.random.default_rng(1)
    out = spread_growth(_ou_r2(rng, 600, 8, 20, np.exp(-1 / 2000), 0.02))
    assert out["spread_growth"] > 0.5 and out["spread_growth_z"] > SPREAD_Z_MAX


def test_too_few_draws_say_nothing():
    assert spread_growth(np.ones((11, 8))) == {}
    assert spread_growth(np.ones((30, 0))) == {}


@pytest.mark.parametrize("case, start, flagged", [("dln/5-5-5-5/r2", "start=w_star", True),
                                                  ("dln/5-5-5-5/r2", None, False),
                                                  ("regular/linear-5x4", None, False)])
def test_the_dln_spreads_from_w_star_and_not_after_the_tempered_start(cli, tmp_path, case, start, flagged):
    # measured at the sgld defaults, seed 0: started at w* the DLN's spread grows +82 % (z 6.5) over the
    # planned 6,000 steps and still +56 % (z 5.2) after the adaptive length's two doublings (24,000
    # steps); after the tempered start it is flat (−0.0 %, z −0.0, settled at 12,000 steps); the
    # regular model has no flat direction to fill
    import json

    extra = [] if start is None else ["--set", start]
    res = cli("run", "--estimator", "sgld", "--case", case, "--seeds", "1", "--db", tmp_path / "s.sqlite",
              "--json", "--full", "--quiet", *extra)
    assert res.returncode == 0, res.stderr
    (rec,) = json.loads(res.stdout)
    assert any(p.startswith("still spreading") for p in problems(rec)) is flagged
    if flagged:
        assert rec["attribution"] == "unhealthy"


def test_the_ladder_is_as_spread_as_its_worst_rung():
    from types import SimpleNamespace

    from llcbench.estimators.ladder import _worst_spread

    rungs = [SimpleNamespace(diagnostics={"spread_growth": g, "spread_growth_z": z}) for g, z in
             [(0.02, 0.4), (0.6, 6.8), (0.3, 2.0)]]
    assert _worst_spread(rungs) == {"spread_growth": 0.6, "spread_growth_z": 6.8}
    assert _worst_spread([SimpleNamespace(diagnostics={})]) == {}
