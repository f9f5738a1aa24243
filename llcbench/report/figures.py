"""The report's figures, drawn with matplotlib (Agg) from the scores (and a few records' traces).

Every figure aggregates: its count depends on the headline groups, the
families and the sweeps, never on the number of runs. Each function returns
(figure or None, caption): None when the data for it are absent, with the
caption then saying why. ``svg`` renders one for the page: its tick labels
thinned where they would overlap (``tidy_ticks``), text drawn as paths, so the
browser shows the layout matplotlib measured (``overlapping_texts``).
"""

from __future__ import annotations

import base64
import io
import math

import matplotlib

matplotlib.use("Agg")  # no display: figures are rendered to SVG text
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.text import Text  # noqa: E402

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]
ESTIMAND, SAMPLER, TOTAL = "#4C72B0", "#DD8452", "#999999"
MAX_SERIES = 6  # headline groups drawn in the per-case figures
MAX_SWEEPS = 3
WORST = 4
ROW = 0.22  # inches per case in the per-case figures: 16 pt for 8 pt labels
# Our own labels are math text (the hat of λ̂ drawn as a hat); every other text (case ids, estimator
# names: the user's) is never parsed as math ('mt/$x^{$' would not parse).
HAT = r"$\hat\lambda$"
MATH = {HAT, HAT + " (± 2 se)", r"$\hat\lambda\,/\,\lambda$", r"$(\hat\lambda - \lambda)/\lambda$",
        r"$n\beta\cdot(L(w_t) - L(w^*))$", r"$\hat\lambda_i$"}
_STYLE = {"svg.fonttype": "path", "svg.hashsalt": "llcbench", "font.size": 9, "axes.titlesize": 9,
          "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 8}


def figure(*args, **kwargs):
    """plt.subplots with the report's style and constrained layout (labels get the room they need)."""
    with plt.rc_context(_STYLE):
        return plt.subplots(*args, layout="constrained", **kwargs)


def _tick_labels(ax, renderer):
    """(axis, [(loc, Text)]) of the tick labels drawn (ticks in the view, non-empty), per axis of ``ax``."""
    out = []
    for axis in (ax.xaxis, ax.yaxis):
        lo, hi = sorted(axis.get_view_interval())
        locs = list(axis.get_majorticklocs())
        ticks = axis.get_major_ticks(len(locs))
        shown = [(loc, t.label1) for loc, t in zip(locs, ticks)
                 if lo - 1e-9 * (hi - lo) <= loc <= hi + 1e-9 * (hi - lo) and t.label1.get_visible()
                 and t.label1.get_text().strip()]
        out.append((axis, shown))
    return out


def _overlap(a, b, pad: float = 0.5) -> bool:
    return a.x0 + pad < b.x1 and b.x0 + pad < a.x1 and a.y0 + pad < b.y1 and b.y0 + pad < a.y1


def tidy_ticks(fig) -> None:
    """Log axes labelled with plain numbers (never minor labels, at least two labels in the view), then
    every axis's major ticks thinned to every k-th where their labels would overlap."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() != "log":
                continue
            axis.set_minor_formatter(ticker.NullFormatter())
            axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            lo, hi = sorted(axis.get_view_interval())
            for subs in ((1.0,), (1.0, 2.0, 5.0), tuple(range(1, 10))):
                axis.set_major_locator(ticker.LogLocator(subs=subs, numticks=60))
                if sum(lo <= v <= hi for v in axis.get_majorticklocs()) >= 2:
                    break
    renderer = fig.canvas.get_renderer()
    for _ in range(2):  # a thinned axis may move the layout: check once more
        fig.draw_without_rendering()
        changed = False
        for ax in fig.axes:
            for axis, shown in _tick_labels(ax, renderer):
                boxes = [t.get_window_extent(renderer) for _, t in shown]
                step = 1
                while step < len(shown) and any(_overlap(boxes[i], boxes[i + step])
                                                for i in range(0, len(boxes) - step, step)):
                    step += 1
                if step > 1:
                    axis.set_major_locator(ticker.FixedLocator([loc for loc, _ in shown][::step]))
                    changed = True
        if not changed:
            break


def overlapping_texts(fig) -> list[tuple[str, str]]:
    """Pairs of texts of the drawn figure whose boxes overlap (tick labels, titles, axis labels, legends,
    annotations): [] for a readable figure. Hidden, empty and out-of-view tick texts are left out."""
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    ticks, tick_ids = [], set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for t in axis.get_major_ticks() + axis.get_minor_ticks():
                tick_ids.update((id(t.label1), id(t.label2)))
        if ax.get_visible():
            ticks += [t for _, shown in _tick_labels(ax, renderer) for _, t in shown]
    others = [t for t in fig.findobj(Text) if id(t) not in tick_ids and t.get_visible() and t.get_text().strip()
              and (t.axes is None or t.axes.get_visible())]
    texts = ticks + others
    boxes = [t.get_window_extent(renderer) for t in texts]
    return [(texts[i].get_text(), texts[j].get_text()) for i in range(len(texts)) for j in range(i + 1, len(texts))
            if _overlap(boxes[i], boxes[j])]


def svg(fig) -> str:
    """The figure as base64 SVG, text drawn as paths (the browser shows exactly matplotlib's layout);
    closed afterwards, so memory does not grow with the figures."""
    for text in fig.findobj(Text):
        text.set_parse_math(text.get_text() in MATH)
    buf = io.BytesIO()
    with plt.rc_context({**_STYLE, "text.parse_math": False}):  # tick labels made while drawing: plain text
        tidy_ticks(fig)
        fig.savefig(buf, format="svg", metadata={"Date": None})
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
    fig, axes = figure(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
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
        ax.set_ylabel(HAT + " (± 2 se)")
        ax.legend(fontsize=7)
    return fig, ("λ̂ against the true λ on log-log axes, one panel per family: points on the dashed line "
                 "y = x are exact, points below it underestimate, bars are ± 2 standard errors.")


def _case_order(rows: list[dict]) -> list[str]:
    return [r["case"] for r in sorted(rows, key=lambda r: (r["family"], r["lambda_float"], r["case"]))]


def relative_error(scores: dict):
    """A dot per case and headline config, one panel per family with a row per case (its height grows with
    the cases, so labels never crowd): the total error (λ̂ − λ)/λ as a filled dot and, where a reference
    exists, the estimand's part (λ_nβ,γ − λ)/λ as an open one joined to it (the segment is the sampler's part)."""
    groups = headline(scores)
    fams = _families(groups)
    if not fams:
        return None, "No case with an exact λ: no relative error to show."
    rows_of = {fam: [] for fam in fams}
    for g in groups:
        for r in g["cases"]:
            if r["case"] not in rows_of[r["family"]]:
                rows_of[r["family"]].append(r["case"])
    lam = {r["case"]: (r["lambda_float"], r["case"]) for g in groups for r in g["cases"]}
    for fam in fams:
        rows_of[fam].sort(key=lambda c: lam[c])
    values = [v for g in groups for r in g["cases"] for v in (r["rel_error"], r["estimand_rel"]) if _fin(v)]
    lo, hi = min(values + [-0.1]), max(values + [0.1])
    pad = 0.06 * (hi - lo)
    sizes = [len(rows_of[f]) for f in fams]
    fig, axes = figure(len(fams), 1, figsize=(8.0, ROW * sum(sizes) + 0.55 * len(fams) + 1.1), sharex=True,
                       squeeze=False, gridspec_kw={"height_ratios": [n + 1.2 for n in sizes]})
    offsets = [(i - (len(groups) - 1) / 2) * min(0.6 / max(len(groups), 1), 0.2) for i in range(len(groups))]
    for ax, fam in zip(axes[:, 0], fams):
        pos = {c: i for i, c in enumerate(rows_of[fam])}
        ax.axvspan(-0.1, 0.1, color="green", alpha=0.08, lw=0)
        ax.axvline(0, color="k", lw=0.8)
        for gi, g in enumerate(groups):
            color = COLORS[gi % len(COLORS)]
            for r in g["cases"]:
                if r["family"] != fam or not _fin(r["rel_error"]):
                    continue
                y = pos[r["case"]] + offsets[gi]
                if _fin(r["estimand_rel"]):
                    ax.plot([r["estimand_rel"], r["rel_error"]], [y, y], color=color, lw=1.2, alpha=0.7)
                    ax.plot(r["estimand_rel"], y, "o", ms=5, mfc="white", mec=color)
                ax.plot(r["rel_error"], y, "o", ms=5, color=color)
        ax.set_yticks(range(len(pos)), list(pos), fontsize=8)
        ax.set_ylim(len(pos) - 0.5, -0.5)
        ax.set_title(fam, loc="left", fontsize=9, fontweight="bold")
        ax.grid(axis="x", color="#ddd", lw=0.5)
    ax = axes[-1, 0]
    ax.set_xlim(lo - pad, hi + pad)
    if max(-lo, hi) > 3:  # a few far-off cases must not squash the rest: linear within ±100 %, log beyond
        ax.set_xscale("symlog", linthresh=1.0, linscale=2.0)
    ax.xaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    ax.set_xlabel(r"$(\hat\lambda - \lambda)/\lambda$")
    handles = [plt.Line2D([], [], ls="", marker="o", color=COLORS[i % len(COLORS)], label=_name(g))
               for i, g in enumerate(groups)]
    handles.append(plt.Line2D([], [], ls="-", marker="o", mfc="white", color="#555",
                              label="open dot: estimand's part (λ_nβ,γ − λ)/λ; segment: sampler's part"))
    fig.legend(handles=handles, loc="outside upper center", ncol=min(len(handles), 3), fontsize=8)
    return fig, ("Relative error (λ̂ − λ)/λ per case, one row per case in each family's panel (cases in the "
                 "order of λ), one colour per headline config; the green band is ±10 %. Where a reference "
                 "λ_nβ,γ exists, the open dot is the estimand's part (λ_nβ,γ − λ)/λ, not the sampler's fault, "
                 "and the segment to the filled dot is the sampler's part (λ̂ − λ_nβ,γ)/λ. The axis is linear "
                 "within ±100 % and logarithmic beyond where some case is off by more than 300 %.")


def ordinality(scores: dict):
    groups = headline(scores)
    fams = _families(groups)
    if not fams:
        return None, "No case with an exact λ: no ordering to check."
    fig, axes = figure(len(groups), len(fams), figsize=(3.4 * len(fams), 2.9 * len(groups)), squeeze=False)
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
            ax.set_ylabel(HAT, fontsize=8)
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
    fig, axes = figure(len(fams), len(pvals), figsize=(0.9 * len(xs) * len(pvals) + 2.5,
                                                       (0.7 * len(ys) + 1.6) * len(fams)), squeeze=False)
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
    fig, axes = figure(1, len(axes_names), figsize=(3.8 * len(axes_names), 3.0), squeeze=False)
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
        ax.set_ylabel(r"$\hat\lambda\,/\,\lambda$")
    axes[0][0].legend(fontsize=7)
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
        # black: a colour no chain uses (the chains take the colour cycle)
        ax.axhline(r["lambda_float"], color="k", ls="--", lw=1, label="true λ")
        if _fin(r.get("lambda_hat")):
            ax.axhline(r["lambda_hat"], color="k", lw=1.6, label=HAT)
        rhat, ess = r.get("rhat"), r.get("ess")
        ax.set_title(f"{r['case']} · {r['estimator']} · {r['rel_error']:+.0%}\n"
                     f"R-hat {'—' if rhat is None else f'{rhat:.3f}'}, ESS {'—' if ess is None else f'{ess:.0f}'}",
                     fontsize=8)
        ax.set_xlabel("draw after burn-in", fontsize=8)
        ax.set_ylabel(r"$n\beta\cdot(L(w_t) - L(w^*))$", fontsize=8)
        ax.legend(fontsize=7)
    return fig, ("The per-chain λ traces nβ·(L(w_t) − L(w*)) of the worst runs (largest |relative error|): "
                 "chains that wander apart or drift mean the sampler has not mixed (R-hat above 1.1, small ESS); "
                 "flat, overlapping chains far from the dashed true λ point at the estimand or a bias; the solid black line is λ̂.")


def error_vs_cost(scores: dict):
    groups = scores["groups"]
    if not any(g["error_against_cost"] for g in groups):
        return None, "No run reports both gradient evaluations and an error: no cost figure."
    fig, ax = figure(figsize=(6.5, 4.2))
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
    return fig, ("Error against cost: small dots are cases of the headline configs, diamonds the median over cases "
                 "of every estimator × config (large: headline); lower is more accurate, further left is cheaper.")
