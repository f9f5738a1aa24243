"""Documented limits (llcbench.limits, docs/limits.md), checked before any work: polynomials, case
files, run sizes; "not a potential"; user text in figures; cache and executor faults as one line, exit 2."""

import json
import os
import subprocess
import sys
import time

import pytest

from llcbench import limits
from llcbench.catalogue import load_file
from llcbench.cli import main
from llcbench.errors import UserError
from llcbench.truth.plane import NotAPotential
from llcbench.truth.polynomial import parse_polynomial, polynomial_truth

TWELVE = "+".join(f"w{i}" for i in range(1, 13))


def _one_line(capsys, argv, status=2) -> str:
    assert main(argv) == status
    out = capsys.readouterr()
    err = out.err if status == 2 else out.out
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("expr,words", [
    ("w1**1000000000000", "the degree is 1,000,000,000,000, above the limit 100"),
    ("w1**1000000000", "the degree"),
    ("(w1+w2)**160", "the degree is 160"),
    ("w99999999**2", "the number of variables"),
    (f"({TWELVE})**40", "the number of terms after expansion"),
    ("2**2**2**2**2*w1**2", "the size of a constant"),
    ("9**9**9*w1**2", "the size of a constant"),
    ("(2**200*w1+w2)**2", "the size of a coefficient"),
    ("w1**2*" + "7" * 100, "the digits of the number"),
    ("+".join(f"w{i}**2" for i in range(1, 2001)), "the expression's length"),
    ("+".join(f"w{i}**2" for i in range(1, 200)), "the number of variables"),
])
def test_truth_refuses_a_polynomial_beyond_the_limits_at_once(capsys, expr, words):
    assert main(["truth", "w1**2"]) == 0  # the command's first call imports sympy's parser: start-up, not the check
    capsys.readouterr()
    started = time.monotonic()
    err = _one_line(capsys, ["truth", expr])
    # the refusal is decided from bounds on the unexpanded expression: well under a second here
    # (every one of these took minutes or gigabytes before), CLI start-up aside
    assert time.monotonic() - started < 1.0
    assert words in err and "docs/limits.md" in err, err


def test_bounds_are_not_tripped_by_polynomials_within_the_limits():
    """Near the limits but inside them: the term bound is the multinomial count, not a guess."""
    for expr in ("(w1**2+w2**2+w3**2)**10", "+".join(f"w{i}**2" for i in range(1, 101)),
                 "1/3*w1**2+1/5*w2**2", "(w1+w2)**2*w1**98", "w1**2" + "+w1**2" * 400):
        parse_polynomial(expr)  # no refusal
    with pytest.raises(UserError, match="number of terms"):
        parse_polynomial("(w1+w2+w3+w4+w5)**20")  # C(24, 4) = 10,626 terms > 1,000
    parse_polynomial("(w1+w2+w3+w4+w5)**8")  # C(12, 4) = 495 terms


def test_force_size_lifts_the_size_limits(capsys):
    try:
        assert main(["truth", "w1**102", "--force-size"]) == 0
        assert "λ = 1/102" in capsys.readouterr().out
        assert limits.enforced() is False
    finally:
        limits.lift(False)
    assert main(["truth", "w1**102"]) == 2 and limits.enforced()  # the next command enforces them again
    assert "the degree is 102" in capsys.readouterr().err


@pytest.mark.parametrize("expr,term", [("w1**3", "w1**3"), ("w1**2 - w2**2", "-w2**2"),
                                       ("w1**2 + w2**3", "w2**3"), ("w1**2*w2**3 + w2**4", "w1**2*w2**3"),
                                       ("w1**2 + w2**2 + w3**5", "w3**5")])
def test_a_negative_or_odd_vertex_is_not_a_potential(capsys, expr, term):
    """A vertex a of the Newton polyhedron dominates K along w_i = ±t^ω_i: a negative coefficient or
    an odd exponent there makes K < 0 arbitrarily close to 0."""
    with pytest.raises(NotAPotential, match=f"the term {term.replace('*', '[*]')} is a vertex"):
        polynomial_truth(expr)
    assert main(["truth", expr]) == 1
    out = capsys.readouterr().out
    assert "not a potential" in out and "upper bound" not in out
    # a sign change that is not at a vertex is not this rule's call (w1**4 - w1**2 w2**2 + w2**4 > 0 off 0)
    assert polynomial_truth("w1**4 - w1**2*w2**2 + w2**4").lam == 1 / 2


def _case(write_toml, body, name="c.toml"):
    return write_toml("[[case]]\n" + body, name)


@pytest.mark.parametrize("body,words", [
    ('id = "r"\nfamily = "rrr"\ninputs = 4000\nhidden = 4000\noutputs = 4000\nrank = 1\n',
     "d (the number of parameters)"),
    ('id = "r"\nfamily = "rrr"\ninputs = 2\nhidden = 2\noutputs = 2\nrank = 1\nn = 1000000000000\n', "field 'n'"),
    ('id = "r"\nfamily = "rrr"\ninputs = 2\nhidden = 2\noutputs = 2\nrank = 1\nseed = 9223372036854775808\n',
     "below 2**63"),
    ('id = "m"\nfamily = "modular_addition"\np = 1000000000\n', "case 'm'"),
    ('id = "p"\nfamily = "polynomial"\nexpr = "w1**2"\nexpect_lambda = "1e999999999"\n', "exponent beyond"),
    ('id = "p"\nfamily = "polynomial"\nexpr = "w1**2"\nexpect_lambda = "' + "1" * 100 + '"\n', "longer than 64"),
    ('id = "p"\nfamily = "polynomial"\nexpr = "w1**1000000000"\n', "the degree"),
    ('id = "d"\nfamily = "dln"\nwidths = [' + ", ".join(["2"] * 1001) + "]\n", "the number of entries"),
    ('id = "x"\nfamily = ["polynomial"]\n', "field 'family': expected a string"),
    ('id = "x"\nfamily = {a = 1}\n', "field 'family': expected a string"),
    ('id = "a\\u0000b"\nfamily = "polynomial"\nexpr = "w1**2"\n', "U+0000"),
    ('id = "a\\nb"\nfamily = "polynomial"\nexpr = "w1**2"\n', "U+000A"),
    ('id = "abc\\u202edef"\nfamily = "polynomial"\nexpr = "w1**2"\n', "RIGHT-TO-LEFT OVERRIDE"),
    ('id = "p"\nfamily = "regular"\nmodel = "linear"\nin_features = 2\nnoise_std = ' + "9" * 400 + "\n",
     "expected a number, got an integer of 400 digits"),
])
def test_case_files_beyond_the_limits_or_malformed_are_one_line(write_toml, capsys, body, words):
    path = _case(write_toml, body)
    started = time.monotonic()
    with pytest.raises(UserError, match=None) as err:
        load_file(path)
    assert time.monotonic() - started < 1.0
    assert words in str(err.value) and str(path) in str(err.value), err.value
    assert words in _one_line(capsys, ["cases", "--no-builtin", "--file", str(path)])


def test_invalid_utf8_case_file_is_named(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_bytes(b'[[case]]\nid = "caf\xe9"\n')
    err = _one_line(capsys, ["cases", "--no-builtin", "--file", str(path)])
    assert "not UTF-8 text (byte 0xe9" in err and "line 2" in err


def test_a_run_too_large_for_memory_is_refused_before_it_allocates(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "available_memory", lambda: 16 * 2**30)
    db = tmp_path / "s.sqlite"
    err = _one_line(capsys, ["run", "--estimator", "sgld", "--case", "poly/w1^2", "--set", "steps=1000000000",
                             "--db", str(db), "--quiet"])
    assert "steps × chains = 1,000,000,000 × 8" in err and "16 GiB" in err, err
    from llcbench.store import Store

    with Store(db) as store:
        assert store.count() == 0


def test_scheduler_that_is_no_address_fails_fast(capsys):
    started = time.monotonic()
    err = _one_line(capsys, ["run", "--estimator", "sgld", "--case", "poly/w1^2", "--executor", "dask",
                             "--scheduler", "notanaddress"])
    assert "not a scheduler address" in err and time.monotonic() - started < 5


def test_anchor_cache_faults_are_one_line(tmp_path, monkeypatch):
    from llcbench.families import anchor_cache

    blocker = tmp_path / "afile"
    blocker.write_text("")
    monkeypatch.setenv(anchor_cache.ENV, str(blocker / "cache"))
    with pytest.raises(UserError, match=f"{blocker} is a file, not a folder"):
        anchor_cache.load_or_build("kind", {"a": 1}, lambda: pytest.fail("not reached"))
    monkeypatch.setenv(anchor_cache.ENV, str(tmp_path / "cache"))
    anchor_cache.path_for("kind", {"a": 1}).mkdir(parents=True)  # an entry replaced by a folder
    with pytest.raises(UserError, match="is a folder, not a file: remove it"):
        anchor_cache.load("kind", {"a": 1})


def test_user_text_in_figures_is_never_math_text():
    """A case id such as 'mt/$x^{$' broke every report of its store (matplotlib parsed it as math)."""
    from llcbench.report.figures import HAT, plt, svg

    fig, ax = plt.subplots()
    ax.set_title("mt/$x^{$")
    ax.set_yticks([0, 1], ["mt/$x^{$", "a$b"])
    ax.plot([0, 1], [0, 1], label="$\\frac{")
    ax.set_xlabel(HAT)  # the report's own labels stay math text (λ̂ with its hat)
    ax.legend()
    assert len(svg(fig)) > 1000


# ---- the copies of a deep linear network's data a run holds (llcbench.families.dln.memory_terms)

def test_dln_memory_terms_are_the_documented_copies():
    """Each term written out from the docstring's formula (a term dropped or miscounted changes a number)."""
    from llcbench.families.dln import memory_terms, run_data_bytes

    n, k = 10**6, 200  # widths [200, 150, 200], noiseless: x alone (labels are T x), k = H_0
    count = -(-n // 1024)  # 977 batches, each of >= 1023 rows >= k: an epoch plan
    want = {"data": 8 * n * 200, "build": 0, "rule": 8 * n + 8 * 4096 * k,
            "sampling copy": 4 * n * 200, "epoch moments": 8 * n + 4 * n * k + 4 * count * k * k}
    assert memory_terms(n, [200, 150, 200], False, batch_size=1024, dtype="float32") == want
    assert run_data_bytes(n, [200, 150, 200], False, batch_size=1024, dtype="float32") == 3_364_320_000
    # noisy labels, float64 (no sampling copy), i.i.d. batches: count × b rows, k = H_0 + H_M
    n, k, count = 500_000, 300, 1000
    t = memory_terms(n, [150, 100, 150], True, batch_size=500, dtype="float64", batch_draw="iid")
    assert t == {"data": 16 * n * 300, "build": 8 * n * 150, "rule": 8 * n + 8 * 4096 * k, "sampling copy": 0,
                 "epoch moments": 8 * count * 500 + 8 * count * 500 * k + 8 * count * k * k}
    assert run_data_bytes(n, [150, 100, 150], True, batch_size=500, dtype="float64", batch_draw="iid") == \
        t["data"] + t["epoch moments"]
    # noisy labels layer by layer (a narrow first layer): the build peaks at x, y, e and [x | e], one
    # e (30 wide) beyond the data, more than x and the activations 60 + 30 wide; full batch: no epoch
    t = memory_terms(n, [1000, 20, 60, 30], True)
    assert t["build"] == 8 * n * 30 and t["data"] == 8 * n * 2 * 1030 and t["epoch moments"] == 0
    # batches shorter than k: no epoch plan, one batch's rows per step
    assert memory_terms(n, [200, 150, 200], False, batch_size=100, dtype="float32")["epoch moments"] == \
        8 * n + 4 * 100 * 200


def test_a_dln_run_beyond_the_memory_is_refused_by_its_config(write_toml, monkeypatch):
    """The build alone fits; the run's float32 copy and epoch moments do not (before any data is drawn)."""
    from llcbench.catalogue import case_dim
    from llcbench.estimators import get_estimator
    from llcbench.estimators.base import make_config
    from llcbench.execute import _check_sizes
    from llcbench.families.dln import memory_terms, run_data_bytes
    from llcbench.runner import RunSpec

    path = write_toml('[[case]]\nid = "m/big"\nfamily = "dln"\nwidths = [200, 150, 200]\nrank = 2\n'
                      'n = 1000000\nseed = 1\n')
    case = load_file(path)[0]
    spec = get_estimator("sgld")
    t = memory_terms(10**6, [200, 150, 200], False, batch_size=1024, dtype="float32")
    build = t["data"] + t["build"] + 3 * 8 * case_dim(case)
    default = [RunSpec(case, spec, make_config(spec.config_cls, []), 0)]
    run_need = limits.run_size_bytes(default[0].config, case_dim(case)) + run_data_bytes(
        10**6, [200, 150, 200], False, batch_size=1024, dtype="float32")
    # the default float32 run alone takes 70 % of the memory: it fits, as do the build (under half) and a
    # full-batch float64 run
    assert build < 0.5 * run_need / 0.7
    monkeypatch.setattr(limits, "available_memory", lambda: int(run_need / 0.7))
    _check_sizes([RunSpec(case, spec, make_config(spec.config_cls, ["dtype=float64", "batch_size=1000000"]), 0)])
    _check_sizes(default)
    # two worker processes hold two such runs at once: 2 × 3.13 GiB is more than 80 % of it
    with pytest.raises(UserError) as err:
        _check_sizes(default, at_once=2)
    text = str(err.value)
    assert text.startswith(f"{path}: case 'm/big': steps × chains = ") and "\n" not in text, text
    assert "with its data (≈ 3.13 GiB at the run's peak), 2 runs at once," in text and "--force-size" in text, text
    # the bar is 80 % of what is available
    monkeypatch.setattr(limits, "available_memory", lambda: int(run_need / 0.79))
    _check_sizes(default)
    monkeypatch.setattr(limits, "available_memory", lambda: int(run_need / 0.81))
    with pytest.raises(UserError):
        _check_sizes(default)
    _check_sizes(default, "cuda")  # its copies on the GPU
    limits.lift()
    try:
        _check_sizes([RunSpec(case, spec, make_config(spec.config_cls, []), 0)])  # --force-size
    finally:
        limits.lift(False)


CHILD = """
import json, resource, sys
import torch
from llcbench.catalogue import build_target, load_file
from llcbench.estimators import get_estimator
from llcbench.estimators.base import make_config

def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))

torch.set_num_threads(1)
spec = get_estimator("sgld")
config = make_config(spec.config_cls, ["steps=200", "burn_in=100", "hessian_iters=5", "adapt_iters=3"])
tiny, case = sys.argv[1:]
spec.estimate(build_target(load_file(tiny)[0]), config, 0)  # every library loaded, the allocator warm
base = rss()
spec.estimate(build_target(load_file(case)[0]), config, 0)
print(json.dumps({"grown": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmRSS from /proc (Linux)")
def test_a_dln_run_stays_within_its_memory_bound(write_toml):
    """Peak RSS of a real run (a subprocess, ≈ 15 s) over its resident set after a tiny run: above the
    float64 data alone and within run_data_bytes at the run's config (float32, batch 1024)."""
    from llcbench.estimators import get_estimator
    from llcbench.estimators.base import make_config
    from llcbench.families.dln import data_bytes, dln_dim, run_data_bytes

    n, widths = 200_000, [200, 150, 200]
    text = '[[case]]\nid = "m/{n}"\nfamily = "dln"\nwidths = [200, 150, 200]\nrank = 100\nn = {n}\nseed = 1\n'
    tiny, case = write_toml(text.format(n=2000), "tiny.toml"), write_toml(text.format(n=n), "case.toml")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tiny), str(case)], env=env, cwd=case.parent,
                          capture_output=True, text=True, timeout=300, check=False)  # cwd: not another llcbench
    assert proc.returncode == 0, proc.stderr[-2000:]
    grown = json.loads(proc.stdout.strip().splitlines()[-1])["grown"]
    config = make_config(get_estimator("sgld").config_cls, ["steps=200", "burn_in=100"])
    need = run_data_bytes(n, widths, False, batch_size=1024, dtype="float32") + limits.run_size_bytes(
        config, dln_dim(widths))  # what the check counts: 0.64 GiB
    # the process's own working memory beyond what the check counts (Python objects, the 31 MB batch
    # moments below glibc's 32 MiB mmap threshold, kept after they are freed): 17 MiB here, up to 78 MiB
    # through the CLI, varying by 65 MiB between identical runs (scripts/dln_memory.py at 0.6.0); a term
    # dropped from the need takes at least 184 MiB (the epoch moments) off it. The float64 data (x alone:
    # noiseless labels are T x) are 0.46 of the need, with the sampling copy 0.70.
    assert data_bytes(n, widths, False) * 1.5 < grown <= need + 128 * 2**20, (grown, need)
