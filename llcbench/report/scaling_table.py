"""The rows of the modular-arithmetic scaling table (markdown and HTML): one per headline group × task."""

from __future__ import annotations

from .text import num

HEADERS = ["estimator", "config", "task", "p", "slope ± se (fit)", "slope over seeds (mean ± sd, k)",
           "theory slope", "λ̂/p", "λ̂/(f·p²)", "min test acc.", "memorising > generalising"]


def _range(values, fmt="{:.3g}") -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "—"
    lo, hi = min(vals), max(vals)
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}–{fmt.format(hi)}"


def rows(scores: dict) -> list[list[str]]:
    out = []
    for g in scores["groups"]:
        th = g.get("theory")
        if not g["headline"] or not th:
            continue
        order = f"{th['ordering_holds']} of {th['ordering_pairs']}" if th["ordering_pairs"] else "—"
        for task, b in sorted(th["tasks"].items()):
            pts = b["points"]
            seeds = (f"{num(b['slope_seed_mean'], '{:.2f}')} ± {num(b['slope_seed_sd'], '{:.2f}')}, "
                     f"{b['replicates']}") if b["replicates"] else "—"
            out.append([g["estimator"], g["label"], task, _range([pt["p"] for pt in pts], "{:d}"),
                        f"{num(b['slope'], '{:.2f}')} ± {num(b['slope_se'], '{:.2f}')}", seeds,
                        str(b["predicted_slope"]), _range([pt["lambda_over_p"] for pt in pts]),
                        _range([pt["lambda_over_memorised"] for pt in pts]),
                        num(min((pt["test_accuracy"] for pt in pts if pt["test_accuracy"] is not None),
                                default=None), "{:.0%}"), order])
    return out
