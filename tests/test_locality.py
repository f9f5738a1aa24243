"""Locality of SG-MCMC runs (llcbench.locality): the rule, the record's object, and who reads it."""

import json
import math

import pytest
import torch

from llcbench.case import Case
from llcbench.catalogue import build_target, load_catalogue, select
from llcbench.estimators import get_estimator
from llcbench.estimators.base import make_config
from llcbench.families.memorisation import MemorisationFamily
from llcbench.locality import (EXCESS_FRACTION_MAX, SPREAD_FRACTION_MAX, assess, is_local, judge, note)
from llcbench.score.select import healthy

SMALL = {"inputs": 8, "rule": "threshold", "rule_bits": 3, "memorised": 4, "hidden": [12]}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLCBENCH_CACHE", str(tmp_path / "cache"))


def small_memorisation():
    """A tanh MLP (d = 121) fitted to 64 samples, 4 of them with flipped labels (trained in < 1 s)."""
    case = Case(id="memorisation/test", family="memorisation", params=dict(SMALL), n=64, seed=0)
    return MemorisationFamily().target(case)


def sgld(target, estimator="sgld", **overrides):
    spec = get_estimator(estimator)
    cfg = make_config(spec.config_cls, {"steps": 300, "burn_in": 100, "chains": 4, **overrides})
    return spec.estimate(target, cfg, 0, "cpu")


def numbers(**kw):
    base = dict(lambda_hat=1.0, nbeta=100.0, gamma=1.0, dim=10, init_loss=0.0, chance_loss=None,
                mean_sq_distance=None, sensitivity_rel=None, accuracy=None, anchor_accuracy=None,
                chance_accuracy=None)
    return assess(**{**base, **kw})


def test_rule_flags_each_way_of_not_being_local_and_passes_a_local_posterior():
    # excess λ̂/nβ = 0.5 of a chance excess of 1.0: past the quarter
    assert numbers(lambda_hat=50.0, chance_loss=1.0)["local"] is False
    assert numbers(lambda_hat=0.9 * EXCESS_FRACTION_MAX * 100, chance_loss=1.0)["local"] is True
    # the draws spread as far as the localisation alone would put them (d/γ = 10)
    far = numbers(mean_sq_distance=SPREAD_FRACTION_MAX * 10 * 1.05)
    assert far["local"] is False and far["spread_fraction"] == pytest.approx(0.945)
    assert numbers(mean_sq_distance=1.0)["local"] is True
    # a classifier that lost half its accuracy on the way to chance
    assert numbers(accuracy=0.55, anchor_accuracy=1.0, chance_accuracy=0.1)["local"] is False
    assert numbers(accuracy=0.95, anchor_accuracy=1.0, chance_accuracy=0.1)["local"] is True
    # undecidable: no check applies, or λ̂ is not finite
    assert numbers()["local"] is None
    assert numbers(lambda_hat=math.nan, mean_sq_distance=1.0)["local"] is None
    # the sensitivity label
    assert numbers(sensitivity_rel=-0.6)["set_by_localisation"] is True
    assert numbers(sensitivity_rel=-0.1)["set_by_localisation"] is False


def test_is_local_rereads_the_numbers_and_scores_drop_non_local_runs():
    loc = numbers(lambda_hat=50.0, chance_loss=1.0)
    record = {"lambda_hat": 50.0, "rhat": 1.0, "diagnostics": {}, "locality": dict(loc, local=True)}
    assert is_local(record) is False  # today's rule, not the stored verdict
    assert judge(loc)[0] is False
    assert not healthy(record)
    assert note(record).startswith("not local")
    ok = {"lambda_hat": 1.0, "rhat": 1.0, "diagnostics": {}, "locality": numbers(mean_sq_distance=1.0)}
    assert is_local(ok) is True and healthy(ok) and note(ok) == ""
    assert is_local({"lambda_hat": 1.0}) is None and healthy({"lambda_hat": 1.0, "diagnostics": {}})


def test_chance_levels_and_accuracy_of_the_trained_families():
    t = small_memorisation()
    y = t.y.to(torch.float64)
    assert t.chance_loss() == pytest.approx(0.5 * (1 - float(y.mean()) ** 2))
    assert float(t.accuracy(t.w_star[None])[0]) == 1.0  # the anchor fits every sample (the family refuses otherwise)
    assert t.trained_anchor
    dln = build_target(select(load_catalogue(), ["dln/2-2-2/r0"])[0])
    assert dln.chance_loss() is None and dln.accuracy(dln.w_star[None]) is None and not dln.trained_anchor


def test_memorisation_at_the_old_default_gamma_is_flagged_not_local():
    # γ = 10⁻³·nβ (localisation=scale, the old default): the draws' mean excess train loss is beyond a
    # constant predictor's (measured 125 % of chance, accuracy 75 % against the anchor's 100 %), far past
    # the 25 % bar, so the verdict does not hang on the seed
    est = sgld(small_memorisation(), localisation="scale")
    loc = est.locality
    assert loc["local"] is False
    assert loc["excess_fraction"] > 2 * EXCESS_FRACTION_MAX
    assert loc["accuracy"] < loc["anchor_accuracy"]


@pytest.mark.parametrize("estimator", ["sgld", "rmsprop_sgld", "sgnht"])
def test_exact_truth_defaults_are_local(estimator):
    cases = select(load_catalogue(), ["dln/2-2-2/r0", "rrr/5-3-5/r0", "regular/linear-5x4"])
    for case in cases:
        est = sgld(build_target(case), estimator)
        # measured spread fractions at the defaults (300 steps after a 100-step tempered start), seed 0:
        # 0.001 (regular) to 0.58 (dln/2-2-2/r0, whose flat directions the start fills; 0.27 from w*),
        # below the 90 % bar with room
        assert est.locality["local"] is True, (case.id, est.locality)
        assert est.locality["spread_fraction"] < 0.75


def test_grid_points_carry_their_own_locality():
    spec = get_estimator("sgld")
    target = small_memorisation()
    cfgs = [make_config(spec.config_cls, {"steps": 300, "burn_in": 100, "chains": 4, "gamma": g,
                                          "localisation": "scale"}) for g in (0.01, 1e4)]
    low, high = spec.estimate_grid(target, cfgs, 0, "cpu")
    assert low.locality["gamma"] == 0.01 and high.locality["gamma"] == 1e4
    assert low.locality["local"] is False  # wandered off (as at the old default)
    # at γ = 10⁴ the draws are the localisation's Gaussian: E‖w − w*‖² ≈ d/γ
    assert high.locality["spread_fraction"] > SPREAD_FRACTION_MAX and high.locality["local"] is False


# --- the localisation of trained anchors (llcbench.estimators.sgmcmc.pilot) ---

from llcbench.estimators.sgmcmc import pilot  # noqa: E402


def rung(gamma, lam, local, excess=0.0, spread=0.5):
    return {"gamma": gamma, "lambda_hat": lam, "local": local, "excess_fraction": excess,
            "accuracy_drop_fraction": None, "spread_fraction": spread}


def test_pilot_rule_picks_the_smallest_local_gamma_on_a_plateau_or_says_there_is_none():
    rows = [rung(0.1, 90.0, False, excess=1.2), rung(1.0, 40.0, True), rung(10.0, 36.0, True), rung(100.0, 35.0, True)]
    # 40 → 36 is a 10 % change (within PLATEAU_REL = 15 %): the plateau starts at γ = 1
    assert pilot.choose(rows) == (1.0, True)
    falling = [rung(0.1, 90.0, False, excess=1.2), rung(1.0, 40.0, True), rung(10.0, 10.0, False, spread=0.95),
               rung(100.0, 1.0, False, spread=1.0)]
    # no two neighbouring local rungs agree: no plateau; the smallest γ whose draws did not wander off
    assert pilot.choose(falling) == (1.0, False)
    lost = [rung(0.1, 90.0, False, excess=1.2), rung(1.0, 80.0, False, excess=0.9)]
    assert pilot.choose(lost) == (1.0, False)  # nothing qualifies: the largest γ


def test_trained_anchor_runs_take_gamma_from_the_pilot_and_record_the_ladder():
    target = small_memorisation()
    est = sgld(target)
    ladder = est.extra["localisation_pilot"]
    assert len(ladder["ladder"]) == len(pilot.LADDER)
    assert ladder["steps"] == 300  # min(steps, PILOT_STEPS)
    nbeta = est.extra["nbeta"]
    assert [r["gamma"] for r in ladder["ladder"]] == pytest.approx([nbeta * x for x in pilot.LADDER])
    assert est.extra["gamma"] == ladder["gamma"] == est.locality["gamma"]
    assert est.locality["gamma_source"] == "pilot" and est.locality["plateau"] == ladder["plateau"]
    if not ladder["plateau"]:
        assert est.locality["set_by_localisation"] is True
        assert any("property of" in w for w in est.warnings)
    # the old default (localisation=scale) has no pilot and γ = 10⁻³·nβ
    old = sgld(target, localisation="scale")
    assert "localisation_pilot" not in old.extra and old.extra["gamma"] == pytest.approx(1e-3 * nbeta)


def test_exact_truth_families_are_untouched_by_the_pilot():
    spec = get_estimator("sgld")
    target = build_target(select(load_catalogue(), ["rrr/5-3-5/r0"])[0])
    assert not pilot.applies(target, make_config(spec.config_cls, {}))
    auto, scale = sgld(target), sgld(target, localisation="scale")
    assert auto.lambda_hat == scale.lambda_hat  # bit-identical: the same run
    assert "localisation_pilot" not in auto.extra


def test_cli_json_carries_locality_and_the_table_notes_a_non_local_run(cli, tmp_path):
    # rrr at its defaults is local; at γ = 10⁶ the draws are the localisation's Gaussian (E‖w − w*‖²
    # ≈ d/γ): the loss plays no part, so the run is not local whatever the seed
    db = tmp_path / "r.sqlite"
    args = ["run", "--estimator", "sgld", "--case", "rrr/5-3-5/r0", "--db", db, "--quiet",
            "--set", "steps=300", "--set", "burn_in=100", "--set", "chains=4"]
    ok = cli(*args, "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)[0]["locality"]["local"] is True
    far = cli(*args, "--set", "gamma=1e6", "--json")
    loc = json.loads(far.stdout)[0]["locality"]
    assert loc["local"] is False and loc["spread_fraction"] > SPREAD_FRACTION_MAX
    table = cli(*args, "--set", "gamma=1e6")
    assert table.returncode == 0 and "not local" in table.stdout


def test_scores_put_a_non_local_exact_case_apart_and_count_it(tmp_path):
    from synthetic_records import BASE_CONFIG, record
    from test_scores import fill, group
    from llcbench.score.scores import build_scores

    c = dict(BASE_CONFIG)
    far = record("p/b", "polynomial", 1.0, "sgld", c, 0, 9.0)
    far["locality"] = numbers(lambda_hat=9.0, mean_sq_distance=1.0, dim=1, gamma=1.0)  # E‖w − w*‖² = d/γ
    recs = [record("p/a", "polynomial", 0.5, "sgld", c, 0, 0.55), far]
    with fill(tmp_path / "s.sqlite", recs) as store:
        g = group(build_scores(store))
    assert [r["case"] for r in g["apart"]] == ["p/b"]
    assert g["apart"][0]["local"] is False and g["apart"][0]["non_local_runs"] == 1
    # the median is p/a's 10 % alone, not pulled by p/b's +800 %
    assert g["overall"]["cases"] == 1 and g["overall"]["median_abs_rel_error"] == pytest.approx(0.1)
