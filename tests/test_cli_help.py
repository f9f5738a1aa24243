"""The command line teaches: every subcommand's --help has a one-line description and an example, the
installed estimators and shipped suites are listed (plugins loaded only when the help is shown), errors
name the flag the user typed, and the run table fits 160 columns unless --wide."""

import argparse
import subprocess
import sys

import pytest

from llcbench.cli import build_parser, main
from llcbench.report.console import CUT_NOTE, run_table
from synthetic_records import BASE_CONFIG, record


def subcommands(parser, prefix=()):
    """(words, parser) of every leaf subcommand, e.g. (('references', 'build'), parser)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix, parser
        return
    for name, p in subs[0].choices.items():
        yield from subcommands(p, prefix + (name,))


def test_every_subcommand_has_a_description_and_an_example():
    leaves = list(subcommands(build_parser()))
    assert len(leaves) >= 12  # cases, truth, families, estimators, run, trajectory, sweep, report, store check, 3 references
    for words, p in leaves:
        text = p.format_help()
        assert p.description and p.description.endswith(".") and "\n" not in p.description, words
        example = text.split("example:\n", 1)[1].splitlines()[0].strip()
        assert example.startswith("llcbench " + " ".join(words)), (words, example)


def test_estimator_and_suite_help_list_the_names(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in ("sgld", "rmsprop_sgld", "sgnht", "nuts", "hmc"):
        assert name in text
    for suite in ("holdout", "trajectory"):
        assert suite in text
    assert "{estimators}" not in text and "{suites}" not in text


def test_plugins_are_not_loaded_by_import_or_parser(tmp_path):
    code = ("import contextlib, io, llcbench, llcbench.cli as c; from llcbench.estimators import ESTIMATORS\n"
            "c.build_parser(); a = ESTIMATORS._loaded; f = io.StringIO()\n"
            "with contextlib.redirect_stdout(f):\n"
            "    try: c.main(['sweep', '--help'])\n"
            "    except SystemExit: pass\n"
            "print(a, ESTIMATORS._loaded)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"], out.stdout + out.stderr


@pytest.mark.parametrize("args, flag, words", [
    (["sweep", "--estimator", "sgld", "--grid", "step_scale=0.1,abc", "--case", "poly/w1^2"],
     "--grid step_scale=0.1,abc", "'abc': expected a value of type float"),
    (["run", "--estimator", "nope", "--case", "poly/w1^2"], "argument --estimator", "unknown estimator 'nope'"),
    (["sweep", "--estimator", "sgld", "--suite", "nope"], "--suite nope", "unknown suite"),
])
def test_errors_name_the_flag_typed(capsys, tmp_path, args, flag, words):
    assert main([*args, "--db", str(tmp_path / "s.sqlite")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err and words in err, err
    assert "--set" not in err


def table_records(note_len=300, case="p/a"):
    recs = []
    for i in range(3):
        r = record(f"{case}-{i}", "polynomial", 1.0, "sgld", dict(BASE_CONFIG), 0, 1.5, lambda_ref=1.2, ref_se=0.01)
        r.update(cached=False, attribution="sampler", findings_short=["x" * note_len])
        recs.append(r)
    return recs


def test_run_table_fits_160_columns_and_says_what_was_cut():
    recs = table_records()
    text = run_table(recs, 1)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 160
    assert lines[0].split()[-1] == "note" and "λ_nβ,γ (ref)" in lines[0]
    assert lines[-1] == CUT_NOTE.format(width=160) and "--json --full" in lines[-1]
    wide = run_table(recs, 1, wide=True)
    assert "x" * 300 in wide and "estimand bias" in wide and "sampler bias" in wide
    assert "--json --full" not in wide
    # long case ids are cut too, and a table that fits says nothing
    assert max(map(len, run_table(table_records(300, "c" * 80), 1).splitlines())) <= 160
    short = run_table(table_records(10), 1)
    assert "--json --full" not in short and "x" * 10 in short
