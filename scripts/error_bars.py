"""The tables of docs/error-bars.md.

    python scripts/error_bars.py sgnht CASE[,CASE...] [SEEDS]
        SGNHT at its defaults and with the old parts (epoch minibatches, Euler friction) against the
        exact λ_nβ,γ of the linear-Gaussian cases: mean ± se over seeds 0..SEEDS−1 (default 4).
    python scripts/error_bars.py repeat ESTIMATOR CASE[,CASE...] [SEEDS] [--set k=v ...]
        Several seeds of one config per case, and next to it the same with extrapolate='richardson':
        mean ± se over seeds, the mean of the runs' own se, the seeds' spread (an honest se matches it).
    python scripts/error_bars.py calibration STORE [STORE ...] [--estimator=NAME ...]
        Every run of the stores (of the estimators named, if any), grouped by estimator and `extrapolate`, on the (case, seed) pairs every
        group has: runs, unhealthy runs (llcbench.health; counted, never in another column), coverage
        of λ_nβ,γ by λ̂ ± 2·s and of λ by λ̂ ± 2·se (llcbench.score.calibration, healthy runs), median
        |sampler bias|/λ_nβ,γ and |rel. err.|, the seeds' spread over the mean se (median over cases),
        gradient evaluations and seconds per run; then coverage per family, the m = 1 monomials' bias
        over seeds, and the unhealthy runs with their reasons.
    python scripts/error_bars.py coverage STORE [STORE ...]
        Per store, on the cases every store has: coverage of λ_nβ,γ by λ̂ ± 2·s (s = hypot(se, the
        reference's se), the reference as `llcbench report` reads it), coverage of λ by λ̂ ± 2·se,
        the median |sampler bias|/λ_nβ,γ and the seconds and gradient evaluations; then per family and
        per case.
"""

from __future__ import annotations

import math
import re
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


def _stored(paths: list) -> list:
    """Every stored run of the stores, decomposed against today's best reference (as `llcbench report`)."""
    from llcbench.references.stored import with_best_reference
    from llcbench.references.table import shipped_table
    from llcbench.store import Store

    table, cache, out = shipped_table(), {}, []
    for p in paths:
        with Store(p) as store:
            out += [with_best_reference(store, r, table, cache) for r in store.records()]
    return out


def _variant(rec: dict) -> str:
    from results_tables import resolved  # 'auto' with the rule's step is 'richardson'

    return f"{rec['estimator']}, {resolved(rec['config'])['extrapolate']}"


def _provenance(recs: list) -> str:
    versions = sorted({r.get("llcbench_version") or "?" for r in recs})
    commits = sorted({(r.get("git_commit") or "?")[:7] for r in recs})
    return f"llcbench {', '.join(versions)} (recorded), commit{'s' if len(commits) > 1 else ''} {', '.join(commits)}"


def calibration(paths: list, estimators: frozenset = frozenset()) -> None:
    """Per estimator and extrapolation: health, coverage, error and cost over every case and seed."""
    import statistics as st

    from llcbench.health import healthy
    from llcbench.score.calibration import covered_reference, covered_truth

    groups = {}
    for r in _stored(paths):  # of one run stored under two keys (the same config spelt two ways), the newest
        if estimators and r["estimator"] not in estimators:
            continue
        groups.setdefault(_variant(r), {})[(r["case"], r["seed"])] = r
    pairs = set.intersection(*(set(g) for g in groups.values()))
    runs = {v: [r for k, r in g.items() if k in pairs] for v, g in groups.items()}
    every = [r for g in runs.values() for r in g]
    print(f"{_provenance(every)}; {len(pairs)} runs (case, seed) in every variant: {len({c for c, _ in pairs})} "
          f"cases, seeds {', '.join(map(str, sorted({s for _, s in pairs})))}\n")
    print("| estimator, extrapolate | runs | unhealthy | coverage of λ_nβ,γ | coverage of λ | median \\|sampler bias\\|/λ_nβ,γ "
          "| median \\|rel. err.\\| | seed spread / mean se | gradient evaluations per run | seconds per run (median) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    fams = {}
    for v in sorted(runs):
        recs = runs[v]
        ok = [r for r in recs if healthy(r)]
        ref = [c for c in map(covered_reference, ok) if c is not None]
        truth = [c for c in map(covered_truth, ok) if c is not None]
        bias = [abs(r["sampler_bias"] / r["lambda_ref"]) for r in ok if r.get("sampler_bias") is not None and r.get("lambda_ref")]
        rel = [abs(r["rel_error"]) for r in ok if r.get("rel_error") is not None]
        by_case = {}
        for r in ok:
            by_case.setdefault(r["case"], []).append(r)
        spread = [st.stdev(x["lambda_hat"] for x in g) / st.mean(x["se"] for x in g) for g in by_case.values() if len(g) > 1]
        fams[v] = {}
        for r in ok:
            c = covered_reference(r)
            if c is not None:
                fams[v].setdefault(r.get("family") or r["case"].split("/")[0], []).append(c)
        print(f"| {v} | {len(recs)} | {len(recs) - len(ok)} | {sum(ref)}/{len(ref)} = {sum(ref) / max(len(ref), 1):.0%} "
              f"| {sum(truth)}/{len(truth)} = {sum(truth) / max(len(truth), 1):.0%} | {100 * st.median(bias):.1f} % "
              f"| {100 * st.median(rel):.1f} % | {st.median(spread) if spread else float('nan'):.2f} "
              f"| {st.median(r['grad_evals'] for r in recs):,.0f} | {st.median(r['seconds'] for r in recs):.1f} |")
    names = sorted(runs)
    print("\n| family (coverage of λ_nβ,γ, healthy runs) | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for fam in sorted({f for v in names for f in fams[v]}):
        print(f"| {fam} | " + " | ".join(f"{sum(fams[v].get(fam, []))}/{len(fams[v].get(fam, []))}" for v in names) + " |")
    mono = sorted({r["case"] for r in every if re.fullmatch(r"poly/w1\^\d+", r["case"]) and r.get("multiplicity") == 1},
                  key=lambda c: int(c.split("^")[1]))
    if mono:
        print("\nm = 1 monomials: mean over the healthy seeds of λ̂/λ_nβ,γ − 1 ± its se (the sampler's bias)\n")
        print("| case | λ_nβ,γ | " + " | ".join(names) + " |")
        print("|---|---:|" + "---:|" * len(names))
        for c in mono:
            cells, lam = [], None
            for v in names:
                g = [r for r in runs[v] if r["case"] == c and healthy(r) and r.get("lambda_ref")]
                if not g:
                    cells.append("—")
                    continue
                lam = g[0]["lambda_ref"]
                x = [r["lambda_hat"] / r["lambda_ref"] - 1 for r in g]
                se = st.stdev(x) / math.sqrt(len(x)) if len(x) > 1 else float("nan")
                cells.append(f"{100 * st.mean(x):+.1f} ± {100 * se:.1f} % ({len(x)})")
            print(f"| {c} | {'—' if lam is None else f'{lam:.4g}'} | " + " | ".join(cells) + " |")
    bad = {}
    for v in names:
        for r in runs[v]:
            if not healthy(r):
                from llcbench.health import reason

                bad.setdefault(v, []).append(f"{r['case']} s{r['seed']} ({reason(r)})")
    if bad:
        print("\nUnhealthy runs (not in any column but the count):\n")
        for v in names:
            if v in bad:
                print(f"- {v}: " + "; ".join(bad[v]))


def coverage(paths: list) -> None:
    """The older per-store table (one store per config, seed 0)."""
    rows = {}
    for p in paths:
        rows[p] = {r["case"]: r for r in _stored([p]) if r["seed"] == 0}
    common = sorted(set.intersection(*(set(v) for v in rows.values())))
    print(f"{len(common)} cases in every store\n")
    print("| store | runs | coverage of λ_nβ,γ | coverage of λ | median \\|sampler bias\\|/λ_nβ,γ | seconds | gradient evaluations |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for p in paths:
        recs = [rows[p][c] for c in common]
        ref = [abs(r["sampler_bias"]) <= 2 * r["sampler_bias_se"] for r in recs
               if r.get("sampler_bias") is not None and r.get("sampler_bias_se") is not None]
        truth = [abs(r["lambda_hat"] - r["lambda_float"]) <= 2 * r["se"] for r in recs
                 if r.get("lambda_float") is not None and math.isfinite(r.get("se") or math.nan)]
        rel = [abs(r["sampler_bias"] / r["lambda_ref"]) for r in recs if r.get("sampler_bias") is not None and r.get("lambda_ref")]
        print(f"| {p} | {len(recs)} | {sum(ref)}/{len(ref)} | {sum(truth)}/{len(truth)} | {100 * statistics.median(rel):.1f} % "
              f"| {sum(r['seconds'] for r in recs):.0f} | {sum(r['grad_evals'] for r in recs):,} |")


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
    elif cmd == "calibration":
        named = frozenset(a.split("=", 1)[1] for a in args if a.startswith("--estimator="))
        calibration([a for a in args if not a.startswith("--estimator=")], named)
    else:
        raise SystemExit(__doc__)
