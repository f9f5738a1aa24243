"""The tables of docs/error-bars.md.

    python scripts/error_bars.py sgnht CASE[,CASE...] [SEEDS]
        SGNHT at its defaults and with the old parts (epoch minibatches, Euler friction) against the
        exact λ_nβ,γ of the linear-Gaussian cases: mean ± se over seeds 0..SEEDS−1 (default 4).
    python scripts/error_bars.py repeat ESTIMATOR CASE[,CASE...] [SEEDS] [--set k=v ...]
        Several seeds of one config per case, and next to it the same with extrapolate='richardson':
        mean ± se over seeds, the mean of the runs' own se, the seeds' spread (an honest se matches it).
    python scripts/error_bars.py coverage STORE [STORE ...]
        Per store, on the cases every store has: coverage of λ_nβ,γ by λ̂ ± 2·s (s = hypot(se, the
        reference's se), the reference as `llcbench report` reads it), coverage of λ by λ̂ ± 2·se,
        the median |sampler bias|/λ_nβ,γ and the seconds and gradient evaluations; then per family and
        per case.
"""

from __future__ import annotations

import math
import statistics
import sys
import time

import numpy as np
import torch


def _cases():
    from llcbench.catalogue import load_catalogue

    return {c.id: c for c in load_catalogue()}


def sgnht(cases: str, seeds: int = 4) -> None:
    from llcbench.catalogue import build_target
    from llcbench.estimators import exact, get_estimator
    from llcbench.estimators.base import make_config

    spec, known = get_estimator("sgnht"), _cases()
    variants = ([], ["batch_draw=epoch"], ["integrator=euler"], ["integrator=euler", "batch_draw=epoch"])
    print("| case | batch_draw | integrator | λ̂ (mean ± se, seeds) | exact λ_nβ,γ | rel. |")
    print("|---|---|---|---:|---:|---:|")
    for case in cases.split(","):
        target = build_target(known[case])
        for over in variants:
            vals = []
            for seed in range(seeds):
                e = spec.estimate(target, make_config(spec.config_cls, over), seed, "cpu")
                vals.append(e.lambda_hat)
            ref = exact.estimate(target, exact.ExactConfig(nbeta=e.extra["nbeta"], gamma=e.extra["gamma"])).lambda_hat
            v = np.array(vals)
            print(f"| {case} | {e.extra['batch_draw']} | {e.extra['integrator']} | {v.mean():.4f} ± "
                  f"{v.std(ddof=1) / math.sqrt(seeds):.4f} | {ref:.4f} | {100 * (v.mean() / ref - 1):+.1f} % |", flush=True)


def repeat(name: str, cases: str, seeds: int = 4, sets=()) -> None:
    from llcbench.catalogue import build_target
    from llcbench.estimators import get_estimator
    from llcbench.estimators.base import make_config

    spec, known = get_estimator(name), _cases()
    print("| case | extrapolate | λ̂ (mean ± se, seeds) | mean se of a run | spread of the seeds | seconds per run |")
    print("|---|---|---:|---:|---:|---:|")
    for case in cases.split(","):
        target = build_target(known[case])
        for extra in ([], ["extrapolate=richardson"]):
            vals, ses, t0 = [], [], time.perf_counter()
            for seed in range(seeds):
                e = spec.estimate(target, make_config(spec.config_cls, list(sets) + extra), seed, "cpu")
                vals.append(e.lambda_hat)
                ses.append(e.se)
            v = np.array(vals)
            print(f"| {case} | {'richardson' if extra else 'none'} | {v.mean():.4f} ± {v.std(ddof=1) / math.sqrt(seeds):.4f} "
                  f"| {np.mean(ses):.4f} | {v.std(ddof=1):.4f} | {(time.perf_counter() - t0) / seeds:.1f} |", flush=True)


def coverage(paths: list) -> None:
    from llcbench.references.stored import with_best_reference
    from llcbench.references.table import shipped_table
    from llcbench.store import Store

    table = shipped_table()
    rows = {p: {r["case"]: with_best_reference(Store(p), r, table) for r in Store(p).records()} for p in paths}
    common = sorted(set.intersection(*(set(v) for v in rows.values())))
    print(f"{len(common)} cases in every store\n")
    print("| store | runs | coverage of λ_nβ,γ | coverage of λ | median \\|sampler bias\\|/λ_nβ,γ | seconds | gradient evaluations |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    fams = {}
    for p in paths:
        recs = [rows[p][c] for c in common]
        ref = [(r["case"], abs(r["sampler_bias"]) <= 2 * r["sampler_bias_se"]) for r in recs
               if r.get("sampler_bias") is not None and r.get("sampler_bias_se") is not None]
        truth = [abs(r["lambda_hat"] - r["lambda_float"]) <= 2 * r["se"] for r in recs
                 if r.get("lambda_float") is not None and math.isfinite(r.get("se") or math.nan)]
        rel = [abs(r["sampler_bias"] / r["lambda_ref"]) for r in recs if r.get("sampler_bias") is not None and r.get("lambda_ref")]
        fams[p] = {}
        for cid, ok in ref:
            fams[p].setdefault(cid.split("/")[0], []).append(ok)
        print(f"| {p} | {len(recs)} | {sum(ok for _, ok in ref)}/{len(ref)} = {sum(ok for _, ok in ref) / len(ref):.0%} "
              f"| {sum(truth)}/{len(truth)} = {sum(truth) / len(truth):.0%} | {100 * statistics.median(rel):.1f} % "
              f"| {sum(r['seconds'] for r in recs):.0f} | {sum(r['grad_evals'] for r in recs):,} |")
    print("\n| family | " + " | ".join(paths) + " |")
    print("|---|" + "---:|" * len(paths))
    for fam in sorted(fams[paths[0]]):
        print(f"| {fam} | " + " | ".join(f"{sum(fams[p].get(fam, []))}/{len(fams[p].get(fam, []))}" for p in paths) + " |")
    print("\n| case | λ_nβ,γ | " + " | ".join(paths) + " |")
    print("|---|---:|" + "---:|" * len(paths))
    for c in common:
        ref_lam = rows[paths[0]][c].get("lambda_ref")
        cells = []
        for p in paths:
            r = rows[p][c]
            mark = "" if r.get("sampler_bias") is None else (" ✓" if abs(r["sampler_bias"]) <= 2 * r["sampler_bias_se"] else " ✗")
            cells.append("NaN (diverged)" if r["lambda_hat"] is None else f"{r['lambda_hat']:.4g} ± {r['se']:.2g}{mark}")
        print(f"| {c} | {'—' if ref_lam is None else f'{ref_lam:.4g}'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    torch.set_num_threads(1)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "sgnht":
        sgnht(args[0], int(args[1]) if len(args) > 1 else 4)
    elif cmd == "repeat":
        sets = [a.split("=", 1)[1] if a.startswith("--set=") else a for a in args[3:] if a != "--set"]
        repeat(args[0], args[1], int(args[2]) if len(args) > 2 else 4, sets)
    elif cmd == "coverage":
        coverage(args)
    else:
        raise SystemExit(__doc__)
