"""The ladder's tables on docs/estimation.md, printed from a store: the ladder against its base sampler.

    python scripts/ladder_table.py --db STORE [--base sgld] [--suite-prefix holdout/]

Per case (exact truths only): λ, m, the base sampler's λ̂ ± se at nβ, the
ladder's λ̂ ± se and m̂ ± se; then, over the cases, the share of runs whose
λ̂ ± 2·se contains λ, the median |rel. err.|, the m > 1 deep linear networks
and the cost (gradient evaluations, seconds) side by side.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from llcbench.store import Store
from llcbench.locality import is_local


def _runs(store: Store, estimator: str, want) -> dict:
    out = {}
    for r in store.records(estimator=estimator):
        if r.get("truth_kind") == "exact" and want(r):
            out[r["case"]] = r
    return out


def _covered(r) -> bool:
    return abs(r["lambda_hat"] - r["lambda_float"]) <= 2 * r["se"]


def _summary(name: str, runs: list) -> str:
    ok = [r for r in runs if r["lambda_hat"] == r["lambda_hat"] and is_local(r) is not False]
    if not ok:
        return f"| {name} | 0 | | | | |"
    cov = sum(_covered(r) for r in ok) / len(ok)
    med = statistics.median(abs(r["rel_error"]) for r in ok)
    within10 = sum(abs(r["rel_error"]) <= 0.10 for r in ok) / len(ok)
    ge = sum(r["grad_evals"] for r in ok)
    sec = sum(r["seconds"] for r in ok)
    return f"| {name} | {len(ok)} | {cov:.0%} | {med:.1%} | {within10:.0%} | {ge / 1e6:.1f} M | {sec:.0f} |"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--base", default="sgld", choices=("sgld", "rmsprop_sgld"))
    ap.add_argument("--prefix", default="", help="only cases whose id starts with this")
    args = ap.parse_args(argv)
    store = Store(args.db)
    pre = args.prefix
    base = _runs(store, args.base, lambda r: r["case"].startswith(pre))
    lad = _runs(store, "ladder", lambda r: r["case"].startswith(pre) and (r["config"].get("base") or "sgld") == args.base)
    cases = sorted(set(base) & set(lad), key=lambda c: (c.split("/")[0], c))
    if not cases:
        print("no case with both runs", file=sys.stderr)
        return 2
    version = {lad[c]["llcbench_version"] for c in cases} | {base[c]["llcbench_version"] for c in cases}
    print(f"llcbench {', '.join(sorted(version))}; base {args.base}; {len(cases)} cases with both runs\n")
    print(f"| case | λ | m | {args.base} λ̂ ± se (rel.) | ladder λ̂ ± se (rel.) | m̂ ± se |")
    print("|---|---:|---:|---|---|---|")
    for c in cases:
        b, l = base[c], lad[c]
        flag = lambda r: ("" if _covered(r) else " ✗") + (" (not local)" if is_local(r) is False else "")
        print(f"| {c} | {l['lambda']} | {l['multiplicity']} | {b['lambda_hat']:.4g} ± {b['se']:.2g} "
              f"({b['rel_error']:+.1%}){flag(b)} | {l['lambda_hat']:.4g} ± {l['se']:.2g} ({l['rel_error']:+.1%}){flag(l)} "
              f"| {l['extra']['m_hat']:.2f} ± {l['extra']['m_se']:.2f} |")
    print("\n(✗: λ̂ ± 2·se misses λ.)\n")
    print("| runs | cases | ±2·se covers λ | median \\|rel. err.\\| | within 10 % | gradient evaluations | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|")
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
