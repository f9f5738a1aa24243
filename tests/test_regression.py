"""The regression family (polynomial models with data) and truths a case asserts itself."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
import sympy
import torch

from llcbench.case import Case
from llcbench.catalogue import build_target, case_truth, load_catalogue, load_file, select
from llcbench.cli import main
from llcbench.errors import TruthError, UserError
from llcbench.estimators import exact
from llcbench.families import FAMILIES
from llcbench.target import Target
from llcbench.truth.polynomial import polynomial_truth
from llcbench.truth.regression import parse_model, regression_truth

from test_families import make_case

FAMILY = FAMILIES["regression"]


def target(n=500, seed=0, noise_std=0.5, **params):
    return FAMILY.target(make_case("regression", n=n, seed=seed, noise_std=noise_std, **params))


MODELS = [
    dict(model="w1 * w2**3 * x", parameters=["w1", "w2"], w_star=[0.0, 0.0], input_std=2.0),
    dict(model="a*x + b*x^2 + c", parameters=["a", "b", "c"], w_star=[0.5, -1.0, 0.3],
         input_distribution="uniform", input_bounds=[-1.0, 2.0]),
    dict(model="p*s*t + q**2*s**2 + q*t**3 + 1/3*s", parameters=["p", "q"], inputs=["s", "t"],
         w_star=[0.25, -0.5]),
]


def per_sample_loss(t, w, idx=None):
    """The Gaussian NLL straight from the definition: mean (y − f(w, x))²/(2σ²) over the samples,
    with y rebuilt from the features and the stored residual (f evaluated by sympy, not the target)."""
    info = t.info
    syms = [sympy.Symbol(p, real=True) for p in info["parameters"]]
    u = [sympy.Symbol(f"u{i + 1}", real=True) for i in range(len(syms))]
    h = [sympy.lambdify(u, sympy.sympify(e, locals=dict(zip([str(v) for v in u], u))), "math") for e in info["h"]]
    rows = range(t.num_data) if idx is None else idx.tolist()
    e = t.z[:, -1] if t.z is not None else torch.zeros(t.num_data, dtype=torch.float64)
    out = []
    for wc in w.tolist():
        uc = [a - b for a, b in zip(wc, t.w_star.tolist())]
        hv = torch.tensor([float(fn(*uc)) for fn in h], dtype=torch.float64)
        r = e[list(rows)] - t.features[list(rows)] @ hv
        out.append(float((r**2).mean() / (2 * t.sigma**2)))
    return torch.tensor(out, dtype=torch.float64)


# ------------------------------------------------------------------ truth


def test_the_truth_is_that_of_the_squared_coefficients():
    """H = Σ_α h_α² of f(w* + u, x) − f(w*, x), by the polynomial engine's entry point."""
    m = parse_model("w1 * w2**3 * x + w1**2 * x**2", ["w1", "w2"], ["x"], [0, 0])
    assert m.h_string() == str(sympy.expand(sympy.sympify("w1**2*w2**6 + w1**4"))).replace(" ", "")
    for model, params, star, h in [
        ("w1*w2**3*x", ["w1", "w2"], [0, 0], "w1**2*w2**6"),
        ("w1*w2*x + w2**2*x**2", ["w1", "w2"], [0, 0], "w1**2*w2**2 + w2**4"),
        ("a*x + b*x**2 + c", ["a", "b", "c"], [0.5, -1, 0.3], "w1**2 + w2**2 + w3**2"),
        ("w1*w2*x", ["w1", "w2"], [1, 0], "(1 + w1)**2*w2**2"),  # anchored off the origin: u = w − w*
    ]:
        got = regression_truth(model, params, ["x"], star)
        want = polynomial_truth(str(sympy.expand(sympy.sympify(h))))
        assert (got.lam, got.multiplicity, got.kind) == (want.lam, want.multiplicity, "exact")
        assert "Aoyagi 2024" in got.source


@pytest.mark.parametrize("model, prior, lam, m", [
    # Lau, Murfet & Wei 2023's normal crossings (their table): y = f(w)·x + noise, K = f(w)² up to a constant
    ("w1*w2**3*x", None, "1/6", 1), ("w1*w2**2*x", None, "1/4", 1),
    ("w1**3*w2*x", [1, 1], "1/3", 1), ("w1**2*w2*x", [2, 2], "3/4", 1), ("w1**4*w2*x", [6, 3], "7/8", 1),
    ("w1*w2*x", [1, 1], "1", 2),
])
def test_published_normal_crossings(model, prior, lam, m):
    t = regression_truth(model, ["w1", "w2"], ["x"], [0, 0], prior)
    assert (t.lam, t.multiplicity) == (Fraction(lam), m)


def test_decimal_anchor_is_exact():
    """w* = 0.1 is the rational 1/10, so h has no constant term and H vanishes at u = 0."""
    m = parse_model("w1**2 * x", ["w1"], ["x"], [0.1])
    assert m.w_star == (sympy.Rational(1, 10),)
    assert m.coefficients[(1,)].as_expr() == sympy.expand(sympy.sympify("u1**2 + u1/5").subs("u1", m.u[0]))


def test_degenerate_H_is_refused_naming_it():
    # three parameters: the plane engine does not apply, the Newton rule refuses
    with pytest.raises(TruthError, match=r"H = w1\*\*2-2\*w1\*w2\+w2\*\*2\+w3\*\*2.*degenerate"):
        regression_truth("(w1 - w2)*x + w3*x**2", ["w1", "w2", "w3"], ["x"], [0, 0, 0])


@pytest.mark.parametrize("model, params, inputs, star, match", [
    ("w1*x + import_os", ["w1"], ["x"], [0], "unknown name 'import_os'"),
    ("w1*x + 0.5*x", ["w1"], ["x"], [0], "not an exact integer"),
    ("w1/x", ["w1"], ["x"], [0], "not a polynomial"),
    ("x**2", ["w1"], ["x"], [0], "does not depend on the parameters"),
    ("w1*x", ["w1", "w2"], ["x"], [0, 0], "does not depend on the parameter 'w2'"),
    ("w1*x", ["w1"], ["w1"], [0], "also a parameter"),
    ("w1*x", ["w1"], ["x"], [0, 1], "w_star: needs 1"),
    ("w1*x", ["1w"], ["x"], [0], "not a valid name"),
])
def test_bad_models_are_one_line_errors(model, params, inputs, star, match):
    with pytest.raises(TruthError, match=match):
        parse_model(model, params, inputs, star)


# ------------------------------------------------------------------ target


@pytest.mark.parametrize("params", MODELS, ids=lambda p: p["model"])
def test_loss_is_the_per_sample_gaussian_nll(params):
    t = target(**params)
    gen = torch.Generator().manual_seed(3)
    w = t.w_star + 0.3 * torch.randn(4, t.dim, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(t.loss(w), per_sample_loss(t, w), rtol=1e-10, atol=1e-12)
    idx = torch.randperm(t.num_data, generator=gen)[:37]
    torch.testing.assert_close(t.loss(w, idx), per_sample_loss(t, w, idx), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(t.sample_losses(w, idx).mean(dim=1), t.loss(w, idx), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("params", MODELS, ids=lambda p: p["model"])
def test_closed_form_gradient_matches_autograd(params):
    t = target(**params)
    gen = torch.Generator().manual_seed(4)
    w = t.w_star + 0.4 * torch.randn(5, t.dim, dtype=torch.float64, generator=gen)
    w[0] = t.w_star  # at w* itself too (powers of zero)
    idx = torch.randperm(t.num_data, generator=gen)[:64]
    for batch in (None, idx):
        loss, grad = t.loss_and_grad(w, batch)
        ref_loss, ref_grad = Target.loss_and_grad(t, w, batch)  # the autograd default
        torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-12)
    l2, g2, ex = t.loss_grad_and_excess(w, idx)
    torch.testing.assert_close(g2, t.loss_and_grad(w, idx)[1], rtol=0, atol=0)
    torch.testing.assert_close(ex, t.full_excess_loss(w), rtol=0, atol=0)


@pytest.mark.parametrize("params", MODELS, ids=lambda p: p["model"])
def test_full_excess_and_polynomial_form_are_the_full_loss(params):
    t = target(**params)
    gen = torch.Generator().manual_seed(5)
    w = t.w_star + 0.5 * torch.randn(6, t.dim, dtype=torch.float64, generator=gen)
    full = t.full_loss(w)
    star = t.full_loss(t.w_star[None])
    torch.testing.assert_close(t.full_excess_loss(w), full - star, rtol=1e-9, atol=1e-12)
    assert t.full_excess_loss(t.w_star[None]).item() == 0.0
    form = t.polynomial()
    u = w - t.w_star
    value = (u[:, None, :] ** form.exponents[None]).prod(dim=-1) @ form.coeffs
    torch.testing.assert_close(value, full, rtol=1e-10, atol=1e-12)


def test_epoch_moments_give_the_same_batch_losses():
    t = target(n=1000, **MODELS[0])
    perm = torch.randperm(1000, generator=torch.Generator().manual_seed(6))
    plans = t.epoch_batches(perm, 7)
    slices = torch.tensor_split(perm, 7)
    w = t.w_star + 0.2 * torch.randn(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    for plan, idx in zip(plans, slices):
        torch.testing.assert_close(t.loss(w, plan), t.loss(w, idx), rtol=1e-12, atol=1e-13)


def test_data_are_deterministic_and_follow_the_distribution():
    a = target(n=20000, seed=1, **MODELS[1])
    b = target(n=20000, seed=1, **MODELS[1])
    assert torch.equal(a.features, b.features) and torch.equal(a.z, b.z)
    assert not torch.equal(a.features, target(n=20000, seed=2, **MODELS[1]).features)
    x = a.features[:, a.info["monomials"].index([1])]
    assert x.min() >= -1.0 and x.max() <= 2.0  # uniform on [-1, 2]
    assert abs(x.mean().item() - 0.5) < 0.03  # 5 se of a uniform mean (sd 0.87/√20000 = 0.006)
    noise = a.z[:, -1]
    assert abs(noise.std().item() - 0.5) < 0.02  # σ = 0.5; se of the sd ≈ 0.5/√40000 = 0.0025
    normal = target(n=20000, seed=1, **MODELS[0])
    assert abs(normal.features[:, 0].std().item() - 2.0) < 0.05  # x ~ N(0, 2²), se ≈ 0.01


def test_noiseless_labels_have_zero_loss_at_w_star():
    t = target(noise_std=0.0, **MODELS[0])
    assert t.z is None and t.sigma == 1.0
    assert t.loss(t.w_star[None]).item() == 0.0


def test_prior_is_around_w_star():
    t = target(model="w1**2*w2*x", parameters=["w1", "w2"], w_star=[0.5, 0.0], prior_exponents=[2, 2])
    w = torch.tensor([[1.0, 0.25]], dtype=torch.float64)
    assert t.has_prior
    assert t.log_prior(w).item() == pytest.approx(2 * (torch.log(torch.tensor(0.5)) + torch.log(torch.tensor(0.25))).item())
    assert torch.equal(t.polynomial().prior_exponents, torch.tensor([2.0, 2.0], dtype=torch.float64))


def test_exact_reference_by_quadrature():
    """`exact` integrates the data posterior from the declared polynomial form. For a model linear in
    w the loss is exactly ½uᵀHu + gᵀu (u = w − w*, g ≠ 0: w* is the true, not the fitted, parameter),
    so the localised posterior is Gaussian and λ_nβ,γ = nβ·(½tr(HP⁻¹) + ½μᵀHμ + gᵀμ) with
    P = nβH + γI, μ = −nβP⁻¹g: the quadrature must give that (to its rtol, 1e-7)."""
    t = target(n=10000, noise_std=1.0, **MODELS[1])
    est = exact.estimate(t, exact.ExactConfig())
    assert est.extra["method"] == "quadrature"
    nbeta, gamma = est.extra["nbeta"], est.extra["gamma"]
    jac = t.coefficient_map.value_and_jacobian(torch.zeros(1, 3, dtype=torch.float64))[1][0]  # constant: h = J u
    m = t.full_moments
    H = jac.T @ m[:3, :3] @ jac / t.sigma**2
    g = -(jac.T @ m[3, :3]) / t.sigma**2
    P = nbeta * H + gamma * torch.eye(3, dtype=torch.float64)
    mu = -nbeta * torch.linalg.solve(P, g)
    want = nbeta * (0.5 * torch.trace(torch.linalg.solve(P, H)) + 0.5 * mu @ H @ mu + g @ mu)
    assert est.lambda_hat == pytest.approx(float(want), rel=1e-6)
    assert abs(est.lambda_hat - 1.5) < 0.5  # near d/2: the estimand at the true parameter is d/2 + O(1/log n)


# ------------------------------------------------------------------ catalogue and CLI


def test_catalogue_entries():
    cases = select(load_catalogue(), family="regression")
    by_id = {c.id: c for c in cases}
    lau = by_id["reg/lau/w1*w2^3*x"]
    assert lau.n == 1000 and lau.noise_std == 0.25 and lau.params["input_std"] == 2.0
    assert "MCMC 0.12 ± 0.04, SGLD 0.11 ± 0.07" in lau.note  # published numbers: provenance, not truth
    assert case_truth(lau).lam == Fraction(1, 6) and case_truth(lau).kind == "exact"
    regular = by_id["reg/regular/quadratic"]
    assert case_truth(regular).lam == Fraction(3, 2)
    kinds = {c.id: case_truth(c).kind for c in cases}
    assert set(kinds.values()) == {"exact"}


DEGENERATE = ["reg/(w1-w2)*x", "reg/(w1+w2)*x+w1^2*x^2+w2^2*x^3"]


@pytest.mark.parametrize("case_id", DEGENERATE)
def test_degenerate_two_variable_cases_are_certified(case_id):
    # H is degenerate for the Newton rule: the plane engine certifies it, and the case's hand-derived
    # expect_lambda cross-checks the value (the catalogue would not load otherwise)
    (case,) = select(load_catalogue(), [case_id])
    truth = case_truth(case)
    assert truth.kind == "exact" and truth.lam == case.expect_lambda and "adapted coordinates" in truth.source
    assert build_target(case).truth == truth


QUICK = ["--set", "steps=400", "--set", "burn_in=100", "--set", "chains=4", "--set", "adapt_rounds=0",
         "--set", "hessian_iters=10"]


@pytest.mark.parametrize("estimator", ["sgld", "rmsprop_sgld", "sgnht"])
def test_every_sgmcmc_estimator_runs_on_the_family(capsys, tmp_path, estimator):
    """Through the CLI's entry point, with minibatches (n = 10⁴ > batch 1024): the λ trace is the exact
    full-data excess ('full'), and the run gets an exact reference λ_nβ,γ (quadrature of the declared
    polynomial form of L_n)."""
    code = main(["run", "--estimator", estimator, "--family", "regression", "--case", "reg/w1*x+w2^2*x^2",
                 "--db", str(tmp_path / "r.sqlite"), "--quiet", "--json", "--full", *QUICK])
    assert code == 0
    (rec,) = json.loads(capsys.readouterr().out)
    assert rec["truth_kind"] == "exact" and rec["lambda"] == "3/4"
    assert rec["extra"]["trace_batch"] == "full" and rec["extra"]["batch_size"] == 1024
    assert rec["lambda_ref_source"] == "exact"
    assert 0 < rec["lambda_hat"] < 3  # a short run: only sanity, the accuracy is measured in the README


# ------------------------------------------------------------------ asserted truths (any family)


POLY = '[[case]]\nid = "mine/{id}"\nfamily = "polynomial"\nexpr = "{expr}"\n{extra}\n'


def test_an_asserted_truth_runs_where_the_engine_refuses(write_toml):
    # Newton-degenerate in three variables (the plane engine takes two): λ = 1 after u = w1 − w2
    path = write_toml(POLY.format(id="u2+w3^2", expr="(w1 - w2)**2 + w3**2",
                                  extra='lambda = "1"\nmultiplicity = 1\nsource = "a paper"'))
    (case,) = load_file(path)
    truth = case_truth(case)
    assert (truth.lam, truth.multiplicity, truth.kind) == (Fraction(1), 1, "asserted")
    assert truth.source.startswith("asserted by the case: a paper") and "cannot certify" in truth.source
    t = build_target(case)
    assert t.truth == truth and t.summary()["kind"] == "asserted"


def test_an_agreeing_assertion_is_the_certified_truth(write_toml):
    path = write_toml(POLY.format(id="w^4", expr="w1**4", extra='lambda = "1/4"\nsource = "a paper"'))
    (case,) = load_file(path)
    assert case_truth(case) == polynomial_truth("w1**4")


@pytest.mark.parametrize("extra, field", [
    ('lambda = "1/3"\nsource = "a paper"', "lambda"),
    ('lambda = "1/4"\nmultiplicity = 2\nsource = "a paper"', "multiplicity"),
])
def test_a_disagreeing_assertion_is_an_error_naming_the_field(write_toml, extra, field):
    path = write_toml(POLY.format(id="w^4", expr="w1**4", extra=extra))
    (case,) = load_file(path)
    with pytest.raises(UserError, match=rf"case 'mine/w\^4': field '{field}': the case asserts"):
        case_truth(case)


@pytest.mark.parametrize("extra, field, match", [
    ('lambda = "x"\nsource = "s"', "lambda", "not a rational"),
    ('lambda = "0"\nsource = "s"', "lambda", "> 0"),
    ('lambda = "1/2"', "source", "needs a non-empty source"),
    ('lambda = "1/2"\nsource = " "', "source", "needs a non-empty source"),
    ('lambda = "1/2"\nsource = "s"\nmultiplicity = 0', "multiplicity", "integer >= 1"),
    ('multiplicity = 1', "multiplicity", "give lambda too"),
    ('source = "s"', "source", "give lambda too"),
    ('lambda = "1/2"\nsource = "s"\nexpect_lambda = "1/2"', "expect_lambda", "give one of them"),
])
def test_asserted_fields_are_validated(write_toml, extra, field, match):
    path = write_toml(POLY.format(id="c", expr="(w1 - w2)**2", extra=extra))
    with pytest.raises(UserError, match=rf"cases.toml: case 'mine/c': field '{field}': .*{match}"):
        load_file(path)


def test_the_asserted_truth_is_part_of_the_case_identity():
    base = dict(id="c", family="polynomial", params={"expr": "w1**2", "prior_exponents": []})
    a = Case(**base, asserted_lambda="1/2", asserted_source="s")
    b = Case(**base, asserted_lambda="1/3", asserted_source="s")
    assert a.key() != b.key()
    assert Case(**base).definition() == {k: v for k, v in a.definition().items() if not k.startswith("asserted")}


def test_cli_on_asserted_and_disagreeing_cases(cli, capsys, write_toml, tmp_path):
    good = write_toml(POLY.format(id="w1-w2", expr="(w1 - w2)**2 + w3**2",
                                  extra='lambda = "1"\nsource = "a linear change of coordinates"'), "good.toml")
    assert main(["cases", "--no-builtin", "--file", str(good)]) == 0
    assert "asserted" in capsys.readouterr().out.splitlines()[2]
    assert main(["truth", "--no-builtin", "--file", str(good), "--case", "mine/w1-w2"]) == 0
    assert "kind asserted" in capsys.readouterr().out
    assert main(["run", "--estimator", "sgld", "--no-builtin", "--file", str(good), "--db",
                 str(tmp_path / "r.sqlite"), "--quiet", *QUICK]) == 0
    out = capsys.readouterr().out
    assert "1 (asserted)" in out and "against a truth that is not computed (asserted" in out
    bad = write_toml(POLY.format(id="w^4", expr="w1**4", extra='lambda = "1/3"\nsource = "s"'), "bad.toml")
    assert main(["run", "--estimator", "sgld", "--no-builtin", "--file", str(bad), "--db",
                 str(tmp_path / "r.sqlite")]) == 2
    proc = cli("cases", "--no-builtin", "--file", bad)  # the real exit status and stderr of the command
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "bad.toml: case 'mine/w^4': field 'lambda': the case asserts λ = 1/3" in proc.stderr


def test_asserted_runs_are_scored_apart_and_labelled_in_the_report(tmp_path):
    """An asserted-truth run is left out of every score and listed, with its kind, under "Cases scored
    apart" in scores.json, index.html and report.md."""
    from llcbench.report import build_report
    from llcbench.score import build_scores
    from llcbench.store import Store
    from synthetic_records import BASE_CONFIG, record

    c = dict(BASE_CONFIG)
    recs = [record("p/a", "polynomial", 0.5, "sgld", c, 0, 0.5), record("p/b", "polynomial", 1.0, "sgld", c, 0, 1.1),
            record("mine/cusp", "polynomial", 5 / 12, "sgld", c, 0, 4.0, truth_kind="asserted")]
    with Store(tmp_path / "s.sqlite") as store:
        for r in recs:
            store.put(r)
        scores = build_scores(store)
        paths = build_report(scores, tmp_path / "rep", store)
    (g,) = scores["groups"]
    assert [(r["case"], r["truth_kind"]) for r in g["apart"]] == [("mine/cusp", "asserted")]
    assert g["overall"]["cases"] == 2 and g["overall"]["median_abs_rel_error"] == pytest.approx(0.05)
    for text in (paths["html"].read_text(), paths["markdown"].read_text()):
        assert "Cases scored apart" in text and "mine/cusp" in text and "asserted" in text
        assert "a truth the case states itself" in text


def test_truth_command_on_cases(capsys):
    assert main(["truth", "--family", "regression", "--json"]) == 0
    rows = {r["case"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["reg/lau/w1*w2^3*x"]["kind"] == "exact" and rows["reg/lau/w1*w2^3*x"]["lambda"] == "1/6"
    assert rows["reg/(w1-w2)*x"]["kind"] in ("asserted", "exact")
    assert main(["truth", "w1**2", "--case", "reg/(w1-w2)*x"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["truth"]) == 2
