"""devinterp's estimators beside llcbench's sgld on the same cases: one table per run, from one store.

    python scripts/devinterp_comparison.py --db tmp/devinterp.sqlite [--case ID ...] [--family F ...]
        [--llcbench-set KEY=VALUE ...] [--only LABEL-PART ...]

Runs (or reads back from the store) seed 0 of each case with: devinterp_sgld and devinterp_rmsprop
under rules=devinterp (devinterp's README settings) and rules=llcbench (llcbench's nβ, γ, step-size
rule passed into devinterp's sampler; ``--llcbench-set`` adds overrides to that config only, e.g.
shorter chains), and llcbench's own sgld at its defaults. Prints, per configuration, one row per
case (λ, the reference λ_nβ,γ where one exists, λ̂ ± se and the relative error), then the summary:
median |rel. err.|, coverage (|λ̂ − λ| ≤ 2·se, se being devinterp's std for its estimators) and
median seconds, overall and per family. Needs ``pip install 'llcbench[devinterp]'``.
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

from llcbench import api

CONFIGS = [  # (label, estimator, overrides)
    ("devinterp_sgld rules=devinterp", "devinterp_sgld", ["rules=devinterp"]),
    ("devinterp_sgld rules=llcbench", "devinterp_sgld", ["rules=llcbench"]),
    ("devinterp_rmsprop rules=devinterp", "devinterp_rmsprop", ["rules=devinterp"]),
    ("devinterp_rmsprop rules=llcbench", "devinterp_rmsprop", ["rules=llcbench"]),
    ("sgld (llcbench defaults)", "sgld", []),
]


def _fmt(x, spec=".3g"):
    return "—" if x is None else format(x, spec)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", required=True)
    p.add_argument("--case", action="append", default=None)
    p.add_argument("--family", default=None)
    p.add_argument("--llcbench-set", action="append", default=[], help="overrides for the rules=llcbench configs")
    p.add_argument("--only", action="append", default=None, help="run only the configs whose label contains this")
    args = p.parse_args(argv)
    rows = {}
    for label, estimator, overrides in CONFIGS:
        if args.only and not any(o in label for o in args.only):
            continue
        extra = args.llcbench_set if "rules=llcbench" in overrides else []
        res = api.run(estimator, cases=args.case, family=args.family, config=overrides + extra, db=args.db, full=True)
        rows[label] = list(res)
    print("| config | case | λ | λ_nβ,γ | λ̂ ± se | rel. err. | s |\n|---|---|---|---|---|---|---|")
    for label, records in rows.items():
        for r in records:
            print(f"| {label} | `{r['case']}` | {r['lambda_float']:.4g} | {_fmt(r.get('lambda_ref'), '.4g')} | "
                  f"{r['lambda_hat']:.4g} ± {r['se']:.2g} | {r['rel_error']:+.1%} | {r['seconds']:.1f} |")
    print("\n| config | family | runs | median abs. rel. err. | coverage (2 se) | median s |\n|---|---|---|---|---|---|")
    for label, records in rows.items():
        groups = defaultdict(list)
        for r in records:
            groups["all"].append(r)
            groups[r["case"].split("/")[0]].append(r)
        for fam, rs in groups.items():
            err = statistics.median(abs(r["rel_error"]) for r in rs)
            cov = sum(abs(r["lambda_hat"] - r["lambda_float"]) <= 2 * r["se"] for r in rs)
            sec = statistics.median(r["seconds"] for r in rs)
            print(f"| {label} | {fam} | {len(rs)} | {err:.1%} | {cov}/{len(rs)} | {sec:.1f} |")
    versions = {r["extra"].get("devinterp_version") for rs in rows.values() for r in rs} - {None}
    print(f"\ndevinterp {', '.join(sorted(versions))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
