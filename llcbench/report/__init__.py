"""The calibration report: one self-contained ``index.html`` (figures embedded as base64 SVG, no
external file, works offline), ``report.md`` and ``scores.json``, built from the scores
(``llcbench.score``) and, for the traces figure only, the records of the worst runs."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Optional

from ..store import Store
from . import detection, figures, modular_figures
from .markdown import render_markdown
from .page import render_html


TRACES_PER_ESTIMATOR = 2  # worst runs whose traces are drawn, per headline estimator
TRACE_LOOKUPS = 12  # runs read back per estimator in search of traces (an estimator may record none)


def worst_runs(scores: dict, k: int = figures.WORST) -> list[str]:
    """Keys of the first seed of the k worst case rows (largest |rel. error|) of the headline groups."""
    rows = [r for g in figures.headline(scores) for r in g["cases"] if r["rel_error"] is not None]
    rows.sort(key=lambda r: -abs(r["rel_error"]))
    return [r["keys"][0] for r in rows[:k]]


def trace_runs(scores: dict, store: Optional[Store], k: int = TRACES_PER_ESTIMATOR) -> tuple[list[dict], list[str]]:
    """(the records of the k worst runs that carry a loss trace, per headline estimator; the headline
    estimators none of whose worst runs carries one): one estimator without traces (a plugin's) never
    hides the others' traces."""
    if store is None:
        return [], []
    runs, without = [], []
    for g in figures.headline(scores):
        rows = sorted((r for r in g["cases"] if r["rel_error"] is not None), key=lambda r: -abs(r["rel_error"]))
        found = []
        for key in [key for r in rows for key in r["keys"]][:TRACE_LOOKUPS]:
            rec = store.get(key)
            if rec is not None and rec.get("loss_trace") and rec.get("rel_error") is not None:
                found.append(rec)
                if len(found) == k:
                    break
        runs += found
        if not found and rows:
            without.append(g["estimator"])
    return runs, without


def make_figures(scores: dict, store: Optional[Store]) -> list[dict]:
    """[{"id", "title", "svg" (base64) or None, "caption"}], in page order."""
    out = []

    def add(fid, title, result):
        fig, caption = result
        out.append({"id": fid, "title": title, "svg": figures.svg(fig) if fig is not None else None,
                    "caption": caption})

    add("truth", "λ̂ against λ", figures.lambda_vs_truth(scores))
    add("relerr", "Relative error per case: estimand and sampler", figures.relative_error(scores))
    add("order", "Ordinality", figures.ordinality(scores))
    heads = {g["id"] for g in scores["groups"] if g["headline"]}
    sweeps = scores["sweeps"][: figures.MAX_SWEEPS]
    if not sweeps:
        out.append({"id": "sensitivity", "title": "Hyperparameter sensitivity", "svg": None,
                    "caption": "No sweep in the store (configs of one estimator that differ only in "
                               "step_scale, nbeta_scale or gamma_scale): no sensitivity to show. "
                               "`llcbench sweep` makes one."})
    for i, s in enumerate(sweeps):
        add(f"heat{i}", f"Sensitivity of {s['estimator']}: stable region", figures.sensitivity_heatmaps(s))
        base = next((p["group"] for p in s["points"] if p["group"] in heads), None)
        add(f"lines{i}", f"Sensitivity of {s['estimator']}: the most sensitive cases", figures.sensitivity_lines(s, base))
    runs, without = trace_runs(scores, store)
    fig, caption = figures.traces(runs) if runs else (None, "No headline run carries a loss trace.")
    if without:
        caption += f" No trace from {', '.join(without)}: none of its worst runs records one."
    add("traces", "Loss traces of the worst runs, per estimator", (fig, caption))
    add("cost", "Error against cost", figures.error_vs_cost(scores))
    if (scores.get("detection") or {}).get("runs"):
        add("roc", "Per-sample detection: ROC curves", detection.roc_figure(scores))
        add("persample_hist", "Per-sample LLC by ground truth", detection.histogram_figure(scores))
    if any(g.get("theory") for g in scores["groups"]):
        add("scaling", "Modular arithmetic: λ̂ against p", modular_figures.scaling(scores))
    if any(g.get("trajectories") for g in scores["groups"]):
        add("trajectory", "Modular arithmetic: λ̂ over training", modular_figures.trajectories(scores))
    return out


def build_report(scores: dict, out_dir: Path, store: Optional[Store] = None) -> dict:
    """Write index.html, report.md and scores.json into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figs = make_figures(scores, store)
    paths = {"html": out_dir / "index.html", "markdown": out_dir / "report.md", "scores": out_dir / "scores.json"}
    paths["scores"].write_text(json.dumps(scores, indent=1, allow_nan=False, default=_nan_free) + "\n")
    paths["html"].write_text(render_html(scores, figs), encoding="utf-8")
    paths["markdown"].write_text(render_markdown(scores), encoding="utf-8")
    return paths


def _nan_free(value):
    raise TypeError(f"not JSON-serialisable: {value!r}")


__all__ = ["build_report", "make_figures", "worst_runs"]


def write_report(db, out=None, estimators: Optional[list] = None, version: Optional[str] = None,
                 force: bool = False) -> Path:
    """Score the store at ``db`` (opened read-only) and write its report into ``out`` (default:
    ``NAME.report/`` beside ``NAME.sqlite``: ``folder.default_folder``); return the path of
    index.html. A folder holding another store's report is refused unless ``force``.
    ``llcbench.report(db, out)`` is this function."""
    from ..score import build_scores
    from ..store import open_existing
    from .folder import claim_folder

    with open_existing(db) as store:
        scores = build_scores(store, list(estimators) if estimators else None, version)
        folder = claim_folder(Path(db), out, force)  # after the scores: bad flags are named first
        return build_report(scores, folder, store)["html"]


class _CallableReport(types.ModuleType):
    """``llcbench.report`` names both this package and the library's ``report(db, out=None)``:
    importing the package puts it in that name on ``llcbench``, so calling the package calls
    ``write_report``, and ``llcbench.report(db)`` works whatever was imported first."""

    def __call__(self, *args, **kwargs) -> Path:
        return write_report(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableReport

