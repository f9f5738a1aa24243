"""λ̂ against γ for trained anchors, from the pilot ladders stored in SG-MCMC records: for docs/locality.md.

    python scripts/locality_tables.py --db reports/locality.sqlite [--figure docs/locality_ladder.png] [--prefix modular/]

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


def compact(records: list[dict]) -> str:
    """One row per run: the ladder's verdict and the full run at the chosen γ (for comparing nβ)."""
    out = ["| case | nβ/(n/ln n) | nβ | plateau | local rungs | chosen γ/nβ | pilot λ̂ there | full-run λ̂ ± se | "
           "R-hat | excess / chance | E‖w−w*‖² / (d/γ) | local |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (r["case"], r["extra"]["nbeta"])):
        pilot = (r.get("extra") or {}).get("localisation_pilot")
        if not pilot:
            continue
        nbeta, loc = r["extra"]["nbeta"], r.get("locality") or {}
        chosen = next(x for x in pilot["ladder"] if x["gamma"] == pilot["gamma"])
        out.append(f"| {r['case']} | {r['config'].get('nbeta_scale', 1.0):g} | {nbeta:.4g} | "
                   f"{'yes' if pilot['plateau'] else 'no'} | {sum(bool(x['local']) for x in pilot['ladder'])} of "
                   f"{len(pilot['ladder'])} | {pilot['gamma'] / nbeta:.3g} | {_f(chosen['lambda_hat'], '{:.4g}')} | "
                   f"{r['lambda_hat']:.4g} ± {r['se']:.2g} | {_f(r.get('rhat'), '{:.2f}')} | "
                   f"{_f(loc.get('excess_fraction'), '{:.2f}')} | {_f(loc.get('spread_fraction'), '{:.2f}')} | "
                   f"{_verdict(is_local(r))} |")
    return "\n".join(out)


def _span(xs, fmt="{:.2f}") -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "—"
    lo, hi = min(xs), max(xs)
    return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}–{fmt.format(hi)}"


def summary(records: list[dict]) -> str:
    """The ranges docs/locality.md quotes, per nβ/(n/ln n): computed here so that the prose is program output."""
    groups: dict = {}
    for r in records:
        pilot = (r.get("extra") or {}).get("localisation_pilot")
        if pilot:
            groups.setdefault(r["config"].get("nbeta_scale", 1.0), []).append((r, pilot))
    out = []
    for scale, runs in sorted(groups.items()):
        first = [p["ladder"][0] for _, p in runs]
        # the first rung (ascending γ) whose chains no longer wander off: excess below the bar of 0.25
        settled = [next((x for x in p["ladder"] if x["excess_fraction"] is not None and x["excess_fraction"] < 0.25), None)
                   for _, p in runs]
        local_rungs = sum(bool(x["local"]) for _, p in runs for x in p["ladder"])
        out.append(
            f"nβ = {scale:g}·n/ln n: {len(runs)} cases, {sum(bool(p['plateau']) for _, p in runs)} with a plateau, "
            f"{local_rungs} local rungs of {sum(len(p['ladder']) for _, p in runs)}, "
            f"{sum(bool(is_local(r)) for r, _ in runs)} local full runs; "
            f"at γ = {runs[0][1]['ladder'][0]['gamma'] / runs[0][0]['extra']['nbeta']:.3g}·nβ excess/chance {_span([x['excess_fraction'] for x in first])}, "
            f"accuracy drop {_span([x['accuracy_drop_fraction'] for x in first])}; "
            f"ladder R-hat max {max((x['rhat'] or 0) for _, p in runs for x in p['ladder']):.2f}; "
            f"first rung with excess/chance < 0.25: spread {_span([x['spread_fraction'] for x in settled if x])} of d/γ "
            f"({sum(x is None for x in settled)} cases have none); "
            f"chosen γ/nβ {_span([p['gamma'] / r['extra']['nbeta'] for r, p in runs], '{:.3g}')}, "
            f"full-run λ̂ {_span([r['lambda_hat'] for r, _ in runs], '{:.3g}')}, "
            f"full-run spread {_span([(r.get('locality') or {}).get('spread_fraction') for r, _ in runs])}, "
            f"full-run R-hat {_span([r.get('rhat') for r, _ in runs])}, "
            f"full-run excess/chance {_span([(r.get('locality') or {}).get('excess_fraction') for r, _ in runs])}.")
    versions = sorted({r.get("llcbench_version", "?") for r in records})
    commits = sorted({r.get("git_commit") or "?" for r in records})
    out.append(f"records: llcbench {', '.join(versions)}; git commit {', '.join(commits)}")
    return "\n\n".join(out)


def figure(records: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    runs = [r for r in sorted(records, key=lambda r: r["case"]) if (r.get("extra") or {}).get("localisation_pilot")]
    colours = plt.cm.tab20.colors  # more lines than the default cycle's ten colours: no two cases share one
    for i, r in enumerate(runs):
        pilot = r["extra"]["localisation_pilot"]
        rows = [x for x in pilot["ladder"] if x["lambda_hat"] is not None and x["lambda_hat"] > 0]
        style = "--" if r["case"].startswith("memorisation/") else ":" if "/trojans/" in r["case"] else "-"
        line, = ax.plot([x["gamma"] for x in rows], [x["lambda_hat"] for x in rows], style, lw=1.2,
                        color=colours[i % len(colours)], label=r["case"])
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
    ap.add_argument("--prefix", default="", help="only the cases whose id starts with this (e.g. modular/)")
    ap.add_argument("--compact", action="store_true", help="one row per run instead of a table per ladder")
    args = ap.parse_args()
    records = [r for r in Store(args.db).records_without(("loss_trace", "per_sample")) if r["case"].startswith(args.prefix)]
    print(compact(records) if args.compact else tables(records))
    print(summary(records))
    if args.figure:
        figure(records, args.figure)


if __name__ == "__main__":
    main()
