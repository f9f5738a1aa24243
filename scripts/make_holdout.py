"""Generate the out-of-sample suite ``cases/suites/holdout.toml`` from a fixed seed.

The SG-MCMC defaults were chosen by measurement on the built-in catalogue,
so the catalogue cannot tell how well they generalise. This script draws a
second set of cases, from the same four families but with random shapes,
ranks, sample sizes and data seeds, so that the defaults can be checked on
cases nobody looked at while choosing them. The holdout suite is never used
to tune anything: a default changed because of a holdout number turns the
holdout into a second training set.

Every emitted case is one the library accepts: it is parsed, its truth is
computed by the engine (written out as ``expect_lambda`` /
``expect_multiplicity``, so a later change of the engine is caught when the
file loads) and its target is built; a draw that is refused (a polynomial the
Newton rule cannot certify, separable logistic data, ...) or that coincides
with a catalogue case is skipped. Draws use only Python's ``random.Random``
integer methods, whose sequences are fixed for a given seed, so the output
is byte-identical on every run (tests/test_holdout.py checks it).

    python scripts/make_holdout.py            # rewrite the file
    python scripts/make_holdout.py --check    # exit 1 if the file is not what the script writes
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

SEED = 20250901
OUT = Path(__file__).resolve().parents[1] / "cases" / "suites" / "holdout.toml"
MAX_DIM = 200  # the catalogue's small cases are d <= 216 (one 10,000-d network aside)
DATA_N = (10_000, 20_000, 30_000, 50_000, 100_000)  # sample sizes of the data families
COUNTS = {"dln": 8, "rrr": 6, "polynomial": 8, "regular": 6}

HEADER = """\
# Out-of-sample suite: cases drawn at random (seed {seed}) by scripts/make_holdout.py.
# Do not edit by hand: rerun the script (a test checks the file is byte-identical
# to its output).
#
# These cases are NEVER used to tune anything. The SG-MCMC defaults were chosen
# on the built-in catalogue; this suite only measures how well they carry over
# to cases of the same families with shapes, ranks, sample sizes and data seeds
# nobody looked at. Run it with
#     llcbench run --estimator sgld --suite holdout
# Truths: Aoyagi 2024 (deep linear networks), Aoyagi & Watanabe 2005
# (reduced-rank regression), the Newton-polyhedron rule (polynomials; Varchenko
# 1976), d/2 (regular models); expect_* are the engine's values when the file
# was written.
"""


def _dln(rng: random.Random) -> dict:
    layers = rng.randint(2, 5)  # weight matrices, so layers + 1 widths
    widths = [rng.randint(1, 8) for _ in range(layers + 1)]
    rank = rng.randrange(min(widths))  # rank below the smallest width: a singular teacher
    params = {"widths": widths, "rank": rank}
    generic = rng.randrange(8) == 0
    if generic:
        params["variant"] = "generic"
    tag = "-".join(map(str, widths))
    return {"id": f"holdout/dln/{tag}/r{rank}" + ("/generic" if generic else ""), "family": "dln",
            **params, "n": rng.choice(DATA_N), "seed": rng.randrange(1000)}


def _rrr(rng: random.Random) -> dict:
    m, h, n_out = rng.randint(1, 8), rng.randint(1, 8), rng.randint(1, 8)
    rank = rng.randint(0, min(m, h, n_out))
    return {"id": f"holdout/rrr/{m}-{h}-{n_out}/r{rank}", "family": "rrr", "inputs": m, "hidden": h,
            "outputs": n_out, "rank": rank, "n": rng.choice(DATA_N), "seed": rng.randrange(1000)}


MAX_DEGREE = 8  # the catalogue's polynomials have total degree <= 8


def _monomial(rng: random.Random, d: int) -> tuple[int, ...]:
    """Exponents (e_1, ..., e_d) of an even monomial in a random non-empty subset of w1..wd."""
    while True:
        chosen = set(rng.sample(range(d), rng.randint(1, d)))
        mono = tuple(2 * rng.randint(1, 3) if i in chosen else 0 for i in range(d))
        if sum(mono) <= MAX_DEGREE:
            return mono


def _mono_str(mono: tuple[int, ...]) -> str:
    return " * ".join(f"w{i + 1}**{e}" for i, e in enumerate(mono) if e)


def _sum(rng: random.Random, d: int, terms: int) -> list[tuple[int, tuple[int, ...]]]:
    """A positive sum of distinct even monomials, as (coefficient, exponents) pairs."""
    out: dict[tuple[int, ...], int] = {}
    while len(out) < terms:
        mono = _monomial(rng, d)
        coef = rng.randint(1, 3)
        out.setdefault(mono, coef)
    return [(c, m) for m, c in out.items()]


def _sum_str(terms) -> str:
    return " + ".join(("" if c == 1 else f"{c}*") + _mono_str(m) for c, m in terms)


def _polynomial(rng: random.Random) -> dict:
    """A positive sum of distinct even monomials, or a product of two such sums (d <= 3, so that the
    exact estimator's quadrature gives each run's λ_nβ,γ as well). Every compact-face polynomial of
    such a K is a positive sum of even monomials, so the Newton rule applies (non-degenerate)."""
    d = rng.randint(1, 3)
    while True:
        if rng.randrange(3) == 0:
            a, b = _sum(rng, d, rng.randint(1, 2)), _sum(rng, d, rng.randint(1, 2))
            degree = max(sum(m) for _, m in a) + max(sum(m) for _, m in b)
            expr = f"({_sum_str(a)}) * ({_sum_str(b)})"
            used = {i for _, m in a + b for i, e in enumerate(m) if e}
        else:
            a = _sum(rng, d, rng.randint(1, 3))
            degree = max(sum(m) for _, m in a)
            expr = _sum_str(a)
            used = {i for _, m in a for i, e in enumerate(m) if e}
        # every variable occurs (no free parameter), and the degree stays like the catalogue's
        if used == set(range(d)) and degree <= MAX_DEGREE:
            break
    return {"id": "holdout/poly/" + expr.replace("**", "^").replace(" ", ""), "family": "polynomial",
            "expr": expr}


def _regular(rng: random.Random) -> dict:
    n = rng.choice(DATA_N)
    seed = rng.randrange(1000)
    if rng.randrange(3) == 0:
        d = rng.randint(2, 20)
        return {"id": f"holdout/regular/logistic-{d}", "family": "regular", "model": "logistic",
                "in_features": d, "n": n, "seed": seed}
    d_in, d_out = rng.randint(1, 10), rng.randint(1, 6)
    return {"id": f"holdout/regular/linear-{d_in}x{d_out}", "family": "regular", "model": "linear",
            "in_features": d_in, "out_features": d_out, "n": n, "seed": seed}


DRAW = {"dln": _dln, "rrr": _rrr, "polynomial": _polynomial, "regular": _regular}


def toml_value(value) -> str:
    """One TOML value (bool, int, list, or a string without quotes or backslashes), as the suites write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    text = str(value)
    assert '"' not in text and "\\" not in text, text
    return f'"{text}"'


def _definition(case) -> tuple:
    """What determines a target, without the id (a holdout case must not be a catalogue case renamed)."""
    import json

    d = dict(case.definition())
    d.pop("id")
    return json.dumps(d, sort_keys=True)


def _accepted(entry: dict):
    """The checked Case if the library accepts the draw (parses, truth certified, target built), else None."""
    from llcbench.catalogue import build_target, case_dim, case_truth, parse_case
    from llcbench.errors import TruthError, UserError

    try:
        case = parse_case(dict(entry), "<holdout>", 0)
        if case_dim(case) > MAX_DIM:
            return None
        truth = case_truth(case)
        if truth.kind != "exact":
            return None
        build_target(case)
    except (UserError, TruthError, ValueError):
        return None
    return case, truth


def generate(seed: int = SEED) -> list[dict]:
    """The suite's case tables, in order: per family, draws until the family's count is reached."""
    from llcbench.catalogue import load_catalogue

    seen_defs = {_definition(c) for c in load_catalogue()}
    seen_ids = {c.id for c in load_catalogue()}
    rng = random.Random(seed)
    out = []
    for family, count in COUNTS.items():
        kept = 0
        for _attempt in range(1000):
            if kept == count:
                break
            entry = DRAW[family](rng)
            if entry["id"] in seen_ids:
                continue
            got = _accepted(entry)
            if got is None:
                continue
            case, truth = got
            if _definition(case) in seen_defs:
                continue
            seen_ids.add(case.id)
            seen_defs.add(_definition(case))
            entry["expect_lambda"] = str(truth.lam)
            entry["expect_multiplicity"] = int(truth.multiplicity)
            out.append(entry)
            kept += 1
        else:
            raise RuntimeError(f"could not draw {count} accepted {family} cases")
    return out


def render(seed: int = SEED) -> str:
    blocks = [HEADER.format(seed=seed)]
    for entry in generate(seed):
        lines = ["[[case]]"] + [f"{k} = {toml_value(v)}" for k, v in entry.items()]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        same = OUT.exists() and OUT.read_text(encoding="utf-8") == text
        print(f"{OUT}: {'up to date' if same else 'differs from the script output'}")
        return 0 if same else 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({text.count('[[case]]')} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
