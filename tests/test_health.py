"""The health rule (llcbench.health) and what it decides: the attribution of an unhealthy run, and
that a failed run (λ̂ None) is skipped by the references instead of crashing them."""

import math

from llcbench.attribution import ATTRIBUTIONS, attribution
from llcbench.health import problems
from llcbench.references import with_reference

from synthetic_records import BASE_CONFIG, record


def rec(**kw):
    r = record("syn/rrr-0", "rrr", 6.0, "sgld", dict(BASE_CONFIG, chains=8), 0, kw.pop("lam_hat", 6.1),
               chains=8, **{k: kw.pop(k) for k in list(kw) if k in ("rhat", "divergent", "lambda_ref")})
    r["diagnostics"].update(kw.pop("diagnostics", {}))
    r.update(kw)
    return r


def test_each_problem_has_its_reason():
    assert problems(rec()) == []
    assert problems(rec(rhat=1.48)) == ["R-hat 1.48 > 1.1"]
    assert problems(rec(diagnostics={"ess_bulk": 15.0})) == ["ESS 15 < 100"]
    assert problems(rec(divergent=(0, 3, 5))) == ["3 of 8 chains diverged"]
    assert problems(rec(lam_hat=None)) == ["λ̂ not finite"]
    assert problems(rec(lam_hat=math.nan)) == ["λ̂ not finite"]
    assert problems(rec(lam_hat=math.inf)) == ["λ̂ not finite"]
    # HMC/NUTS: divergent transitions per chain
    assert problems(rec(diagnostics={"divergences": [0, 2, 0, 1]}, config={})) == ["2 of 4 chains diverged"]
    far = {"excess_loss": 2.0, "chance_excess": 3.0}  # two thirds of the way to chance: not local
    (p,) = problems(rec(locality=far))
    assert p.startswith("not local: mean excess train loss 2 is 67% of chance")
    # the bars themselves are healthy
    assert problems(rec(rhat=1.1, diagnostics={"ess_bulk": 100.0})) == []
    # chains still spreading: beyond chance (z) and by more than the growth floor
    assert problems(rec(diagnostics={"spread_growth": 0.82, "spread_growth_z": 6.5})) == [
        "still spreading: E‖w − w*‖² +82% over the draws (z 6.5)"]
    assert problems(rec(diagnostics={"spread_growth": 0.82, "spread_growth_z": 3.0})) == []  # within chance
    assert problems(rec(diagnostics={"spread_growth": 0.04, "spread_growth_z": 9.0})) == []  # below the floor
    # the other side: a run that started wider than its stationary spread (the tempered start can)
    assert problems(rec(diagnostics={"spread_growth": -0.5, "spread_growth_z": -9.0})) == [
        "still contracting: E‖w − w*‖² -50% over the draws (z -9.0)"]
    assert problems(rec(diagnostics={"spread_growth": -0.5, "spread_growth_z": -3.0})) == []  # within chance
    assert problems(rec(diagnostics={"spread_growth": -0.04, "spread_growth_z": -9.0})) == []  # below the floor
    # an orbit start (the run's own step along the rescalings) undone by blow-ups: the step cannot sample
    # the posterior; a start that held, one skipped, and a tempered start's blow-ups (its own step) are not
    undone = {"kind": "orbit", "steps": 0, "skipped": "592 chain blow-ups, undone", "tried": {"steps": 9000, "reset_chains": 592}}
    assert problems(rec(extra={"start": undone})) == [
        "step unstable where the posterior reaches: 592 chain blow-ups in the orbit start, undone"]
    assert problems(rec(extra={"start": {"kind": "orbit", "steps": 2000, "reset_chains": 0}})) == []
    assert problems(rec(extra={"start": {"kind": "orbit", "steps": 0, "skipped": "the target declares no rescalings"}})) == []
    assert problems(rec(extra={"start": {**undone, "kind": "tempered"}})) == []


def test_a_diagnostic_not_reported_is_not_held_against_a_run():
    exact = rec(rhat=None, diagnostics={"ess_bulk": None, "divergent_chains": None}, ess=None)
    del exact["diagnostics"]["rhat"]
    assert problems(exact) == []
    assert problems({"lambda_hat": 1.0}) == []  # a plugin's bare record
    assert problems(rec(ess=3.0, diagnostics={"ess": 3.0})) == []  # an importance ESS is not a bulk ESS


def test_unhealthy_is_never_estimand_or_sampler():
    assert "unhealthy" in ATTRIBUTIONS
    # would be "sampler" (40 se off a reference 2 % from λ) if the chains had mixed
    sampler = rec(lam_hat=8.0, lambda_ref=6.12)
    assert attribution(sampler)["attribution"] == "sampler"
    out = attribution(dict(sampler, rhat=1.48, diagnostics=dict(sampler["diagnostics"], rhat=1.48)))
    assert out["attribution"] == "unhealthy" and out["attribution_reason"] == "unhealthy: R-hat 1.48 > 1.1"
    assert out["findings_short"][0] == "R-hat 1.48 > 1.1"
    # would be "estimand" (reference 40 % off λ, sampler part within 1 se)
    estimand = rec(lam_hat=3.62, lambda_ref=3.6)
    assert attribution(estimand)["attribution"] == "estimand"
    assert attribution(dict(estimand, diagnostics=dict(estimand["diagnostics"], ess_bulk=15.0)))["attribution"] == "unhealthy"
    # within the band but unhealthy: still no estimate
    assert attribution(rec(divergent=(1,)))["attribution"] == "unhealthy"
    assert attribution(rec(lam_hat=None))["attribution_reason"] == "unhealthy: λ̂ not finite"


def test_a_failed_run_keeps_its_reference_without_a_sampler_part():
    failed = rec(lam_hat=None, se=None, divergent=tuple(range(8)))
    out = with_reference(failed, {"lambda_hat": 5.9, "se": 0.05, "estimator": "hmc", "key": "k" * 64})
    assert out["lambda_ref"] == 5.9 and out["estimand_bias"] == 5.9 - 6.0
    assert out["sampler_bias"] is None and out["sampler_bias_se"] is None
