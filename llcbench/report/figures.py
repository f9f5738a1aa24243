"""The report's figures, drawn with matplotlib (Agg) from the scores (and a few records' traces).

Every figure aggregates: its count depends on the headline groups, the
families and the sweeps, never on the number of runs. Each function returns
(figure or None, caption): None when the data for it are absent, with the
caption then saying why.
"""

from __future__ import annotations

import base64
import io
import math

import matplotlib

matplotlib.use("Agg")  # no display: figures are rendered to PNG bytes
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

DPI = 80
COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]
ESTIMAND, SAMPLER, TOTAL = "#4C72B0", "#DD8452", "#999999"
MAX_SERIES = 6  # headline groups drawn in the per-case figures
MAX_SWEEPS = 3
WORST = 4


def png(fig) -> str:
    """The figure as a base64 PNG (closed afterwards, so memory does not grow with the figures)."""
    buf = io.BytesIO()
    # case ids and estimator names are the user's text, never math text ('mt/$x^{$' would not parse):
    # off for the texts made so far and for the tick labels made while drawing
    for text in fig.findobj(matplotlib.text.Text):
        text.set_parse_math(False)
    with plt.rc_context({"text.parse_math": False}):
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _fin(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def headline(scores: dict) -> list[dict]:
    return [g for g in scores["groups"] if g["headline"]][:MAX_SERIES]


def _families(groups) -> list[str]:
    return sorted({r["family"] for g in groups for r in g["cases"]})


def _name(g: dict) -> str:
    return g["estimator"] if g["is_default"] else f"{g['estimator']} ({g['config_hash'][:6]})"


def _grid(n: int, width: float = 3.6, height: float = 3.2, ncols: int = 4):
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def lambda_vs_truth(scores: dict):
    groups = headline(scores)
    fams = _families(groups)
    if not fams:
        return None, "No case with an exact λ: nothing to plot against the truth."
    fig, axes = _grid(len(fams))
    for ax, fam in zip(axes, fams):
        lo, hi = math.inf, -math.inf
        for i, g in enumerate(groups):
            rows = [r for r in g["cases"] if r["family"] == fam and _fin(r["lambda_hat"]) and r["lambda_hat"] > 0]
            if not rows:
                continue
            x = [r["lambda_float"] for r in rows]
            y = [r["lambda_hat"] for r in rows]
            err = [2 * r["se"] if _fin(r["se"]) else 0.0 for r in rows]
            low = [min(e, yy * 0.999) for e, yy in zip(err, y)]  # a log axis cannot show a bar below 0
            ax.errorbar(x, y, yerr=[low, err], fmt="o", ms=4, capsize=2, color=COLORS[i % len(COLORS)],
                        label=_name(g), alpha=0.85)
            lo, hi = min(lo, *x, *y), max(hi, *x, *y)
        if math.isfinite(lo):
            ax.plot([lo / 1.5, hi * 1.5], [lo / 1.5, hi * 1.5], "k--", lw=0.8, label="y = x")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(fam)
        ax.set_xlabel("true λ")
        ax.set_ylabel("λ̂ (± 2 se)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, ("λ̂ against the true λ on log-log axes, one panel per family: points on the dashed line "
                 "y = x are exact, points below it underestimate, bars are ± 2 standard errors.")


def _case_order(rows: list[dict]) -> list[str]:
    return [r["case"] for r in sorted(rows, key=lambda r: (r["family"], r["lambda_float"], r["case"]))]


def relative_error(scores: dict):
    groups = headline(scores)
    order = []
    for g in groups:
        order += [c for c in _case_order(g["cases"]) if c not in order]
    if not order:
        return None, "No case with an exact λ: no relative error to show."
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups) + 2.2, 0.17 * len(order) + 1.4),
                             squeeze=False, sharey=True)
    pos = {c: i for i, c in enumerate(order)}
    for ax, g in zip(axes[0], groups):
        for r in g["cases"]:
            y = pos[r["case"]]
            if not _fin(r["rel_error"]):
                continue
            if _fin(r["estimand_rel"]):
                ax.barh(y, r["estimand_rel"], color=ESTIMAND, height=0.8)
                ax.barh(y, r["sampler_rel"], left=r["estimand_rel"], color=SAMPLER, height=0.8)
            else:
                ax.barh(y, r["rel_error"], color=TOTAL, height=0.8)
        for v in (-0.1, 0.1):
            ax.axvline(v, color="k", lw=0.6, ls=":")
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlim(-1.0, 1.0)
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_title(_name(g), fontsize=10)
        ax.set_xlabel("(λ̂ − λ)/λ")
    axes[0][0].set_yticks(range(len(order)), order, fontsize=6)
    axes[0][0].invert_yaxis()
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in (ESTIMAND, SAMPLER, TOTAL)]
    fig.legend(handles, ["estimand part (λ_nβ,γ − λ)/λ", "sampler part (λ̂ − λ_nβ,γ)/λ", "total (no reference)"],
               loc="upper center", ncol=3, fontsize=8, bbox_to_anchor=(0.5, 1.0 + 0.3 / (0.17 * len(order) + 1.4)))
    fig.tight_layout()
    return fig, ("Relative error per case (bars clipped at ±100 %, dotted lines at ±10 %): where a reference "
                 "λ_nβ,γ exists the bar is split into the estimand's part (blue, not the sampler's fault) and the "
                 "sampler's part (orange); grey bars have no reference to split by.")


def ordinality(scores: dict):
    groups = headline(scores)
    fams = _families(groups)
    if not fams:
        return None, "No case with an exact λ: no ordering to check."
    fig, axes = plt.subplots(len(groups), len(fams), figsize=(3.4 * len(fams), 2.9 * len(groups)), squeeze=False)
    for gi, g in enumerate(groups):
        for fi, fam in enumerate(fams):
            ax = axes[gi][fi]
            rows = {r["case"]: r for r in g["cases"] if r["family"] == fam and _fin(r["lambda_hat"])}
            if not rows:  # a family this row did not run (or ran no healthy case of): no empty axes
                ax.set_visible(False)
                continue
            block = g["families"].get(fam) or {}
            pts = sorted(rows.values(), key=lambda r: r["lambda_float"])
            ax.plot([r["lambda_float"] for r in pts], [r["lambda_hat"] for r in pts], "o-", ms=4, lw=0.6,
                    color=COLORS[gi % len(COLORS)])
            for a, b in block.get("violated_pairs", []):
                if a in rows and b in rows:
                    ax.plot([rows[a]["lambda_float"], rows[b]["lambda_float"]],
                            [rows[a]["lambda_hat"], rows[b]["lambda_hat"]], color="red", lw=1.6)
            if pts and all(r["lambda_hat"] > 0 for r in pts) and all(r["lambda_float"] > 0 for r in pts):
                ax.set_xscale("log")
                ax.set_yscale("log")
            tau = block.get("kendall_tau")
            ax.set_title(f"{_name(g)} · {fam}\nτ = {'—' if tau is None else f'{tau:.2f}'}, "
                         f"{len(block.get('violated_pairs', []))} violated pairs", fontsize=8)
            ax.set_xlabel("true λ", fontsize=8)
            ax.set_ylabel("λ̂", fontsize=8)
    fig.tight_layout()
    return fig, ("λ̂ of each case against its true λ, cases joined in the order of λ: a correct ordering rises "
                 "from left to right; each red segment joins a pair of cases whose λ̂ are in the wrong order.")


def _cell_axes(sweep: dict):
    axes = list(sweep["axes"])
    x = axes[0] if axes else None
    y = axes[1] if len(axes) > 1 else None
    panel = axes[2] if len(axes) > 2 else None
    return x, y, panel


def sensitivity_heatmaps(sweep: dict):
    x, y, panel = _cell_axes(sweep)
    if x is None:
        return None, "The sweep varies no swept field."
    fams = sorted(sweep["families"])
    if not fams:  # e.g. a sweep of theory-kind cases only: no error against an exact λ to map
        return None, "The sweep has no case with an exact λ: no error to map."
    pvals = sweep["axes"][panel] if panel else [None]
    xs, ys = sweep["axes"][x], sweep["axes"][y] if y else [None]
    fig, axes = plt.subplots(len(fams), len(pvals), figsize=(0.9 * len(xs) * len(pvals) + 2.5,
                                                             (0.7 * len(ys) + 1.6) * len(fams)), squeeze=False)
    fig.subplots_adjust(hspace=0.75, wspace=0.35)  # room for each panel's two-line title below the row above
    cmap = plt.get_cmap("viridis_r")
    image = None
    for fi, fam in enumerate(fams):
        for pi, pv in enumerate(pvals):
            ax = axes[fi][pi]
            grid = [[math.nan] * len(xs) for _ in ys]
            for p in sweep["points"]:
                v = p["values"]
                if panel and v.get(panel) != pv:
                    continue
                xi, yi = xs.index(v[x]), ys.index(v[y]) if y else 0
                b = p["families"][fam]
                e = b["median_abs_rel_error"]
                grid[yi][xi] = min(e, 0.5) if e is not None else math.nan
                label = "—" if e is None else f"{e:.0%}"
                if b["healthy"] < b["cases"]:
                    label += "!"
                ax.text(xi, yi, label, ha="center", va="center", fontsize=7,
                        color="white" if e is not None and e > 0.25 else "black")
                if b["stable"]:
                    ax.add_patch(Rectangle((xi - 0.5, yi - 0.5), 1, 1, fill=False, ec="red", lw=2.2))
            image = ax.imshow(grid, cmap=cmap, vmin=0, vmax=0.5, origin="lower", aspect="auto")
            ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs], fontsize=7)
            ax.set_yticks(range(len(ys)), [f"{v:g}" if v is not None else "" for v in ys], fontsize=7)
            ax.set_xlabel(x, fontsize=8)
            if y:
                ax.set_ylabel(y, fontsize=8)
            ax.set_title(f"{fam} ({sweep['families'][fam]['stable_size']} stable)"
                         + (f"\n{panel} = {pv:g}" if panel else ""), fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=[a for row in axes for a in row], shrink=0.6, label="median |rel. error| (clipped at 50 %)")
    return fig, (f"{sweep['estimator']}: median |relative error| of each family's cases at every grid point of the "
                 f"sweep ({' × '.join(sweep['axes'])}); red squares are the stable region (every case of the family "
                 "within 10 % and healthy), '!' marks points with an unhealthy run (divergent chain or R-hat > 1.1).")


def sensitivity_lines(sweep: dict, base_group: str | None):
    worst = [c for c in sweep["case_spread"] if c["rel_range"] is not None][:WORST]
    axes_names = list(sweep["axes"])
    if not worst or not axes_names:
        return None, "No case has two healthy grid points: no sensitivity curve."
    points = {p["group"]: p for p in sweep["points"]}
    base = points.get(base_group) or sweep["points"][0]
    fig, axes = plt.subplots(1, len(axes_names), figsize=(3.8 * len(axes_names), 3.0), squeeze=False)
    for ax, name in zip(axes[0], axes_names):
        for ci, c in enumerate(worst):
            line = []
            for gid, lam_hat, ok in c["per_point"]:
                v = points[gid]["values"]
                if all(v[a] == base["values"][a] for a in axes_names if a != name) and _fin(lam_hat):
                    line.append((v[name], lam_hat / c["lambda"], ok))
            line.sort()
            color = COLORS[ci % len(COLORS)]
            ax.plot([p[0] for p in line], [p[1] for p in line], "-", color=color, lw=1, label=c["case"])
            ax.scatter([p[0] for p in line], [p[1] for p in line], c=[color if p[2] else "white" for p in line],
                       edgecolors=color, zorder=3, s=22)
        ax.axhspan(0.9, 1.1, color="green", alpha=0.1)
        ax.axhline(1.0, color="k", lw=0.7, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel("λ̂ / λ")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    held = ", ".join(f"{a} = {base['values'][a]:g}" for a in axes_names)
    return fig, (f"{sweep['estimator']}: λ̂/λ of the {len(worst)} cases whose λ̂ moves most across the sweep, "
                 f"against each hyperparameter with the others held at ({held}); the green band is ±10 %, open "
                 "circles are unhealthy runs.")


def traces(runs: list[dict]):
    runs = [r for r in runs if r.get("loss_trace")]
    if not runs:
        return None, "The worst runs carry no loss trace (the estimator does not record one)."
    fig, axes = _grid(len(runs), width=4.2, height=2.8, ncols=2)
    for ax, r in zip(axes, runs):
        nbeta = (r.get("extra") or {}).get("nbeta") or 1.0
        stride = (r.get("extra") or {}).get("loss_trace_stride") or 1
        for chain in r["loss_trace"]:
            ys = [nbeta * v if v is not None else math.nan for v in chain]
            ax.plot([i * stride for i in range(len(ys))], ys, lw=0.6, alpha=0.8)
        ax.axhline(r["lambda_float"], color="k", ls="--", lw=1, label="true λ")
        if _fin(r.get("lambda_hat")):
            ax.axhline(r["lambda_hat"], color="red", lw=1, label="λ̂")
        rhat, ess = r.get("rhat"), r.get("ess")
        ax.set_title(f"{r['case']} · {r['estimator']} · {r['rel_error']:+.0%}\n"
                     f"R-hat {'—' if rhat is None else f'{rhat:.3f}'}, ESS {'—' if ess is None else f'{ess:.0f}'}",
                     fontsize=8)
        ax.set_xlabel("draw after burn-in", fontsize=8)
        ax.set_ylabel("nβ·(L(w_t) − L(w*))", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, ("The per-chain λ traces nβ·(L(w_t) − L(w*)) of the worst runs (largest |relative error|): "
                 "chains that wander apart or drift mean the sampler has not mixed (R-hat above 1.1, small ESS); "
                 "flat, overlapping chains far from the dashed true λ point at the estimand or a bias.")


def error_vs_cost(scores: dict):
    groups = scores["groups"]
    if not any(g["error_against_cost"] for g in groups):
        return None, "No run reports both gradient evaluations and an error: no cost figure."
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, g in enumerate(headline(scores)):
        pts = [p for p in g["error_against_cost"] if p[0] > 0 and p[1] > 0]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=10, alpha=0.5, color=COLORS[i % len(COLORS)],
                   label=f"{_name(g)}: cases")
    med = [g for g in groups if _fin(g["overall"]["grad_evals_median"]) and _fin(g["overall"]["median_abs_rel_error"])
           and g["overall"]["grad_evals_median"] > 0 and g["overall"]["median_abs_rel_error"] > 0]
    ests = sorted({g["estimator"] for g in groups})
    for g in med:
        color = COLORS[ests.index(g["estimator"]) % len(COLORS)]
        ax.scatter(g["overall"]["grad_evals_median"], g["overall"]["median_abs_rel_error"], marker="D",
                   s=60 if g["headline"] else 25, color=color, edgecolors="k", zorder=4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("gradient evaluations per run")
    ax.set_ylabel("|relative error|")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, ("Error against cost: small dots are cases of the headline configs, diamonds the median over cases "
                 "of every estimator × config (large: headline); lower is more accurate, further left is cheaper.")
