"""Attribution of runs worse than 30 % (estimand, sampler, unattributed), and the localisation
sensitivity its hints use."""

import math

import pytest
import torch

from llcbench.catalogue import build_target, load_catalogue
from llcbench.estimators import get_estimator
from llcbench.estimators.base import make_config
from llcbench.attribution import attribute, attribution, hints, reference_label


def record(lam=1.0, lam_hat=0.5, m=1, nbeta=1000.0, gamma=1.0, sens_rel=None, ref=None, se=0.01, ref_se=0.0,
           source="exact"):
    return {"lambda_float": lam, "lambda_hat": lam_hat, "se": se, "multiplicity": m,
            "extra": {"nbeta": nbeta, "gamma": gamma},
            "diagnostics": {"localisation_sensitivity_rel": sens_rel},
            "lambda_ref": ref, "lambda_ref_source": None if ref is None else source,
            "sampler_bias": None if ref is None else lam_hat - ref,
            "sampler_bias_se": None if ref is None else math.hypot(se, ref_se)}


def test_within_tolerance_has_no_attribution():
    out = attribution(record(lam_hat=0.8))
    assert out["attribution"] is None and out["findings"] == []
    assert attribution(record(lam_hat=1.29, ref=0.5))["attribution"] is None  # even with a far reference
    assert "explained" not in out


def test_overestimate_with_strong_localisation_is_not_the_estimand():
    """+150 % with ∂λ̂/∂log γ = −60 %: the localisation predicts an estimand *below* λ, so it cannot
    account for an over-estimate; without a reference it is a hint, and the run is unattributed."""
    r = record(lam=1.0, lam_hat=2.5, sens_rel=-0.6)
    out = attribution(r)
    assert out["attribution"] == "unattributed"
    assert any(t.startswith("hint: ∂λ̂/∂log γ = -60%") for t in out["findings_short"])


def test_underestimate_no_hint_predicts_is_unattributed():
    # −95 %: the first-order multiplicity estimand (0.21) is nowhere near 0.05, and no localisation
    r = record(lam=0.5, lam_hat=0.025, m=3, nbeta=8686.0)
    (h,) = hints(r)
    assert h["kind"] == "multiplicity" and h["predicted"] == pytest.approx(0.5 - 2 / math.log(8686.0))
    out = attribution(r)
    assert out["attribution"] == "unattributed" and out["findings_short"][-1].startswith("hint: m = 3")
    # a localisation hint gives a direction, never the size of a −95 % error
    assert attribution(dict(r, diagnostics={"localisation_sensitivity_rel": -0.3}))["attribution"] == "unattributed"
    # even when the first-order value matches, a hint never attributes: only a reference does
    assert attribution(record(lam=0.5, lam_hat=0.28, m=3, nbeta=8686.0))["attribution"] == "unattributed"
    assert attribution(record(lam=10.5, lam_hat=4.0, sens_rel=-0.6))["attribution"] == "unattributed"


def test_significant_sampler_bias_is_the_sampler():
    # λ = 4, NUTS λ_nβ,γ = 3.378 ± 0.060 (estimand −15.6 %, inside the band), λ̂ = 2.778 ± 0.051: the
    # sampler's −0.60 ± 0.079 (7.6 se) is what puts the run at −30.6 %
    r = record(lam=4.0, lam_hat=2.778, se=0.051, ref=3.378, ref_se=0.060, source="nuts:3f2a9c1b" + "0" * 56)
    out = attribution(r)
    assert out["attribution"] == "sampler", out
    assert "nuts:3f2a9c1b" in out["findings_short"][0] and reference_label(r) == "nuts:3f2a9c1b"


def test_sampler_bias_on_an_estimand_outside_the_band_is_not_the_estimand():
    # estimand −40 % and a significant sampler part (−0.3 ± 0.01): two causes, neither alone
    assert attribute(record(lam=1.0, lam_hat=0.3, ref=0.6))[0] == "unattributed"
    # a sampler part that pulls towards λ but is significant: still not the estimand's alone
    assert attribute(record(lam=1.0, lam_hat=0.65, ref=0.6))[0] == "unattributed"


def test_huge_se_is_not_the_estimand():
    # the sampler part +1.9 is "within 3 se" only because se = 1: 3 se wider than the band says nothing
    assert attribute(record(lam=1.0, lam_hat=2.5, se=1.0, ref=0.6))[0] == "unattributed"
    assert attribute(record(lam=1.0, lam_hat=0.5, se=float("nan"), ref=0.5))[0] == "unattributed"


def test_reference_outside_band_and_sampler_on_it_is_the_estimand():
    # (w1 w2 w3)^2: λ = 1/2, exact λ_nβ,γ = 0.3028, λ̂ = 0.3074 ± 0.022: the whole −38.5 % is the estimand's
    r = record(lam=0.5, lam_hat=0.3074, se=0.022, m=3, nbeta=1086.0, ref=0.3028)
    out = attribution(r)
    assert out["attribution"] == "estimand", out
    assert out["findings_short"][0].startswith("exact λ_nβ,γ = 0.3028")
    assert any(t.startswith("hint: m = 3") for t in out["findings_short"])


def test_neither_part_alone_is_unattributed():
    # estimand −25 % (inside), sampler −0.1 ± 0.05 (2 se): the run at −35 % has no single cause
    assert attribute(record(lam=1.0, lam_hat=0.65, se=0.05, ref=0.75))[0] == "unattributed"


def test_localisation_hint_needs_agreeing_chains():
    r = record(lam=10.5, lam_hat=4.0, sens_rel=-0.6, gamma=8.7)
    assert [h["kind"] for h in hints(r)] == ["localisation"]
    assert hints(record(lam=10.5, lam_hat=4.0, sens_rel=-0.05)) == []
    # chains that disagree (R-hat 1.46): a drifting chain's covariance is not the stationary one
    assert hints(dict(r, rhat=1.46)) == []


def test_localisation_sensitivity_matches_gaussian_closed_form():
    """On K = w1² + w2², p ∝ exp(−nβK − (γ/2)‖w‖²) is Gaussian: E[nβK] = 2nβ/(2nβ + γ), so
    ∂E/∂log γ = −2nβγ/(2nβ + γ)² = −0.25 at γ = 2nβ. The diagnostic estimates it from the
    covariance of the draws; over seeds 0–2 it gave −0.239, −0.240, −0.275 (spread ≈ 0.02), so
    0.05 is ≈ 2.5 spreads (the small step keeps SGLD's own bias ≈ 1 %)."""
    torch.set_num_threads(1)
    case = next(c for c in load_catalogue() if c.id == "poly/w1^2+w2^2")
    spec = get_estimator("sgld")
    est = spec.estimate(build_target(case), make_config(spec.config_cls, {"gamma_scale": 2.0, "step_scale": 0.05}),
                        0, "cpu")
    assert est.diagnostics["localisation_sensitivity"] == pytest.approx(-0.25, abs=0.05)
    assert est.diagnostics["localisation_sensitivity_rel"] < 0
