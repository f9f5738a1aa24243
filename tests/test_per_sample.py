"""The per-sample LLC of the SG-MCMC driver, and the memorisation family that has a ground truth for it."""

import json

import numpy as np
import pytest
import torch

from llcbench.case import Case
from llcbench.catalogue import load_file
from llcbench.errors import TruthError, UnsupportedTarget
from llcbench.estimators import get_estimator
from llcbench.estimators.base import config_dict, make_config
from llcbench.estimators.sgmcmc import per_sample
from llcbench.families.memorisation import MemorisationFamily

SMALL = {"inputs": 8, "rule": "threshold", "rule_bits": 3, "memorised": 4, "hidden": [12]}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLCBENCH_CACHE", str(tmp_path / "cache"))


def small_target(n=64, seed=0, **params):
    case = Case(id="memorisation/test", family="memorisation", params={**SMALL, **params}, n=n, seed=seed)
    return MemorisationFamily().target(case)


def sgld(target, seed=0, **overrides):
    spec = get_estimator("sgld")
    # the plain chain (extrapolate none): the draws this test records are one point's
    cfg = make_config(spec.config_cls, {"steps": 300, "burn_in": 100, "chains": 4, "extrapolate": "none", **overrides})
    return spec.estimate(target, cfg, seed, "cpu")


def test_accumulator_equals_the_direct_mean_over_the_stored_draws(monkeypatch):
    target = small_target()
    seen = []
    record = per_sample.PerSampleAccumulator.record

    def keep(self, w):  # store every draw the accumulator is given, then accumulate as usual
        seen.append(w.clone())
        record(self, w)

    monkeypatch.setattr(per_sample.PerSampleAccumulator, "record", keep)
    est = sgld(target, thin=3)
    ps = est.per_sample
    assert len(seen) == len(range(100, 300, 3)) == ps["draws_per_chain"] == est.diagnostics["draws_per_chain"]
    run_target = target.to("cpu", torch.float32)
    idx = torch.tensor(ps["probe"])
    draws = torch.stack([run_target.sample_losses(w, idx).to(torch.float64) for w in seen])  # (draws, chains, n)
    means = draws.mean(dim=0).numpy()
    nbeta = est.extra["nbeta"]
    star = target.sample_losses(target.w_star[None], idx)[0].numpy()
    # the same float64 numbers summed in another order: equal up to rounding of the sum
    np.testing.assert_allclose(ps["lambda"], nbeta * (means.mean(axis=0) - star), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ps["se"], nbeta * means.std(axis=0, ddof=1) / 2.0, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ps["loss_star"], star, rtol=0, atol=0)
    # the draws are λ̂'s: the mean of λ̂_i over all samples is λ̂ (the trace's full-batch loss of the same w_t
    # in float32 against the mean of the float32 per-sample losses: agreement to float32 rounding of L,
    # times nβ ≈ 10, far below 1e-3 of λ̂)
    assert np.mean(ps["lambda"]) == pytest.approx(est.lambda_hat, rel=1e-3)
    assert ps["memorised"] == [int(i in set(target.memorised.tolist())) for i in range(64)]


def test_gradient_norm_baseline_is_the_per_sample_autograd_norm():
    target = small_target()
    idx = torch.arange(target.num_data)
    got = per_sample.gradient_norms(target, target.w_star, idx)
    for i in (0, 17, 63):
        w = target.w_star.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(target.sample_losses(w[None], idx[i : i + 1])[0, 0], w)
        assert float(got[i]) == pytest.approx(float(g.norm()), rel=1e-12)


def test_noise_baseline_is_the_direct_mean_under_gaussian_noise():
    target = small_target()
    est = sgld(target, steps=150, burn_in=50, noise_draws=5, seed=2)
    ps = est.per_sample
    gamma = est.extra["gamma"]
    assert ps["noise_gamma"] == gamma > 0 and ps["noise_draws"] == 5
    # directly: the 5 draws of the documented generator as one batch of rows, w* + ξ/√γ
    gen = torch.Generator().manual_seed(2 * 6_151 + 4_241)
    xi = torch.stack([torch.randn(target.dim, generator=gen, dtype=torch.float64) for _ in range(5)])
    idx = torch.tensor(ps["probe"])
    noisy = target.sample_losses(target.w_star[None] + xi / gamma ** 0.5, idx)  # (draws, probe)
    direct = noisy.mean(dim=0) - target.sample_losses(target.w_star[None], idx)[0]
    # the same float64 losses summed in another order: equal to float64 rounding
    np.testing.assert_allclose(ps["loss_under_noise"], direct.numpy(), rtol=1e-12, atol=1e-15)
    assert len(ps["loss_under_noise"]) == len(ps["lambda"]) and min(ps["loss_under_noise"]) > 0  # w* is a minimum
    assert per_sample.loss_under_noise(target, target.w_star, idx, 0.0, 5, 2) is None  # no localisation: none


# λ̂ of two runs of llcbench before the noise baseline existed (the code of main at 620fd25, this CPU, one
# thread). Its draws come from a generator of their own after the chains have run; had they come from the
# chains' generator, or changed its state, λ̂ would move by about its standard error (~1e-2 relative), far
# beyond the float32 rounding (~1e-7) another CPU's kernels could bring.
BEFORE_SHORT = 0.8384475908778469  # small_target(), seed 3, steps 300, burn_in 100, chains 4, thin 2
BEFORE_DEFAULT = 0.7879097326702035  # small_target(), seed 0, sgld defaults


def test_noise_baseline_leaves_lambda_hat_unchanged():
    target = small_target()
    few, many = sgld(target, seed=3, thin=2, noise_draws=1), sgld(target, seed=3, thin=2, noise_draws=64)
    assert few.lambda_hat == many.lambda_hat and few.per_sample["lambda"] == many.per_sample["lambda"]
    assert few.per_sample["loss_under_noise"] != many.per_sample["loss_under_noise"]
    assert few.lambda_hat == pytest.approx(BEFORE_SHORT, rel=1e-6)


@pytest.mark.slow
def test_noise_baseline_leaves_the_default_run_unchanged():
    spec = get_estimator("sgld")
    # BEFORE_DEFAULT is the plain run's λ̂ (the default before it extrapolated in ε): pinned with extrapolate none
    est = spec.estimate(small_target(), make_config(spec.config_cls, {"extrapolate": "none"}), 0, "cpu")
    assert est.per_sample["noise_draws"] == 32 and est.lambda_hat == pytest.approx(BEFORE_DEFAULT, rel=1e-6)


def test_per_sample_does_not_change_the_run():
    target = small_target()
    on, off = sgld(target), sgld(target, per_sample=False)
    assert on.per_sample is not None and off.per_sample is None  # None is on: the target knows its memorised
    assert on.lambda_hat == off.lambda_hat and on.loss_trace == off.loss_trace


def test_default_keys_unchanged_and_memory_independent_of_steps():
    spec = get_estimator("sgld")
    default = config_dict(make_config(spec.config_cls, []))
    assert not {"per_sample", "probe_samples", "noise_draws"} & set(default)  # keys of existing runs unchanged
    assert config_dict(make_config(spec.config_cls, ["per_sample=true"]))["per_sample"] is True
    target = small_target()
    short, long = sgld(target, steps=200), sgld(target, steps=600)
    assert short.per_sample["memory_bytes"] == long.per_sample["memory_bytes"]
    assert long.per_sample["draws_per_chain"] == 500


def test_probe_subset_and_refusals():
    sub = per_sample.probe_indices(10_000, 100, seed=3)
    assert len(sub) == 100 and bool((sub[1:] > sub[:-1]).all())
    assert torch.equal(sub, per_sample.probe_indices(10_000, 100, seed=3))
    assert torch.equal(per_sample.probe_indices(50, 100, seed=3), torch.arange(50))
    target = small_target()
    est = sgld(target, probe_samples=16)
    assert len(est.per_sample["probe"]) == 16 and sum(est.per_sample["memorised"]) <= 4
    from llcbench.catalogue import build_target, load_catalogue

    dln = build_target(next(c for c in load_catalogue() if c.id == "dln/2-2-2/r0"))
    assert sgld(dln, steps=120, burn_in=20).per_sample is None  # None: off without a ground truth
    with pytest.raises(UnsupportedTarget, match="per-sample losses"):
        sgld(dln, steps=120, burn_in=20, per_sample=True)


def test_memorisation_target_fits_its_samples_and_its_loss_is_their_mean():
    target = small_target()
    w = target.w_star[None] + 0.01 * torch.randn(3, target.dim, generator=torch.Generator().manual_seed(0),
                                                 dtype=torch.float64)
    idx = torch.arange(target.num_data)
    torch.testing.assert_close(target.loss(w), target.sample_losses(w, idx).mean(dim=1), rtol=1e-12, atol=0)
    assert float(target.full_loss(target.w_star[None])[0]) < 1e-6
    assert target.truth.kind == "theory" and target.truth.lam == target.dim / 2 and "upper bound" in target.truth.source
    assert len(target.memorised_samples()) == 4


def test_a_network_that_cannot_fit_its_memorised_samples_is_refused():
    # one hidden unit cannot fit 24 flipped labels of 64 on a parity rule
    with pytest.raises(TruthError, match="does not fit .* nothing memorised to detect"):
        small_target(rule="parity", memorised=24, hidden=[1])


def test_the_shipped_cases_parse():
    from llcbench.catalogue import builtin_files

    path = next(p for p in builtin_files() if p.name == "memorisation.toml")
    cases = load_file(path)
    assert len(cases) >= 6 and {c.seed for c in cases} >= {0, 1, 2}
    assert all(c.family == "memorisation" for c in cases)


def test_cli_run_json_full_and_report(cli, tmp_path, write_toml):
    path = write_toml("""
[[case]]
id = "mem/small"
family = "memorisation"
inputs = 8
hidden = [12]
memorised = 4
n = 64
""")
    env = {"LLCBENCH_CACHE": str(tmp_path / "cache")}
    db = tmp_path / "s.sqlite"
    args = ["run", "--estimator", "sgld", "--no-builtin", "--file", path, "--family", "mem", "--db", db]
    out = cli(*args, "--set", "steps=300", "--set", "burn_in=100", "--quiet", env=env)
    assert out.returncode == 2 and "unknown family" in out.stderr  # --family takes a family name
    args[args.index("mem")] = "memorisation"
    out = cli(*args, "--set", "steps=300", "--set", "burn_in=100", "--quiet", "--json", "--full", env=env)
    assert out.returncode == 0, out.stderr
    (rec,) = json.loads(out.stdout)
    ps = rec["per_sample"]
    assert len(ps["lambda"]) == len(ps["se"]) == len(ps["grad_norm_star"]) == len(ps["loss_under_noise"]) == 64
    assert sum(ps["memorised"]) == 4
    rep = cli("report", "--db", db, "--out", tmp_path / "rep", env=env)
    assert rep.returncode == 0, rep.stderr
    scores = json.loads((tmp_path / "rep" / "scores.json").read_text())
    from test_scores import ROOT, check, parse_schema  # the documented schema, with detection rows in it

    check(scores, "document", parse_schema((ROOT / "docs" / "scores.md").read_text()), "scores")
    det = scores["detection"]
    (row,) = det["runs"] + det["apart"]  # scored in either place, by its locality
    assert det["unhealthy_runs"] == len(det["apart"]) and row["healthy"] is (not det["apart"])
    assert set(row["methods"]) == {"llc", "loss", "grad_norm", "noise"} and row["memorised"] == 4
    page = (tmp_path / "rep" / "index.html").read_text()
    # this short run is not local (the rows apart): the table apart, and no ROC figure of local runs
    assert "Per-sample detection" in page and ("ROC curves" in page) == bool(det["runs"])
    assert ("unhealthy run" in page) == bool(det["apart"])
    assert "AUROC llc" in (tmp_path / "rep" / "report.md").read_text()
