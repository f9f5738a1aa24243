"""The report's per-sample detection section: the AUROC table of λ̂_i against the three baselines, the
non-local runs apart, the ROC curves and the histogram of λ̂_i split by ground truth, from ``scores["detection"]`` only."""

from __future__ import annotations

import html

import numpy as np

from .figures import COLORS, _grid, plt
from .text import num

MAX_PANELS = 12  # cases drawn per figure (the first ones by id)


def _main_series(det: dict) -> list[dict]:
    """The runs of the estimator × config with the most detection runs (the figures' series)."""
    runs = det.get("runs") or []
    if not runs:
        return []
    counts: dict = {}
    for r in runs:
        counts[(r["estimator"], r["config_hash"])] = counts.get((r["estimator"], r["config_hash"]), 0) + 1
    est, cfg = max(counts, key=lambda k: (counts[k], k))
    return [r for r in runs if r["estimator"] == est and r["config_hash"] == cfg]


def _by_setting(runs: list[dict]) -> dict[str, list[dict]]:
    """Runs by setting (a case up to its data seed), the first MAX_PANELS by name."""
    out: dict[str, list[dict]] = {}
    for r in runs:
        out.setdefault(r["setting"], []).append(r)
    return dict(sorted(out.items())[:MAX_PANELS])


def _panels(scores: dict, height: float):
    """(detection scores, runs by setting, figure, axes: a panel per setting), or None without runs."""
    det = scores.get("detection") or {}
    cases = _by_setting(_main_series(det))
    if not cases:
        return None
    return (det, cases, *_grid(len(cases), width=3.4, height=height))


def roc_figure(scores: dict):
    panels = _panels(scores, 3.2)
    if panels is None:
        return None, "No run with per-sample values and known memorised samples (llcbench run --family memorisation)."
    det, cases, fig, axes = panels
    grid = None
    for ax, (case, runs) in zip(axes, cases.items()):
        for i, (m, label) in enumerate(det["methods"].items()):
            mine = [r["methods"][m] for r in runs if m in r["methods"]]  # older records lack the noise baseline
            if not mine:
                continue
            tprs = np.array([v["roc_tpr"] for v in mine])
            grid = np.linspace(0, 1, tprs.shape[1])
            au = [v["auroc"] for v in mine if v["auroc"] is not None]
            ax.plot(grid, tprs.mean(axis=0), color=COLORS[i % len(COLORS)],
                    label=f"{m}: AUROC {np.mean(au):.3f}" if au else m)
        ax.plot([0, 1], [0, 1], color="#bbb", lw=0.8, ls=":")
        ax.set_title(case, fontsize=8)
        ax.set_xlabel("false-positive rate", fontsize=8)
        ax.set_ylabel("true-positive rate", fontsize=8)
        ax.legend(fontsize=7, loc="lower right")
    est = _main_series(det)[0]["estimator"]
    return fig, (f"ROC curves of the per-sample scores at separating the memorised samples from the rest "
                 f"({est}; per setting, the mean TPR over its runs — data seeds × run seeds — on a fixed FPR grid; "
                 "AUROC in the legend is the mean over the runs). llc: the per-sample LLC λ̂_i; loss and grad_norm: ℓ_i(w*) and ‖∇ℓ_i(w*)‖ at the anchor; "
                 "noise: E_ξ[ℓ_i(w*+ξ)] − ℓ_i(w*), ξ ~ N(0, I/γ).")


def histogram_figure(scores: dict):
    panels = _panels(scores, 3.0)
    if panels is None:
        return None, "No run with per-sample values and known memorised samples."
    det, cases, fig, axes = panels
    for ax, (case, runs) in zip(axes, cases.items()):
        h = _pooled_histogram(runs)
        edges = np.asarray(h["edges"])
        width = np.diff(edges)
        ax.bar(edges[:-1], h["other"], width=width, align="edge", color=COLORS[0], alpha=0.6, label="other")
        ax.bar(edges[:-1], h["memorised"], width=width, align="edge", color=COLORS[3], alpha=0.7, label="memorised")
        ax.set_yscale("symlog", linthresh=1)
        ax.set_title(f"{case} ({len(runs)} runs)", fontsize=8)
        ax.set_xlabel(r"$\hat\lambda_i$", fontsize=8)
        ax.legend(fontsize=7)
    return fig, ("Histogram of the per-sample LLC λ̂_i of every probe sample of every run of a setting, split by "
                 "ground truth (memorised by construction or not); counts on a symmetric-log axis.")


def _pooled_histogram(runs: list[dict]) -> dict:
    """The runs' histograms re-binned onto one set of edges (each bin's count placed at its centre)."""
    lo = min(r["histogram"]["edges"][0] for r in runs)
    hi = max(r["histogram"]["edges"][-1] for r in runs)
    edges = np.linspace(lo, hi if hi > lo else lo + 1, len(runs[0]["histogram"]["edges"]))
    out = {"edges": edges, "memorised": np.zeros(len(edges) - 1), "other": np.zeros(len(edges) - 1)}
    for r in runs:
        e = np.asarray(r["histogram"]["edges"])
        centres = (e[:-1] + e[1:]) / 2
        for part in ("memorised", "other"):
            out[part] += np.histogram(centres, edges, weights=r["histogram"][part])[0]
    return out


def _rows(det: dict) -> list[list[str]]:
    rows = []
    for c in det.get("settings") or []:
        cells = [c["estimator"], c["setting"], f"{len(c['case_seeds'])} × {len(c['seeds'])}",
                 f"{c['memorised']}/{c['probe']}"]
        for m in det["methods"]:
            s = c["methods"][m]
            lo, hi = s["auroc_range"]
            cells.append(f"{num(s['auroc_mean'], '{:.3f}')} [{num(lo, '{:.3f}')}, {num(hi, '{:.3f}')}]")
        for m in det["methods"]:
            cells.append(num(c["methods"][m]["average_precision_mean"], "{:.3f}"))
        rows.append(cells)
    return rows


def _apart_rows(det: dict) -> list[list[str]]:
    """One row per unhealthy run: why, and its own AUROC and AP of each method, with the bootstrap intervals."""
    rows = []
    for r in det.get("apart") or []:
        why = r.get("problem") or ("not local" if r.get("local") is False else "–")  # older rows: no reason
        cells = [r["estimator"], r["case"], str(r["seed"]), why, f"{r['memorised']}/{r['probe']}"]
        for key in ("auroc", "average_precision"):
            for m in det["methods"]:
                v = r["methods"].get(m)
                lo, hi = v[f"{key}_interval"] if v else (None, None)
                cells.append(f"{num(v[key], '{:.3f}')} [{num(lo, '{:.3f}')}, {num(hi, '{:.3f}')}]" if v else "–")
        rows.append(cells)
    return rows


def _apart_headers(det: dict) -> list[str]:
    methods = list(det.get("methods") or {})
    return (["estimator", "case", "seed", "why apart", "memorised/probe"] + [f"AUROC {m} [95 %]" for m in methods]
            + [f"AP {m} [95 %]" for m in methods])


APART = ("Runs that are not healthy (llcbench.health: chains not mixed or still spreading, or a posterior that is not "
         "local): their λ̂_i is no per-sample LLC estimate, so they are left out of the table above and shown here, "
         "each with its reason, its own values and 95 % bootstrap intervals.")


def _headers(det: dict) -> list[str]:
    methods = list(det.get("methods") or {})
    return (["estimator", "setting", "data seeds × run seeds", "memorised/probe"] + [f"AUROC {m} [min, max]" for m in methods]
            + [f"AP {m}" for m in methods])


INTRO = ("Per-sample detection: for cases whose memorised training samples are known by construction, how well "
         "each per-sample score separates them from the rest — the per-sample LLC λ̂_i = nβ·(E[ℓ_i(w)] − ℓ_i(w*)) "
         "from the run's draws, against two baselines from the same anchor, the loss ℓ_i(w*) and the gradient "
         "norm ‖∇ℓ_i(w*)‖, and one that survives an anchor fitting every sample, the loss under the "
         "localisation's noise alone E_ξ[ℓ_i(w*+ξ)] − ℓ_i(w*), ξ ~ N(0, I/γ) (noise). AUROC 0.5 is chance, 1 perfect; AP (average precision) has the share of memorised "
         "samples as its chance level. A setting is one case definition over its data seeds (the cases "
         "'…/s0', '…/s1', …: a network trained on each); means over its runs, [min, max] over them; every run's "
         "own value with its 95 % stratified-bootstrap interval is in scores.json (detection.runs).")


def _apart_note(det: dict) -> str:
    n = det.get("unhealthy_runs", det.get("non_local_runs")) or 0  # older scores.json: non-local ones only
    far = det.get("non_local_runs") or 0
    return f"{n} unhealthy run{'s' if n != 1 else ''} apart ({far} not local). {APART}"


def detection_html(scores: dict, table) -> str:
    det = scores.get("detection") or {}
    if not det.get("settings") and not det.get("apart"):
        return ""
    out = f"<h2 id='detection'>Per-sample detection of memorised samples</h2><p class='note'>{html.escape(INTRO)}</p>"
    if det.get("settings"):
        out += table(_headers(det), _rows(det))
    if det.get("apart"):
        out += f"<p class='note'>{html.escape(_apart_note(det))}</p>" + table(_apart_headers(det), _apart_rows(det))
    return out


def detection_markdown(scores: dict, table) -> list[str]:
    det = scores.get("detection") or {}
    if not det.get("settings") and not det.get("apart"):
        return []
    out = ["## Per-sample detection of memorised samples", "", INTRO, ""]
    if det.get("settings"):
        out += [table(_headers(det), _rows(det)), ""]
    if det.get("apart"):
        out += [_apart_note(det), "", table(_apart_headers(det), _apart_rows(det)), ""]
    return out


__all__ = ["detection_html", "detection_markdown", "histogram_figure", "plt", "roc_figure"]
