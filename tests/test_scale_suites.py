"""The deep-linear-network size tiers (``--suite scale-1k`` … ``scale-10m``): generated reproducibly
by scripts/make_scale_suites.py, loaded and checked like any case file, with the protocol teacher
rebuilt from its recipe."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from llcbench import limits
from llcbench.catalogue import build_target, case_truth, load_file, suite_config, suite_file, suite_names
from llcbench.errors import UserError
from llcbench.families.dln import (numerical_chain_ranks, product_matrix, protocol_layer, protocol_layer_ranks)
from llcbench.truth.dln_local import generic_chain_ranks

ROOT = Path(__file__).resolve().parents[1]
TIERS = ("scale-1k", "scale-10k", "scale-100k", "scale-1m", "scale-10m")


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("make_scale_suites", ROOT / "scripts" / "make_scale_suites.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_scale_suites"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows(script):
    limits.lift()
    try:
        return {name: script.generate(name) for name in TIERS}
    finally:
        limits.lift(False)


def test_suites_and_docs_are_the_script_output(script, rows):
    """The committed files are exactly what the script writes from its fixed seed (rerun it after
    changing it; never edit the files by hand)."""
    for name in TIERS:
        assert script.render(name, rows[name]) == suite_file(name).read_text(encoding="utf-8"), name
    assert script.render_doc(rows) == (ROOT / "docs" / "scale.md").read_text(encoding="utf-8")


def test_cpu_tiers_load_with_their_truths_and_settings(rows):
    assert set(TIERS) <= set(suite_names())
    for name in ("scale-1k", "scale-10k", "scale-100k"):
        cases = load_file(suite_file(name))
        assert 10 <= len(cases) <= 20
        for case, row in zip(cases, rows[name]):
            truth = case_truth(case)  # cross-checks expect_* against the engine
            assert truth.kind == ("exact" if row["truth"] is not None else "asserted"), case.id
            assert case.params["variant"] == "protocol" and case.params["inputs"] == "uniform"
        cfg = suite_config(name, "sgld")
        assert cfg["gamma"] == "1.0" and cfg["batch_size"] == "500"
        assert int(cfg["burn_in"]) == int(0.9 * int(cfg["steps"]))
        rms = suite_config(name, "rmsprop_sgld")
        assert "step_size" not in rms and rms == {k: v for k, v in cfg.items() if k != "step_size"}


def test_gpu_tiers_are_refused_on_cpu_limits_with_a_clear_line():
    with pytest.raises(UserError, match=r"d \(the number of parameters\) is .* above the limit .*--force-size"):
        load_file(suite_file("scale-1m"))
    limits.lift()
    try:
        assert len(load_file(suite_file("scale-10m"))) == 10
    finally:
        limits.lift(False)


def test_protocol_teacher_ranks_are_the_generic_ones(rows):
    """The float64 teachers of the 1K tier have the sub-chain ranks the truth assumes (SVD, gap >= 1e6)."""
    for row in rows["scale-1k"]:
        e = row["entry"]
        layers = [protocol_layer(e["widths"], e["keep"], e["seed"], j) for j in range(len(e["widths"]) - 1)]
        assert numerical_chain_ranks(layers) == generic_chain_ranks(e["widths"],
                                                                    protocol_layer_ranks(e["widths"], e["keep"]))


CASE = """
[[case]]
id = "p/{tag}"
family = "dln"
variant = "protocol"
widths = [6, 9, 4, 7]
keep = [-1, 2, 3]
rank = 2
inputs = "uniform"
n = 500
seed = 5
"""


def test_protocol_target_is_the_recipe(write_toml):
    case = load_file(write_toml(CASE.format(tag="a")))[0]
    t = build_target(case)
    layers = [protocol_layer([6, 9, 4, 7], [-1, 2, 3], 5, j) for j in range(3)]
    assert torch.equal(t.w_star, torch.from_numpy(np.concatenate([a.reshape(-1) for a in layers])))
    assert not layers[1][2:, :].any() and layers[1][:2, :].all()  # 9 -> 4: rows (outputs) zeroed past 2
    assert not layers[2][:, 3:].any()  # 4 -> 7: inputs zeroed past 3
    assert float(t.x.abs().max()) <= 10.0 and float(t.x.abs().max()) > 9.0
    assert float(t.loss(t.w_star[None])) == 0.0  # noiseless: the teacher is the exact minimum
    assert torch.linalg.matrix_rank(product_matrix(t.w_star[None], t.widths)[0]) == 2
    assert case_truth(case).kind == "exact"


@pytest.mark.parametrize("edit, field", [
    (("rank = 2", "rank = 3"), "rank"),
    (("keep = [-1, 2, 3]", "keep = [-1, 2]"), "keep"),
    (("keep = [-1, 2, 3]", "keep = [-1, 2, 5]"), "keep"),
    (("keep = [-1, 2, 3]", "keep = [-2, 2, 3]"), "keep"),
    (('inputs = "uniform"', 'inputs = "cauchy"'), "inputs"),
    (('variant = "protocol"', 'variant = "canonical"'), "keep"),
])
def test_bad_protocol_fields_are_refused_naming_the_field(write_toml, edit, field):
    path = write_toml(CASE.format(tag="b").replace(*edit))
    with pytest.raises(UserError) as exc:
        load_file(path)
    text = str(exc.value)
    assert "\n" not in text and text.startswith(f"{path}: case 'p/b': field '{field}': "), text


@pytest.mark.slow
def test_bad_protocol_field_on_the_command_line(cli, write_toml):
    """Through the CLI: one line, exit 2 (a subprocess: ≈ 10 s under load)."""
    path = write_toml(CASE.format(tag="b").replace("rank = 2", "rank = 3"))
    proc = cli("cases", "--file", path)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"llcbench: error: {path}: case 'p/b': field 'rank': the protocol teacher's product has rank 2 "
        "(the smallest layer rank), got 3"]


def test_data_beyond_the_memory_is_refused_before_allocating(write_toml, monkeypatch):
    case = load_file(write_toml(CASE.format(tag="c").replace("n = 500", "n = 9000000")))[0]
    monkeypatch.setattr(limits, "available_memory", lambda: 2**29)  # x alone: 0.40 GiB, over half of it
    with pytest.raises(UserError, match=r"case 'p/c': n = 9,000,000 data points .* GiB.*--force-size"):
        build_target(case)


def test_planning_asks_supports_of_a_target_without_its_data(monkeypatch):
    """Planning (``plan.runnable_cases``) asks each estimator's ``supports`` about a DLN target built
    without its data (the scale-100k teachers hold up to 3.7 GiB of x), and every shipped estimator
    answers it as it answers the whole target."""
    from llcbench import catalogue, plan
    from llcbench.estimators import ESTIMATORS, get_estimator
    from llcbench.families import dln

    small = [c for c in catalogue.load_catalogue() if c.family in ("dln", "rrr")][:8]
    small += catalogue.load_file(suite_file("scale-1k"))[:3]
    for case in small:
        view, whole = catalogue.support_target(case), build_target(case)
        assert view.x is None and whole.x is not None
        assert torch.equal(view.w_star, whole.w_star) and torch.equal(view.teacher, whole.teacher)
        assert (view.dim, view.n, view.truth) == (whole.dim, whole.n, whole.truth)
        for name in ESTIMATORS:
            spec = get_estimator(name)
            assert spec.supports(view) == spec.supports(whole), (name, case.id)
    with pytest.raises(RuntimeError, match="without its data"):
        view.loss(view.w_star[None])

    def drawn(*args, **kwargs):
        raise AssertionError("planning drew a target's data")

    monkeypatch.setattr(dln, "check_data_memory", drawn)  # the first thing a build with data does
    cases = catalogue.load_file(suite_file("scale-100k"))
    runnable, skipped = plan.runnable_cases(cases, get_estimator("sgld"), explicit=False, named=True)
    assert [c.id for c in runnable] == [c.id for c in cases] and not skipped


def test_scale_tables_reads_aoyagis_global_value_where_the_local_one_differs():
    """scripts/scale_tables.py's second median is against Aoyagi's global λ: on scale-1k/dln/38-28-49/00
    (keep [−1, 8]: product rank 8) that is 606, not the certified local 726 the case carries (the values
    of docs/scale.md's truth table); on a full-rank teacher the two agree (18-12-27: 198)."""
    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("scale_tables", ROOT / "scripts" / "scale_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    glob = mod.global_values("scale-1k")
    local = {c.id: c.expect_lambda for c in load_file(suite_file("scale-1k"))}
    assert glob["scale-1k/dln/38-28-49/00"] == 606.0 and str(local["scale-1k/dln/38-28-49/00"]) == "726"
    assert glob["scale-1k/dln/18-12-27/02"] == 198.0 and str(local["scale-1k/dln/18-12-27/02"]) == "198"
    assert len(glob) == 12
