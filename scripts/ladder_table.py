"""The ladder's tables on docs/estimation.md, printed from a store: the ladder against its base sampler.

    python scripts/ladder_table.py --db STORE [--db STORE ...] [--base sgld] [--base-config KEY=VALUE ...]
        [--prefix holdout/]

Per case (exact truths only, seed 0): λ, m, the base sampler's λ̂ ± se at nβ
(at its default config, or with --base-config), the ladder's λ̂ ± se and
m̂ ± se; then, over the cases, the healthy runs (``llcbench.health``; the
unhealthy ones counted apart, never in another column), the share whose
λ̂ ± 2·se contains λ, the median |rel. err.|, the m > 1 deep linear networks
and the cost (gradient evaluations, seconds) side by side.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from llcbench.estimators import get_estimator
from llcbench.estimators.base import config_dict, make_config
from llcbench.health import healthy
from llcbench.store import Store

from results_tables import provenance, resolved


def _runs(paths: list, estimator: str, want) -> dict:
    out = {}
    for p in paths:
        with Store(p) as store:
            for r in store.records(estimator=estimator):
                if r.get("truth_kind") == "exact" and r["seed"] == 0 and want(r):
                    out[r["case"]] = r
    return out


def _covered(r) -> bool:
    return abs(r["lambda_hat"] - r["lambda_float"]) <= 2 * r["se"]


def _summary(name: str, runs: list) -> str:
    ok = [r for r in runs if healthy(r)]
    bad = len(runs) - len(ok)
    if not ok:
        return f"| {name} | 0 | {bad} | | | | | |"
    cov = sum(_covered(r) for r in ok) / len(ok)
    med = statistics.median(abs(r["rel_error"]) for r in ok)
    within10 = sum(abs(r["rel_error"]) <= 0.10 for r in ok) / len(ok)
    ge = sum(r["grad_evals"] for r in ok)
    sec = sum(r["seconds"] for r in ok)
    return f"| {name} | {len(ok)} | {bad} | {cov:.0%} | {med:.1%} | {within10:.0%} | {ge / 1e6:.1f} M | {sec:.0f} |"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, action="append", help="a store (repeatable)")
    ap.add_argument("--base", default="sgld", choices=("sgld", "rmsprop_sgld"))
    ap.add_argument("--base-config", action="append", default=[], help="the base runs' config (default: its defaults)")
    ap.add_argument("--prefix", default="", help="only cases whose id starts with this")
    args = ap.parse_args(argv)
    pre = args.prefix
    want = resolved(config_dict(make_config(get_estimator(args.base).config_cls, args.base_config)))
    base = _runs(args.db, args.base, lambda r: r["case"].startswith(pre) and resolved(r["config"]) == want)
    lad = _runs(args.db, "ladder", lambda r: r["case"].startswith(pre) and (r["config"].get("base") or "sgld") == args.base)
    cases = sorted(set(base) & set(lad), key=lambda c: (c.split("/")[0], c))
    if not cases:
        print("no case with both runs", file=sys.stderr)
        return 2
    print(f"{provenance([lad[c] for c in cases] + [base[c] for c in cases])}; base {args.base} "
          f"(extrapolate={want['extrapolate']}); {len(cases)} cases with both runs, seed 0\n")
    print(f"| case | λ | m | {args.base} λ̂ ± se (rel.) | ladder λ̂ ± se (rel.) | m̂ ± se |")
    print("|---|---:|---:|---|---|---|")
    for c in cases:
        b, l = base[c], lad[c]
        flag = lambda r: ("" if _covered(r) else " ✗") + ("" if healthy(r) else " (unhealthy)")
        print(f"| {c} | {l['lambda']} | {l['multiplicity']} | {b['lambda_hat']:.4g} ± {b['se']:.2g} "
              f"({b['rel_error']:+.1%}){flag(b)} | {l['lambda_hat']:.4g} ± {l['se']:.2g} ({l['rel_error']:+.1%}){flag(l)} "
              f"| {l['extra']['m_hat']:.2f} ± {l['extra']['m_se']:.2f} |")
    print("\n(✗: λ̂ ± 2·se misses λ; unhealthy runs are in no column of the next table but their count.)\n")
    print("| runs | healthy | unhealthy | ±2·se covers λ | median \\|rel. err.\\| | within 10 % | gradient evaluations | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    groups = [("all", lambda c: True)] + [(f, (lambda f: lambda c: c.startswith(f))(f))
                                          for f in sorted({c.split("/")[0] + "/" for c in cases})]
    groups.append(("dln, m > 1", lambda c: c.startswith("dln/") and lad[c]["multiplicity"] > 1))
    groups.append(("m > 1 (all)", lambda c: lad[c]["multiplicity"] > 1))
    for label, keep in groups:
        mine = [c for c in cases if keep(c)]
        print(_summary(f"{args.base}, {label}", [base[c] for c in mine]))
        print(_summary(f"ladder, {label}", [lad[c] for c in mine]))
    unresolved = sum(not lad[c]["extra"]["m_resolved"] for c in cases)
    print(f"\nm not resolved (se(m̂) > 0.5) on {unresolved} of {len(cases)} ladder runs.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
