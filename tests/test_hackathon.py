"""The hackathon replication (suites hackathon-add and hackathon-random): the network and training recipe,
the suites' sampler settings reaching a run, and the hyperplane projection of the protocol's SGLD."""

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llcbench import cli as cli_module
from llcbench.catalogue import build_target, load_catalogue, load_file, suite_config, suite_file
from llcbench.estimators.sgld import SGLDConfig
from llcbench.families.modular_addition import ModularTarget, anchor_key
from llcbench.families.modular_training import (ModularMLP, TrainSpec, make_data, make_optimizer, operation_table,
                                                train)

PROTOCOL_SGLD = {"step_size": 0.001, "gamma": 5.0, "steps": 5000, "burn_in": 0, "chains": 1, "batch_size": 64,
                 "batch_draw": "iid", "trace_batch": "same", "control_variate": False}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLCBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def spec(**kw) -> TrainSpec:
    base = dict(p=7, task="add", train_fraction=0.8, embed_dim=4, hidden_dim=8, lr=0.01, weight_decay=2e-4,
                batch_size=16, steps=1, trojans=0, seed=0)
    return TrainSpec(**dict(base, **kw))


def test_adam_is_coupled_l2_not_adamw():
    s = spec(optimizer="adam")
    model = ModularMLP(7, 4, 8).double()
    opt = make_optimizer(s, model)
    assert type(opt) is torch.optim.Adam and opt.defaults["weight_decay"] == 2e-4
    assert not opt.defaults.get("decoupled_weight_decay", False)
    # behaviour: with no loss gradient, coupled L2 feeds wd·w through Adam's normalisation, so the first
    # step moves every weight by ≈ lr (m/√v = ±1); decoupled decay moves it by lr·wd·|w| (10⁻⁶ × smaller)
    for name, lo, hi in (("adam", 0.9e-2, 1.1e-2), ("adamw", 0, 1e-5)):
        m = ModularMLP(7, 4, 8).double()
        w0 = m.embed.weight.detach().clone()
        o = make_optimizer(replace(s, optimizer=name), m)
        for q in m.parameters():
            q.grad = torch.zeros_like(q)
        o.step()
        moved = (m.embed.weight.detach() - w0).abs()
        assert lo <= float(moved.median()) <= hi, name


def test_init_scale_multiplies_embedding_and_input_maps_only():
    # lr 1e-12: after one step the weights are the initialisation to 1e-11
    base = spec(lr=1e-12, init_scale=1.0)
    w1, _ = train(base)
    w_half, _ = train(replace(base, init_scale=0.5))
    p, e, h = 7, 4, 8
    sizes = [p * e, h * e, h, h * e, h, p * h]  # E, W_a, b_a, W_b, b_b, U
    parts1, parts_half = torch.split(w1, sizes), torch.split(w_half, sizes)
    for i, (a, b) in enumerate(zip(parts1, parts_half)):
        want = 0.5 * a if i in (0, 1, 3) else a
        torch.testing.assert_close(b, want, rtol=0, atol=1e-9)


def test_non_commutative_table_and_seeded_split():
    table = operation_table(9, "random", 0, commutative=False)
    assert not (table == table.T).all() and table.min() >= 0 and table.max() < 9
    assert not (table == operation_table(9, "random", 1, commutative=False)).all()  # drawn from the seed
    assert (operation_table(9, "random", 0) == operation_table(9, "random", 0).T).all()  # the default: commutative
    d0, d1 = make_data(spec(p=23, seed=0)), make_data(spec(p=23, seed=1))
    assert len(d0.train_y) == 423 and len(d0.test_y) == 529 - 423  # round(0.8·p²) by a seeded shuffle
    pairs0 = set(zip(d0.train_a.tolist(), d0.train_b.tolist()))
    assert pairs0.isdisjoint(zip(d0.test_a.tolist(), d0.test_b.tolist()))
    assert pairs0 != set(zip(d1.train_a.tolist(), d1.train_b.tolist()))


def test_new_recipe_keys_leave_old_keys_unchanged():
    s = spec()
    assert set(s.as_dict()) == {"p", "task", "train_fraction", "embed_dim", "hidden_dim", "lr", "weight_decay",
                                "batch_size", "steps", "trojans", "seed"}  # the anchor-cache key of before
    assert anchor_key(replace(s, optimizer="adam")) != anchor_key(s)
    for case in load_catalogue([suite_file("trojans")]):  # today's cases: no new key in their run keys
        assert not {"optimizer", "init_scale", "commutative", "loss", "max_train_loss"} & set(
            case.definition()["params"])


def test_the_suites_carry_the_protocol():
    add = load_file(suite_file("hackathon-add"))
    assert sorted({c.params["p"] for c in add}) == [23, 29, 37, 41, 47, 53]
    for c in add:
        q = c.params
        assert (q["task"], q["embed_dim"], q["hidden_dim"], q["init_scale"]) == ("add", 8, 32, 1.0)
        assert q["train_steps"] == (15000 if q["p"] in (41, 53) else 10000)
    assert all(sum(c.params["p"] == p for c in add) == 5 for p in (23, 29, 37, 41, 47, 53))
    rnd = load_file(suite_file("hackathon-random"))
    assert [c.params["p"] for c in rnd] == [10, 12, 15, 17, 20, 23, 25, 30, 32, 35]
    for c in rnd:
        q = c.params
        assert (q["task"], q["commutative"], q["embed_dim"], q["hidden_dim"], q["init_scale"], q["train_steps"]) == \
            ("random", False, 16, 64, 0.5, 20000)
    for c in add + rnd:
        q = c.params
        assert (q["optimizer"], q["lr"], q["weight_decay"], q["train_batch"], q["train_fraction"]) == \
            ("adam", 0.01, 2e-4, 64, 0.8)
        assert q["loss"] == "softmax_plus_1e-6" and q["project_gradient"]
    for name in ("hackathon-add", "hackathon-random"):
        settings = suite_config(name, "sgld")
        assert {k: settings[k] for k in PROTOCOL_SGLD} == {k: str(v).lower() if isinstance(v, bool) else str(v)
                                                            for k, v in PROTOCOL_SGLD.items()}
        assert suite_config(name, "no-such-estimator") == {}


def test_suite_settings_reach_the_run_and_set_overrides(monkeypatch, cache, write_toml):
    """`llcbench run --suite hackathon-add` builds its runs with the suite's SGLD settings; --set wins."""
    small = load_file(write_toml('[[case]]\nid = "m/t"\nfamily = "modular_addition"\np = 5\ntask = "random"\n'
                                 'embed_dim = 8\nhidden_dim = 24\ntrain_steps = 600\nweight_decay = 0.0\n'))[0]
    tiny_target = build_target(small)  # stands in for the suite's anchors (trained in seconds, not minutes)
    seen = []
    monkeypatch.setattr("llcbench.plan.support_target", lambda case: tiny_target)
    monkeypatch.setattr("llcbench.api.run_specs", lambda specs, *a, **k: seen.extend(specs) or iter(()))
    for extra, want_steps in (([], 5000), (["--set", "steps=300"], 300)):
        seen.clear()
        cli_module.main(["run", "--estimator", "sgld", "--suite", "hackathon-add", "--case", "hackathon/add/p23/s0",
                         "--db", str(cache / "s.sqlite"), "--quiet", *extra])
        (run,) = seen
        assert isinstance(run.config, SGLDConfig)
        got = {k: getattr(run.config, k) for k in PROTOCOL_SGLD}
        assert got == dict(PROTOCOL_SGLD, steps=want_steps)


def test_softmax_floor_loss_is_the_protocols():
    data = make_data(spec(p=7))
    model = ModularMLP(7, 4, 8).double()
    w = torch.nn.utils.parameters_to_vector(model.parameters()).detach()[None]
    target = ModularTarget(id="t", family="modular_addition", dim=w.shape[1], n=len(data.train_y), w_star=w[0],
                           truth=None, num_data=len(data.train_y), info={}, p=7, embed_dim=4, hidden_dim=8,
                           a=data.train_a, b=data.train_b, y=data.train_y, trojans=data.trojans,
                           softmax_floor=1e-6)
    idx = torch.arange(10)
    logits = model(data.train_a[idx], data.train_b[idx])
    want = -torch.log(F.softmax(logits, dim=-1).gather(1, data.train_y[idx, None])[:, 0] + 1e-6)
    torch.testing.assert_close(target.sample_losses(w, idx)[0], want.detach(), rtol=1e-12, atol=1e-12)
    exact = -F.log_softmax(logits, dim=-1).gather(1, data.train_y[idx, None])[:, 0]
    assert not torch.allclose(want, exact, rtol=0, atol=1e-9)  # the floor changes the loss


def test_hyperplane_step_equals_the_protocols_projected_step(cache, write_toml):
    """SGLD on the orthonormal parametrisation u ↦ w* + Q·u of the hyperplane ⊥ ∇L_n(w*) is, step for step,
    the protocol's: take the unconstrained SGLD step in w, then project w − w* onto the hyperplane — with
    the noise ξ ∈ R^d of the w-step and Qᵀξ in the u-step."""
    case = load_file(write_toml('[[case]]\nid = "m/h"\nfamily = "modular_addition"\np = 5\ntask = "random"\n'
                                'embed_dim = 8\nhidden_dim = 24\ntrain_steps = 40\nweight_decay = 0.0\n'
                                'trajectory = "demo"\nproject_gradient = true\nloss = "softmax_plus_1e-6"\n'))[0]
    target = build_target(case)
    inner = target.inner
    w_star = inner.w_star.to(torch.float64)
    wg = w_star[None].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(inner.full_loss(wg).sum(), wg)
    ghat = g[0] / g[0].norm()
    gen = torch.Generator().manual_seed(3)
    u = 0.05 * torch.randn(1, target.dim, generator=gen, dtype=torch.float64)
    xi = 0.03 * torch.randn(inner.dim, generator=gen, dtype=torch.float64)
    idx = torch.randint(inner.num_data, (16,), generator=gen)
    eps, gamma, nbeta = 1e-3, 5.0, 7.0
    # the protocol, in w
    w = target.to_inner(u)
    _, gw = inner.loss_and_grad(w, idx)
    moved = w[0] - eps / 2 * (gamma * (w[0] - w_star) + nbeta * gw[0]) + xi
    d = moved - w_star
    w_next = w_star + d - (d @ ghat) * ghat
    # llcbench, in u: the gradient through the parametrisation, the noise Qᵀξ = (H·ξ)[1:]
    _, gu = target.loss_and_grad(u, idx)
    v = target.v.to(torch.float64)
    q_t_xi = (xi - 2 * (xi @ v) * v)[1:]
    u_next = u[0] - eps / 2 * (gamma * u[0] + nbeta * gu[0]) + q_t_xi
    torch.testing.assert_close(target.to_inner(u_next[None])[0], w_next, rtol=0, atol=1e-12)
    assert abs(float((target.to_inner(u_next[None])[0] - w_star) @ ghat)) < 1e-12  # stays ⊥ ∇L_n(w*)
    assert np.isclose(float(u_next.norm()), float((w_next - w_star).norm()), rtol=1e-12)  # isometry: same γ-term


def test_acceptance_thresholds_are_case_keys(cache, write_toml):
    from llcbench.errors import UserError

    body = ('[[case]]\nid = "m/u"\nfamily = "modular_addition"\np = 5\ntask = "random"\nembed_dim = 8\n'
            'hidden_dim = 24\ntrain_steps = 3\nweight_decay = 0.0\n')
    with pytest.raises(UserError, match="train accuracy .* < 100 %"):
        build_target(load_file(write_toml(body, "a.toml"))[0])
    loose = load_file(write_toml(body + "min_train_accuracy = 0.01\nmax_train_loss = 100.0\n", "b.toml"))[0]
    assert build_target(loose).info["train_accuracy"] < 1  # accepted, and its accuracy is in the record
    assert {"min_train_accuracy", "max_train_loss"} <= set(loose.definition()["params"])  # part of the run key


def test_theory_values_say_where_a_local_posterior_cannot_reach_them():
    import math

    from llcbench.truth.modular import local_ceiling, modular_theory

    n = round(0.8 * 23 * 23)
    assert local_ceiling(23, n) == pytest.approx(n / math.log(n) * math.log(23))
    assert local_ceiling(23, n, nbeta=10.0, anchor_loss=0.5) == pytest.approx(10 * (math.log(23) - 0.5))
    for p in (10, 23, 35):  # λ = n_train needs an excess of ln n_train > ln p: never reachable at n/ln n
        mem = modular_theory(p, "random", 0.8)
        assert not mem.reachable and "beyond what a local posterior" in mem.source and "Rimsky" in mem.source
    assert modular_theory(23, "add", 0.8).reachable and modular_theory(11, "add", 0.8).reachable
    assert not modular_theory(9, "add", 0.8).reachable  # 4p = 36 > nβ·ln 9 = 34.2 at n = 65


def test_a_protocol_run_carries_the_locality_object_at_the_protocols_gamma(cache, write_toml):
    """The suites' SGLD (γ = 5 given, so no γ-ladder pilot) on a small projected network with the floor loss:
    the record's locality is judged at γ = 5 against d/γ of the hyperplane (d − 1 coordinates) and against
    uniform logits, so docs/replication.md's columns come from the records, not from the page's own sums."""
    from llcbench.estimators import get_estimator
    from llcbench.estimators.base import make_config
    from llcbench.locality import is_local

    case = load_file(write_toml('[[case]]\nid = "m/p"\nfamily = "modular_addition"\np = 7\ntask = "add"\n'
                                'embed_dim = 8\nhidden_dim = 24\ntrain_steps = 400\nmax_train_loss = 0.1\n'
                                'project_gradient = true\nloss = "softmax_plus_1e-6"\n'))[0]
    target = build_target(case)
    settings = dict(suite_config("hackathon-add", "sgld"), steps="200", trace_points="200")
    est = get_estimator("sgld").estimate(target, make_config(SGLDConfig, settings), 0, "cpu")
    loc = est.locality
    assert "localisation_pilot" not in est.extra and loc["gamma"] == 5.0
    assert loc["prior_sq_distance"] == pytest.approx(target.dim / 5.0) and target.dim == target.inner.dim - 1
    init = est.extra["init_loss"]
    assert loc["chance_excess"] == pytest.approx(np.log(7) - init)
    assert loc["excess_loss"] == pytest.approx(est.lambda_hat / est.extra["nbeta"])
    assert loc["chance_accuracy"] == pytest.approx(1 / 7) and loc["anchor_accuracy"] is not None
    assert is_local({"locality": loc}) is loc["local"] and loc["local"] in (True, False)
