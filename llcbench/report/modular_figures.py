"""Figures of the modular-arithmetic networks: λ̂ against p (log-log, fitted slopes) and λ̂ over training."""

from __future__ import annotations

import math

import numpy as np

from .figures import COLORS, HAT, _fin, figure, headline

TASK_LABEL = {"add": "add (generalises)", "random": "random (memorises)"}


def scaling(scores: dict):
    """λ̂ against p per anchor recipe, log-log, with the fitted line and its slope, and the theory lines."""
    from .scaling_table import recipe_label

    groups = [g for g in headline(scores) if g.get("theory")]
    fits = [(g, f) for g in groups for f in g["theory"]["fits"]]
    if not fits:
        return None, "No scored modular_addition run in the store: `llcbench run --estimator sgld --family modular_addition`."
    fig, ax = figure(figsize=(6.4, 4.6))
    notes = []
    for fi, (g, block) in enumerate(fits):
        task = block["task"]
        pts = [pt for pt in block["points"] if _fin(pt["lambda_hat"]) and pt["lambda_hat"] > 0]
        if not pts:
            continue
        color = COLORS[fi % len(COLORS)]
        ps = np.array([pt["p"] for pt in pts], float)
        lam = np.array([pt["lambda_hat"] for pt in pts])
        err = np.array([pt["seed_spread"] or 0.0 for pt in pts])
        slope = block["slope"]
        label = f"{g['estimator']}: {TASK_LABEL.get(task, task)} ({recipe_label(block['recipe'])})"
        if _fin(slope):
            se = f" ± {block['slope_se']:.2f}" if _fin(block["slope_se"]) else ""
            label += f", slope {slope:.2f}{se}"
            a = np.mean(np.log(lam) - slope * np.log(ps))
            grid = np.linspace(ps.min(), ps.max(), 20)
            ax.plot(grid, np.exp(a) * grid ** slope, color=color, lw=1)
            notes.append(f"{task} {slope:.2f} (theory {block['predicted_slope']})")
        ax.errorbar(ps, lam, yerr=err, fmt="o", color=color, label=label, ms=4, capsize=2)
    allp = [pt["p"] for _, f in fits for pt in f["points"]]
    grid = np.linspace(min(allp), max(allp), 20)
    ax.plot(grid, 8 * grid, "k:", lw=1, label="8p (observed, Rimsky & Vaintrob)")
    ax.plot(grid, 4 * grid, "k-.", lw=1, label="4p (one circuit)")
    ax.plot(grid, 0.8 * grid ** 2, "k--", lw=1, label="0.8·p² (memorised pairs)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("p")
    ax.set_ylabel(HAT)
    ax.legend(fontsize=6)
    caption = ("λ̂ against p (log-log; error bars: spread over networks and seeds), one series per anchor recipe, "
               "with its least-squares line; fitted slopes " + ", ".join(notes) + ". Runs that did not mix or are "
               "not local are not shown (counted in the table). Theory values are approximate: slope and "
               "ordering are the scores, not the level.")
    return fig, caption


def trajectories(scores: dict):
    """λ̂ against training step, beside train and test accuracy."""
    # every config's trajectories (a trajectory is usually run at a config of its own, not the headline one)
    series = [(g, t) for g in scores["groups"] for t in g.get("trajectories") or []][:4]
    if not series:
        return None, "No checkpoint run in the store: `llcbench trajectory` makes one."
    fig, axes = figure(1, len(series), figsize=(5.6 * len(series), 3.8), squeeze=False)
    for ax, (g, t) in zip(axes[0], series):
        steps = [pt["step"] for pt in t["points"]]
        ax.errorbar(steps, [pt["lambda_hat"] for pt in t["points"]],
                    yerr=[2 * pt["se"] if _fin(pt["se"]) else 0 for pt in t["points"]], fmt="o-", color=COLORS[0],
                    ms=3, label=HAT)
        ax.set_xlabel("training step")
        ax.set_ylabel(HAT, color=COLORS[0])
        acc = ax.twinx()
        for key, color, label in (("train_accuracy", COLORS[1], "train acc."), ("test_accuracy", COLORS[2], "test acc.")):
            ys = [pt[key] if _fin(pt[key]) else math.nan for pt in t["points"]]
            acc.plot(steps, ys, "s--", color=color, ms=3, label=label)
        acc.set_ylim(-0.05, 1.05)
        acc.set_ylabel("accuracy")
        acc.legend(fontsize=7, loc="center right")
        where = ", normal to ∇L_n" if t["project_gradient"] else ""
        config = "" if g["headline"] else f", {g['label']}"
        ax.set_title(f"{t['name']} ({g['estimator']}{config}{where})", fontsize=9)
    return fig, ("λ̂ at each checkpoint (± 2 se) against training step, beside the train and test accuracy of the "
                 "checkpoint; checkpoints are not minima, so λ̂ there has no theory value.")
