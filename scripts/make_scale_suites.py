"""Generate the deep-linear-network size tiers ``cases/suites/scale-*.toml`` from a fixed seed.

The published LLC-sampler benchmark (Furman & Lau 2024; Hitchcock & Hoogland
2025) scores samplers on random deep-linear-network teachers in size tiers.
This script draws such teachers by the published protocol:

- depth: a number of layers uniform in [lo, hi) and hi excluded, and M + 1 widths
  uniform in [lo, hi) per tier (the published code draws with an exclusive upper end);
- weights: Xavier normal (std √(2/(fan_in + fan_out))), each layer then
  rank-reduced with probability 0.5 by keeping only its first k inputs
  (when fan_in ≤ fan_out) or outputs (otherwise), k uniform in [0, smaller side);
- data: inputs uniform on [−10, 10], noiseless labels, the student anchored
  at the teacher;
- sampler (the suite's [estimator.sgld] / [estimator.rmsprop_sgld] tables):
  γ = 1, nβ = n/ln n (llcbench's default), batch 500, 90 % burn-in, the
  tier's step size ε and number of steps.

A case stores the recipe (widths, the kept counts, the seed): the family
regenerates the weights. Its truth is the local coefficient at the teacher
where ``llcbench.truth.dln_local`` certifies it (written as ``expect_*``, so a
change of the engine is caught when the file loads); elsewhere the case
states Aoyagi's global value as an asserted truth (``lambda``/``source``),
which the scores show apart. Draws use only ``random.Random`` methods whose
sequences are fixed for a seed, so the output is byte-identical on every run
(tests/test_scale_suites.py checks it).

    python scripts/make_scale_suites.py            # rewrite the suites and the docs section
    python scripts/make_scale_suites.py --check    # exit 1 if a file is not what the script writes
    python scripts/make_scale_suites.py --verify   # also check the teachers' ranks numerically (SVD)
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_holdout import toml_value  # noqa: E402  (the holdout suite's TOML writer)

ROOT = Path(__file__).resolve().parents[1]
SUITES = ROOT / "cases" / "suites"
DOC = ROOT / "docs" / "scale.md"
SEED = 20241107
BATCH = 500
BURN_IN = 0.9
PROBABILITY_REDUCED = 0.5
DOC_VERSION = "0.6.0"  # the version these tables belong to (the docs name it)

# name: (layers [lo, hi), widths [lo, hi), step size ε, steps, n, teachers) — the published tiers; the
# 1M and 10M tiers state no steps or n: those of the 100K tier
TIERS = {
    "scale-1k": ((2, 5), (5, 50), 5e-7, 10_000, 100_000, 12),
    "scale-10k": ((2, 10), (5, 100), 5e-7, 10_000, 100_000, 12),
    "scale-100k": ((2, 10), (50, 500), 1e-7, 50_000, 1_000_000, 10),
    "scale-1m": ((2, 20), (100, 1000), 5e-8, 50_000, 1_000_000, 10),
    "scale-10m": ((2, 20), (500, 2000), 2e-8, 50_000, 1_000_000, 10),
}

HEADER = """\
# Deep-linear-network tier {name}: {count} random teachers drawn (seed {seed}) by
# scripts/make_scale_suites.py, by the published protocol (Furman & Lau 2024): layers in
# [{l0}, {l1}), widths in [{w0}, {w1}), Xavier-normal weights, each layer rank-reduced with
# probability 0.5, inputs uniform on [-10, 10], noiseless labels, anchored at the teacher.
# Do not edit by hand: rerun the script (a test checks the file is byte-identical to its output).
#
# Truth: the local coefficient at the teacher where llcbench.truth.dln_local certifies it
# (expect_*); elsewhere Aoyagi's global value, asserted (lambda/source). Run with
#     llcbench run --estimator sgld --suite {name}{force}
#
# The protocol's sampler: gamma = 1, n*beta = n/ln n (the default), batch 500, 90 % burn-in.

[estimator.sgld]
step_size = {eps}
gamma = 1.0
steps = {steps}
burn_in = {burn}
batch_size = {batch}

# RMSProp-SGLD: the same, but its step size left to llcbench's warm-up rule: the tier's eps is an SGLD
# step, and preconditioned by 1/(sqrt(v) + a) it is a far larger one (docs/scale.md: +80 % to +745 %
# on scale-1k with step_size = {eps})
[estimator.rmsprop_sgld]
gamma = 1.0
steps = {steps}
burn_in = {burn}
batch_size = {batch}
"""


def draw_teacher(rng: random.Random, layers: tuple, widths: tuple) -> tuple[list[int], list[int]]:
    """(widths, keep) by the published protocol."""
    m = rng.randrange(*layers)
    h = [rng.randrange(*widths) for _ in range(m + 1)]
    keep = []
    for j in range(m):
        reduced = rng.random() <= PROBABILITY_REDUCED
        keep.append(rng.randrange(min(h[j], h[j + 1])) if reduced else -1)
    return h, keep


def _truth(widths: list[int], keep: list[int]):
    """(certified Truth or None, global λ, lower bound on the local λ, dim)."""
    from llcbench.errors import TruthError
    from llcbench.families.dln import dln_dim, protocol_layer_ranks, protocol_truth
    from llcbench.truth.dln_local import generic_chain_ranks, local_bounds

    glob, low = local_bounds(widths, generic_chain_ranks(widths, protocol_layer_ranks(widths, keep)))
    try:
        truth = protocol_truth(widths, keep)
    except TruthError:
        truth = None
    return truth, glob, low, dln_dim(widths)


def generate(name: str, seed: int = SEED) -> list[dict]:
    """The tier's case tables with their truth fields, and a summary row per teacher."""
    from llcbench.families.dln import protocol_layer_ranks

    layers, widths, _eps, _steps, n, count = TIERS[name]
    rng = random.Random(f"{seed}/{name}")
    out = []
    for index in range(count):
        h, keep = draw_teacher(rng, layers, widths)
        case_seed = rng.randrange(2**31)
        rank = min(protocol_layer_ranks(h, keep))
        truth, glob, low, dim = _truth(h, keep)
        entry = {"id": f"{name}/dln/{'-'.join(map(str, h))}/{index:02d}", "family": "dln", "variant": "protocol",
                 "widths": h, "keep": keep, "rank": rank, "inputs": "uniform", "n": n, "seed": case_seed}
        if truth is not None:
            entry["expect_lambda"] = str(truth.lam)
            entry["expect_multiplicity"] = int(truth.multiplicity)
        else:
            entry["lambda"] = str(glob)
            entry["source"] = (f"Aoyagi 2024, global coefficient for widths {tuple(h)}, r = {rank} (the published "
                               f"benchmark's truth); the local value at this factorisation is not certified "
                               f"(it is >= {low})")
        out.append({"entry": entry, "truth": truth, "global": glob, "low": low, "dim": dim})
    return out


def render(name: str, rows: list[dict] | None = None, seed: int = SEED) -> str:
    layers, widths, eps, steps, _n, count = TIERS[name]
    rows = generate(name, seed) if rows is None else rows
    big = max(r["dim"] for r in rows) > 1_000_000
    blocks = [HEADER.format(name=name, count=count, seed=seed, l0=layers[0], l1=layers[1], w0=widths[0],
                            w1=widths[1], eps=repr(eps), steps=steps, burn=int(BURN_IN * steps), batch=BATCH,
                            force=" --force-size --device cuda   (d beyond the CPU limit: a GPU's job)"
                            if big else "")]
    for row in rows:
        lines = ["[[case]]"] + [f"{k} = {toml_value(v)}" for k, v in row["entry"].items()]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


DOC_START = "<!-- make_scale_suites: truth table start -->"
DOC_END = "<!-- make_scale_suites: truth table end -->"


def _pct(x: Fraction) -> str:
    return f"{100 * float(x):+.0f} %"


def doc_section(all_rows: dict[str, list[dict]]) -> str:
    """The docs section on local vs global truth, from the generated teachers."""
    from llcbench.families.dln import data_bytes
    lines = [DOC_START, "",
             f"Made by `python scripts/make_scale_suites.py` (llcbench {DOC_VERSION}, seed {SEED}).", "",
             "| tier | teachers | d (median, max) | data GiB (max) | local certified | of which ≠ global "
             "| (local − global)/global there (median, max) | not certified | of which bound > global |",
             "|---|---|---|---|---|---|---|---|---|"]
    detail = []
    for name, rows in all_rows.items():
        cert = [r for r in rows if r["truth"] is not None]
        differ = [r for r in cert if r["truth"].lam != r["global"]]
        gaps = [(r["truth"].lam - r["global"]) / r["global"] for r in differ]
        unc = [r for r in rows if r["truth"] is None]
        sure = [r for r in unc if r["low"] > r["global"]]
        dims = [r["dim"] for r in rows]
        gap_text = f"{_pct(statistics.median(gaps))}, {_pct(max(gaps))}" if gaps else "—"
        gib = max(data_bytes(r["entry"]["n"], r["entry"]["widths"], False) for r in rows) / 2**30
        lines.append(f"| {name} | {len(rows)} | {int(statistics.median(dims)):,}, {max(dims):,} | {gib:.2g} | {len(cert)} "
                     f"| {len(differ)} | {gap_text} | {len(unc)} | {len(sure)} |")
        for r in rows:
            e = r["entry"]
            local = f"{r['truth'].lam} (m = {r['truth'].multiplicity})" if r["truth"] is not None \
                else f"≥ {r['low']} (asserted: global)"
            detail.append(f"| `{e['id']}` | {e['keep']} | {r['dim']:,} | {r['global']} | {local} |")
    lines += ["", "Every teacher (keep: −1 = a whole layer; λ exact rationals):", "",
              "| case | keep | d | global λ (Aoyagi) | local λ at the teacher |", "|---|---|---|---|---|"]
    lines += detail
    lines += ["", DOC_END]
    return "\n".join(lines)


def render_doc(all_rows: dict[str, list[dict]]) -> str | None:
    """docs/scale.md with its generated section replaced (None when the page has no markers)."""
    if not DOC.exists():
        return None
    text = DOC.read_text(encoding="utf-8")
    if DOC_START not in text or DOC_END not in text:
        return None
    head, rest = text.split(DOC_START, 1)
    _, tail = rest.split(DOC_END, 1)
    return head + doc_section(all_rows) + tail


def verify(name: str, rows: list[dict]) -> None:
    """The float64 teachers' sub-chain ranks (SVD, with a gap) equal the generic ones the truth uses."""
    from llcbench.families.dln import numerical_chain_ranks, protocol_layer, protocol_layer_ranks
    from llcbench.truth.dln_local import generic_chain_ranks

    for row in rows:
        e = row["entry"]
        layers = [protocol_layer(e["widths"], e["keep"], e["seed"], j) for j in range(len(e["widths"]) - 1)]
        got = numerical_chain_ranks(layers)
        want = generic_chain_ranks(e["widths"], protocol_layer_ranks(e["widths"], e["keep"]))
        if got != want:
            raise SystemExit(f"{e['id']}: numerical sub-chain ranks {got} differ from the generic ones {want}")
    print(f"{name}: ranks of {len(rows)} teachers verified")


def main(argv=None) -> int:
    from llcbench import limits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    parser.add_argument("--verify", action="store_true", help="also check the CPU tiers' teacher ranks by SVD")
    args = parser.parse_args(argv)
    limits.lift()  # the GPU tiers are beyond the CPU size limits by design
    all_rows = {name: generate(name) for name in TIERS}
    outputs = {SUITES / f"{name}.toml": render(name, rows) for name, rows in all_rows.items()}
    doc = render_doc(all_rows)
    if doc is not None:
        outputs[DOC] = doc
    if args.verify:
        for name in ("scale-1k", "scale-10k", "scale-100k"):
            verify(name, all_rows[name])
    status = 0
    for path, text in outputs.items():
        if args.check:
            same = path.exists() and path.read_text(encoding="utf-8") == text
            print(f"{path}: {'up to date' if same else 'differs from the script output'}")
            status |= 0 if same else 1
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
