"""Where the chains start: the tempered start (llcbench.estimators.sgmcmc.tempered_start) and the orbit
start (orbit_start): chains that keep spreading from w* start again with the directions only the
localisation confines already filled."""

import math

from types import SimpleNamespace

import pytest

from llcbench.errors import UserError
from llcbench.estimators import get_estimator
from llcbench.estimators.base import make_config
from llcbench.estimators.sgmcmc.tempered_start import RELAXATIONS, skip_reason
from llcbench.health import SPREAD_Z_MAX

from test_estimators import quadratic
from test_settle import _run, _target


PLAIN = ["max_doublings=0", "extrapolate=none"]  # 6,000 planned steps, nothing else moving


@pytest.fixture(scope="module")
def dln_runs():
    target = _target("dln/4-4-4/r2/generic")
    return {start: _run(target, PLAIN + [f"start={start}"]) for start in ("w_star", "tempered", "orbit", "auto")}


def test_the_start_ends_the_spreading_on_a_deep_linear_network(dln_runs):
    # dln/4-4-4/r2/generic at seed 0: from w* its rescalings fill in 1/(εγ) ≈ 4·10⁴ steps, so
    # E‖w − w*‖² doubles over the draws (measured +108 %, z 5.1; the health rule's bar is 3.09);
    # after the tempered start the spread is flat (measured +1 %, z 0.1). The bar is the health
    # rule's own: the test fails if the start stops filling those directions.
    from_w_star, started = dln_runs["w_star"], dln_runs["tempered"]
    assert from_w_star.diagnostics["spread_growth_z"] > SPREAD_Z_MAX
    assert from_w_star.diagnostics["spread_growth"] > 0.5
    assert abs(started.diagnostics["spread_growth_z"]) < SPREAD_Z_MAX
    assert abs(started.diagnostics["spread_growth"]) < 0.05
    rec = started.extra["start"]
    assert rec["steps"] == 2000 and rec["reset_chains"] == 0  # None: the burn-in's 2,000 steps
    # ε_t = RELAXATIONS/(steps·γ), nβ' = nβ·ε/ε_t, with ε the rule's step at w*
    assert rec["step_size"][0] == pytest.approx(RELAXATIONS / (2000 * started.gamma), rel=1e-6)
    assert rec["nbeta"][0] == pytest.approx(started.nbeta * started.extra["rule_step_size_init"] / rec["step_size"][0],
                                            rel=1e-5)
    assert rec["nbeta"][0] < started.nbeta / 20
    assert started.grad_evals == (6000 + 2000) * started.extra["chains"]
    assert from_w_star.extra["start"] == {"kind": "w_star", "steps": 0, "skipped": "start = 'w_star'"}


def test_the_orbit_start_ends_the_spreading_on_a_deep_linear_network(dln_runs):
    # the same run after the orbit start: Metropolis moves along the GL(4) rescalings at the hidden
    # vertex with the run's own SGLD step; measured spread −1.0 % (z −0.1), the bar is the health rule's
    started = dln_runs["orbit"]
    assert abs(started.diagnostics["spread_growth_z"]) < SPREAD_Z_MAX
    assert abs(started.diagnostics["spread_growth"]) < 0.05
    rec = started.extra["start"]
    assert rec["kind"] == "orbit" and rec["steps"] == 2000 and rec["reset_chains"] == 0
    assert [(m["kind"], m["per_step"]) for m in rec["moves"]] == [("transvection", 4), ("scaling", 1)]
    assert all(0.15 < m["acceptance"] < 0.45 for m in rec["moves"])  # the scales adapted toward 30 % in the first half
    assert started.grad_evals == (6000 + 2000) * started.extra["chains"]


def test_auto_starts_again_from_the_orbit_start_where_the_chains_keep_spreading(dln_runs):
    auto, started = dln_runs["auto"], dln_runs["orbit"]
    rec = auto.extra["start"]
    assert rec["kind"] == "orbit" and rec["after"]["steps"] == 6000
    assert any(p.startswith("still spreading") for p in rec["after"]["problems"])
    # the run it starts again is the orbit-started run, bit for bit (the start's streams are its own)
    assert auto.lambda_hat == started.lambda_hat and auto.se == started.se
    assert auto.grad_evals == (6000 + 2000 + 6000) * auto.extra["chains"]  # the run from w* counts too


def test_auto_leaves_a_run_that_does_not_spread_as_it_was():
    # a quadratic's chains settle from w* within the burn-in: no restart, the run from w* to the bit
    target = quadratic(d=3)
    kw = ["step_size=1e-4", "steps=600", "burn_in=200", "chains=3", "max_doublings=0"]
    auto, w_star = _run(target, kw), _run(target, kw + ["start=w_star"])
    assert auto.extra["start"]["steps"] == 0 and "not still spreading" in auto.extra["start"]["skipped"]
    assert auto.lambda_hat == w_star.lambda_hat and auto.grad_evals == w_star.grad_evals


def test_a_start_the_run_does_not_need_is_skipped():
    # ε·γ·steps ≥ RELAXATIONS: the run's own step fills the localisation-only directions in
    # tempered_start steps, so no start runs and nothing else moves (its streams are its own)
    target = quadratic(d=3)
    kw = ["step_size=1e-3", "steps=400", "burn_in=100", "chains=3", "max_doublings=0"]
    skipped = _run(target, kw + ["start=tempered", "tempered_start=10000"])  # ε·γ·steps = 1e-3·1.09·10⁴ ≈ 11
    w_star = _run(target, kw + ["start=w_star"])
    assert skipped.extra["start"]["steps"] == 0
    assert "own step" in skipped.extra["start"]["skipped"]
    assert skipped.lambda_hat == w_star.lambda_hat and skipped.grad_evals == w_star.grad_evals
    ran = _run(target, kw + ["start=tempered"])  # 100 steps (burn_in): ε·γ·steps ≈ 0.1 < 5, so it runs
    assert ran.extra["start"]["steps"] == 100 and ran.extra["start"]["mean_sq_distance"][0] > 0


def test_where_the_start_does_not_run_and_bad_values():
    ctx = SimpleNamespace(gamma=1.0)
    plain = SimpleNamespace(trained_anchor=False)
    assert skip_reason(plain, ctx, 1e-4) is None
    assert "trained anchor" in skip_reason(SimpleNamespace(trained_anchor=True), ctx, 1e-4)
    assert "no Langevin step" in skip_reason(plain, ctx, None)
    assert "γ = 0" in skip_reason(plain, SimpleNamespace(gamma=0.0), 1e-4)
    sgld = get_estimator("sgld").config_cls
    with pytest.raises(UserError, match="tempered_start must be >= 1"):
        make_config(sgld, ["tempered_start=0"])
    with pytest.raises(UserError, match="start must be one of auto, w_star, tempered, orbit"):
        make_config(sgld, ["start=anywhere"])


def test_a_start_too_hot_is_not_taken():
    # the rule's ε far below ε_t = 5/(steps·γ) would need nβ' < nβ/MAX_TEMPERING: refused before any step
    from llcbench.estimators.sgmcmc.tempered_start import MAX_TEMPERING, run_tempered_start

    ctx = SimpleNamespace(gamma=1.0)
    rec = run_tempered_start(SimpleNamespace(trained_anchor=False), ctx, 1e-9, 2000, 0)  # nβ/4·10⁵
    assert rec["steps"] == 0 and f"below nβ/{MAX_TEMPERING:g}" in rec["skipped"]


def test_a_start_that_draws_the_localisations_gaussian_is_undone():
    # L = ½·10⁻⁶·‖w‖²: at nβ' ≈ 87 the loss confines nothing (nβ'·a ≪ γ ≈ 1.09), so the tempered chains
    # draw N(w*, I/γ): E‖w − w*‖² = 99.3 % of d/γ after 5 relaxations, ± 2.5 % over 8 chains × 400
    # coordinates, so above the 90 % bar by 3.7 sd: the start is undone, the run starts at w*
    target = quadratic(d=400, a=1e-6)
    kw = ["steps=400", "burn_in=100", "chains=8", "max_doublings=0", "extrapolate=none", "tempered_start=2000"]
    undone = _run(target, kw + ["start=tempered"])
    w_star = _run(target, kw + ["start=w_star"])
    rec = undone.extra["start"]
    assert rec["steps"] == 0 and "undone" in rec["skipped"] and rec["tried"]["steps"] == 2000
    assert undone.lambda_hat == w_star.lambda_hat  # positions back at w*, the run's streams untouched
    assert undone.grad_evals == w_star.grad_evals + 2000 * 8  # the try is paid for


def test_a_start_whose_chains_blow_up_is_undone():
    # ε_t·nβ'·a = ε·nβ·a = 6 on L = Σ w_i² (a = 2): SGLD's factor 1 − 3 per step, so every chain
    # overflows within 200 steps; the start is undone and the run goes on from w*
    target = quadratic(d=3)
    eps = 6 / (target.nbeta_star * 2.0)
    kw = [f"step_size={eps}", "steps=300", "burn_in=100", "chains=3", "max_doublings=0", "tempered_start=200"]
    rec = _run(target, kw + ["start=tempered"]).extra["start"]
    assert rec["steps"] == 0 and "blow-ups" in rec["skipped"] and rec["tried"]["reset_chains"] >= 3


def test_orbit_moves_sample_the_posterior_along_the_orbit():
    """The scaling moves alone, on a 2-1-1 network (orbit (t·a, t⁻¹·b), t = eᵘ): from w* they reach
    the density along the orbit, f(u) ∝ exp(−γ/2·‖g_u·w* − w*‖²)·e^{(H_0 − H_2)·u} with the Jacobian
    |det A|^(fan_in − fan_out) = e^u. E[u] over 4,000 independent chains after 300 moves against the
    integral: the se is ≈ 0.006; leaving the Jacobian out would move E[u] by 0.17 (tested to be > 10 se
    away), so the test tells a missing or wrong-signed Jacobian from the right one."""
    import torch
    from scipy.integrate import quad

    from llcbench.estimators.sgmcmc.orbit_start import scaling
    from llcbench.target import Rescaling

    a, b, gamma, chains = torch.tensor([0.8, -0.6]), 1.5, 2.0, 4000
    w_star = torch.cat([a, torch.tensor([b])]).double()
    vertex = Rescaling(width=1, fan_in=2, fan_out=1, in_offset=0, out_offset=2)
    w = w_star.expand(chains, 3).clone()
    gen = torch.Generator().manual_seed(0)
    scale = torch.full((chains,), 0.6, dtype=torch.float64)
    gam = torch.full((chains,), gamma, dtype=torch.float64)
    for _ in range(300):
        scaling(w, w_star, vertex, scale, gam, gen)
    u = -torch.log(w[:, 2] / b)  # W_out = b·e^{−u}
    torch.testing.assert_close(w[:, :2], torch.exp(u)[:, None] * w_star[:2], rtol=1e-10, atol=1e-12)  # on the orbit

    def moment(k, jac):
        dens = lambda x: math.exp(-gamma / 2 * ((math.exp(x) - 1) ** 2 * 1.0 + (math.exp(-x) - 1) ** 2 * b * b) + jac * x)
        return quad(lambda x: x ** k * dens(x), -8, 8)[0] / quad(dens, -8, 8)[0]

    mean, se = float(u.mean()), float(u.std()) / chains ** 0.5
    assert abs(mean - moment(1, 1.0)) < 4 * se, (mean, moment(1, 1.0), se)
    assert abs(moment(1, 0.0) - moment(1, 1.0)) > 10 * se
    assert abs(float(u.var()) - (moment(2, 1.0) - moment(1, 1.0) ** 2)) < 0.1 * float(u.var())


def test_orbit_moves_leave_a_deep_linear_networks_loss_unchanged():
    import torch

    from llcbench.estimators.sgmcmc.orbit_start import scaling, transvection

    target = _target("dln/4-6-3-5-7/r2")
    gen = torch.Generator().manual_seed(1)
    w = target.w_star[None].repeat(5, 1) + 0.05 * torch.randn(5, target.dim, dtype=torch.float64, generator=gen)
    before, start = target.loss(w), w.clone()
    ones = torch.ones(5, dtype=torch.float64)
    for vertex in target.rescalings():
        for _ in range(20):
            transvection(w, target.w_star, vertex, 0.3 * ones, 0.1 * ones, gen)
            scaling(w, target.w_star, vertex, 0.3 * ones, 0.1 * ones, gen)
    assert (w - start).norm(dim=1).min() > 0.1  # the chains moved
    torch.testing.assert_close(target.loss(w), before, rtol=1e-10, atol=1e-12)
    assert [v.width for v in target.rescalings()] == [6, 3, 5]


def test_a_transvection_and_its_inverse_are_equally_likely_and_keep_the_volume():
    """With W_in = W_out = I (a 5-5-5 vertex) and γ = 0 every move is accepted and W_in becomes A,
    W_out A⁻¹: A·A⁻¹ = I, det A = 1 (so no Jacobian term), and the move by −t undoes the move by t
    (t ~ N(0, s²): a proposal and its inverse are equally likely)."""
    import torch

    from llcbench.estimators.sgmcmc.orbit_start import scaling, transvection
    from llcbench.target import Rescaling

    h, rows = 5, 6
    vertex = Rescaling(width=h, fan_in=h, fan_out=h, in_offset=0, out_offset=h * h)
    eye = torch.eye(h, dtype=torch.float64).reshape(-1)
    w_star = torch.cat([eye, eye])
    zero, scale = torch.zeros(rows, dtype=torch.float64), torch.full((rows,), 0.7, dtype=torch.float64)
    for move in (transvection, scaling):
        w = w_star.expand(rows, -1).clone()
        assert bool(move(w, w_star, vertex, scale, zero, torch.Generator().manual_seed(3)).all())
        a, a_inv = vertex.incoming(w), vertex.outgoing(w)
        torch.testing.assert_close(torch.bmm(a, a_inv), torch.eye(h, dtype=torch.float64).expand(rows, h, h))
        if move is transvection:
            torch.testing.assert_close(torch.linalg.det(a), torch.ones(rows, dtype=torch.float64))
        # the same draws with t → −t (a negated scale) give A⁻¹: the inverse proposal
        back = w_star.expand(rows, -1).clone()
        move(back, w_star, vertex, -scale, zero, torch.Generator().manual_seed(3))
        torch.testing.assert_close(vertex.incoming(back), a_inv)


def test_an_orbit_start_that_blows_up_at_the_rules_step_tries_again_with_the_rules_step_where_the_chains_went():
    """dln/4-4-4/r2/generic at γ = 0.05 and step_scale 3.5 (ε·nβ·h = 3.5 at w*: stable there, SGLD's
    factor |1 − 1.75| < 1): the localisation lets the chains far along the orbits, where the curvature
    is ~150× that at w*, and all 8 blow up within 300 steps (measured, seed 0). The start goes back to
    w* and tries again at the rule's step for the largest curvature the chains had met (≈ 150× smaller);
    that try holds, the run takes the same smaller step (its adaptation capped there), its spread is
    flat (measured −0.03 %; the bar is the health rule's), and the failed try's steps are paid for."""
    target = _target("dln/4-4-4/r2/generic")
    run = _run(target, PLAIN + ["start=orbit", "step_scale=3.5", "gamma=0.05"])
    rec = run.extra["start"]
    assert rec["steps"] == 2000 and rec["reset_chains"] == 0 and len(rec["retries"]) == 1
    tried = rec["retries"][0]
    assert tried["reset_chains"] > 0 and tried["steps"] < 2000 and tried["step_factor"] == 1.0
    assert rec["step_factor"] < 0.5 and tried["h_max"] > 0
    assert run.extra["step_size"] == pytest.approx(run.extra["rule_step_size_init"] * rec["step_factor"], rel=1e-6)
    assert all(a["rule_step_size"] <= run.extra["step_size"] * (1 + 1e-9) for a in run.extra["adaptation"])
    assert abs(run.diagnostics["spread_growth_z"]) < SPREAD_Z_MAX and not run.diagnostics.get("divergent_chains")
    assert run.grad_evals == (6000 + 2000 + tried["steps"]) * run.extra["chains"]


def test_an_orbit_start_at_a_given_step_that_blows_up_is_undone_without_a_retry():
    # the same run at the rule's step at w* given as step_size: the start may not change a step the
    # user set, so its chains' blow-ups undo it at once and the run goes on from w* as it would have
    target = _target("dln/4-4-4/r2/generic")
    probe = _run(target, PLAIN + ["start=w_star", "step_scale=3.5", "gamma=0.05"])
    kw = PLAIN + [f"step_size={probe.extra['step_size']!r}", "gamma=0.05"]
    undone, w_star = _run(target, kw + ["start=orbit"]), _run(target, kw + ["start=w_star"])
    rec = undone.extra["start"]
    assert rec["steps"] == 0 and "blow-ups, undone" in rec["skipped"] and "retries" not in rec
    assert rec["tried"]["steps"] == 2000 and rec["tried"]["reset_chains"] > 0
    assert undone.lambda_hat == w_star.lambda_hat
