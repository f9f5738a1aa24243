"""Plugins: estimators and families registered in process (decorators) or through the entry-point groups
``llcbench.estimators`` / ``llcbench.families``; listed beside the built-ins with their origin, loaded
lazily, a broken one reported by name without breaking the others, a taken name refused unless
replacement is asked for, and timed by the runner like any other estimator."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from fractions import Fraction

import pytest
import torch

import llcbench
import llcbench.estimators as registry
from conftest import FakeEntryPoint
from llcbench.catalogue import load_catalogue, load_file
from llcbench.cli import main
from llcbench.errors import UserError
from llcbench.estimators.base import Estimate, EstimatorSpec, doc
from llcbench.families import FAMILIES, get_family
from llcbench.families.base import Family, Field
from llcbench.plugins import RegistrationError
from llcbench.runner import RunSpec, execute
from llcbench.target import Target
from llcbench.truth import Truth

SLEEP = 0.05


@dataclass
class StubConfig:
    answer: float = doc(0.5, "the λ̂ it reports")


def stub_estimate(target, config, seed, device="cpu") -> Estimate:
    time.sleep(SLEEP)  # work the estimator does not time: it reports the default seconds = 0.0
    return Estimate(lambda_hat=config.answer, lambda_hat_chains=[config.answer], se=0.0)


STUB = EstimatorSpec(name="stub", config_cls=StubConfig, estimate=stub_estimate, summary="a stub plugin")


def _broken():
    raise ImportError("No module named 'missing_dependency'")


# A family small enough to write inline: K(w) = w1² at w* = 0, truth λ = 1/2 from the monomial rule.
@dataclass
class SquareTarget(Target):
    def loss(self, w, idx=None):
        return (w**2).sum(dim=-1)


class SquareFamily(Family):
    """K(w) = Σ w_i², the regular case."""

    fields = {"d": Field("int", default=1, doc="number of parameters")}

    def dim(self, params):
        return params["d"]

    def truth(self, params):
        return Truth(Fraction(params["d"], 2), 1, "exact", "regular: λ = d/2")

    def target(self, case):
        d = case.params["d"]
        return SquareTarget(id=case.id, family=self.name, dim=d, n=case.n, truth=self.truth(case.params),
                            w_star=torch.zeros(d, dtype=torch.float64))


def listing(command, capsys):
    assert main([command, "--json"]) == 0
    return {(e["name"], e["origin"]): e for e in json.loads(capsys.readouterr().out)}


def test_estimators_lists_builtin_and_plugin_with_origin_and_reports_a_broken_plugin(entry_points, capsys):
    entry_points(llcbench_estimators=[
        FakeEntryPoint("stub", "stub_pkg.llc:SPEC", lambda: STUB, dist="stub-dist"),
        FakeEntryPoint("factory", "stub_pkg.llc:make_spec", lambda: (lambda: STUB), dist="stub-dist"),
        FakeEntryPoint("broken", "broken_pkg.llc:SPEC", _broken, dist="broken-dist"),
        FakeEntryPoint("notaspec", "odd_pkg:THING", lambda: 42, dist="odd-dist"),
        FakeEntryPoint("sgld", "evil_pkg:SPEC", lambda: STUB, dist="evil-dist"),  # may not shadow a built-in
    ])
    entries = listing("estimators", capsys)
    for name in registry.BUILTIN:  # every built-in listed once, as built-in
        assert [o for n, o in entries if n == name][0] == "built-in", name
    stub = entries["stub", "plugin stub-dist"]
    assert stub["loaded"] and stub["summary"] == "a stub plugin"
    assert stub["fields"] == [{"name": "answer", "type": "float", "default": 0.5, "doc": "the λ̂ it reports"}]
    factory = entries["factory", "plugin stub-dist"]  # a callable returning a spec, renamed to its entry point
    assert factory["loaded"] and registry.get_estimator("factory").name == "factory"
    broken = entries["broken", "plugin broken-dist"]
    assert not broken["loaded"] and broken["error"] == "ImportError: No module named 'missing_dependency'"
    assert broken["source"] == "broken_pkg.llc:SPEC"
    assert entries["notaspec", "plugin odd-dist"]["error"].startswith("TypeError: expected an EstimatorSpec")
    assert entries["sgld", "plugin evil-dist"]["error"] == "the name 'sgld' is a built-in estimator's"
    assert registry.get_estimator("sgld").summary != STUB.summary and registry.get_estimator("stub") is STUB

    # the text listing: a table with the origin column, then every entry with its fields
    assert main(["estimators"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["estimator", "origin", "summary"]
    assert ["stub", "plugin", "stub-dist", "a", "stub", "plugin"] in [line.split() for line in lines]
    assert ["broken", "plugin", "broken-dist", "not", "loaded:", "ImportError:", "No", "module", "named",
            "'missing_dependency'"] in [line.split() for line in lines]
    assert "sgld  [built-in]: localised tempered SGLD (Lau et al. 2023), chains vectorised" in lines
    assert "stub  [plugin stub-dist]: a stub plugin" in lines
    assert any(line.split() == ["answer", "=", "0.5", "the", "λ̂", "it", "reports"] for line in lines)


def test_a_broken_plugin_is_one_warning_line_and_breaks_nothing_else(entry_points, capsys):
    entry_points(llcbench_estimators=[FakeEntryPoint("broken", "broken_pkg:SPEC", _broken, dist="broken-dist"),
                                      FakeEntryPoint("stub", "s:SPEC", lambda: STUB)])
    assert registry.get_estimator("stub") is STUB
    err = capsys.readouterr().err
    assert err == ("llcbench: warning: estimator plugin 'broken' (plugin broken-dist, broken_pkg:SPEC) not loaded: "
                   "ImportError: No module named 'missing_dependency'\n")
    assert registry.get_estimator("sgld").name == "sgld"
    with pytest.raises(UserError,
                       match="'broken' \\(plugin broken-dist, broken_pkg:SPEC\\) failed to load: ImportError"):
        registry.get_estimator("broken")
    assert capsys.readouterr().err == ""  # announced once per process


def test_asking_for_the_broken_plugin_is_one_error_line(entry_points, capsys):
    entry_points(llcbench_estimators=[FakeEntryPoint("broken", "broken_pkg:SPEC", _broken)])
    assert main(["run", "--estimator", "broken", "--case", "poly/w1^2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("llcbench run: error: argument --estimator: estimator 'broken'")
    assert "missing_dependency" in err


def test_entry_points_load_lazily_and_once(entry_points):
    scans = entry_points(llcbench_estimators=[FakeEntryPoint("stub", "s:SPEC", lambda: STUB)])
    registry.get_estimator("sgld")  # a built-in: no plugin imported
    assert "sgld" in registry.ESTIMATORS and FAMILIES["dln"] is get_family("dln")
    assert scans == []
    assert registry.get_estimator("stub") is STUB  # a miss loads the group
    assert list(registry.ESTIMATORS)[-1] == "stub" and "stub" in registry.ESTIMATORS
    assert scans == ["llcbench.estimators"]
    list(FAMILIES)  # listing loads the other group, once too
    list(FAMILIES)
    assert scans == ["llcbench.estimators", "llcbench.families"]


def test_import_llcbench_loads_no_plugin(tmp_path):
    """A plugin whose import fails loudly (it writes a file) is not imported by ``import llcbench``
    nor by a lookup of a built-in; it is by a listing."""
    import os
    import subprocess
    import sys

    pkg = tmp_path / "site"
    (pkg / "loud_plugin").mkdir(parents=True)
    (pkg / "loud_plugin" / "__init__.py").write_text(
        f"open({str(tmp_path / 'imported')!r}, 'w').close()\nSPEC = None\n")
    dist = pkg / "loud_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: loud-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[llcbench.estimators]\nloud = loud_plugin:SPEC\n")
    env = dict(os.environ, PYTHONPATH=str(pkg))
    code = ("import llcbench, llcbench.cli, llcbench.catalogue; from llcbench.estimators import get_estimator; "
            "get_estimator('sgld'); import os, sys; sys.exit(os.path.exists(sys.argv[1]))")
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path / "imported")], env=env).returncode == 0
    listed = subprocess.run([sys.executable, "-m", "llcbench", "estimators"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0 and (tmp_path / "imported").exists()
    # SPEC = None: reported by name, on stderr and in the listing
    assert "estimator plugin 'loud' (plugin loud-plugin, loud_plugin:SPEC) not loaded: TypeError" in listed.stderr
    assert any(line.split()[:4] == ["loud", "plugin", "loud-plugin", "not"] for line in listed.stdout.splitlines())


def test_the_environment_variable_turns_entry_points_off(entry_points, monkeypatch, capsys):
    scans = entry_points(llcbench_estimators=[FakeEntryPoint("stub", "s:SPEC", lambda: STUB)])
    monkeypatch.setenv("LLCBENCH_NO_PLUGINS", "1")
    with pytest.raises(UserError, match="unknown estimator 'stub'.*LLCBENCH_NO_PLUGINS is set"):
        registry.get_estimator("stub")
    assert main(["estimators"]) == 0
    assert "(entry-point plugins not loaded: LLCBENCH_NO_PLUGINS is set)" in capsys.readouterr().out
    assert scans == []
    llcbench.register_estimator("stub")(STUB)  # in-process registration still works
    assert registry.get_estimator("stub") is STUB


def test_register_estimator_decorates_a_function_and_runs_through_the_cli(entry_points, capsys, tmp_path):
    entry_points()

    @llcbench.register_estimator("answer", config=StubConfig)
    def answer(target, config, seed, device="cpu"):
        """reports config.answer, whatever the target"""
        return Estimate(lambda_hat=config.answer, lambda_hat_chains=[config.answer], se=0.01)

    assert callable(answer) and answer.__name__ == "answer"  # returned unchanged
    spec = registry.get_estimator("answer")
    assert spec.estimate is answer and spec.summary == "reports config.answer, whatever the target"
    assert registry.ESTIMATORS.origin("answer") == "registered in-process"
    assert main(["run", "--estimator", "answer", "--case", "poly/w1^2", "--set", "answer=0.25", "--db",
                 str(tmp_path / "r.sqlite"), "--quiet", "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["estimator"] == "answer" and record["lambda_hat"] == 0.25 and record["rel_error"] == -0.5


def test_a_taken_name_is_an_error_unless_replace(entry_points):
    entry_points(llcbench_estimators=[FakeEntryPoint("stub", "s:SPEC", lambda: STUB, dist="stub-dist")])
    with pytest.raises(RegistrationError, match="estimator 'sgld' is already registered \\(built-in\\); pass "
                                                "replace=True"):
        llcbench.register_estimator("sgld")(STUB)
    with pytest.raises(RegistrationError, match="'stub' is already registered \\(plugin stub-dist\\)"):
        llcbench.register_estimator("stub", config=StubConfig)(stub_estimate)
    llcbench.register_estimator("mine")(STUB)
    with pytest.raises(RegistrationError, match="'mine' is already registered \\(registered in-process\\)"):
        llcbench.register_estimator("mine")(STUB)
    with pytest.raises(RegistrationError, match="needs config="):
        llcbench.register_estimator("nocfg")(stub_estimate)
    with pytest.raises(RegistrationError, match="config_cls must be a dataclass"):
        llcbench.register_estimator("badcfg", config=dict)(stub_estimate)

    llcbench.register_estimator("sgld", replace=True)(STUB)  # asked for explicitly
    assert registry.get_estimator("sgld").estimate is stub_estimate
    assert registry.ESTIMATORS.origin("sgld") == "registered in-process"
    assert registry.get_estimator("mine").name == "mine"  # a spec registered under another name is renamed


def test_register_family_reads_cases_and_runs(entry_points, write_toml, capsys, tmp_path):
    entry_points()
    assert llcbench.register_family("square")(SquareFamily) is SquareFamily
    assert FAMILIES.origin("square") == "registered in-process" and get_family("square").name == "square"
    path = write_toml('[[case]]\nid = "sq/2"\nfamily = "square"\nd = 2\nexpect_lambda = "1"\n')
    (case,) = load_file(path)
    assert case.family == "square" and case.params == {"d": 2}
    # a mistake in a plugin family's case is one line naming the file, the case and the field
    bad = write_toml('[[case]]\nid = "sq/x"\nfamily = "square"\nd = "two"\n', name="bad.toml")
    with pytest.raises(UserError, match=r"bad.toml: case 'sq/x': field 'd': expected an integer"):
        load_file(bad)
    assert main(["families"]) == 0
    out = capsys.readouterr().out
    assert ["square", "registered", "in-process", "10000", "—", "K(w)", "=", "Σ", "w_i²,", "the", "regular",
            "case."] in [line.split() for line in out.splitlines()]
    assert "square  (default n = 10000, no noise_std)  [registered in-process]" in out
    # the whole pipeline: the file's cases, their truth and target, an estimator, the record
    assert main(["run", "--estimator", "stub", "--no-builtin", "--file", str(path), "--db", str(tmp_path / "r.sqlite"),
                 "--quiet", "--json"]) == 2  # stub is not registered in this test
    assert "unknown estimator 'stub'" in capsys.readouterr().err
    llcbench.register_estimator("stub")(STUB)
    assert main(["run", "--estimator", "stub", "--no-builtin", "--file", str(path), "--db", str(tmp_path / "r.sqlite"),
                 "--quiet", "--json", "--full"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["family"] == "square" and record["lambda"] == "1" and record["rel_error"] == -0.5


def test_register_family_refuses_collisions_and_bad_families(entry_points):
    entry_points()
    with pytest.raises(RegistrationError, match="family 'dln' is already registered \\(built-in\\)"):
        llcbench.register_family("dln")(SquareFamily)
    with pytest.raises(RegistrationError, match="expected a Family subclass"):
        llcbench.register_family("notafamily")(dict)

    class Clashing(SquareFamily):
        fields = {"seed": Field("int", default=0)}

    with pytest.raises(RegistrationError, match="field 'seed' is a common case field"):
        llcbench.register_family("clashing")(Clashing)
    llcbench.register_family("dln", replace=True)(SquareFamily)
    assert isinstance(get_family("dln"), SquareFamily)
    FAMILIES.reset()
    assert type(get_family("dln")).__name__ == "DLNFamily" and FAMILIES.origin("dln") == "built-in"


def test_family_entry_points_broken_and_working(entry_points, write_toml, capsys):
    entry_points(llcbench_families=[
        FakeEntryPoint("square", "sq_pkg:SquareFamily", lambda: SquareFamily, dist="sq-dist"),
        FakeEntryPoint("spline", "spline_pkg:Family", _broken, dist="spline-dist"),
        FakeEntryPoint("rrr", "evil:Family", lambda: SquareFamily, dist="evil-dist"),
    ])
    entries = listing("families", capsys)
    capsys.readouterr()
    assert entries["square", "plugin sq-dist"]["fields"] == [
        {"name": "d", "type": "int", "required": False, "default": 1, "doc": "number of parameters"}]
    assert entries["spline", "plugin spline-dist"]["error"] == "ImportError: No module named 'missing_dependency'"
    assert entries["rrr", "plugin evil-dist"]["error"] == "the name 'rrr' is a built-in family's"
    assert entries["rrr", "built-in"]["loaded"]
    # the catalogue is untouched; a case of the broken family names the plugin's error
    shipped = {c.family for c in load_catalogue()}
    assert {"polynomial", "regular", "dln", "rrr"} <= shipped and not shipped & {"square", "spline"}
    path = write_toml('[[case]]\nid = "s"\nfamily = "spline"\n')
    with pytest.raises(UserError, match="field 'family': family 'spline' \\(plugin spline-dist, spline_pkg:Family\\) "
                                        "failed to load: ImportError"):
        load_file(path)
    (case,) = load_file(write_toml('[[case]]\nid = "s2"\nfamily = "square"\nd = 3\n', name="sq.toml"))
    assert case.params == {"d": 3}


def test_a_plugin_module_that_registers_itself_is_credited_to_its_distribution(entry_points):
    def load():  # what importing a module that uses the decorator does
        llcbench.register_estimator("self_registered")(STUB)
        return STUB

    entry_points(llcbench_estimators=[FakeEntryPoint("self_registered", "m:SPEC", load, dist="self-dist")])
    assert registry.get_estimator("self_registered").estimate is stub_estimate
    assert registry.ESTIMATORS.origin("self_registered") == "plugin self-dist"
    assert registry.ESTIMATORS.failures() == {}


def test_runner_times_every_estimate_itself():
    (case,) = [c for c in load_catalogue() if c.id == "poly/w1^2"]
    record = execute(RunSpec(case, STUB, StubConfig(), seed=0))
    assert record["estimator_seconds"] == 0.0  # what the estimator reported, kept
    assert record["seconds"] >= SLEEP  # what the runner measured around the call
    assert record["lambda_hat"] == 0.5 and record["rel_error"] == 0.0
