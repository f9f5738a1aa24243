"""The rows of the modular-arithmetic scaling table (markdown and HTML): one per headline group × anchor recipe."""

from __future__ import annotations

from .text import num

HEADERS = ["estimator", "config", "task", "recipe", "p", "runs", "λ̂ = a·x + b: a [95 %], x", "R²",
           "log-log slope ± se (theory)", "slope over seeds (mean ± sd, k)", "λ̂/p", "λ̂/(f·p²)", "min test acc.",
           "not scored", "memorising > generalising"]

# the recipe fields worth a column (the rest is in scores.json)
SHOWN = (("embed_dim", "e"), ("hidden_dim", "h"), ("optimizer", ""), ("init_scale", "scale "), ("trojans", "trojans "),
         ("train_fraction", "f "), ("weight_decay", "wd "))


def _range(values, fmt="{:.3g}") -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "—"
    lo, hi = min(vals), max(vals)
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}–{fmt.format(hi)}"


def recipe_label(recipe: dict) -> str:
    parts = [f"{short}{recipe[k]}" for k, short in SHOWN if k in recipe and not (k == "trojans" and not recipe[k])]
    return " ".join(parts)


def _linear(fit: dict) -> str:
    lin = fit["linear"]
    if not lin:
        return "—"
    ci = (f" [{num(lin['a_low'], '{:.3g}')}, {num(lin['a_high'], '{:.3g}')}]" if lin["a_low"] is not None else "")
    return f"{num(lin['a'], '{:.3g}')}{ci}, {fit['linear_in']}"


def rows(scores: dict) -> list[list[str]]:
    out = []
    for g in scores["groups"]:
        th = g.get("theory")
        if not g["headline"] or not th:
            continue
        order = f"{th['ordering_holds']} of {th['ordering_pairs']}" if th["ordering_pairs"] else "—"
        dropped = sum(th["excluded"].values())
        dropped_text = (", ".join(f"{v} {k.replace('_', '-')}" for k, v in th["excluded"].items() if v)
                        if dropped else "0")
        for b in th["fits"]:
            pts = b["points"]
            seeds = (f"{num(b['slope_seed_mean'], '{:.2f}')} ± {num(b['slope_seed_sd'], '{:.2f}')}, "
                     f"{b['replicates']}") if b["replicates"] else "—"
            out.append([g["estimator"], g["label"], str(b["task"]), recipe_label(b["recipe"]),
                        _range([pt["p"] for pt in pts], "{:d}"), str(b["runs"]), _linear(b),
                        num((b["linear"] or {}).get("r2"), "{:.3f}"),
                        f"{num(b['slope'], '{:.2f}')} ± {num(b['slope_se'], '{:.2f}')} ({b['predicted_slope']})",
                        seeds, _range([pt["lambda_over_p"] for pt in pts]),
                        _range([pt["lambda_over_memorised"] for pt in pts]),
                        num(min((pt["test_accuracy"] for pt in pts if pt["test_accuracy"] is not None),
                                default=None), "{:.0%}"), dropped_text, order])
        if not th["fits"] and dropped:
            out.append([g["estimator"], g["label"], "—", "—", "—", "0", "—", "—", "—", "—", "—", "—", "—",
                        dropped_text, order])
    return out
