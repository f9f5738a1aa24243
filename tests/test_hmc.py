"""The ``hmc`` reference sampler (many-chain Metropolis-corrected HMC).

Hand-written, so cross-checked:

* against ``exact`` (quadrature / Gaussian closed form) at the same (nβ, γ), within 3 combined
  standard errors, on regular, quartic and singular cases: small budgets (16–32 chains, a few
  hundred warm-up iterations and draws), so that se is ≈ 1–3 % of λ and the file stays fast;
* against long Pyro NUTS runs on small deep-linear-network and reduced-rank cases (``-m slow``:
  minutes each, NUTS being the slow side);
* its adaptation, indirectly: on a Gaussian the realised acceptance sits within 0.1 above
  ``target_accept`` (per-chain dual averaging lands slightly above its target, because the averaged
  step is smaller than the iterates that reached it), and a higher target gives smaller steps;
* its bookkeeping: determinism for a fixed seed, the standard reported as failed (with the reason)
  when the budget is tiny, divergent and NaN targets, refusals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import pytest
import torch

from llcbench.catalogue import build_target, load_catalogue, select
from llcbench.errors import UnsupportedTarget, UserError
from llcbench.estimators import ESTIMATORS, exact, hmc, nuts, sgld
from llcbench.estimators.base import EstimatorSpec, make_config
from llcbench.families.polynomial import polynomial_target
from llcbench.target import Target
from llcbench.truth import Truth

SMALL = {"chains": 32, "warmup": 300, "block": 400, "max_draws": 400, "max_rel_se": None, "max_escalations": 0}


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def case_target(cases, case_id):
    return build_target(select(cases, [case_id])[0])


def run_hmc(target, seed=0, **kw):
    return hmc.estimate(target, make_config(hmc.HMCConfig, {**SMALL, **kw}), seed=seed)


def poly(expr: str, n: int = 10_000):
    return polynomial_target(expr, [], Truth(1, 1, "exact", "placeholder"), expr, n)


# --------------------------------------------------------------------------- against exact


@pytest.mark.parametrize("case_id", ["poly/w1^2", "poly/w1^4", "poly/w1^2+w2^4", "poly/w1^2*w2^4",
                                     "poly/(w1*w2)^2", "regular/linear-5x4"])
def test_hmc_agrees_with_exact(catalogue, case_id):
    """λ̂ within 3 combined se of ``exact`` at the defaults (nβ = n/log n, γ = 10⁻³·nβ), at the same
    (nβ, γ) as sgld's defaults."""
    target = case_target(catalogue, case_id)
    ref = exact.estimate(target, make_config(exact.ExactConfig, {}))
    est = run_hmc(target)
    sg = make_config(sgld.SGLDConfig, {})
    from llcbench.estimators.temperature import resolve_gamma, resolve_nbeta

    nb = resolve_nbeta(target, sg)
    assert est.extra["nbeta"] == ref.extra["nbeta"] == nb
    assert est.extra["gamma"] == ref.extra["gamma"] == resolve_gamma(nb, sg)
    assert est.diagnostics["rhat"] < 1.05 and est.diagnostics["ess_bulk"] > 400
    se = math.hypot(est.se, ref.se)
    assert 0 < est.se < 0.05 * ref.lambda_hat  # the check has teeth: se is a few % of λ at most
    assert abs(est.lambda_hat - ref.lambda_hat) < 3 * se, (case_id, est.lambda_hat, ref.lambda_hat, se)


def test_acceptance_tracks_target_on_a_gaussian(catalogue):
    """Dual averaging and the metric, indirectly: on linear-5x4 (Gaussian, d = 20, anisotropic) the
    realised acceptance is within 0.1 of target_accept (at or above it), and a higher target gives
    smaller steps; the metric found the scales (steps in the metric's units are O(1), not the
    ≈ 1/√(nβ·h) a unit metric would need)."""
    target = case_target(catalogue, "regular/linear-5x4")
    accs, steps = [], []
    for ta in (0.8, 0.9):
        est = run_hmc(target, target_accept=ta, trajectory_length=None)  # L as adapted (12)
        acc = est.diagnostics["acceptance_rate_mean"]
        assert ta - 0.02 < acc < ta + 0.1, (ta, acc)
        accs.append(acc)
        steps.append(sorted(est.diagnostics["step_sizes"])[len(est.diagnostics["step_sizes"]) // 2])
        assert steps[-1] > 0.2
        assert len(est.diagnostics["acceptance_rate"]) == 32 and len(est.diagnostics["step_sizes"]) == 32
    assert accs[0] < accs[1] and steps[0] > steps[1]


# --------------------------------------------------------------------------- bookkeeping


def test_deterministic_for_a_fixed_seed():
    target = poly("w1**2 + w2**4")
    a, b = run_hmc(target, seed=3, warmup=60, block=50, max_draws=50), run_hmc(target, seed=3, warmup=60, block=50,
                                                                              max_draws=50)
    c = run_hmc(target, seed=4, warmup=60, block=50, max_draws=50)
    assert a.lambda_hat == b.lambda_hat and a.lambda_hat_chains == b.lambda_hat_chains
    assert a.diagnostics["step_sizes"] == b.diagnostics["step_sizes"]
    assert c.lambda_hat != a.lambda_hat


def test_estimate_carries_what_a_reference_needs():
    target = poly("w1**2 + w2**4")
    est = run_hmc(target, warmup=60, block=50, max_draws=50, chains=8)
    ex, dg = est.extra, est.diagnostics
    for key in ("nbeta", "gamma", "init_loss", "chains", "draws_per_chain", "warmup", "leapfrog_steps", "standard",
                "standard_met", "standard_failed", "seconds", "stopped_by"):
        assert key in ex, key
    for key in ("rhat", "ess_bulk", "ess_tail", "mcse_mean", "acceptance_rate", "acceptance_rate_mean", "divergences",
                "step_sizes", "draws_per_chain"):
        assert key in dg, key
    assert ex["chains"] == 8 and ex["draws_per_chain"] == dg["draws_per_chain"] == 50
    assert len(est.lambda_hat_chains) == 8 and len(dg["divergences"]) == 8
    assert abs(est.lambda_hat - sum(est.lambda_hat_chains) / 8) < 1e-12
    assert est.se == dg["mcse_mean"]
    # gradient evaluations: leapfrog steps × iterations × chains, plus the step-size heuristic's
    assert ex["leapfrog_steps_warmup"] == 12 and 1 <= ex["leapfrog_steps"] <= 12
    assert est.grad_evals >= 8 * (60 + ex["leapfrog_steps"] * 50) and est.grad_evals % 8 == 0
    assert ex["standard"] == {"max_rhat": 1.01, "min_ess_bulk": 400.0, "min_ess_tail": 400.0, "max_divergences": 0,
                              "max_rel_se": None}


def test_tiny_budget_reports_the_standard_failed_with_the_reason():
    target = poly("w1**2 + w2**4")
    est = run_hmc(target, chains=4, warmup=30, block=20, max_draws=20, max_rel_se=0.005, max_divergences=10**6)
    assert est.extra["standard_met"] is False and est.extra["stopped_by"] == "max_draws"
    failed = est.extra["standard_failed"]
    assert any(f.startswith("bulk ESS") and "< 400" in f for f in failed), failed
    assert any(f.startswith("tail ESS") for f in failed) and any(f.startswith("se ") for f in failed)
    assert any("not met" in w and "not a reference" in w and "bulk ESS" in w for w in est.warnings)


def test_standard_met_ends_the_run_early():
    target = poly("w1**2 + w2**2")
    est = run_hmc(target, chains=16, warmup=200, block=200, max_draws=20000, max_rel_se=0.05)
    assert est.extra["standard_met"] is True and est.extra["standard_failed"] == []
    assert est.extra["stopped_by"] == "standard" and est.extra["draws_per_chain"] < 20000
    assert not any("not met" in w for w in est.warnings)


def test_extends_itself_until_the_standard_is_met():
    """A strict se criterion the first block cannot meet: more blocks, sized from the deficit."""
    target = poly("w1**2 + w2**2")
    est = run_hmc(target, chains=16, warmup=200, block=100, max_draws=20000, max_rel_se=0.01)
    blocks = est.extra["blocks"]
    assert len(blocks) >= 2 and est.extra["standard_met"] is True
    assert blocks[-1]["draws"] == est.extra["draws_per_chain"] > blocks[0]["draws"] == 100
    assert est.se <= 0.01 * est.lambda_hat


@dataclass
class _NaNOutside(Target):
    """L = ½‖w‖², NaN beyond |w_i| > 1: trajectories (and starts) that leave the box must count as
    divergent (starts: moved to w*)."""

    def loss(self, w: torch.Tensor, idx: Optional[torch.Tensor] = None) -> torch.Tensor:
        out = 0.5 * w.square().sum(dim=1)
        return torch.where((w.abs() > 1.0).any(dim=1), torch.full_like(out, float("nan")), out)


def test_nan_target_counts_divergences_and_fails_the_standard():
    target = _NaNOutside(id="nan-box", family="test", dim=2, n=100, w_star=torch.zeros(2, dtype=torch.float64),
                         truth=Truth(1, 1, "exact", "placeholder"))
    est = run_hmc(target, chains=8, warmup=100, block=100, max_draws=100, nbeta=1.0, gamma=0.0, max_escalations=1,
                  escalation_warmup=50)
    assert math.isfinite(est.lambda_hat)  # NaN proposals are rejected, never kept
    assert sum(est.diagnostics["divergences"]) > 0
    assert est.extra["standard_met"] is False
    assert any("divergent transitions" in f for f in est.extra["standard_failed"])
    assert len(est.extra["escalations"]) == 1 and est.extra["target_accept_final"] > est.extra["target_accept"]
    assert any("divergent HMC transitions" in w for w in est.warnings)


def test_divergences_raise_the_acceptance_target():
    """A stiff singular potential: divergences at a low target make the run re-adapt at a higher one,
    and only the last kernel's draws count."""
    target = poly("w1**2 * w2**4")
    est = run_hmc(target, target_accept=0.6, max_escalations=2, escalation_warmup=100, block=200, max_draws=200)
    esc = est.extra["escalations"]
    assert esc and esc[0]["divergences"] > 0 and esc[0]["target_accept"] == pytest.approx(0.8)
    assert est.extra["draws_per_chain"] == 200


def test_refuses_priors_and_big_targets(catalogue):
    prior = case_target(catalogue, "poly-prior/(w1^2*w2)^2;h=2,2")
    assert "prior" in hmc.supports(prior)
    with pytest.raises(UnsupportedTarget, match="prior"):
        run_hmc(prior)
    big = poly("w1**2 + w2**2 + w3**2")
    with pytest.raises(UnsupportedTarget, match="max_dim"):
        run_hmc(big, max_dim=2)
    assert hmc.supports(case_target(catalogue, "dln/2-2-2/r0")) is None


def test_spec_and_config():
    spec = hmc.SPEC
    assert isinstance(spec, EstimatorSpec) and spec.name == "hmc" and ESTIMATORS["hmc"] is spec
    assert spec.estimate is hmc.estimate and spec.supports is hmc.supports
    cfg = make_config(spec.config_cls, {})
    assert cfg.chains == 64 and cfg.dtype == "float64" and cfg.max_rhat == 1.01 and cfg.max_divergences == 0
    for bad in ({"target_accept": "1.0"}, {"chains": "0"}, {"dtype": "float16"}, {"step_jitter": "1"}):
        with pytest.raises(UserError):
            make_config(spec.config_cls, bad)


def test_adaptation_windows_are_stans():
    assert hmc.adaptation_windows(1000) == [(75, 100), (100, 150), (150, 250), (250, 800)]  # terminal: 200
    assert hmc.adaptation_windows(10) == []
    w = hmc.adaptation_windows(100)  # short: 15 % / 75 % / 10 %
    assert w[0][0] == 15 and w[-1][1] == 90


# --------------------------------------------------------------------------- against long NUTS runs (slow)

NUTS_CASES = ["rrr/1-1-1/r1", "dln/2-2-2/r0", "rrr/2-1-2/r0", "dln/3-2-3/r1"]


@pytest.mark.slow
@pytest.mark.parametrize("case_id", NUTS_CASES)
def test_hmc_agrees_with_long_nuts(catalogue, case_id):
    """HMC at its defaults against Pyro NUTS (4 chains × 2000 draws after 1000 warm-up) at the same
    (nβ, γ): within 3 combined se. Minutes each, NUTS being the slow side (measured on a shared 2-core
    machine: rrr/2-1-2/r0 1.5 min, rrr/1-1-1/r1 and dln/2-2-2/r0 4 min, dln/3-2-3/r1 14 min; z = +0.05,
    +0.28, +0.68, +1.58)."""
    target = case_target(catalogue, case_id)
    est = hmc.estimate(target, make_config(hmc.HMCConfig, {}), seed=0)
    ref = nuts.estimate(target, make_config(nuts.NUTSConfig, {"chains": 4, "warmup": 1000, "samples": 2000}), seed=0)
    assert est.extra["nbeta"] == ref.extra["nbeta"] and est.extra["gamma"] == ref.extra["gamma"]
    se = math.hypot(est.se, ref.se)
    print(f"\n{case_id}: hmc {est.lambda_hat:.4f} ± {est.se:.4f} (standard met: {est.extra['standard_met']}), "
          f"nuts {ref.lambda_hat:.4f} ± {ref.se:.4f}, z = {(est.lambda_hat - ref.lambda_hat) / se:+.2f}")
    assert est.extra["standard_met"], est.extra["standard_failed"]
    assert abs(est.lambda_hat - ref.lambda_hat) < 3 * se, (case_id, est.lambda_hat, ref.lambda_hat, se)


def test_trajectory_length_rule(catalogue):
    """After warm-up L = min(leapfrog_steps, ⌈trajectory_length/ε⌉): a regular posterior (ε ≈ 0.5 in the
    metric's units) runs a few steps, not 12; trajectory_length=None keeps 12."""
    target = case_target(catalogue, "regular/linear-5x4")
    est = run_hmc(target, warmup=200, block=50, max_draws=50, chains=16)
    eps = sorted(est.diagnostics["step_sizes"])
    assert est.extra["leapfrog_steps"] <= 6 and est.extra["leapfrog_steps_warmup"] == 12
    assert est.extra["leapfrog_steps"] == min(12, math.ceil(2.0 / float(torch.tensor(eps).median())))
    fixed = run_hmc(target, warmup=200, block=50, max_draws=50, chains=16, trajectory_length=None)
    assert fixed.extra["leapfrog_steps"] == 12
