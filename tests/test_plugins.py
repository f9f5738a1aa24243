"""Plugin estimators (entry-point group ``llcbench.estimators``): listed beside the built-ins, a
broken one reported by name without breaking the others, and timed by the runner like any other."""

from __future__ import annotations

import importlib.metadata
import time
from dataclasses import dataclass

import pytest

import llcbench.estimators as registry
from llcbench.catalogue import load_catalogue
from llcbench.cli import main
from llcbench.estimators.base import Estimate, EstimatorSpec, doc
from llcbench.runner import RunSpec, execute

SLEEP = 0.05


@dataclass
class StubConfig:
    answer: float = doc(0.5, "the λ̂ it reports")


def stub_estimate(target, config, seed, device="cpu") -> Estimate:
    time.sleep(SLEEP)  # work the estimator does not time: it reports the default seconds = 0.0
    return Estimate(lambda_hat=config.answer, lambda_hat_chains=[config.answer], se=0.0)


STUB = EstimatorSpec(name="stub", config_cls=StubConfig, estimate=stub_estimate, summary="a stub plugin")


class FakeEntryPoint:
    """What importlib.metadata yields for one entry point: name, value ("module:attr"), load()."""

    def __init__(self, name, value, load):
        self.name, self.value, self._load = name, value, load

    def load(self):
        return self._load()


def _broken():
    raise ImportError("No module named 'missing_dependency'")


@pytest.fixture
def plugins(monkeypatch):
    """Installs fake entry points and a fresh registry state (restored afterwards)."""

    def install(*eps):
        monkeypatch.setattr(registry, "ESTIMATORS", dict(registry.ESTIMATORS))
        monkeypatch.setattr(registry, "_plugins_loaded", False)
        monkeypatch.setattr(registry, "_plugin_errors", {})
        monkeypatch.setattr(registry, "_plugin_sources", {})

        def entry_points(group=None, **kw):
            assert group == registry.ENTRY_POINT_GROUP
            return list(eps)

        monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)

    return install


def test_estimators_lists_builtin_and_plugin_and_reports_a_broken_plugin(plugins, capsys):
    plugins(
        FakeEntryPoint("stub", "stub_pkg.llc:SPEC", lambda: STUB),
        FakeEntryPoint("factory", "stub_pkg.llc:make_spec", lambda: (lambda: STUB)),  # a callable returning one
        FakeEntryPoint("broken", "broken_pkg.llc:SPEC", _broken),
        FakeEntryPoint("notaspec", "odd_pkg:THING", lambda: 42),
        FakeEntryPoint("sgld", "evil_pkg:SPEC", lambda: STUB),  # may not shadow a built-in
    )
    assert main(["estimators"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "sgld  [built-in]: localised tempered SGLD (Lau et al. 2023), chains vectorised" in lines
    assert "stub  [plugin stub_pkg.llc:SPEC]: a stub plugin" in lines
    assert "factory  [plugin stub_pkg.llc:make_spec]: a stub plugin" in lines
    # its fields, with their defaults and docs, like a built-in's
    assert any(line.split() == ["answer", "=", "0.5", "the", "λ̂", "it", "reports"] for line in lines), out
    assert ("broken  [plugin broken_pkg.llc:SPEC]: not loaded: ImportError: No module named "
            "'missing_dependency'") in lines
    assert any(line.startswith("notaspec  [plugin odd_pkg:THING]: not loaded: TypeError") for line in lines)
    assert "sgld  [plugin evil_pkg:SPEC]: not loaded: 'sgld' is a built-in estimator's name" in lines
    # every built-in is still listed, once, as built-in
    for name in registry.BUILTIN:
        assert sum(line.startswith(f"{name}  [built-in]") for line in lines) == 1, name
    assert registry.get_estimator("sgld").summary != STUB.summary
    assert registry.get_estimator("stub") is STUB


def test_a_broken_plugin_breaks_nothing_else(plugins, capsys):
    plugins(FakeEntryPoint("broken", "broken_pkg:SPEC", _broken), FakeEntryPoint("stub", "s:SPEC", lambda: STUB))
    assert registry.get_estimator("stub") is STUB
    with pytest.raises(registry.UserError, match="'broken' \\(plugin\\) failed to load: ImportError"):
        registry.get_estimator("broken")
    assert main(["run", "--estimator", "broken", "--case", "poly/w1^2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken" in err and "missing_dependency" in err


def test_runner_times_every_estimate_itself():
    (case,) = [c for c in load_catalogue() if c.id == "poly/w1^2"]
    record = execute(RunSpec(case, STUB, StubConfig(), seed=0))
    assert record["estimator_seconds"] == 0.0  # what the estimator reported, kept
    assert record["seconds"] >= SLEEP  # what the runner measured around the call
    assert record["lambda_hat"] == 0.5 and record["rel_error"] == 0.0
