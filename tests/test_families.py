"""Tests of the families: shapes, batching, anchors, determinism, truth wiring."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import sympy
import torch

from llcbench.case import Case
from llcbench.errors import TruthError, UserError
from llcbench.families import FAMILIES, get_family
from llcbench.families.base import _MISSING
from llcbench.families.polynomial import polynomial_target
from llcbench.target import Target
from llcbench.truth import Truth
from llcbench.families.dln import (
    canonical_layers,
    generic_layers,
    layer_shapes,
    product_matrix,
    rank_mod_p,
)


def make_case(family: str, n=None, seed=0, noise_std=None, **params) -> Case:
    fam = FAMILIES[family]
    full = {}
    for name, f in fam.fields.items():
        if name in params:
            value = params[name]
        elif f.default is not _MISSING:
            value = f.default
        else:
            raise KeyError(name)
        if f.check is not None:
            f.check(value)
        full[name] = value
    fam.check(full)
    return Case(id=f"test/{family}", family=family, params=full,
                n=fam.default_n if n is None else n, seed=seed,
                noise_std=fam.default_noise_std if noise_std is None else noise_std)


def build(family: str, **kw):
    case = make_case(family, **kw)
    return FAMILIES[family].target(case)


SMALL = [
    ("polynomial", dict(expr="w1**2*w2**4 + w3**2")),
    ("polynomial", dict(expr="(w1**2 + w2**2)**2", prior_exponents=[1, 2])),
    ("regular", dict(model="linear", in_features=4, out_features=3, n=500)),
    ("regular", dict(model="logistic", in_features=5, n=2000)),
    ("dln", dict(widths=[3, 4, 2, 3], rank=1, n=300)),
    ("dln", dict(widths=[3, 4, 5, 2], rank=2, variant="generic", n=300)),
    ("dln", dict(widths=[2, 2, 2], rank=0, n=300)),
    ("rrr", dict(inputs=3, hidden=2, outputs=4, rank=1, n=300)),
    ("modular_addition", dict(p=5, task="random", embed_dim=8, hidden_dim=24, train_steps=600, weight_decay=0.0,
                              n=20)),
]


def _ids(p):
    return f"{p[0]}-{'-'.join(str(v) for v in p[1].values())}"


# ------------------------------------------------------------------ generic contract


@pytest.mark.parametrize("spec", SMALL, ids=[_ids(s) for s in SMALL])
def test_shapes_and_contract(spec):
    family, kw = spec
    t = build(family, **kw)
    case = make_case(family, **kw)
    fam = FAMILIES[family]
    assert t.dim == fam.dim(case.params)
    assert t.w_star.shape == (t.dim,) and t.w_star.dtype == torch.float64
    assert t.truth == fam.truth(case.params)
    w = t.w_star[None] + 0.1 * torch.randn(5, t.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = t.loss(w)
    assert out.shape == (5,)
    assert torch.isfinite(out).all()
    if t.num_data:
        idx = torch.arange(0, t.num_data, 3)
        assert t.loss(w, idx).shape == (5,)
        torch.testing.assert_close(t.full_loss(w, chunk=97), t.loss(w), rtol=1e-12, atol=1e-12)
    # gradients flow for every chain
    wg = w.clone().requires_grad_(True)
    t.loss(wg).sum().backward()
    assert torch.isfinite(wg.grad).all() and wg.grad.shape == w.shape
    # summary is JSON-able
    assert t.summary()["family"] == family


@pytest.mark.parametrize("spec", SMALL, ids=[_ids(s) for s in SMALL])
def test_to_float32(spec):
    family, kw = spec
    t = build(family, **kw)
    t32 = t.to(dtype=torch.float32)
    assert t32.w_star.dtype == torch.float32
    assert t.w_star.dtype == torch.float64  # the original is untouched
    w = t.w_star[None] + 0.05 * torch.randn(3, t.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    l32 = t32.loss(w.float())
    assert l32.dtype == torch.float32
    torch.testing.assert_close(l32.double(), t.loss(w), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("spec", [s for s in SMALL if s[0] not in ("polynomial", "modular_addition")], ids=_ids)
def test_determinism(spec):  # (modular_addition has no x: tests/test_modular.py checks its training)
    family, kw = spec
    a, b = build(family, **kw), build(family, **kw)
    c = build(family, **{**kw, "seed": 7})
    torch.testing.assert_close(a.x, b.x, rtol=0, atol=0)
    labels = (lambda t: t.labels()) if hasattr(a, "labels") else (lambda t: t.y)  # DLNs hold no noiseless labels
    torch.testing.assert_close(labels(a), labels(b), rtol=0, atol=0)
    torch.testing.assert_close(a.w_star, b.w_star, rtol=0, atol=0)
    w = a.w_star[None] + 0.1 * torch.randn(2, a.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.loss(w), b.loss(w))
    assert not torch.equal(a.x, c.x)
    assert not torch.equal(a.loss(w), c.loss(w))


# ------------------------------------------------------------------ batched == per-chain loop


def _dln_loss_single(t, w):
    h = t.x
    start = 0
    for rows, cols in layer_shapes(t.widths):
        m = w[start:start + rows * cols].reshape(rows, cols)
        start += rows * cols
        h = h @ m.T
    return ((t.labels() - h) ** 2).sum(1).mean() / (2 * t.sigma**2)


@pytest.mark.parametrize("widths", [[3, 4, 2, 3], [6, 2, 6], [2, 8, 8, 8, 2]])
def test_dln_batched_equals_loop(widths):
    t = build("dln", widths=widths, rank=1, n=200)
    w = torch.randn(4, t.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    loop = torch.stack([_dln_loss_single(t, w[c]) for c in range(4)])
    torch.testing.assert_close(t.loss(w), loop, rtol=1e-12, atol=1e-12)
    idx = torch.tensor([5, 3, 3, 199])
    sub = t.loss(w, idx)
    t_sub = t.to()
    t_sub.x, t_sub.y = t.x[idx], t.labels(idx)
    loop = torch.stack([_dln_loss_single(t_sub, w[c]) for c in range(4)])
    torch.testing.assert_close(sub, loop, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("noise_std", [0.0, 0.7])
def test_dln_moment_loss_equals_per_sample_loss(noise_std):
    """The moment form (⟨D·S_xx, D⟩ − 2⟨S_ex, D⟩ + S_ee)/(2σ²) is the per-sample mean, with label noise too."""
    t = build("dln", widths=[3, 4, 2], rank=1, n=500, noise_std=noise_std)
    assert (t.z is None) == (noise_std == 0.0)
    w = t.w_star[None] + 0.3 * torch.randn(3, t.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    loop = torch.stack([_dln_loss_single(t, w[c]) for c in range(3)])
    torch.testing.assert_close(t.loss(w), loop, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(t.full_loss(w), loop, rtol=1e-12, atol=1e-12)


GRAD_SPECS = [
    ("dln", dict(widths=[3, 4, 2, 3], rank=1, n=300)),
    ("dln", dict(widths=[3, 4, 2, 3], rank=1, n=300, noise_std=0.5)),
    ("dln", dict(widths=[2, 3, 3, 2], rank=1, n=300, variant="generic")),
    ("rrr", dict(inputs=4, hidden=2, outputs=3, rank=1, n=300)),
    ("regular", dict(model="linear", in_features=4, out_features=3, n=300)),
    ("regular", dict(model="linear", in_features=4, out_features=2, n=300, noise_std=0.0)),
]
CLOSED_FORM_SPECS = GRAD_SPECS + [("regular", dict(model="logistic", in_features=5, n=300))]


@pytest.mark.parametrize("spec", CLOSED_FORM_SPECS, ids=_ids)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_closed_form_gradient_equals_autograd(spec, dtype):
    """Families that override loss_and_grad (hand-written back-propagation through W_M⋯W_1, or the
    linear and logistic models' closed forms) agree with the autograd default of Target, on the full data and on
    a minibatch with a repeated index."""
    family, kw = spec
    t = build(family, **kw).to(dtype=dtype)
    assert type(t).loss_and_grad is not Target.loss_and_grad
    w = t.w_star[None] + 0.3 * torch.randn(4, t.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    w = w.to(dtype)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-4, atol=2e-5)
    for idx in (None, torch.tensor([7, 3, 3, 250, 0])):
        loss, grad = t.loss_and_grad(w, idx)
        ref_loss, ref_grad = Target.loss_and_grad(t, w, idx)
        assert loss.shape == (4,) and grad.shape == w.shape and grad.dtype == dtype
        assert not loss.requires_grad and not grad.requires_grad
        torch.testing.assert_close(loss, ref_loss, **tol)
        torch.testing.assert_close(grad, ref_grad, **tol)
        torch.testing.assert_close(loss, t.loss(w, idx), **tol)
    # at the anchor with noiseless labels: L = 0 and ∇L = 0 exactly (no cancellation)
    if kw.get("noise_std", 0.0 if family in ("dln", "rrr") else 1.0) == 0.0:
        loss, grad = t.loss_and_grad(t.w_star[None].to(dtype), torch.arange(20))
        assert float(loss.abs().max()) == 0.0 and float(grad.abs().max()) == 0.0


@pytest.mark.parametrize("spec", GRAD_SPECS, ids=_ids)
def test_epoch_batch_moments_equal_index_batches(spec):
    """Target.epoch_batches: batch moments for a whole epoch at once give the same losses and
    gradients as the index slices of torch.tensor_split (n = 300 into 7 batches: sizes 43 and 42)."""
    family, kw = spec
    t = build(family, **kw)
    perm = torch.randperm(t.num_data, generator=torch.Generator().manual_seed(10))
    plan = t.epoch_batches(perm, 7)
    slices = torch.tensor_split(perm, 7)
    assert len(plan) == 7 and not isinstance(plan[0], torch.Tensor)  # precomputed, not indices
    w = t.w_star[None] + 0.3 * torch.randn(3, t.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    for batch, idx in zip(plan, slices):
        loss, grad = t.loss_and_grad(w, batch)
        ref_loss, ref_grad = t.loss_and_grad(w, idx)
        torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(t.loss(w, batch), ref_loss, rtol=1e-12, atol=1e-12)
    # batches smaller than a moment matrix: plain index slices
    assert all(isinstance(b, torch.Tensor) for b in t.epoch_batches(perm, 300))


def test_dln_forward_orders_agree():
    """Both evaluation orders (through the batch / product first) give the same loss."""
    from llcbench.families.dln import forward

    t = build("dln", widths=[4, 30, 30, 3], rank=2, n=50)
    w = torch.randn(3, t.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    f_small = forward(w, t.widths, t.x[:2])  # product-first is cheaper for 2 points? either way
    p = product_matrix(w, t.widths)
    torch.testing.assert_close(f_small, t.x[:2] @ p.transpose(1, 2), rtol=1e-12, atol=1e-12)
    f_all = forward(w, t.widths, t.x)
    torch.testing.assert_close(f_all, t.x @ p.transpose(1, 2), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("model,out", [("linear", 3), ("logistic", 1)])
def test_regular_batched_equals_loop(model, out):
    t = build("regular", model=model, in_features=4, out_features=out, n=300)
    w = torch.randn(4, t.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    loop = []
    for c in range(4):
        if model == "linear":
            wm = w[c].reshape(out, 4)
            loop.append(((t.y - t.x @ wm.T) ** 2).sum(1).mean() / (2 * t.sigma**2))
        else:
            z = t.x @ w[c]
            p = torch.sigmoid(z)
            loop.append(-(t.y * torch.log(p) + (1 - t.y) * torch.log1p(-p)).mean())
    torch.testing.assert_close(t.loss(w), torch.stack(loop), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ anchors


def _grad(t, w):
    w = w.clone()[None].requires_grad_(True)
    t.loss(w).sum().backward()
    return w.grad[0]


def _perturb_increases(t, scale=0.1, k=32):
    g = torch.Generator().manual_seed(8)
    dirs = torch.randn(k, t.dim, dtype=torch.float64, generator=g)
    dirs = scale * dirs / dirs.norm(dim=1, keepdim=True)
    base = t.loss(t.w_star[None])
    return bool((t.loss(t.w_star[None] + dirs) > base).all())


def test_linear_anchor_is_lstsq_optimum():
    t = build("regular", model="linear", in_features=10, out_features=2, n=2000)
    assert _grad(t, t.w_star).abs().max() < 1e-10
    assert _perturb_increases(t, scale=1e-3)
    assert t.truth.lam == Fraction(20, 2) and t.truth.multiplicity == 1


def test_logistic_anchor_is_mle():
    t = build("regular", model="logistic", in_features=6, n=3000)
    assert _grad(t, t.w_star).norm() < 1e-9
    assert _perturb_increases(t, scale=1e-3)
    assert t.truth.lam == 3


def test_logistic_separable_fails_clearly():
    with pytest.raises(TruthError, match="separable"):
        build("regular", model="logistic", in_features=30, n=40)


@pytest.mark.parametrize("variant,widths,rank", [
    ("canonical", [5, 5, 5, 5], 2), ("generic", [5, 5, 5, 5], 2),
    ("canonical", [3, 2, 4], 0), ("generic", [3, 4, 6, 2], 1),
])
def test_dln_anchor_is_minimum(variant, widths, rank):
    # noiseless labels: L_n(w*) = 0 exactly, any perturbation increases it
    t0 = build("dln", widths=widths, rank=rank, variant=variant, n=400, noise_std=0.0)
    assert t0.loss(t0.w_star[None]).item() == 0.0
    assert _perturb_increases(t0, scale=0.1)
    # with noise: the teacher is a near-minimiser (gradient O(1/sqrt(n)))
    t = build("dln", widths=widths, rank=rank, variant=variant, n=20_000)
    assert _grad(t, t.w_star).norm() < 0.1
    assert _perturb_increases(t, scale=0.3)


# ------------------------------------------------------------------ DLN truth at the anchor


def test_dln_5555_truths():
    can = FAMILIES["dln"].truth({"widths": [5, 5, 5, 5], "rank": 2, "variant": "canonical"})
    gen = FAMILIES["dln"].truth({"widths": [5, 5, 5, 5], "rank": 2, "variant": "generic"})
    assert (can.lam, can.multiplicity, can.kind) == (Fraction(11), 1, "exact")
    assert (gen.lam, gen.multiplicity, gen.kind) == (Fraction(25, 2), 1, "exact")
    assert "canonical" in can.source and "regular point" in gen.source


def _product_jacobian_rank(t):
    def prod(w):
        return product_matrix(w[None], t.widths)[0].reshape(-1)

    jac = torch.func.jacrev(prod)(t.w_star)
    return int(torch.linalg.matrix_rank(jac).item())


def test_generic_dln_jacobian_rank_is_full():
    t = build("dln", widths=[5, 5, 5, 5], rank=2, variant="generic", n=50)
    assert _product_jacobian_rank(t) == 25 == 2 * t.truth.lam
    # the product still has rank r
    assert int(torch.linalg.matrix_rank(t.product(t.w_star[None])[0]).item()) == 2
    # the Hessian of the noiseless population loss |P(w) - P*|_F^2 / 2 at w* is J'J, of rank 25
    # too, so the point is regular on the fibre; the canonical point is not:
    tc = build("dln", widths=[5, 5, 5, 5], rank=2, variant="canonical", n=50)
    assert _product_jacobian_rank(tc) < 25


def test_generic_dln_other_side_and_no_point():
    # hidden widths >= output width but not >= input width: the first layer carries the defect
    t = build("dln", widths=[6, 3, 4, 3], rank=2, variant="generic", n=50)
    assert t.info["side"] == "output"
    assert _product_jacobian_rank(t) == 18 == 2 * t.truth.lam
    assert int(torch.linalg.matrix_rank(t.product(t.w_star[None])[0]).item()) == 2
    with pytest.raises(ValueError, match="variant"):
        make_case("dln", widths=[5, 2, 5], rank=1, variant="generic")
    with pytest.raises(TruthError):
        FAMILIES["dln"].truth({"widths": [5, 2, 5], "rank": 1, "variant": "generic"})
    with pytest.raises(TruthError):
        generic_layers([5, 2, 5], 1, seed=0)


@pytest.mark.parametrize("widths,r", [([5, 5, 5, 5], 2), ([4, 6, 3, 5, 7], 2), ([2, 2, 2], 0), ([3, 3, 3], 3)])
def test_canonical_product_rank(widths, r):
    layers = canonical_layers(widths, r)
    w = torch.cat([m.reshape(-1) for m in layers])[None]
    for m in layers:
        assert int(torch.linalg.matrix_rank(m).item()) == r
    p = product_matrix(w, widths)[0]
    assert int(torch.linalg.matrix_rank(p).item()) == r if r else p.abs().max() == 0
    if r == 0:
        assert w.abs().max() == 0


def test_rank_mod_p_matches_sympy():
    rng = np.random.default_rng(0)
    for _ in range(30):
        rows, cols, k = rng.integers(1, 7, size=3)
        m = rng.integers(-3, 4, size=(rows, k)) @ rng.integers(-3, 4, size=(k, cols))
        assert rank_mod_p(m) == sympy.Matrix(m.tolist()).rank()


def test_generic_construction_certified_exactly_sympy():
    """Independent exact check (sympy over Q) of the integer generic teacher."""
    layers, info = generic_layers([4, 5, 4, 3], 2, seed=3)
    ints = []
    for m in layers:  # entries are small integers over a power of two: recover them exactly
        scale = 2.0 ** 20
        z = sympy.Matrix((m * scale).round().to(torch.int64).tolist()) / sympy.Integer(2**20)
        ints.append(z)
    q = ints[1] * ints[0]
    assert info["side"] == "input" and q.rank() == 4
    assert (ints[2] * q).rank() == 2


def test_rrr_equals_dln():
    from llcbench.truth.dln import dln_truth

    for m, h, n, r in [(5, 3, 5, 0), (4, 3, 8, 0), (8, 3, 4, 1), (3, 8, 4, 2), (10, 5, 10, 2)]:
        t = FAMILIES["rrr"].truth({"inputs": m, "hidden": h, "outputs": n, "rank": r})
        d = dln_truth([m, h, n], r)
        assert (t.lam, t.multiplicity) == (d.lam, d.multiplicity)
        c = FAMILIES["dln"].truth({"widths": [m, h, n], "rank": r, "variant": "canonical"})
        assert (t.lam, t.multiplicity) == (c.lam, c.multiplicity)
    a = build("rrr", inputs=3, hidden=2, outputs=4, rank=1, n=100, seed=2)
    b = build("dln", widths=[3, 2, 4], rank=1, n=100, seed=2)
    assert a.family == "rrr" and a.dim == b.dim == 3 * 2 + 2 * 4
    assert torch.equal(a.w_star, b.w_star) and torch.equal(a.labels(), b.labels())


# ------------------------------------------------------------------ polynomial


@pytest.mark.parametrize("expr", [
    "w1**2*w2**4", "(w1*w2 + w3*w4)**2", "(w1**2 - w2**3)**2", "w1**2 + 3*w2**2*w3**2 - w1*w3 + 1/2*w3**4",
    "w1**3*w2 - 2*w2**5 + 7/3*w1*w2",
])
def test_polynomial_matches_sympy(expr):
    # evaluation only: some of these K are not certifiable (cusp, indefinite), so no truth engine
    t = polynomial_target(expr, [], Truth(Fraction(1, 2), 1, "exact", "placeholder for the test"))
    syms = sympy.symbols(f"w1:{t.dim + 1}")
    f = sympy.sympify(expr, locals={str(s): s for s in syms})
    w = torch.randn(6, t.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(9)) * 1.5
    want = [float(f.subs(dict(zip(syms, [sympy.Float(v, 30) for v in row.tolist()])))) for row in w]
    torch.testing.assert_close(t.loss(w), torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    assert t.loss(t.w_star[None]).item() == 0.0
    assert t.num_data == 0 and t.n == 10_000 and t.dim == len(syms)


def test_polynomial_gradients_exact_at_zero():
    t = build("polynomial", expr="w1**2 * w2**2 + w3**2")
    assert t.dim == 3
    w = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    t.loss(w).sum().backward()
    assert torch.equal(w.grad, torch.zeros(2, 3, dtype=torch.float64))
    w = torch.tensor([[0.0, 3.0, 2.0]], dtype=torch.float64, requires_grad=True)
    t.loss(w).sum().backward()
    assert w.grad.tolist() == [[0.0, 0.0, 4.0]]


def test_polynomial_prior():
    flat = build("polynomial", expr="w1**2*w2**2")
    assert not flat.has_prior and flat.log_prior(torch.ones(2, 2)) is None
    t = build("polynomial", expr="w1**2*w2**2", prior_exponents=[1, 3])
    assert t.has_prior
    w = torch.tensor([[0.5, -2.0], [3.0, 0.25]], dtype=torch.float64)
    want = torch.tensor([math.log(0.5) + 3 * math.log(2.0), math.log(3.0) + 3 * math.log(0.25)],
                        dtype=torch.float64)
    torch.testing.assert_close(t.log_prior(w), want)
    assert t.to(dtype=torch.float32).log_prior(w.float()).dtype == torch.float32
    with pytest.raises(ValueError, match="prior_exponents"):
        make_case("polynomial", expr="w1**2*w2**2", prior_exponents=[1])


# ------------------------------------------------------------------ fields and registry


@pytest.mark.parametrize("family,params,match", [
    ("dln", dict(widths=[3, 3], rank=0), "3 widths"),
    ("dln", dict(widths=[3, 0, 3], rank=0), ">= 1"),
    ("dln", dict(widths=[3, 2, 3], rank=3), "rank"),
    ("dln", dict(widths=[3, 2, 3], rank=-1), "rank"),
    ("dln", dict(widths=[3, 3, 3], rank=1, variant="weird"), "canonical"),
    ("rrr", dict(inputs=3, hidden=2, outputs=3, rank=3), "rank"),
    ("rrr", dict(inputs=0, hidden=2, outputs=3, rank=0), ">= 1"),
    ("regular", dict(model="probit", in_features=3), "linear"),
    ("regular", dict(model="linear", in_features=0), ">= 1"),
    ("regular", dict(model="logistic", in_features=3, out_features=2), "out_features"),
    ("polynomial", dict(expr=""), "non-empty"),
    ("polynomial", dict(expr="w1**2 +* w2"), "parse"),
    ("polynomial", dict(expr="w1**2", prior_exponents=[-1]), ">= 0"),
    ("polynomial", dict(expr="w3**2"), "parse"),  # w1, w2 missing: K flat along them
    ("polynomial", dict(expr="x**2"), "parse"),
])
def test_bad_fields(family, params, match):
    with pytest.raises(ValueError, match=match):
        make_case(family, **params)


def test_registry():
    assert set(FAMILIES) == {"polynomial", "regular", "dln", "rrr", "regression", "memorisation", "modular_addition"}
    for name, fam in FAMILIES.items():
        assert fam.name == name and get_family(name) is fam
        for fname, f in fam.fields.items():
            assert f.doc, (name, fname)
            assert f.type in ("int", "float", "str", "bool", "str_list", "int_list", "float_list")
    with pytest.raises(UserError, match="dln"):
        get_family("nope")


def test_dim_and_truth_do_not_build_data(monkeypatch):
    """Listing must be cheap: a huge DLN's dim and truth come without data (their speed is measured
    in benchmarks/test_listing_speed.py)."""
    import llcbench.families.dln as dln_module

    def no_data(*args, **kwargs):
        raise AssertionError("dim/truth must not generate data")

    monkeypatch.setattr(torch, "randn", no_data)
    monkeypatch.setattr(dln_module, "build_dln_target", no_data)
    params = {"widths": [185, 259, 286, 885, 235, 204, 274, 252], "rank": 50, "variant": "canonical"}
    d = FAMILIES["dln"].dim(params)
    truth = FAMILIES["dln"].truth(params)
    assert d == sum(a * b for a, b in zip(params["widths"][:-1], params["widths"][1:]))
    assert (truth.lam, truth.multiplicity) == (Fraction(18464), 4)  # Aoyagi 2024's example widths
