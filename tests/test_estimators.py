"""The SG-MCMC estimators (sgld, rmsprop_sgld, sgnht) and their shared driver.

Every test builds its own small targets (a quadratic potential, a small
linear regression with data), so it does not depend on the families.
Seeds are fixed; each tolerance says where it comes from. Runtime: a few
seconds per test on 2 CPU cores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Optional

import numpy as np
import pytest
import torch

from llcbench.errors import UnsupportedTarget, UserError
from llcbench.estimators import ESTIMATORS, get_estimator
from llcbench.estimators.base import Estimate, make_config
from llcbench.estimators.sgmcmc import EpochBatches, top_hessian_eigenvalue
from llcbench.estimators.sgmcmc.batches import IIDBatches
from llcbench.target import Target
from llcbench.truth import Truth

NAMES = ("sgld", "rmsprop_sgld", "sgnht")


# --------------------------------------------------------------------------- test targets


@dataclass
class Quadratic(Target):
    """L(w) = ½ Σ a_i (w_i − w*_i)², analytic (num_data = 0); λ = d/2."""

    a: Optional[torch.Tensor] = None  # (d,)

    def loss(self, w, idx=None):
        a = self.a.to(device=w.device, dtype=w.dtype)
        return 0.5 * (a * (w - self.w_star.to(w)).square()).sum(dim=-1)


def quadratic(d=4, a=2.0, n=10_000, **kw) -> Quadratic:
    return Quadratic(id=f"quad{d}", family="test", dim=d, n=n, w_star=torch.zeros(d, dtype=torch.float64),
                     truth=Truth(Fraction(d, 2), 1, "exact", "d/2"),
                     a=torch.full((d,), float(a), dtype=torch.float64), **kw)


@dataclass
class LinearData(Target):
    """Linear regression y = W x + N(0, 1) with data; L = mean ‖y − W x‖²/2; w* = the teacher."""

    x: Optional[torch.Tensor] = None
    y: Optional[torch.Tensor] = None
    out: int = 1

    def loss(self, w, idx=None):
        x, y = (self.x, self.y) if idx is None else (self.x[idx], self.y[idx])
        wm = w.reshape(w.shape[0], self.out, -1)
        resid = torch.matmul(x, wm.transpose(1, 2)) - y
        return 0.5 * resid.square().sum(-1).mean(-1)


def linear_data(n=2000, inp=3, out=2, seed=0) -> LinearData:
    g = torch.Generator().manual_seed(seed)
    w_star = torch.randn(out * inp, generator=g, dtype=torch.float64)
    x = torch.randn(n, inp, generator=g, dtype=torch.float64)
    y = x @ w_star.reshape(out, inp).T + torch.randn(n, out, generator=g, dtype=torch.float64)
    d = out * inp
    return LinearData(id="lin", family="test", dim=d, n=n, w_star=w_star, truth=Truth(Fraction(d, 2), 1, "exact", "d/2"),
                      num_data=n, x=x, y=y, out=out)


def run(name, target, seed=0, device="cpu", **overrides) -> Estimate:
    spec = get_estimator(name)
    return spec.estimate(target, make_config(spec.config_cls, overrides), seed, device)


# --------------------------------------------------------------------------- registry and config


def test_registry_and_unknown_name():
    assert set(NAMES) <= set(ESTIMATORS)
    for name in NAMES:
        spec = get_estimator(name)
        assert spec.name == name and callable(spec.estimate)
    with pytest.raises(UserError, match=r"unknown estimator 'nope'; known: .*rmsprop_sgld.*sgld.*sgnht"):
        get_estimator("nope")


@pytest.mark.parametrize("name", NAMES)
def test_every_config_field_is_documented(name):
    import dataclasses

    cls = get_estimator(name).config_cls
    for f in dataclasses.fields(cls):
        assert f.metadata.get("doc"), f"{name}.{f.name} has no doc"
    make_config(cls, []).validate()  # the defaults are valid


@pytest.mark.parametrize("bad, message", [
    (["step_size=-1"], "step_size must be > 0"),
    (["step_size=0"], "step_size must be > 0"),
    (["gamma=-1"], "gamma must be >= 0"),
    (["burn_in=5000", "steps=3000"], "burn_in must be < steps"),
    (["dtype=float16"], "dtype must be one of"),
    (["chains=0"], "chains must be >= 1"),
    (["no_such_field=1"], "unknown field"),
    (["steps=many"], "expected a value of type int"),
])
def test_make_config_rejects_bad_values(bad, message):
    for name in NAMES:
        with pytest.raises(UserError, match=message):
            make_config(get_estimator(name).config_cls, bad)


def test_make_config_sampler_specific_fields():
    assert make_config(get_estimator("rmsprop_sgld").config_cls, ["beta2=0.999"]).beta2 == 0.999
    assert make_config(get_estimator("sgnht").config_cls, ["diffusion=2"]).diffusion == 2.0
    with pytest.raises(UserError, match="beta2"):
        make_config(get_estimator("rmsprop_sgld").config_cls, ["beta2=1.5"])
    with pytest.raises(UserError, match="diffusion must be > 0"):
        make_config(get_estimator("sgnht").config_cls, ["diffusion=0"])


# --------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize("name", NAMES)
def test_quadratic_lambda_within_tolerance(name):
    # K = Σ w_i² in d = 4 dims, λ = d/2 = 2, nβ = n/log n ≈ 1086, γ = 10⁻³·nβ.
    # Expected bias: localisation −γ/(nβ·2) = −0.05 %; discretisation: the
    # default rule keeps ε·(nβ·2 + γ) = step_scale, which inflates the
    # stationary variance by 1/(1 − step_scale/4) (≈ +5 % at 0.2) for SGLD and
    # SGNHT, and by no more for RMSProp (its steps are ≤ the rule's on the
    # stiffest coordinate). Tolerance: 8 % of λ for that bias plus 4 Monte
    # Carlo standard errors (ArviZ MCSE of the mean).
    target = quadratic(d=4, a=2.0)
    est = run(name, target, steps=2500, burn_in=700)
    assert est.diagnostics["divergent_chains"] == []
    assert math.isfinite(est.se) and est.se > 0
    assert abs(est.lambda_hat - 2.0) <= 0.08 * 2.0 + 4 * est.se, (est.lambda_hat, est.se)
    assert est.diagnostics["rhat"] < 1.1
    # sgld and rmsprop_sgld extrapolate by default: their run is two points, ε and 2ε, on shared chains
    points = 2 if (est.extra.get("extrapolation") or {}).get("applied") else 1
    assert points == (2 if name in ("sgld", "rmsprop_sgld") else 1)
    assert est.extra["start"]["steps"] == 0  # start 'auto': a quadratic does not keep spreading
    assert est.grad_evals == points * 2500 * est.extra["chains"]
    assert len(est.lambda_hat_chains) == est.extra["chains"]


def test_sgld_matches_the_discretised_stationary_law():
    # For L = ½·a·w² per coordinate the SGLD chain is a Gaussian AR(1):
    # w' = (1 − ε(nβa + γ)/2)·w + √ε·ξ, stationary variance
    # v = ε / (1 − (1 − ε(nβa+γ)/2)²), so E[nβ·L] = d·nβ·a·v/2 exactly (no
    # continuous-time approximation). ε·(nβa + γ) = 0.8 makes the
    # discretisation visible (+25 % over the exact posterior's d/2·nβa/(nβa+γ)),
    # so the test distinguishes the discretised law from the continuous one.
    # Tolerance: 3 standard errors (ArviZ MCSE), and the continuous-time value
    # must lie outside it.
    d, a, n, gamma = 6, 2.0, 10_000, 1.0
    target = quadratic(d=d, a=a, n=n)
    nbeta = n / math.log(n)
    A = nbeta * a + gamma
    eps = 0.8 / A
    rho = 1 - eps * A / 2
    v = eps / (1 - rho**2)
    predicted = d * nbeta * a * v / 2
    continuous = d / 2 * nbeta * a / A
    est = run("sgld", target, step_size=eps, gamma=gamma, chains=16, steps=3000, burn_in=200)
    assert abs(est.lambda_hat - predicted) <= 3 * est.se, (est.lambda_hat, predicted, est.se)
    assert abs(continuous - predicted) > 3 * est.se


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_lambda_different_seed_different(name):
    target = linear_data()
    kw = dict(steps=200, burn_in=80, chains=3, batch_size=64)
    a = run(name, target, seed=3, **kw)
    b = run(name, target, seed=3, **kw)
    c = run(name, target, seed=4, **kw)
    assert a.lambda_hat == b.lambda_hat
    assert a.lambda_hat_chains == b.lambda_hat_chains
    assert a.loss_trace == b.loss_trace
    assert c.lambda_hat != a.lambda_hat


# --------------------------------------------------------------------------- divergence


@pytest.mark.parametrize("name", NAMES)
def test_all_chains_diverge_gives_nan_with_warning(name):
    # ε·nβ·a ≫ 4: the chain is an unstable AR(1), |w| grows geometrically.
    est = run(name, quadratic(d=3), step_size=10.0, eps_precond=1.0, steps=400, burn_in=100,
              chains=4) if name == "rmsprop_sgld" else run(name, quadratic(d=3), step_size=10.0,
                                                           steps=400, burn_in=100, chains=4)
    assert math.isnan(est.lambda_hat)
    assert est.diagnostics["divergent_chains"] == [0, 1, 2, 3]
    assert all(math.isnan(x) for x in est.lambda_hat_chains)
    assert any("all chains diverged" in w for w in est.warnings)


@dataclass
class Poisoned(Quadratic):
    """A quadratic whose loss is +inf for chain rows in ``bad_rows`` from call ``after`` on."""

    bad_rows: tuple = ()
    after: int = 0
    calls: int = field(default=0)

    def loss(self, w, idx=None):
        out = super().loss(w, idx)
        if w.shape[0] > 1:
            self.calls += 1
            if self.calls > self.after:
                mask = torch.zeros(w.shape[0], dtype=torch.bool, device=w.device)
                mask[list(self.bad_rows)] = True
                out = torch.where(mask, torch.full_like(out, float("inf")), out)
        return out


def test_diverged_chains_are_flagged_frozen_and_excluded():
    target = quadratic(d=3)
    poisoned = Poisoned(**{k: getattr(target, k) for k in ("id", "family", "dim", "n", "w_star", "truth", "a")},
                        bad_rows=(1, 3), after=150)
    est = run("sgld", poisoned, step_size=2e-4, steps=600, burn_in=200, chains=4, check_every=50)
    assert est.diagnostics["divergent_chains"] == [1, 3]
    assert set(est.diagnostics["divergence_step"]) == {"1", "3"}
    assert math.isnan(est.lambda_hat_chains[1]) and math.isnan(est.lambda_hat_chains[3])
    good = [est.lambda_hat_chains[0], est.lambda_hat_chains[2]]
    assert all(math.isfinite(x) for x in good)
    assert est.lambda_hat == pytest.approx(np.mean(good), rel=1e-9)
    assert any("2 of 4 chains diverged" in w for w in est.warnings)
    assert est.diagnostics["chains_used"] == 2
    # no NaN leaks into the summary statistics
    assert math.isfinite(est.se) and math.isfinite(est.diagnostics["ess_bulk"])


# --------------------------------------------------------------------------- minibatches


def test_epoch_batches_visit_every_index_once_per_epoch():
    g = torch.Generator().manual_seed(0)
    n, b = 1003, 100
    sampler = EpochBatches(n, b, g)
    per_epoch = math.ceil(n / b)
    assert sampler.per_epoch == per_epoch
    epochs = []
    for _ in range(3):
        batches = [sampler.next() for _ in range(per_epoch)]
        sizes = {len(x) for x in batches}
        assert max(sizes) <= b and max(sizes) - min(sizes) <= 1  # near-equal batches
        seen = torch.cat(batches).sort().values
        assert torch.equal(seen, torch.arange(n))  # each index exactly once
        epochs.append(torch.cat(batches))
    assert not torch.equal(epochs[0], epochs[1])  # a fresh permutation each epoch
    again = EpochBatches(n, b, torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat([again.next() for _ in range(per_epoch)]), epochs[0])  # seeded



def test_iid_batches_are_uniform_draws_with_replacement():
    from scipy import stats

    n, b = 50, 20
    sampler = IIDBatches(n, b, torch.Generator().manual_seed(0))
    batches = [sampler.next() for _ in range(2000)]
    assert {len(x) for x in batches} == {b}  # every batch has exactly batch_size indices
    # with replacement: a batch of 20 from 50 repeats an index with probability 1 − ∏(1 − k/50) ≈ 0.98
    assert sum(len(torch.unique(x)) < b for x in batches) > 1900
    counts = torch.bincount(torch.cat(batches), minlength=n).numpy()
    # uniform: a chi-square test at the 0.1 % level (fixed seed; fails only if the draw is not uniform)
    assert stats.chisquare(counts).pvalue > 1e-3
    # independent of the position in the "epoch": the first and last batch of each group of
    # per_epoch batches overlap as much as any two i.i.d. batches would (an epoch stream never overlaps)
    per = sampler.per_epoch
    overlap = [len(set(batches[i].tolist()) & set(batches[i + per - 1].tolist())) for i in range(0, 1900, per)]
    assert sum(overlap) > 0
    again = IIDBatches(n, b, torch.Generator().manual_seed(0))
    assert all(torch.equal(again.next(), x) for x in batches[:10])  # seeded


def test_batch_draw_iid_runs_and_leaves_the_default_key_unchanged():
    from llcbench.estimators.base import config_dict

    from llcbench.estimators import sgld

    target = linear_data(n=2000)
    base = sgld.SGLDConfig(chains=2, steps=300, burn_in=100, batch_size=100, adapt_rounds=0)
    assert "batch_draw" not in config_dict(base)  # runs made before the field keep their keys
    iid = sgld.SGLDConfig(**{**config_dict(base), "batch_draw": "iid"})
    assert config_dict(iid)["batch_draw"] == "iid"
    a = sgld.estimate(target, base, seed=0)
    b = sgld.estimate(target, iid, seed=0)
    again = sgld.estimate(target, iid, seed=0)
    assert math.isfinite(b.lambda_hat) and b.lambda_hat != a.lambda_hat  # another batch stream
    assert again.lambda_hat == b.lambda_hat  # reproducible
    with pytest.raises(ValueError, match="batch_draw"):
        sgld.SGLDConfig(batch_draw="bootstrap").validate()

@dataclass
class Counting(LinearData):
    """Records the shapes of every loss call."""

    shapes: list = field(default_factory=list)

    def loss(self, w, idx=None):
        self.shapes.append((w.shape[0], None if idx is None else int(idx.numel()), w.requires_grad))
        return super().loss(w, idx)


def test_one_batched_loss_call_per_step_and_without_replacement_batches():
    base = linear_data(n=1000)
    target = Counting(**{k: getattr(base, k) for k in ("id", "family", "dim", "n", "w_star", "truth", "num_data",
                                                          "x", "y", "out")})
    chains, steps, b = 5, 120, 64  # max_doublings=0, start=w_star below: the planned steps, counted exactly
    # the gradient's own batch as trace: one call per step for all chains at once (+ the w* row)
    est = run("sgld", target, step_size=1e-4, steps=steps, burn_in=20, chains=chains, batch_size=b,
              trace_batch="same", max_doublings=0, start="w_star")
    loop = [s for s in target.shapes if s[0] > 1]  # not the 1-row L_n(w*) evaluation
    assert len(loop) == steps  # one call per step ...
    assert all(s[0] == chains + 1 for s in loop)  # ... for all chains at once (+ the w* row)
    assert all(s[1] is not None and s[1] <= b for s in loop)
    assert est.extra["batches_per_epoch"] == math.ceil(1000 / b)
    assert est.extra["trace_reference"] == "L_B(w*) same batch"
    # without the control variate: exactly `chains` rows per call
    target.shapes.clear()
    run("sgld", target, step_size=1e-4, steps=50, burn_in=10, chains=chains, batch_size=b, control_variate=False,
        trace_batch="same", start="w_star")
    assert all(s[0] == chains for s in target.shapes if s[0] > 1)
    # the default for a target without a full-data excess loss: per step one gradient call for the
    # chains, and one graph-free trace call (chains + w*) on an independent batch of the same size
    target.shapes.clear()
    est = run("sgld", target, step_size=1e-4, steps=steps, burn_in=20, chains=chains, batch_size=b, max_doublings=0,
              start="w_star")
    assert est.extra["trace_batch"] == "independent"
    loop = [s for s in target.shapes if s[0] > 1]
    grads = [s for s in loop if s[2]]
    traces = [s for s in loop if not s[2]]
    assert len(grads) == steps and all(s[0] == chains and s[1] <= b for s in grads)
    assert len(traces) == steps and all(s[0] == chains + 1 and s[1] == b for s in traces)


def test_analytic_potential_uses_exact_loss():
    target = Counting(**{k: getattr(linear_data(n=300), k) for k in ("id", "family", "dim", "n", "w_star", "truth",
                                                                     "num_data", "x", "y", "out")})
    target.num_data = 300
    run("sgld", target, step_size=1e-4, steps=30, burn_in=10, chains=3, batch_size=1000)  # batch ≥ n: full data
    assert all(s[1] is None for s in target.shapes if s[0] > 1)


# --------------------------------------------------------------------------- burn-in


@dataclass
class Offset(Quadratic):
    """Adds a constant to the loss during the first ``until`` sampling calls (gradient unchanged)."""

    until: int = 0
    calls: int = field(default=0)
    offset: float = 1.0

    def loss(self, w, idx=None):
        out = super().loss(w, idx)
        if w.shape[0] > 1:
            self.calls += 1
            if self.calls <= self.until:
                out = out + self.offset
        return out


def test_burn_in_is_excluded():
    # A loss offset during the burn-in leaves the trajectory unchanged (same
    # gradient) and must leave λ̂ unchanged bit for bit; the trace length is
    # (steps − burn_in) / thin.
    base = quadratic(d=3)
    fields_ = {k: getattr(base, k) for k in ("id", "family", "dim", "n", "w_star", "truth", "a")}
    # the planned window, from w* (a tempered start's loss calls would count as sampling calls)
    kw = dict(step_size=1e-4, steps=500, burn_in=200, chains=3, thin=3, max_doublings=0, start="w_star")
    plain = run("sgld", Quadratic(**fields_), **kw)
    shifted = run("sgld", Offset(**fields_, until=200), **kw)
    assert shifted.lambda_hat == plain.lambda_hat
    assert plain.diagnostics["draws_per_chain"] == (500 - 200) // 3
    # while an offset that reaches into the draws does change it
    leaked = run("sgld", Offset(**fields_, until=260), **kw)
    assert leaked.lambda_hat > plain.lambda_hat + 100


# --------------------------------------------------------------------------- SGNHT thermostat


def test_sgnht_thermostat_moves_and_drives_kinetic_energy_to_one():
    # Start at rest (p = 0): the kinetic energy pᵀp/d starts at 0, the
    # thermostat ξ must move away from its initial value, and after the
    # burn-in the time-averaged pᵀp/d must be 1 (the thermostat's fixed point)
    # to within 10 % (d = 20 coordinates × 1500 draws, correlated).
    target = quadratic(d=20, a=2.0)
    est = run("sgnht", target, steps=2000, burn_in=500, init_momentum="zero", chains=4)
    x = est.extra
    assert x["kinetic_init"] == [0.0] * 4
    assert all(lo < x["xi_init"] - 1e-3 for lo in x["xi_min"])  # ξ fell to let the system heat up
    assert all(abs(k - 1.0) < 0.1 for k in x["kinetic_mean"]), x["kinetic_mean"]
    assert x["xi_final"] != [x["xi_init"]] * 4


def test_sgnht_thermostat_absorbs_minibatch_noise():
    # With minibatch gradients the friction ξ must settle above the injected
    # diffusion A (it absorbs the gradient noise), keeping pᵀp/d near 1.
    est = run("sgnht", linear_data(n=2000), steps=1500, burn_in=500, chains=4, batch_size=32)
    x = est.extra
    assert all(m > x["diffusion"] for m in x["xi_mean"])
    assert all(abs(k - 1.0) < 0.15 for k in x["kinetic_mean"]), x["kinetic_mean"]


# --------------------------------------------------------------------------- priors, small cases


@dataclass
class GaussianPrior(Quadratic):
    tau: float = 0.0

    def log_prior(self, w):
        return -0.5 * self.tau * w.square().sum(-1)

    @property
    def has_prior(self):
        return True


@dataclass
class SingularPrior(Quadratic):
    def log_prior(self, w):
        return torch.log(w.abs()).sum(-1)

    @property
    def has_prior(self):
        return True


def test_priors_smooth_included_singular_refused():
    base = quadratic(d=4, a=2.0, n=1000)
    fields_ = {k: getattr(base, k) for k in ("id", "family", "dim", "n", "w_star", "truth", "a")}
    nbeta = 1000 / math.log(1000)
    tau = 100.0  # a prior as strong as 35 % of nβ·a: its effect is far outside the tolerance
    with_prior = run("sgld", GaussianPrior(**fields_, tau=tau), gamma=1.0, steps=2500, burn_in=700)
    # discretised AR(1) law with total curvature A = nβa + γ + τ (see the stationary-law test)
    A = nbeta * 2.0 + 1.0 + tau
    eps = with_prior.extra["step_size"]
    v = eps / (1 - (1 - eps * A / 2) ** 2)
    predicted = 4 * nbeta * 2.0 * v / 2
    assert abs(with_prior.lambda_hat - predicted) <= 4 * with_prior.se
    spec = get_estimator("sgld")
    assert spec.supports(GaussianPrior(**fields_, tau=tau)) is None
    reason = spec.supports(SingularPrior(**fields_))
    assert reason and "infinite" in reason
    with pytest.raises(UnsupportedTarget):
        run("sgld", SingularPrior(**fields_), steps=10, burn_in=2)


@pytest.mark.parametrize("name", NAMES)
def test_one_chain_and_float64_work(name):
    est = run(name, linear_data(n=500), steps=200, burn_in=50, chains=1, dtype="float64", batch_size=50)
    assert math.isfinite(est.lambda_hat)
    assert len(est.loss_trace) == 1 and 0 < len(est.loss_trace[0]) <= 200
    import json

    json.dumps(est.diagnostics)
    json.dumps(est.extra)


def test_loss_trace_is_small_and_extra_reports_the_run():
    est = run("sgld", quadratic(d=2), steps=3000, burn_in=500, chains=2)
    assert all(len(tr) <= 200 for tr in est.loss_trace)
    x = est.extra
    assert x["nbeta"] == pytest.approx(10_000 / math.log(10_000))
    assert x["init_loss"] == 0.0 and x["step_size"] > 0 and x["step_size_source"] == "rule"
    assert x["hessian_top"] == pytest.approx(2.0, rel=1e-6)


def test_top_hessian_eigenvalue():
    t = quadratic(d=5)
    t.a = torch.tensor([1.0, 7.0, 3.0, 0.5, 2.0], dtype=torch.float64)
    assert top_hessian_eigenvalue(t, t.w_star, iters=200) == pytest.approx(7.0, rel=1e-3)


# --------------------------------------------------------------------------- step-size rule: minibatch heat


def _family_target(family: str, n: int, noise_std: float, **params):
    from llcbench.case import Case
    from llcbench.families import FAMILIES

    fam = FAMILIES[family]
    case = Case(id=f"test/{family}", family=family, params=params, n=n, seed=0, noise_std=noise_std)
    return fam.target(case)


def test_measured_heat_follows_the_gradient_noise():
    """The rule's minibatch-noise term, measured, against the Fisher assumption C = H.

    Noisy linear regression (σ = 1, x ~ N(0, I)): C ≈ H, so the measured heat nβ²·v must be
    close to nβ·h·nβ/b; v is the largest of 8 per-coordinate variances from 16 minibatches
    (relative sd √(2/15) ≈ 0.37 each), so the ratio lies in ≈ [0.7, 2] — we allow [0.5, 3].
    Noiseless deep linear network at its teacher: per-sample gradients are exactly 0 at w*,
    so the measured heat is 0 there and the rule's step is the full (1 + nβ/b)-fold larger."""
    torch.set_num_threads(1)
    # extrapolate none: the heat log of the run's own step (a default run logs its two points')
    quick = {"steps": 20, "burn_in": 10, "adapt_rounds": 0, "chains": 2, "batch_size": 256, "extrapolate": "none"}
    lin = _family_target("regular", 20_000, 1.0, model="linear", in_features=4, out_features=2)
    measured = run("sgld", lin, **quick).extra
    fisher = run("sgld", lin, **quick, minibatch_heat="fisher").extra
    nbeta, b, h = measured["nbeta"], 256, measured["hessian_top"]
    ratio = measured["heat_log"][0]["heat"] / (nbeta * h * nbeta / b)
    assert 0.5 < ratio < 3.0, ratio
    assert fisher["minibatch_heat"] == "fisher" and fisher["heat_log"][0]["grad_variance"] is None
    dln = _family_target("dln", 20_000, 0.0, widths=[3, 3, 3], rank=1)
    m = run("sgld", dln, **quick).extra
    f = run("sgld", dln, **quick, minibatch_heat="fisher").extra
    assert m["heat_log"][0]["heat"] == 0.0
    curv = m["nbeta"] * max(m["hessian_top"], 1.0)
    fisher_over_measured = (curv * (1 + m["nbeta"] / b) + m["gamma"]) / (curv + m["gamma"])
    assert m["step_size"] / f["step_size"] == pytest.approx(fisher_over_measured, rel=1e-9)
    assert fisher_over_measured > 5  # nβ/b ≈ 8.2 at n = 2·10⁴, b = 256


def test_sampler_that_rebinds_its_positions_fails_loudly():
    """The driver evaluates the loss on the positions buffer it owns; a sampler that replaces
    ``state.w`` instead of updating it in place would leave the driver sampling a stale copy."""
    from dataclasses import dataclass as _dc

    from llcbench.estimators.sgld import SGLDConfig, sgld_update
    from llcbench.estimators.sgmcmc import Sampler, run_sgmcmc

    @_dc
    class State:
        w: torch.Tensor
        noise: torch.Tensor

    def init(ctx):
        w = ctx.start()
        return State(w=w, noise=torch.empty_like(w))

    def rebinding_step(state, g, pg, ctx, t, aux=None):
        state.w = state.w.clone()  # the trap: a new tensor, the driver's buffer left behind
        sgld_update(state.w, state.noise, g, pg, ctx.eps, ctx)

    rogue = Sampler(name="rogue", init=init, step=rebinding_step, park=lambda s, d, c: None)
    from llcbench.catalogue import build_target, load_catalogue

    target = build_target(next(c for c in load_catalogue() if c.id == "poly/w1^2"))
    config = make_config(SGLDConfig, ["steps=20", "burn_in=10"])
    with pytest.raises(RuntimeError, match="state.w must be ctx.positions"):
        run_sgmcmc(target, config, 0, "cpu", rogue)


def test_rmsprop_preconditioner_is_frozen_after_burn_in():
    """With freeze_preconditioner (the default) ε_t is fixed at the end of the burn-in: the final
    per-coordinate steps do not depend on how long the chain samples afterwards. Kept adapting,
    they do (v keeps averaging new gradients)."""
    from llcbench.catalogue import build_target, load_catalogue

    target = build_target(next(c for c in load_catalogue() if c.id == "poly/w1^2+w2^4"))
    spec = get_estimator("rmsprop_sgld")

    def final_steps(steps, freeze):
        cfg = make_config(spec.config_cls, [f"steps={steps}", "burn_in=300", f"freeze_preconditioner={freeze}"])
        est = spec.estimate(target, cfg, 0, "cpu")
        return est.extra["eps_t_quantiles_final"], est.extra["preconditioner_frozen"]

    short, frozen = final_steps(400, "true")
    long, _ = final_steps(900, "true")
    assert frozen and short == long
    short_a, frozen_a = final_steps(400, "false")
    long_a, _ = final_steps(900, "false")
    assert not frozen_a and short_a != long_a
