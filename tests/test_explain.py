"""Explanations of runs worse than 30 %, and the localisation sensitivity they use."""

import math

import pytest
import torch

from llcbench.catalogue import build_target, load_catalogue
from llcbench.estimators import get_estimator
from llcbench.estimators.base import make_config
from llcbench.explain import explanation, findings


def record(lam=1.0, lam_hat=0.5, m=1, nbeta=1000.0, gamma=1.0, sens_rel=None, ref=None):
    return {"lambda_float": lam, "lambda_hat": lam_hat, "multiplicity": m,
            "extra": {"nbeta": nbeta, "gamma": gamma},
            "diagnostics": {"localisation_sensitivity_rel": sens_rel},
            "lambda_ref": ref, "sampler_bias": None if ref is None else lam_hat - ref}


def test_within_tolerance_needs_no_explanation():
    assert explanation(record(lam_hat=0.8))["explained"] is None


def test_multiplicity_first_order_prediction():
    # (w1 w2 w3)^2-like: λ = 1/2, m = 3 at nβ = 8686: λ − 2/log nβ = 0.2795
    r = record(lam=0.5, lam_hat=0.30, m=3, nbeta=8686.0)
    (f,) = findings(r)
    assert f["kind"] == "multiplicity" and f["predicted"] == pytest.approx(0.5 - 2 / math.log(8686.0))
    assert explanation(r)["explained"] is True
    # far below even the first-order estimand: not explained by it
    assert explanation(record(lam=4.0, lam_hat=1.0, m=2, nbeta=8686.0))["explained"] is False


def test_exact_reference_decides():
    # the exact estimand is close to λ, so a −50 % run is the sampler's fault even with m > 1
    r = record(lam=1.0, lam_hat=0.5, m=2, nbeta=8686.0, ref=0.95)
    assert [f["kind"] for f in findings(r)] == ["reference", "multiplicity"]
    assert findings(r)[0]["short"].startswith("exact")
    assert findings(dict(r, lambda_ref_method="nuts (stored run 0123)"))[0]["short"].startswith("NUTS")
    assert explanation(r)["explained"] is False
    assert explanation(record(lam=1.0, lam_hat=0.6, ref=0.62))["explained"] is True


def test_localisation_finding():
    r = record(lam=10.5, lam_hat=4.0, sens_rel=-0.6, gamma=8.7)
    (f,) = findings(r)
    assert f["kind"] == "localisation" and f["predicted"] is None
    assert explanation(r)["explained"] is True
    assert explanation(record(lam=10.5, lam_hat=4.0, sens_rel=-0.05))["explained"] is False
    # chains that disagree (R-hat 1.46): a drifting chain's covariance is not the stationary one
    assert explanation(dict(r, rhat=1.46))["explained"] is False


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
