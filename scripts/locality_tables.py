"""λ̂ against γ for trained anchors, from the pilot ladders stored in SG-MCMC records: for docs/locality.md.

    python scripts/locality_tables.py --db reports/locality.sqlite [--figure docs/locality_ladder.png]

Every record whose ``extra.localisation_pilot`` holds a γ-ladder
(``llcbench.estimators.sgmcmc.pilot``) gives one table: per rung γ/nβ, γ,
λ̂, split R-hat and the locality fractions (``llcbench.locality``), the
rung the rule chose, and then the full run at that γ with its own
locality verdict. Read from the store only; the runs are made with
``llcbench run`` (the command is in docs/locality.md).
"""

from __future__ import annotations

import argparse

from llcbench.locality import is_local
from llcbench.store import Store


def _f(x, fmt="{:.3g}") -> str:
    return "—" if x is None else fmt.format(x)


def _verdict(local) -> str:
    return {True: "yes", False: "**no**", None: "?"}[local]


def tables(records: list[dict]) -> str:
    out = []
    for r in sorted(records, key=lambda r: (r["case"], r.get("seed", 0))):
        pilot = (r.get("extra") or {}).get("localisation_pilot")
        if not pilot:
            continue
        nbeta = r["extra"]["nbeta"]
        out.append(f"#### {r['case']} (n = {r['n']}, nβ = {nbeta:.4g}, {r['estimator']}, seed {r['seed']})\n")
        out.append("| γ/nβ | γ | λ̂ | R-hat | excess / chance | accuracy drop | E‖w−w*‖² / (d/γ) | local |")
        out.append("|---|---|---|---|---|---|---|---|")
        for row in pilot["ladder"]:
            mark = " ←" if row["gamma"] == pilot["gamma"] else ""
            out.append(f"| {row['gamma'] / nbeta:.3g} | {row['gamma']:.4g}{mark} | {_f(row['lambda_hat'], '{:.4g}')} | "
                       f"{_f(row['rhat'], '{:.2f}')} | {_f(row['excess_fraction'], '{:.2f}')} | "
                       f"{_f(row['accuracy_drop_fraction'], '{:.2f}')} | {_f(row['spread_fraction'], '{:.2f}')} | "
                       f"{_verdict(row['local'])} |")
        loc = r.get("locality") or {}
        out.append(f"\nChosen γ = {pilot['gamma']:.4g} ({'on a plateau' if pilot['plateau'] else 'no plateau: λ̂ is a property of γ'}). "
                   f"Full run ({r['config']['chains']} chains × {r['config']['steps']} steps): λ̂ = {r['lambda_hat']:.4g} "
                   f"± {r['se']:.2g}, R-hat {_f(r.get('rhat'), '{:.2f}')}, excess/chance {_f(loc.get('excess_fraction'), '{:.2f}')}, "
                   f"spread {_f(loc.get('spread_fraction'), '{:.2f}')}, local: {_verdict(is_local(r))}.\n")
    return "\n".join(out)


def figure(records: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in sorted(records, key=lambda r: r["case"]):
        pilot = (r.get("extra") or {}).get("localisation_pilot")
        if not pilot:
            continue
        rows = [x for x in pilot["ladder"] if x["lambda_hat"] is not None and x["lambda_hat"] > 0]
        line, = ax.plot([x["gamma"] for x in rows], [x["lambda_hat"] for x in rows], "-", lw=1, label=r["case"])
        ax.plot([x["gamma"] for x in rows if x["local"]], [x["lambda_hat"] for x in rows if x["local"]], "o",
                color=line.get_color(), ms=4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("γ")
    ax.set_ylabel("λ̂ (pilot: 4 chains × 1,000 steps)")
    ax.set_title("λ̂ against the localisation γ (dots: local by llcbench.locality)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--figure", default=None, help="also draw λ̂ against γ into this PNG")
    args = ap.parse_args()
    records = [r for r in Store(args.db).records_without(("loss_trace", "per_sample"))]
    print(tables(records))
    if args.figure:
        figure(records, args.figure)


if __name__ == "__main__":
    main()
