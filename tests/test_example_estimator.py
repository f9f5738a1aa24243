"""The README's minimal estimator (examples/minimal_estimator.py): the README shows that file, and it
runs as a plugin through the registry and the CLI and gets λ right."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
from pathlib import Path

import pytest

import llcbench.estimators as registry
from llcbench.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "minimal_estimator.py"


def load_example():
    spec = importlib.util.spec_from_file_location("minimal_estimator", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_shows_the_example_file():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Adding an estimator"):]
    section = section[: section.index("\n## ", 1)]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "no python block in 'Adding an estimator'"
    assert blocks[0] == EXAMPLE.read_text(encoding="utf-8")


class _EntryPoint:
    name, value = "langevin", "minimal_estimator:SPEC"

    def load(self):
        return load_example().SPEC


@pytest.fixture
def as_plugin(monkeypatch):
    """The example installed as if through the entry point group ``llcbench.estimators``."""
    monkeypatch.setattr(registry, "ESTIMATORS", dict(registry.ESTIMATORS))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry, "_plugin_errors", {})
    monkeypatch.setattr(registry, "_plugin_sources", {})
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None, **kw: [_EntryPoint()])


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


def test_example_is_deterministic_and_refuses_bad_config():
    from llcbench.catalogue import load_catalogue
    from llcbench.estimators.base import make_config
    from llcbench.errors import UserError
    from llcbench.runner import RunSpec, execute

    example = load_example()
    (case,) = [c for c in load_catalogue() if c.id == "poly/w1^2"]
    config = make_config(example.LangevinConfig, ["steps=600", "burn_in=100"])
    runs = [execute(RunSpec(case, example.SPEC, config, seed))["lambda_hat"] for seed in (0, 0, 1)]
    assert runs[0] == runs[1] != runs[2]
    with pytest.raises(UserError, match="burn_in"):
        make_config(example.LangevinConfig, ["burn_in=600", "steps=600"])
