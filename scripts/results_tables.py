"""Markdown tables of stored SG-MCMC runs, for docs/defaults.md: read from the store only.

    python scripts/results_tables.py --db STORE [--db STORE ...] [--suite holdout] [--config KEY=VALUE ...]

For each estimator given (default sgld, rmsprop_sgld, sgnht) it takes the
runs of every case at the estimator's default configuration (or with the
--config overrides) and prints one row per case: λ, m, the reference
λ_nβ,γ where the record has one, and the seed-0 run's λ̂ ± se (relative
error, attribution of runs worse than 30 %; an unhealthy run shows why
instead) per estimator; then a summary row per estimator over every stored
seed: runs, unhealthy runs (``llcbench.health``: never in another column),
and over the healthy ones the median |rel. err.|, runs worse than 30 % by
attribution, the worst, the coverage of λ_nβ,γ by λ̂ ± 2·s, the median
seconds and gradient evaluations per run and the per-family medians.
References are today's (``with_best_reference``), as ``llcbench run`` shows
them. ``extrapolate = 'auto'`` with the rule's step is the same run as
``'richardson'`` (bit-identical), so either is taken for the other.
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter, defaultdict

from llcbench.catalogue import load_catalogue, suite_file
from llcbench.estimators import get_estimator
from llcbench.estimators.base import config_dict, make_config
from llcbench.health import healthy, reason
from llcbench.references import with_best_reference
from llcbench.score.calibration import covered_reference
from llcbench.store import Store

SHORT = {"estimand": "E", "sampler": "S", "unattributed": "U"}
FAMILY = {"dln": "DLN", "rrr": "RRR", "polynomial": "polynomial", "regular": "regular", "regression": "regression"}


def resolved(config: dict) -> dict:
    """The config as it runs: ``extrapolate`` 'auto' resolved (SGMCMCConfig.extrapolation), a missing
    field at its old default 'none'."""
    out = dict(config)
    x = out.get("extrapolate", "none")
    if x == "auto":
        x = "richardson" if out.get("step_size") is None else "none"
    out["extrapolate"] = x
    return out


def runs(stores: list, estimator: str, overrides: list[str], case_ids: set[str]) -> dict[tuple, dict]:
    """{(case, seed): run} of ``estimator`` at the config, decomposed against today's references (exact,
    a stored reference run, or the shipped table) and attributed, as `llcbench run` shows them; of
    several stored runs of one config, case and seed (the same λ̂ under two keys), the newest."""
    want = resolved(config_dict(make_config(get_estimator(estimator).config_cls, overrides)))
    out = {}
    for store in stores:
        for rec in store.records(estimator=estimator):
            if rec["case"] in case_ids and resolved(rec["config"]) == want:
                out[(rec["case"], rec["seed"])] = with_best_reference(store, rec)
    return out


def cell(rec: dict | None) -> str:
    if rec is None:
        return "—"
    if not healthy(rec):
        return f"unhealthy: {reason(rec)}"
    tags = [f"{rec['rel_error']:+.1%}"]
    if rec.get("attribution"):
        tags.append(SHORT[rec["attribution"]])
    return f"{rec['lambda_hat']:.4g} ± {rec['se']:.2g} ({', '.join(tags)})"


def provenance(recs: list) -> str:
    versions = sorted({r.get("llcbench_version") or "?" for r in recs})
    commits = sorted({(r.get("git_commit") or "?")[:7] for r in recs})
    return f"recorded version {', '.join(versions)}, commit{'s' if len(commits) > 1 else ''} {', '.join(commits)}"


def summary(name: str, recs: list) -> str:
    ok = [r for r in recs if healthy(r)]
    if not ok:
        return f"| {name} | {len(recs)} | {len(recs)} |" + " |" * (8 + len(FAMILY))
    errs = [abs(r["rel_error"]) for r in ok]
    att = Counter(r.get("attribution") for r in ok if r.get("attribution"))
    worst = max(ok, key=lambda r: abs(r["rel_error"]))
    cov = [c for c in map(covered_reference, ok) if c is not None]
    fam = defaultdict(list)
    for r in ok:
        fam[r["family"]].append(abs(r["rel_error"]))
    return (f"| {name} | {len(recs)} | {len(recs) - len(ok)} | {statistics.median(errs):.1%} | {sum(att.values())} | "
            f"{att['estimand']} / {att['sampler']} / {att['unattributed']} | "
            f"{abs(worst['rel_error']):.1%} ({worst['case']} s{worst['seed']}) | "
            f"{sum(cov)}/{len(cov)} = {sum(cov) / max(len(cov), 1):.0%} | "
            f"{statistics.median(r['seconds'] for r in recs):.1f} | {statistics.median(r['grad_evals'] for r in recs):,.0f} | "
            + " | ".join(f"{statistics.median(fam[f]):.1%}" if fam[f] else "—" for f in FAMILY) + " |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True, action="append", help="a store (repeatable: runs of all are read)")
    ap.add_argument("--suite", default=None)
    ap.add_argument("--estimators", default="sgld,rmsprop_sgld,sgnht")
    ap.add_argument("--config", action="append", default=[])
    args = ap.parse_args()
    cases = load_catalogue([suite_file(args.suite)], builtin=False) if args.suite else load_catalogue()
    ids = {c.id for c in cases}
    names = args.estimators.split(",")
    stores = [Store(p) for p in args.db]
    try:
        table = {name: runs(stores, name, args.config, ids) for name in names}
    finally:
        for s in stores:
            s.close()
    every = [r for t in table.values() for r in t.values()]
    seeds = sorted({s for t in table.values() for _, s in t})
    print(f"{provenance(every)}; seeds {', '.join(map(str, seeds))}; cells: seed 0\n")
    order = [c.id for c in cases if any((c.id, 0) in table[n] for n in names)]
    print("| case | λ | m | λ_nβ,γ | " + " | ".join(f"{n} λ̂ ± se (rel. err.)" for n in names) + " |")
    print("|---|---:|---:|---:|" + "---|" * len(names))
    for cid in order:
        any_rec = next(table[n][(cid, 0)] for n in names if (cid, 0) in table[n])
        ref = any_rec.get("lambda_ref")
        print(f"| {cid} | {any_rec['lambda']} | {any_rec['multiplicity']} | {'' if ref is None else f'{ref:.4g}'} | "
              + " | ".join(cell(table[n].get((cid, 0))) for n in names) + " |")
    print()
    print("| estimator | runs | unhealthy | median \\|rel. err.\\| | worse than 30 % | estimand / sampler / unattributed | "
          "worst | ±2·s covers λ_nβ,γ | seconds per run | gradient evaluations per run | "
          + " | ".join(FAMILY.values()) + " |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|" + "---:|" * len(FAMILY))
    for n in names:
        if table[n]:
            print(summary(n, list(table[n].values())))


if __name__ == "__main__":
    main()
