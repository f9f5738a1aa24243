"""The example plugin package (examples/llcbench-example-plugin): docs/plugins.md walks through its files,
its estimator gets λ right through the registry, its family's truth agrees with llcbench's own
engine, and once pip-installed both run from the command line through `llcbench run` and
`llcbench report`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import FakeEntryPoint
from llcbench.cli import main

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "examples" / "llcbench-example-plugin"
FILES = [PACKAGE / "llcbench_example_plugin" / "langevin.py", PACKAGE / "llcbench_example_plugin" / "power_sum.py",
         PACKAGE / "pyproject.toml", PACKAGE / "power_sum.toml"]
DIST = "llcbench-example-plugin"


@pytest.fixture
def example(monkeypatch):
    """The package importable from its source folder (not installed)."""
    monkeypatch.syspath_prepend(str(PACKAGE))
    import llcbench_example_plugin.langevin as langevin
    import llcbench_example_plugin.power_sum as power_sum

    return langevin, power_sum


def walkthrough() -> str:
    """The docs page that walks through the package (docs/plugins.md), up to its in-process sketch."""
    page = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    assert page.startswith("# Write your own estimator")
    return page[: page.index("\n## In process")]  # after it: a sketch with placeholders


def test_docs_walk_through_the_package_files():
    """Every python and toml block of docs/plugins.md is a verbatim piece of one of the package's
    files, and the two modules are shown whole, so the walk-through cannot drift from the code."""
    section = walkthrough()
    blocks = re.findall(r"```(python|toml)\n(.*?)```", section, flags=re.S)
    texts = {path: path.read_text(encoding="utf-8") for path in FILES}
    for lang, block in blocks:
        assert any(block in text for text in texts.values()), f"docs block not in the package:\n{block}"
    shown = [block for _, block in blocks]
    assert texts[FILES[0]] in shown and texts[FILES[1]] in shown
    assert any('[project.entry-points."llcbench.families"]' in b for b in shown)


@pytest.fixture
def as_plugin(entry_points, example):
    """The example installed as if through its entry points."""
    langevin, power_sum = example
    entry_points(llcbench_estimators=[FakeEntryPoint("langevin", "llcbench_example_plugin.langevin:SPEC",
                                                     lambda: langevin.SPEC, dist=DIST)],
                 llcbench_families=[FakeEntryPoint("power_sum", "llcbench_example_plugin.power_sum:PowerSumFamily",
                                                   lambda: power_sum.PowerSumFamily, dist=DIST)])
    return example


@pytest.mark.parametrize("case", ["poly/w1^2", "regular/linear-2x1"])
def test_example_estimator_runs_through_the_cli_and_gets_lambda(as_plugin, capsys, tmp_path, case):
    argv = ["run", "--estimator", "langevin", "--case", case, "--db", str(tmp_path / "r.sqlite"), "--quiet",
            "--json", "--full", "--set", "steps=12000"]
    assert main(argv) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["estimator"] == "langevin" and record["config"]["steps"] == 12000
    assert record["extra"]["nbeta"] == pytest.approx(1e4 / 9.210340371976184)
    assert record["rhat"] < 1.05 and record["ess"] > 500 and not record["warnings"]
    assert record["seconds"] > 0 and record["grad_evals"] == 12000 * 8
    # The exact reference λ_nβ,γ applies because the example reports extra nbeta and gamma. Both cases are
    # Gaussian posteriors, whose λ_nβ,γ = (d/2)·nβa/(nβa + γ) is within 0.1 % of λ.
    lam, ref = record["lambda_float"], record["lambda_ref"]
    assert ref == pytest.approx(lam, rel=2e-3)
    # The sampler's part: Monte-Carlo error (4 se; se is at most 5 % of λ with 12000 steps) plus the
    # unadjusted chain's discretisation bias, a variance 1/(1 − εa/4) too wide with εa <= 0.04: 1 %.
    assert record["se"] < 0.05 * lam
    assert abs(record["lambda_hat"] - ref) <= 4 * record["se"] + 0.01 * ref, record
    assert abs(record["rel_error"]) < 0.25


def test_example_estimator_is_deterministic_and_refuses_bad_config(example):
    from llcbench.catalogue import load_catalogue
    from llcbench.errors import UserError
    from llcbench.estimators.base import make_config
    from llcbench.runner import RunSpec, execute

    langevin, _ = example
    (case,) = [c for c in load_catalogue() if c.id == "poly/w1^2"]
    config = make_config(langevin.LangevinConfig, ["steps=600", "burn_in=100"])
    runs = [execute(RunSpec(case, langevin.SPEC, config, seed))["lambda_hat"] for seed in (0, 0, 1)]
    assert runs[0] == runs[1] != runs[2]
    with pytest.raises(UserError, match="burn_in"):
        make_config(langevin.LangevinConfig, ["burn_in=600", "steps=600"])


@pytest.mark.parametrize("d,k", [(1, 1), (2, 1), (1, 2), (2, 2), (3, 2), (3, 3), (4, 5)])
def test_example_family_truth_agrees_with_the_newton_polyhedron_engine(example, d, k):
    """The family's own rule against llcbench's truth engine (Newton polyhedron, an independent
    computation) on the same polynomial."""
    from llcbench.truth.polynomial import polynomial_truth

    _, power_sum = example
    own = power_sum.power_sum_truth(d, k)
    engine = polynomial_truth(" + ".join(f"w{i + 1}**{2 * k}" for i in range(d)))
    assert (own.lam, own.multiplicity) == (engine.lam, engine.multiplicity)
    assert own.kind == "exact"


def test_example_family_target_states_its_polynomial_and_gets_the_exact_reference(as_plugin, write_toml):
    """The target's loss is the polynomial it declares (so `exact` may integrate its posterior), and the
    shipped cases file reads through the plugin family with the truth it expects."""
    from llcbench.catalogue import build_target, load_file
    from llcbench.estimators import exact

    cases = load_file(PACKAGE / "power_sum.toml")
    assert {c.family for c in cases} == {"power_sum"} and len(cases) == 4
    for case in cases:
        target = build_target(case)
        form = target.polynomial()
        w = torch.randn(5, target.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        from_form = (w[:, None, :] ** form.exponents[None]).prod(dim=-1) @ form.coeffs
        assert torch.allclose(target.loss(w), from_form, rtol=1e-12)
        assert exact.supports(target) is None  # d <= 3: the quadrature reference applies
    bad = write_toml('[[case]]\nid = "p"\nfamily = "power_sum"\nd = 0\n')
    with pytest.raises(Exception, match="cases.toml: case 'p': field 'd': must be >= 1, got 0"):
        load_file(bad)


# ---------------------------------------------------------------- installed with pip, run from the CLI
@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The package pip-installed into a folder of its own (the dev environment is left as it was): a
    subprocess with that folder on PYTHONPATH finds its entry points, as after `pip install`. Built from a
    copy, so that the build leaves nothing in the repository."""
    work = tmp_path_factory.mktemp("example-plugin")
    source = work / "src"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True, timeout=300)
    return target


def llcbench_cli(site: Path, *args, cwd: Path, **env):
    full_env = {k: v for k, v in os.environ.items() if k != "LLCBENCH_NO_PLUGINS"}
    full_env.update(PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1",
                    **env)
    return subprocess.run([sys.executable, "-m", "llcbench", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=300)


def test_installed_plugin_runs_through_llcbench_run_and_report(installed, tmp_path):
    listing = llcbench_cli(installed, "estimators", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    rows = [line.split() for line in listing.stdout.splitlines()]
    assert ["langevin", "plugin", DIST, "full-batch", "localised", "Langevin", "dynamics", "(the", "example",
            "plugin)"] in rows
    assert ["sgld", "built-in"] == rows[2][:2] and listing.stderr == ""

    db = tmp_path / "plugin.sqlite"
    run = llcbench_cli(installed, "run", "--estimator", "langevin", "--no-builtin", "--file",
                       str(PACKAGE / "power_sum.toml"), "--set", "step_scale=0.1", "--db", str(db), "--quiet",
                       "--json", "--full", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    records = {r["case"]: r for r in json.loads(run.stdout)}
    assert sorted(records) == ["power/d1-k1", "power/d2-k2", "power/d3-k2", "power/d3-k3"]
    for r in records.values():
        assert r["estimator"] == "langevin" and r["family"] == "power_sum" and r["truth_kind"] == "exact"
        assert r["lambda"] == {"power/d1-k1": "1/2", "power/d2-k2": "1/2", "power/d3-k2": "3/4",
                               "power/d3-k3": "1/2"}[r["case"]]
        assert r["lambda_ref_source"] == "exact" and r["sampler_bias"] is not None  # the posterior's own λ_nβ,γ
        assert r["seconds"] > 0 and r["grad_evals"] == 4000 * 8
    # The quadratic case K = w1² is Gaussian: the unadjusted chain's stationary variance is 1/(1 − εa/4)
    # times the posterior's (a the posterior precision, ε the step), so λ̂ must match λ_nβ,γ/(1 − εa/4)
    # within Monte-Carlo error (4 se). On the quartic and sextic cases εa at the posterior's typical
    # curvature is below 0.015 (E[12 nβ w²], E[30 nβ w⁴] under exp(−nβ K)), a bias under 0.4 %: 4 se + 1 %.
    quad = records["power/d1-k1"]
    eps, nbeta, gamma = quad["extra"]["step_size"], quad["extra"]["nbeta"], quad["extra"]["gamma"]
    biased = quad["lambda_ref"] / (1 - eps * (2 * nbeta + gamma) / 4)
    assert abs(quad["lambda_hat"] - biased) <= 4 * quad["se"], quad
    assert biased > quad["lambda_ref"] * 1.04  # the test can tell the discretisation bias from none
    for case in ("power/d2-k2", "power/d3-k2", "power/d3-k3"):
        r = records[case]
        assert abs(r["sampler_bias"]) <= 4 * r["sampler_bias_se"] + 0.01 * r["lambda_ref"], r

    report = llcbench_cli(installed, "report", "--db", str(db), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    scores = json.loads((tmp_path / "plugin.report" / "scores.json").read_text())
    (row,) = scores["leaderboard"]
    # every run is scored or counted unhealthy; the plugin reports split R-hat (its bulk ESS under the
    # key "ess", which the health rule does not read), so an R-hat above 1.1 is the only possible problem
    assert row["estimator"] == "langevin" and row["runs"] == 3 and row["unhealthy_runs"] == 1  # seeded: fixed
    (group,) = scores["groups"]
    assert list(group["families"]) == ["power_sum"]
    assert all(p.startswith("R-hat ") for h in group["run_health"] for p in h["problems"])
    markdown = (tmp_path / "plugin.report" / "report.md").read_text()
    assert (f"| langevin | step_scale=0.1 | {row['runs']} | {row['unhealthy_runs']} | {row['cases']} |" in markdown
            and f"| power_sum | {row['cases']} | {row['unhealthy_runs']} |" in markdown)

    # with auto-loading off the plugin is not there, and the error says why
    off = llcbench_cli(installed, "run", "--estimator", "langevin", "--case", "poly/w1^2", "--db", str(db),
                       cwd=tmp_path, LLCBENCH_NO_PLUGINS="1")
    assert off.returncode == 2 and off.stderr.count("\n") == 1
    assert "unknown estimator 'langevin'" in off.stderr and "LLCBENCH_NO_PLUGINS is set" in off.stderr
