"""The temperature ladder (llcbench.estimators.ladder): its fit, its uncertainty and its record.

The fit is checked on synthetic rung values of the model λ − (m − 1)/log nβ
(exact recovery; coverage of ±2·se under Gaussian noise of known variance),
the estimator end to end on a small polynomial case of the catalogue, and
the record's treatment by the references and the attribution (it estimates
λ itself, so no single-temperature reference is held against it).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from llcbench.attribution import attribute, estimates_lambda, hints
from llcbench.errors import UserError
from llcbench.estimators import get_estimator
from llcbench.estimators.base import make_config
from llcbench.estimators.ladder import M_RESOLVED, factors, fit, rung_configs, rung_variances
from llcbench.references.stored import with_best_reference

NBETAS = [1086.0 * c for c in (1 / 16, 1 / 4, 1, 4, 16)]


def model(lam, m, nbetas=NBETAS):
    return [lam - (m - 1) / math.log(nb) for nb in nbetas]


@pytest.mark.parametrize("lam, m", [(0.25, 1), (0.5, 2), (1.5, 5), (50.0, 1)])
def test_fit_recovers_lambda_and_m_exactly(lam, m):
    f = fit(NBETAS, model(lam, m), [1e-6] * 5, dof=7)
    assert f["lambda"] == pytest.approx(lam, abs=1e-9) and f["m"] == pytest.approx(m, abs=1e-9)
    assert max(abs(r) for r in f["residuals"]) < 1e-9 and f["chi2"] < 1e-9
    assert f["m_resolved"]
    # se = the propagated rung se (χ² = 0: no Birge widening) times t_{0.975,7}/2 = 1.1823
    assert f["t_factor"] == pytest.approx(1.1823, abs=1e-4)


def test_fit_recovers_the_offset_of_an_anchor_that_is_not_the_minimiser():
    """With noisy labels w* is the teacher, L_n(w*) − min L_n = Δ > 0 adds −nβ_k·Δ to every rung."""
    y = [v - nb * 2e-5 for v, nb in zip(model(1.5, 1), NBETAS)]
    f = fit(NBETAS, y, [1e-6] * 5, offset=True)
    assert f["lambda"] == pytest.approx(1.5, abs=1e-9) and f["m"] == pytest.approx(1.0, abs=1e-9)
    assert f["offset"] == pytest.approx(2e-5, rel=1e-6) and f["fit_dof"] == 2
    assert abs(fit(NBETAS, y, [1e-6] * 5)["lambda"] - 1.5) > 0.1  # without the term the fit is far off


def test_anchor_criticality_decides_the_offset():
    from llcbench.catalogue import build_target, load_catalogue
    from llcbench.estimators.ladder import anchor_is_critical

    cat = {c.id: c for c in load_catalogue()}
    assert anchor_is_critical(build_target(cat["poly/w1^4"]))  # analytic potential, minimum at w*
    assert anchor_is_critical(build_target(cat["dln/2-2-2/r0"]))  # noiseless teacher
    assert not anchor_is_critical(build_target(cat["reg/regular/quadratic"]))  # noisy labels


def test_fit_interval_covers_under_gaussian_rung_noise():
    """±2·se of the fit (Gaussian, known variances: dof None) covers λ in ≈ 95 % of noisy ladders; the
    Birge widening can only raise it. 2000 replicates: the binomial sd of a 95 % rate is 0.5 %, so the
    band [0.93, 0.995] is > 4 sd wide on the low side."""
    rng = np.random.default_rng(0)
    truth = np.array(model(1.5, 3))
    sd = 0.02 * np.array([1.0, 1.2, 0.8, 1.5, 1.0])
    hits = 0
    for _ in range(2000):
        f = fit(NBETAS, truth + sd * rng.standard_normal(5), sd ** 2)
        hits += abs(f["lambda"] - 1.5) <= 2 * f["lambda_se"]
    assert 0.93 <= hits / 2000 <= 0.995


def test_unresolved_m_is_flagged_and_widens_nothing_silently():
    f = fit(NBETAS, model(0.5, 2), [0.1 ** 2] * 5)  # rung se 20 % of λ: se(m) ≈ 0.93, above M_RESOLVED
    assert f["m_se"] > M_RESOLVED and not f["m_resolved"]
    assert f["lambda_se"] > 0.1  # the m-free fit's interval, wider than one rung's


def test_a_misfit_widens_the_se_by_the_birge_ratio():
    y = np.array(model(1.0, 1)) + np.array([0.1, -0.1, 0.1, -0.1, 0.1])  # a zigzag no line follows
    f = fit(NBETAS, y, [0.01 ** 2] * 5)
    plain = fit(NBETAS, model(1.0, 1), [0.01 ** 2] * 5)
    assert f["birge"] > 5 and f["lambda_se"] == pytest.approx(plain["lambda_se"] * f["birge"], rel=1e-9)


def test_rung_variances_take_the_larger_and_skip_diverged_chains():
    per_chain = np.array([[1.0, 2.0, 3.0, np.nan], [1.0, 1.0, 1.0, 1.0]])
    means, var, n = rung_variances(per_chain, np.array([0.01, 0.2]))
    assert means.tolist() == [2.0, 1.0] and n.tolist() == [3, 4]
    assert var[0] == pytest.approx(1.0 / 3) and var[1] == pytest.approx(0.04)  # between-chain; the base se²


def test_rungs_geometric_with_fixed_or_scaled_localisation():
    from llcbench.catalogue import build_target, load_catalogue

    target = build_target(next(c for c in load_catalogue() if c.id == "poly/w1^4"))
    cfg = make_config(get_estimator("ladder").config_cls, ["rungs=5", "ladder_span=16"])
    assert factors(cfg) == pytest.approx([1 / 16, 1 / 4, 1, 4, 16])
    rungs = rung_configs(target, cfg)
    assert [r.nbeta_scale for r in rungs] == pytest.approx([1 / 16, 1 / 4, 1, 4, 16])
    assert len({r.gamma for r in rungs}) == 1 and rungs[0].gamma == pytest.approx(1e-3 * target.nbeta_star)
    scaled = rung_configs(target, make_config(type(cfg), ["ladder_gamma=scaled"]))
    assert all(r.gamma is None for r in scaled)  # γ_k = gamma_scale·nβ_k by the default rule
    assert type(rung_configs(target, make_config(type(cfg), ["base=rmsprop_sgld"]))[0]).__name__ == "RMSPropSGLDConfig"


@pytest.mark.parametrize("bad, message", [(["base=sgnht"], "base must be one of"), (["rungs=3"], "rungs must be"),
                                          (["ladder_span=1"], "ladder_span must be"),
                                          (["ladder_gamma=x"], "ladder_gamma must be")])
def test_bad_ladder_config_is_one_line(bad, message):
    with pytest.raises(UserError, match=message):
        make_config(get_estimator("ladder").config_cls, bad)


def test_end_to_end_on_a_small_polynomial_and_its_record():
    """A short ladder on poly/w1^2+w2^2 (λ = 1, m = 1, no minibatches): finite λ̂ within 4 se of λ,
    the rungs in the record, and no single-temperature reference or multiplicity hint attached."""
    from llcbench.catalogue import load_catalogue
    from llcbench.runner import RunSpec, execute

    case = next(c for c in load_catalogue() if c.id == "poly/w1^2+w2^2")
    spec = get_estimator("ladder")
    cfg = make_config(spec.config_cls, ["chains=4", "steps=500", "burn_in=200"])
    rec = execute(RunSpec(case, spec, cfg, 0))
    assert math.isfinite(rec["lambda_hat"]) and rec["se"] > 0
    assert abs(rec["lambda_hat"] - 1.0) <= 4 * rec["se"], (rec["lambda_hat"], rec["se"])
    assert estimates_lambda(rec) and rec["extra"]["base"] == "sgld"
    assert len(rec["extra"]["ladder"]["rungs"]) == 5 and rec["grad_evals"] == 5 * 4 * 500
    assert rec["lambda_ref"] is None and rec["sampler_bias"] is None
    assert with_best_reference(None, rec)["lambda_ref"] is None


def test_attribution_never_splits_a_lambda_estimate_against_a_reference():
    rec = {"lambda_float": 1.5, "lambda_hat": 0.5, "se": 0.1, "multiplicity": 5, "lambda_ref": None,
           "extra": {"estimand": "lambda", "ladder": {"nbeta": 8686.0}}}
    what, reason, _ = attribute(rec)
    assert what == "unattributed" and "estimates λ itself" in reason
    assert hints(dict(rec, extra={"estimand": "lambda", "nbeta": 8686.0})) == []  # the fit accounts for m
    assert hints(dict(rec, extra={"nbeta": 8686.0}))[0]["kind"] == "multiplicity"  # a λ_nβ,γ estimate gets it


def test_every_ladder_field_is_documented_and_the_defaults_valid():
    import dataclasses

    cls = get_estimator("ladder").config_cls
    assert all(f.metadata.get("doc") for f in dataclasses.fields(cls))
    make_config(cls, []).validate()
