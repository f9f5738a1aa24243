"""Property test: a malformed case file is one line and exit status 2, never a traceback or a hang.

Generated files go through the library's error path in this process (``llcbench.cli.main``, as
``llcbench cases --no-builtin --file F``), not a subprocess per example, so that a few hundred
examples run in seconds."""

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llcbench.cli import main

KEYS = ["id", "family", "n", "seed", "noise_std", "expect_lambda", "expect_multiplicity", "lambda", "multiplicity",
        "source", "note", "expr", "prior_exponents", "inputs", "hidden", "outputs", "rank", "widths", "variant",
        "model", "in_features", "out_features", "p", "parameters", "w_star", "unknown_key"]
FAMILIES = ["polynomial", "rrr", "dln", "regular", "regression", "nope", ""]
# values near the edges: huge and negative integers, non-finite floats, control and direction characters,
# math-text dollars, polynomials beyond the limits
TRICKY = ["w1**2", "w1**3", "w1**1000000000", "(w1+w2)**160", "w99999999**2", "2**2**2**2**2*w1**2", "1e999999999",
          "3/2", "0", "-1", "mt/$x^{$", "a\u202eb", "a\x00b", "a\nb", "", " ", "w1**2*w2**4", "w1^2+w2^2",
          "(((((w1)))))**2", "w1/0", "w1**(1/2)"]

scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2, 3, 10**12, 2**63, -1, 10**400]),
    st.floats(allow_nan=False, allow_infinity=False),  # TOML allows nan/inf: written below as literals
    st.sampled_from([math.inf, -math.inf, math.nan]),
    st.booleans(),
    st.sampled_from(TRICKY),
    st.text(max_size=12),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2)),
                      max_leaves=6)
entries = st.fixed_dictionaries(
    {"id": st.one_of(st.sampled_from(["ok/1", "mt/$x^{$"] + TRICKY), values),
     "family": st.one_of(st.sampled_from(FAMILIES), values)},
    optional={k: values for k in KEYS[2:]},
)


def _toml(value) -> str:
    """A value as TOML (strings as JSON strings, which TOML's basic strings read, or refuse)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"


def _check(capsys, path) -> None:
    status = main(["cases", "--no-builtin", "--file", str(path)])  # any other exception fails the test
    out = capsys.readouterr()
    assert status in (0, 2), (status, out)
    if status == 2:
        assert len(out.err.strip().splitlines()) == 1 and "Traceback" not in out.err, out.err
        assert out.err.startswith("llcbench: error: ") and str(path) in out.err


# 150 examples of at most a few milliseconds each (refusals are decided before any work; the valid
# ones are small families whose truth is a formula): about 10 s on one core
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases=st.lists(entries, min_size=1, max_size=3))
def test_generated_case_files_are_read_or_refused_in_one_line(tmp_path, capsys, cases):
    text = "".join("[[case]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in case.items()) for case in cases)
    path = tmp_path / "fuzz.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _check(capsys, path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_are_read_or_refused_in_one_line(tmp_path, capsys, data):
    path = tmp_path / "bytes.toml"
    path.write_bytes(b'[[case]]\nid = "x"\nfamily = "polynomial"\n' + data)
    _check(capsys, path)
