"""devinterp's estimators (llcbench/devinterp_adapter.py): registered through llcbench's own entry
points, a clear "not loaded" row without devinterp, and — with devinterp installed (the extra
``llcbench[devinterp]``, which CI installs) — runs that go through devinterp's own ``sample`` and
``compute_llc`` with the settings their config names."""

from __future__ import annotations

import importlib.util
import json
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from conftest import FakeEntryPoint
from llcbench import devinterp_adapter as adapter
from llcbench.cli import main

ROOT = Path(__file__).resolve().parents[1]
HAVE_DEVINTERP = importlib.util.find_spec("devinterp") is not None
needs_devinterp = pytest.mark.skipif(not HAVE_DEVINTERP, reason="devinterp not installed (pip install -e '.[devinterp]')")


def _eps():
    return [FakeEntryPoint(name, f"llcbench.devinterp_adapter:{fn}", getattr(adapter, fn), dist="llcbench")
            for name, fn in (("devinterp_sgld", "sgld_spec"), ("devinterp_rmsprop", "rmsprop_spec"))]


def test_pyproject_registers_both_through_entry_points_and_pins_the_extra():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["entry-points"]["llcbench.estimators"] == {
        "devinterp_sgld": "llcbench.devinterp_adapter:sgld_spec",
        "devinterp_rmsprop": "llcbench.devinterp_adapter:rmsprop_spec"}
    assert meta["optional-dependencies"]["devinterp"] == ["devinterp>=2.0.1,<2.1"]
    assert "devinterp" not in " ".join(meta["dependencies"])


def test_without_devinterp_one_not_loaded_row_and_nothing_else_breaks(entry_points, monkeypatch, capsys, tmp_path):
    def missing():
        raise metadata.PackageNotFoundError("devinterp")

    monkeypatch.setattr(adapter, "_installed_version", missing)
    entry_points(llcbench_estimators=_eps())
    assert main(["estimators"]) == 0
    out = capsys.readouterr()
    rows = [line for line in out.out.splitlines() if line.startswith("devinterp_sgld ")]
    assert rows and "not loaded: MissingDependency: pip install 'llcbench[devinterp]'" in rows[0]
    assert out.err == ""  # an extra left uninstalled is not a fault: the row, no warning
    # a built-in still runs, and asking for the missing one says what to install
    assert main(["run", "--estimator", "exact", "--case", "poly/w1^2", "--db", str(tmp_path / "r.sqlite"),
                 "--quiet"]) == 0
    assert main(["run", "--estimator", "devinterp_sgld", "--case", "poly/w1^2", "--db", str(tmp_path / "r.sqlite")]) == 2
    assert "pip install 'llcbench[devinterp]'" in capsys.readouterr().err


def test_another_devinterp_series_is_refused_with_the_pin(monkeypatch):
    monkeypatch.setattr(adapter, "_installed_version", lambda: "1.3.2")
    with pytest.raises(ImportError, match=r"devinterp 1\.3\.2 is installed.*2\.0\.x"):  # MissingDependency
        adapter.sgld_spec()


def _case_target(case_id):
    from llcbench.catalogue import load_catalogue
    from llcbench.families import get_family

    (case,) = [c for c in load_catalogue() if c.id == case_id]
    return get_family(case.family).target(case)


def test_prior_targets_are_refused_with_the_reason():
    assert "prior" in adapter.supports(_case_target("poly-prior/(w1*w2)^2;h=1,1"))
    assert adapter.supports(_case_target("poly/w1^2")) is None


@pytest.fixture
def spy(monkeypatch):
    """devinterp's sample() wrapped: every call's keyword arguments, then the real sampler."""
    from devinterp.slt import sampling

    calls = []
    real = sampling.sample

    def wrapped(**kw):
        calls.append(kw)
        return real(**kw)

    monkeypatch.setattr(sampling, "sample", wrapped)
    return calls


@needs_devinterp
def test_devinterp_rules_run_its_sampler_with_its_readme_settings(spy):
    from llcbench.estimators.base import make_config

    spec = adapter.sgld_spec()
    est = spec.estimate(_case_target("poly/w1^2"), make_config(adapter.DevinterpConfig, ["draws=20"]), seed=3)
    again = spec.estimate(_case_target("poly/w1^2"), make_config(adapter.DevinterpConfig, ["draws=20"]), seed=3)
    assert again.lambda_hat == est.lambda_hat  # devinterp seeds chain c with init_seed + c: the run's seed
    kw, _ = spy
    assert (kw["lr"], kw["n_beta"], kw["localization"], kw["num_chains"], kw["num_draws"], kw["num_burnin_steps"]) \
        == (1e-3, 30.0, 0.0, 4, 20, 0)
    assert kw["sampling_method"] == "sgmcmc_sgld" and kw["init_seed"] == 3
    assert kw["batch_size"] == 1  # an analytic potential: one dummy row
    # the record is labelled by what devinterp itself recorded having run
    recorded = est.extra["devinterp_config"]
    assert {k: recorded[k] for k in ("lr", "n_beta", "localization", "num_chains", "num_draws", "sampling_method")} \
        == {"lr": 1e-3, "n_beta": 30.0, "localization": 0.0, "num_chains": 4, "num_draws": 20,
            "sampling_method": "sgmcmc_sgld"}
    assert est.extra["rules"] == "devinterp" and est.extra["devinterp_version"] == metadata.version("devinterp")
    assert len(est.lambda_hat_chains) == 4 and est.grad_evals == 4 * 20
    # se is devinterp's std over chains (population std, as its compute_llc reports it)
    import numpy as np

    assert est.se == pytest.approx(float(np.std(est.lambda_hat_chains)), rel=1e-5)
    assert est.lambda_hat == pytest.approx(float(np.mean(est.lambda_hat_chains)), rel=1e-5)


@needs_devinterp
def test_llcbench_rules_pass_its_nbeta_gamma_and_step_rule_into_devinterp(spy):
    import torch

    from llcbench.estimators.base import make_config
    from llcbench.estimators.sgmcmc.config import SGMCMCConfig
    from llcbench.estimators.sgmcmc.stepsize import StepSizeRule

    target = _case_target("reg/(w1-w2)*x")
    cfg = make_config(adapter.DevinterpConfig, ["rules=llcbench", "chains=2", "draws=10", "burn_in=5"])
    est = adapter.rmsprop_spec().estimate(target, cfg, seed=0)  # reg: n = 10^4, so the batch is llcbench's 1024
    (kw,) = spy
    nbeta = target.nbeta_star
    rule = StepSizeRule.at_anchor(target.to("cpu", torch.float64), target.w_star.to(torch.float64),
                                  [SGMCMCConfig(batch_size=1024)], [nbeta], [1e-3 * nbeta], True, 0, torch.device("cpu"),
                                  enabled=True)
    assert kw["n_beta"] == pytest.approx(nbeta) and kw["localization"] == pytest.approx(1e-3 * nbeta)
    assert kw["lr"] == pytest.approx(rule.eps_rule_init[0] * 0.1)  # devinterp's rmsprop eps 0.1 caps the step at ε_s
    assert (kw["num_chains"], kw["num_draws"], kw["num_burnin_steps"], kw["batch_size"]) == (2, 10, 5, 1024)
    assert kw["sampling_method"] == "rmsprop_sgld" and est.extra["devinterp_config"]["sampling_method"] == "rmsprop_sgld"
    assert est.extra["rules"] == "llcbench" and est.extra["nbeta"] == kw["n_beta"]
    # defaults the overrides replaced: llcbench's chains, draws after burn-in, burn-in
    full = adapter.settings(target, make_config(adapter.DevinterpConfig, ["rules=llcbench"]), "sgmcmc_sgld", 0, "cpu")
    assert (full["num_chains"], full["num_draws"], full["num_burnin_steps"]) == (8, 4000, 2000)
    assert full["lr"] == pytest.approx(rule.eps_rule_init[0])


@needs_devinterp
def test_an_error_in_devinterp_is_the_run_error(monkeypatch):
    """The estimate goes through devinterp: its sampler raising fails the run."""
    from devinterp.slt import llc, sampling

    from llcbench.estimators.base import make_config

    def boom(**kw):
        raise RuntimeError("devinterp sample called")

    monkeypatch.setattr(sampling, "sample", boom)
    with pytest.raises(RuntimeError, match="devinterp sample called"):
        adapter.sgld_spec().estimate(_case_target("poly/w1^2"), make_config(adapter.DevinterpConfig, []), seed=0)
    monkeypatch.undo()

    def boom_llc(samples):
        raise RuntimeError("devinterp compute_llc called")

    monkeypatch.setattr(llc, "compute_llc", boom_llc)
    with pytest.raises(RuntimeError, match="compute_llc called"):
        adapter.sgld_spec().estimate(_case_target("poly/w1^2"), make_config(adapter.DevinterpConfig, ["draws=5"]), 0)


@needs_devinterp
def test_cli_runs_it_through_the_installed_entry_point(capsys, tmp_path):
    """``llcbench run --estimator devinterp_sgld`` on a DLN finds it through llcbench's installed entry
    points, and the record carries devinterp's version and config."""
    from llcbench.estimators import ESTIMATORS

    ESTIMATORS.reset()
    try:
        argv = ["run", "--estimator", "devinterp_sgld", "--case", "dln/2-2-2/r0", "--set", "draws=10", "--set",
                "chains=2", "--db", str(tmp_path / "r.sqlite"), "--quiet", "--json", "--full"]
        assert main(argv) == 0
        (record,) = json.loads(capsys.readouterr().out)
        assert ESTIMATORS.origin("devinterp_sgld") == "plugin llcbench"
    finally:
        ESTIMATORS.reset()
    assert record["extra"]["devinterp_version"] == metadata.version("devinterp")
    assert record["config"]["rules"] == "devinterp" and record["extra"]["devinterp_config"]["batch_size"] == 32
    assert record["extra"]["devinterp_config"]["num_chains"] == 2 and record["grad_evals"] == 2 * 10


@needs_devinterp
@pytest.mark.slow
def test_llcbench_rules_get_a_gaussian_right():
    """On w1^2 (λ = 1/2, a Gaussian posterior) devinterp's sampler under llcbench's rules lands on λ:
    1000 draws × 4 chains, se (devinterp's chain spread) about 0.03; 4 se plus the discretisation's 5 %."""
    from llcbench.estimators.base import make_config

    cfg = make_config(adapter.DevinterpConfig, ["rules=llcbench", "chains=4", "draws=1000", "burn_in=500"])
    est = adapter.sgld_spec().estimate(_case_target("poly/w1^2"), cfg, seed=0)
    assert abs(est.lambda_hat - 0.5) <= 4 * est.se + 0.025
