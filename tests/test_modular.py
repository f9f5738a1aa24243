"""The modular_addition family: data, the batched loss against the nn.Module, training, the anchor
cache, refusals, planted labels, the gradient-normal hyperplane and the theory values."""

import json
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llcbench.case import Case
from llcbench.catalogue import build_target, load_catalogue, load_file, select
from llcbench.errors import UserError
from llcbench.estimators.sgld import SGLDConfig
from llcbench.estimators.sgmcmc import per_sample
from llcbench.families import anchor_cache
from llcbench.families.modular_addition import ANCHOR_KIND, ModularAdditionFamily, anchor_key
from llcbench.families.modular_training import (ModularMLP, TrainSpec, make_data, operation_table,
                                                param_count, split_pairs, train)
from llcbench.truth.modular import modular_theory

# small networks that train in well under a second
TINY = dict(p=5, task="random", embed_dim=8, hidden_dim=24, train_steps=600, weight_decay=0.0)


def tiny_case(write_toml, name="c.toml", **fields):
    q = dict(TINY, **fields)
    body = "\n".join(f"{k} = {v!r}".replace("'", '"').replace("True", "true").replace("False", "false")
                     for k, v in q.items())
    path = write_toml(f'[[case]]\nid = "m/tiny"\nfamily = "modular_addition"\n{body}\n', name)
    return load_file(path)[0]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLCBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_tables_splits_and_planted_labels():
    add = operation_table(7, "add", 0)
    assert add[3, 5] == 1 and add[6, 6] == 5
    rnd = operation_table(9, "random", 4)
    assert (rnd == rnd.T).all() and rnd.min() >= 0 and rnd.max() < 9  # commutative, in range
    assert not (rnd == operation_table(9, "random", 5)).all()  # the seed decides it
    train_idx, test_idx = split_pairs(11, 0.8, 0)
    assert len(train_idx) == round(0.8 * 121) and not set(train_idx) & set(test_idx)
    assert len(train_idx) + len(test_idx) == 121
    spec = TrainSpec(p=11, task="add", train_fraction=0.8, embed_dim=4, hidden_dim=8, lr=0.01, weight_decay=0.0,
                     batch_size=32, steps=1, trojans=6, seed=3)
    data = make_data(spec)
    truth = (data.train_a + data.train_b) % 11
    wrong = (data.train_y != truth).nonzero().flatten()
    assert torch.equal(wrong, data.trojans) and len(wrong) == 6  # exactly the planted ones are wrong


def test_batched_loss_equals_the_module_forward(cache, write_toml):
    target = build_target(tiny_case(write_toml, p=7, task="add", trojans=2, train_steps=50, trajectory="x"))
    assert target.dim == param_count(7, 8, 24)
    gen = torch.Generator().manual_seed(0)
    w = target.w_star + 0.3 * torch.randn(3, target.dim, generator=gen, dtype=torch.float64)
    idx = torch.tensor([0, 5, 2, 2, 9])
    got = target.sample_losses(w, idx)
    assert got.shape == (3, 5)
    for c in range(3):
        model = ModularMLP(7, 8, 24).double()
        torch.nn.utils.vector_to_parameters(w[c], model.parameters())
        want = F.cross_entropy(model(target.a[idx], target.b[idx]), target.y[idx], reduction="none")
        torch.testing.assert_close(got[c], want, rtol=1e-12, atol=1e-12)
    full = target.loss(w)
    torch.testing.assert_close(full, target.sample_losses(w, torch.arange(target.num_data)).mean(1))
    # the autograd gradient of the batched loss equals the module's
    model = ModularMLP(7, 8, 24).double()
    torch.nn.utils.vector_to_parameters(w[1], model.parameters())
    F.cross_entropy(model(target.a, target.b), target.y).backward()
    want_g = torch.cat([q.grad.flatten() for q in model.parameters()])
    torch.testing.assert_close(target.loss_and_grad(w)[1][1], want_g, rtol=1e-10, atol=1e-12)


def test_training_is_deterministic_and_checkpoints_equal_shorter_runs():
    spec = TrainSpec(p=5, task="random", train_fraction=0.8, embed_dim=4, hidden_dim=8, lr=0.01, weight_decay=0.1,
                     batch_size=16, steps=60, trojans=0, seed=2)
    w1, info1 = train(spec)
    w2, _ = train(spec)
    assert torch.equal(w1, w2)
    seen = {}
    train(spec, checkpoint_every=20, on_checkpoint=lambda step, w, m: seen.setdefault(step, w))
    assert sorted(seen) == [20, 40, 60] and torch.equal(seen[60], w1)
    from dataclasses import replace

    assert torch.equal(train(replace(spec, steps=40))[0], seen[40])  # no schedule: step k is a 'steps=k' run
    assert not torch.equal(train(replace(spec, seed=3))[0], w1)
    assert set(info1) >= {"train_accuracy", "test_accuracy", "train_loss", "train_seconds"}


def test_anchor_cache_hit_and_corruption(cache, write_toml):
    case = tiny_case(write_toml)
    first = build_target(case)
    assert first.info["anchor"] == "trained"
    path = anchor_cache.cache_dir() / ANCHOR_KIND / f"{first.info['anchor_key']}.pt"
    assert path.exists() and str(path).startswith(str(cache))
    second = build_target(case)
    assert second.info["anchor"] == "cached" and torch.equal(second.w_star, first.w_star)
    raw = path.read_bytes()
    for bad in (raw[:-9], raw[:-1] + bytes([raw[-1] ^ 1]), b"", raw[:64]):  # partial, flipped, empty, header only
        path.write_bytes(bad)
        again = build_target(case)
        assert again.info["anchor"] == "trained" and torch.equal(again.w_star, first.w_star)
    assert anchor_cache.load(ANCHOR_KIND, {"no": "such anchor"}) is None
    # another definition is another key
    other = tiny_case(write_toml, name="d.toml", lr=0.02)
    assert anchor_key(ModularAdditionFamily().train_spec(other)) != first.info["anchor_key"]


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("LLCBENCH_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert anchor_cache.cache_dir() == tmp_path / "xdg" / "llcbench"
    monkeypatch.setenv("LLCBENCH_CACHE", str(tmp_path / "mine"))
    assert anchor_cache.cache_dir() == tmp_path / "mine"


def test_unconverged_anchor_is_refused(cache, write_toml):
    case = tiny_case(write_toml, train_steps=3)
    with pytest.raises(UserError, match="did not converge: train accuracy"):
        build_target(case)
    # a checkpoint of a trajectory is not refused
    target = build_target(tiny_case(write_toml, name="t.toml", train_steps=3, trajectory="demo"))
    assert target.info["train_accuracy"] < 1


def test_trojans_are_fitted_and_reported(cache, write_toml):
    target = build_target(tiny_case(write_toml, p=7, trojans=3, train_steps=800))
    mem = target.memorised_samples()
    assert len(mem) == 3 and target.info["trojan_accuracy"] == 1.0
    table = operation_table(7, "random", 0)
    assert (target.y[mem] != torch.as_tensor(table[target.a[mem], target.b[mem]])).all()
    assert target.has_sample_losses and target.sample_losses(target.w_star[None], mem).shape == (1, 3)
    # without trojans there is no ground truth: no per-sample LLCs by default, no detection row
    plain = build_target(tiny_case(write_toml, name="plain.toml", p=7, train_steps=800))
    assert plain.memorised_samples() is None and not per_sample.enabled(plain, SGLDConfig())
    assert per_sample.enabled(target, SGLDConfig())


def test_field_errors_are_one_line(write_toml):
    with pytest.raises(UserError, match="field 'task'"):
        tiny_case(write_toml, task="mul")
    with pytest.raises(UserError, match="field 'n'.*sets n = 20"):
        tiny_case(write_toml, n=100)
    with pytest.raises(UserError, match="field 'trojans'"):
        tiny_case(write_toml, trojans=21)


def test_gradient_normal_hyperplane(cache, write_toml):
    case = tiny_case(write_toml, train_steps=40, trajectory="demo", project_gradient=True)
    target = build_target(case)
    inner = target.inner
    assert target.dim == inner.dim - 1 and torch.count_nonzero(target.w_star) == 0
    w = inner.w_star[None].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(inner.full_loss(w).sum(), w)
    u = torch.randn(4, target.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    step = target.to_inner(u) - inner.w_star
    torch.testing.assert_close(step @ g[0], torch.zeros(4, dtype=torch.float64), atol=1e-12, rtol=0)  # ⊥ ∇L
    torch.testing.assert_close(step.norm(dim=1), u.norm(dim=1))  # an isometry: γ‖u‖² is γ‖w − w*‖²
    _, gu = target.loss_and_grad(torch.zeros(1, target.dim, dtype=torch.float64))
    assert float(gu.norm()) < 1e-9 * float(g.norm()) + 1e-14  # no gradient left at the checkpoint
    torch.testing.assert_close(target.loss(u), inner.loss(target.to_inner(u)))


def test_theory_values():
    add = modular_theory(23, "add", 0.8)
    assert add.lam == 92 and add.observed == 184 and add.regime == "generalising" and add.slope == 1
    rnd = modular_theory(15, "random", 0.8)
    assert rnd.lam == Fraction(4, 5) * 225 and rnd.slope == 2 and rnd.observed is None
    for case in select(load_catalogue(), family="modular_addition"):
        truth = ModularAdditionFamily().truth(case.params)
        assert truth.kind == "theory"
        p = case.params["p"]
        assert truth.lam == (4 * p if case.params["task"] == "add" else Fraction(4, 5) * p * p)


def test_catalogue_meets_the_brief():
    cases = select(load_catalogue(), family="modular_addition")
    add = sorted(c.params["p"] for c in cases if c.params["task"] == "add")
    rnd = sorted(c.params["p"] for c in cases if c.params["task"] == "random")
    is_prime = lambda p: p > 1 and all(p % k for k in range(2, p))  # noqa: E731
    assert len(add) >= 5 and all(is_prime(p) and 7 <= p <= 31 for p in add)
    assert len(rnd) >= 5 and all(5 <= p <= 25 for p in rnd)
    assert set(add) & set(rnd)  # the ordering is compared at equal p
    for c in cases:  # the memorising networks over-parameterised relative to p² (they must fit every pair)
        q = c.params
        if q["task"] == "random":
            assert param_count(q["p"], q["embed_dim"], q["hidden_dim"]) > 5 * q["p"] ** 2
        assert c.n == round(q["train_fraction"] * q["p"] ** 2)


@pytest.mark.slow
def test_quick_suite_end_to_end(cli, tmp_path):
    """`--suite modular_quick` trains its anchors, runs SGLD and reports slopes (70 s of CPU here: slow)."""
    db = tmp_path / "q.sqlite"
    run = cli("run", "--estimator", "sgld", "--suite", "modular_quick", "--db", db, "--quiet")
    assert run.returncode == 0, run.stderr
    rep = cli("report", "--db", db, "--out", tmp_path / "rep")
    assert rep.returncode == 0, rep.stderr
    doc = json.loads((tmp_path / "rep" / "scores.json").read_text())
    (g,) = [g for g in doc["groups"] if g["headline"]]
    th = g["theory"]
    assert th["scored"] + sum(th["excluded"].values()) == 5  # every run scored or counted apart
    for fit in th["fits"]:  # one recipe per task here (e = 8, h = 32)
        assert fit["slope"] is not None or len(fit["points"]) < 2
        if fit["task"] == "add":
            assert min(pt["test_accuracy"] for pt in fit["points"]) > 0.9  # the add anchors generalised


def test_trajectory_checkpoints_are_cached_cases(cache, write_toml):
    from llcbench.trajectory import checkpoint_cases

    base = tiny_case(write_toml, train_steps=60)
    seen = []
    cases = checkpoint_cases(base, 20, project_gradient=False, on_step=lambda s, m: seen.append(s))
    assert [c.params["train_steps"] for c in cases] == seen == [20, 40, 60]
    assert all(c.params["trajectory"] == "m/tiny" and c.id.startswith("m/tiny@step-") for c in cases)
    target = build_target(cases[1])
    assert target.info["anchor"] == "cached"  # written by the trajectory, not retrained
    spec = ModularAdditionFamily().train_spec(cases[1])
    assert torch.equal(target.w_star, train(spec)[0])
    with pytest.raises(UserError, match="--every"):
        checkpoint_cases(base, 0)


def test_the_trojans_suite_plants_labels_in_networks_that_generalise():
    from llcbench.catalogue import suite_file

    cases = load_file(suite_file("trojans"))
    assert len(cases) >= 3 and len({c.params["seed"] if "seed" in c.params else c.seed for c in cases}) == len(cases)
    assert all(c.family == "modular_addition" and c.params["trojans"] > 0 for c in cases)


@pytest.mark.parametrize("flags, says", [
    (["--seeds", "0"], "--seeds 0: must be >= 1"),
    (["--jobs", "0"], "--jobs 0: must be >= 1"),
    (["--every", "0"], "--every 0: must be between 1"),
    (["--case", "nope"], "--case nope: no such case"),
])
def test_trajectory_bad_flags_are_one_line_errors(capsys, tmp_path, flags, says):
    from llcbench.cli import main

    assert main(["trajectory", *flags, "--db", str(tmp_path / "t.sqlite")]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1
