"""The case catalogue: built-in files load, truth cross-checks pass, and every
kind of bad input is one line naming file, case and field, exit status 2."""

import json
import re
from fractions import Fraction

import pytest

from llcbench.catalogue import build_target, case_dim, case_truth, load_catalogue, load_file, select
from llcbench.errors import UserError
from llcbench.families import FAMILIES


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def test_builtin_catalogue_sizes(catalogue):
    by_family = {}
    for case in catalogue:
        by_family.setdefault(case.family, []).append(case)
    assert len(by_family["polynomial"]) >= 20
    assert len(by_family["regular"]) >= 6
    assert len(by_family["dln"]) >= 12
    assert len(by_family["rrr"]) >= 8


def test_every_builtin_truth_computes_and_matches_expectations(catalogue):
    # case_truth raises if a computed value disagrees with the file's expect_*.
    checked = 0
    for case in catalogue:
        truth = case_truth(case)
        assert truth.lam > 0 and truth.multiplicity >= 1
        assert truth.lam <= Fraction(case_dim(case), 2)  # λ ≤ d/2 always
        checked += case.expect_lambda is not None
    assert checked >= 30


def test_catalogue_coverage(catalogue):
    dims = {c.id: case_dim(c) for c in catalogue}
    regular = [dims[c.id] for c in catalogue if c.family == "regular"]
    assert min(regular) == 2 and max(regular) >= 1000
    dln = [c for c in catalogue if c.family == "dln"]
    assert max(dims[c.id] for c in dln) >= 10_000
    layers = {len(c.params["widths"]) - 1 for c in dln}
    assert {2, 3, 4, 5, 6} <= layers
    assert sum(case_truth(c).multiplicity > 1 for c in dln) >= 4
    assert any(c.params.get("variant") == "generic" for c in dln)
    rrr_sources = " ".join(case_truth(c).source for c in catalogue if c.family == "rrr")
    for k in (1, 2, 3, 4):
        assert f"case {k}" in rrr_sources


def test_a_file_with_one_case_of_each_family_loads(write_toml):
    path = write_toml(
        '''
[[case]]
id = "poly/w1^2*w2^4"      # unique
family = "polynomial"
expr = "w1**2 * w2**4"
n = 10000                  # optional; sets beta* = 1/log n
expect_lambda = "1/4"      # optional cross-check, rational string
expect_multiplicity = 1    # optional

[[case]]
id = "dln/4-6-3-5-7/r2"
family = "dln"
widths = [4, 6, 3, 5, 7]   # input first, output last
rank = 2

[[case]]
id = "rrr/5-3-5/r0"
family = "rrr"
inputs = 5
hidden = 3
outputs = 5
rank = 0

[[case]]
id = "regular/linear-5x4"
family = "regular"
model = "linear"           # or "logistic"
in_features = 5
out_features = 4
'''
    )
    cases = load_file(path)
    assert [c.id for c in cases] == ["poly/w1^2*w2^4", "dln/4-6-3-5-7/r2", "rrr/5-3-5/r0", "regular/linear-5x4"]
    truths = [case_truth(c) for c in cases]
    assert [t.lam for t in truths] == [Fraction(1, 4), Fraction(10), Fraction(13, 2), Fraction(10)]
    assert [case_dim(c) for c in cases] == [2, 4 * 6 + 6 * 3 + 3 * 5 + 5 * 7, 30, 20]


def test_case_key_changes_with_definition(write_toml):
    a = load_file(write_toml('[[case]]\nid = "a"\nfamily = "polynomial"\nexpr = "w1**2"\n', "a.toml"))[0]
    b = load_file(write_toml('[[case]]\nid = "a"\nfamily = "polynomial"\nexpr = "w1**2"\nn = 500\n', "b.toml"))[0]
    c = load_file(write_toml('[[case]]\nid = "a"\nfamily = "polynomial"\nexpr = "w1**2"\nnote = "x"\n', "c.toml"))[0]
    assert a.key() != b.key()
    assert a.key() == c.key()  # a note does not change the target


def test_select_by_id_prefix_and_family(catalogue):
    assert {c.family for c in select(catalogue, family="rrr")} == {"rrr"}
    picked = select(catalogue, ids=["dln/5-5-5-5/"])
    assert {c.id for c in picked} == {"dln/5-5-5-5/r2", "dln/5-5-5-5/r2/generic"}
    with pytest.raises(UserError, match="no such case"):
        select(catalogue, ids=["nope"])
    with pytest.raises(UserError, match="unknown family"):
        select(catalogue, family="nope")


def test_build_target_for_a_case_of_each_family(catalogue):
    for family in FAMILIES:
        case = min((c for c in catalogue if c.family == family), key=case_dim)  # the family's smallest
        target = build_target(case)
        assert target.dim == case_dim(case)
        assert target.truth == case_truth(case)


BAD = [
    # (file text, words the one-line message must contain)
    ('[[case]]\nid = "x"\nfamily = "polynomial"\nexpr = "w1**2"\nn = ', ["malformed TOML"]),
    ('[[case]]\nid = "x"\nfamily = "spline"\n', ["case 'x'", "field 'family'", "unknown family"]),
    ('[[case]]\nid = "x"\nfamily = "dln"\nwidths = [2, 2, 2]\n', ["case 'x'", "field 'rank'", "missing"]),
    ('[[case]]\nid = "x"\nfamily = "dln"\nwidths = "2,2,2"\nrank = 0\n', ["case 'x'", "field 'widths'", "list of integers"]),
    ('[[case]]\nid = "x"\nfamily = "dln"\nwidths = [2, 2, 2]\nrank = 0\nwidht = 3\n', ["case 'x'", "field 'widht'", "unknown field"]),
    ('[[case]]\nid = "x"\nfamily = "polynomial"\nexpr = "w1**2"\n[[case]]\nid = "x"\nfamily = "polynomial"\nexpr = "w1**4"\n',
     ["case 'x'", "field 'id'", "duplicate"]),
    ('[[case]]\nid = "x"\nfamily = "polynomial"\nexpr = "(w1 - w2)**2 + w3**2"\n', ["case 'x'", "degenerate"]),
    ('[[case]]\nid = "x"\nfamily = "polynomial"\nexpr = "w1**2 - w2**2"\n', ["case 'x'", "not a potential"]),
    ('[[case]]\nid = "x"\nfamily = "polynomial"\nexpr = "w1**2"\nexpect_lambda = "1/3"\n',
     ["case 'x'", "field 'expect_lambda'", "1/2", "1/3"]),
    ('[[case]]\nid = "x"\nfamily = "polynomial"\nexpr = "(w1*w2)**2"\nexpect_multiplicity = 1\n',
     ["case 'x'", "field 'expect_multiplicity'"]),
    ('[[case]]\nid = "x"\nfamily = "polynomial"\nexpr = "w1**2"\nn = -5\n', ["case 'x'", "field 'n'"]),
    ('[[case]]\nid = "x"\nfamily = "polynomial"\nexpr = "w1**2"\nexpect_lambda = "half"\n', ["case 'x'", "field 'expect_lambda'"]),
    ('[[case]]\nfamily = "polynomial"\nexpr = "w1**2"\n', ["field 'id'", "missing"]),
    ('[case]\nid = "x"\n', ["array of tables"]),
    ('title = "x"\n', ["unexpected top-level key"]),
    ('[[case]]\nid = "x"\nfamily = "regular"\nmodel = "linear"\nin_features = 2\nnoise_std = -1\n', ["case 'x'", "field 'noise_std'"]),
]


@pytest.mark.parametrize("text,words", BAD)
def test_bad_case_files_are_one_line_exit_2(cli, write_toml, text, words):
    path = write_toml(text)
    proc = cli("cases", "--file", path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert str(path) in err, err
    for word in words:
        assert word in err, (word, err)


def test_missing_file_is_one_line(cli, tmp_path):
    proc = cli("cases", "--file", tmp_path / "nope.toml")
    assert proc.returncode == 2 and "no such case file" in proc.stderr and "Traceback" not in proc.stderr


def test_cases_json_keys_and_values(cli, write_toml):
    path = write_toml('[[case]]\nid = "mine/w^4"\nfamily = "polynomial"\nexpr = "w1**4 + w2**2"\nn = 1000\n')
    proc = cli("cases", "--no-builtin", "--file", path, "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert rows == [{
        "id": "mine/w^4", "family": "polynomial", "dim": 2, "n": 1000, "lambda": "3/4", "lambda_float": 0.75,
        "multiplicity": 1, "kind": "exact", "source": rows[0]["source"],
    }]
    assert "Newton" in rows[0]["source"]


def test_cases_table_lists_builtin_and_user_cases(cli, write_toml):
    path = write_toml('[[case]]\nid = "mine/quartic"\nfamily = "polynomial"\nexpr = "w1**4"\n')
    proc = cli("cases", "--file", path)
    assert proc.returncode == 0, proc.stderr
    assert "mine/quartic" in proc.stdout and "dln/5-5-5-5/r2" in proc.stdout
    proc = cli("cases", "--family", "dln")
    assert "poly/" not in proc.stdout and "dln/4-6-3-5-7/r2" in proc.stdout


def test_truth_command(cli):
    proc = cli("truth", "w1**2 * w2**4")
    assert proc.returncode == 0 and "λ = 1/4" in proc.stdout and "m = 1" in proc.stdout
    assert "certified by: Newton polyhedron" in proc.stdout
    proc = cli("truth", "(w1*w2)**2", "--json")
    assert json.loads(proc.stdout)["multiplicity"] == 2
    assert json.loads(proc.stdout)["method"] == "Newton polyhedron"
    # degenerate for the Newton rule, decided in the plane by adapted coordinates
    proc = cli("truth", "(w1 - w2)**2", "--json")
    out = json.loads(proc.stdout)
    assert proc.returncode == 0 and out["lambda"] == "1/2" and out["method"] == "adapted coordinates in the plane"
    proc = cli("truth", "(w1 - w2)**2 + w3**2")
    assert proc.returncode == 1 and "cannot certify" in proc.stdout and "upper bound" in proc.stdout
    proc = cli("truth", "w1**2 - w2**2")
    assert proc.returncode == 1 and "not a potential" in proc.stdout and "upper bound" not in proc.stdout
    proc = cli("truth", "w1**2 + x")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_unknown_command_is_one_line(cli):
    proc = cli("frobnicate")
    assert proc.returncode == 2 and proc.stdout == ""
    # argparse's shape, "PROG: error: MESSAGE", with the program named once
    assert re.fullmatch(r"llcbench: error: argument command: invalid choice: 'frobnicate' \(choose from [^\n]*'run'[^\n]*\)\n",
                        proc.stderr), proc.stderr
    proc = cli("run", "--estimator", "sgld", "--seeds", "x")
    assert proc.returncode == 2
    assert proc.stderr == "llcbench run: error: argument --seeds: invalid int value: 'x'\n", proc.stderr


def test_families_lists_the_common_fields(cli):
    import dataclasses

    from llcbench.case import Case
    from llcbench.catalogue import COMMON_FIELDS

    # every field of a case that a file sets (not the family's params, the file's name or the unkeyed params derived from them) is listed
    # (an asserted truth's keys lambda, multiplicity, source are the Case's asserted_* fields)
    names = {f.name.removeprefix("asserted_") for f in dataclasses.fields(Case)} - {"params", "file", "unkeyed"}
    assert set(COMMON_FIELDS) == names

    proc = cli("families")
    assert proc.returncode == 0, proc.stderr
    head, _, rest = proc.stdout.partition("\n\n")
    assert head.startswith("common fields")
    listed = {line.split()[0]: line.split()[1:] for line in head.splitlines()[1:]}
    assert set(listed) == set(COMMON_FIELDS)
    assert listed["seed"][:3] == ["int", "default", "0"]
    assert listed["id"][:2] == ["str", "required"] and listed["n"][0] == "int"
    for word in ("nβ* = n/log n", "noiseless", "3/2"):
        assert word in head, word
    for name, family in FAMILIES.items():
        assert f"{name}  (default n = {family.default_n}" in rest
