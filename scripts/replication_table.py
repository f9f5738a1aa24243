"""The tables of docs/replication.md: the hackathon suites' runs, per p, from a store.

    python scripts/replication_table.py hackathon.sqlite

Reads every run of the suites hackathon-add and hackathon-random (case ids ``hackathon/...``) and prints,
per task and p: the mean λ̂ over networks and its spread, λ̂/p and λ̂/(0.8·p²), the anchors' train and
test accuracy and train loss, and what the diagnostics say — bulk ESS (llcbench's), the split R-hat of
the chain's two halves (ArviZ, from the stored trace: one chain has no between-chain R-hat), the
posterior's mean excess train loss λ̂/nβ against chance (ln p − L_n(w*), uniform logits), E‖w − w*‖²
against d/γ (what the localisation alone would give) and dλ̂/d ln γ / λ̂ (llcbench's localisation
sensitivity); then the scaling scores (llcbench.score.scaling) and the raw lines through every run.
"""

from __future__ import annotations

import math
import statistics
import sys

import numpy as np

from llcbench.estimators.diagnostics import trace_diagnostics
from llcbench.score.scaling import exclusion, linear_fit, loglog_fit, scaling_block
from llcbench.store import Store


def split_rhat(rec: dict) -> float | None:
    trace = np.asarray(rec.get("loss_trace") or [], dtype=float)
    if trace.ndim != 2 or trace.shape[0] != 1 or trace.shape[1] < 16:
        return None
    half = trace.shape[1] // 2
    return trace_diagnostics(np.stack([trace[0, :half], trace[0, half:2 * half]]))["rhat"]


def run_row(rec: dict) -> dict:
    q = rec["case_definition"]["params"]
    p, extra, diag, info = q["p"], rec["extra"], rec["diagnostics"], rec["target_info"]
    nbeta, init, gamma = extra["nbeta"], extra["init_loss"], extra["gamma"]
    excess = rec["lambda_hat"] / nbeta  # the mean of L_B(w_t) − L_n(w*), B_t drawn independently of w_t
    chance = math.log(p) - init
    d = info["params"] - (1 if q.get("project_gradient") else 0)
    return {"p": p, "task": q["task"], "lam": rec["lambda_hat"], "ess": rec.get("ess"), "rhat2": split_rhat(rec),
            "excess": excess, "chance": chance, "dist": diag.get("mean_sq_distance"), "d_over_gamma": d / gamma,
            "sens": diag.get("localisation_sensitivity_rel"), "train_acc": info["train_accuracy"],
            "test_acc": info["test_accuracy"], "train_loss": info["train_loss"], "nbeta": nbeta,
            "excluded": exclusion(rec), "case": rec["case"]}


def fmt(x, f="{:.3g}"):
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f.format(x)


def main(db: str) -> None:
    with Store(db) as store:
        recs = [r for r in store.records(estimator="sgld") if r["case"].startswith("hackathon/")]
    rows = [run_row(r) for r in recs]
    for task, per in (("add", "p"), ("random", "0.8·p²")):
        sub = [r for r in rows if r["task"] == task]
        if not sub:
            continue
        print(f"\n### {task}: {len(sub)} runs\n")
        print(f"| p | networks | mean λ̂ | sd over networks | λ̂/{per} | train acc. (min) | test acc. (min–max) "
              "| train loss (max) | bulk ESS (min–max) | split R-hat of halves (max) | excess λ̂/nβ | chance "
              "ln p − L_n(w*) | excess/chance | E‖w−w*‖² / (d/γ) | dλ̂/d ln γ ÷ λ̂ |")
        print("|" + "---|" * 15)
        for p in sorted({r["p"] for r in sub}):
            g = [r for r in sub if r["p"] == p]
            lam = [r["lam"] for r in g]
            m = statistics.fmean(lam)
            scale = p if task == "add" else 0.8 * p * p
            ratio = [r["excess"] / r["chance"] for r in g]
            dist = [r["dist"] / r["d_over_gamma"] for r in g if r["dist"] is not None]
            print(f"| {p} | {len(g)} | {m:.1f} | {fmt(statistics.stdev(lam) if len(g) > 1 else None, '{:.1f}')} "
                  f"| {m / scale:.2f} | {min(r['train_acc'] for r in g):.4f} "
                  f"| {min(r['test_acc'] for r in g):.3f}–{max(r['test_acc'] for r in g):.3f} "
                  f"| {max(r['train_loss'] for r in g):.3g} "
                  f"| {min(r['ess'] for r in g):.0f}–{max(r['ess'] for r in g):.0f} "
                  f"| {fmt(max((r['rhat2'] for r in g if r['rhat2'] is not None), default=None), '{:.3f}')} "
                  f"| {statistics.fmean(r['excess'] for r in g):.2f} | {statistics.fmean(r['chance'] for r in g):.2f} "
                  f"| {min(ratio):.2f}–{max(ratio):.2f} "
                  f"| {fmt(statistics.fmean(dist) if dist else None, '{:.2f}')} "
                  f"| {fmt(statistics.fmean(r['sens'] for r in g if r['sens'] is not None), '{:.2f}')} |")
        xs = [float(r["p"]) ** (1 if task == "add" else 2) for r in sub]
        lin = linear_fit(xs, [r["lam"] for r in sub])
        means = {p: statistics.fmean(r["lam"] for r in sub if r["p"] == p) for p in {r["p"] for r in sub}}
        slope = loglog_fit(sorted(means), [means[p] for p in sorted(means)])
        x = "p" if task == "add" else "p²"
        if lin is None or slope is None:
            continue
        print(f"\nEvery run, unscreened: λ̂ = a·{x} + b with a = {lin['a']:.3f} "
              f"[{fmt(lin['a_low'])}, {fmt(lin['a_high'])}] (95 %), b = {lin['b']:.1f}, R² = {lin['r2']:.3f} "
              f"({lin['runs']} runs); log-log slope {slope[0]:.2f} ± {fmt(slope[1], '{:.2f}')}.")
        counts = {k: sum(r["excluded"] == k for r in sub) for k in ("non_local", "unhealthy", "low_ess", None)}
        print(f"llcbench's screen: {counts[None]} scored, {counts['low_ess']} bulk ESS < 100, "
              f"{counts['unhealthy']} unhealthy, {counts['non_local']} non-local (by the records' `locality`, "
              "where they have one).")
    block = scaling_block(recs)
    if block:
        print(f"\nscaling_block: {block['scored']} scored, excluded {block['excluded']}, "
              f"{len(block['fits'])} fits")
        for f in block["fits"]:
            lin = f["linear"] or {}
            print(f"  {f['task']} {f['recipe_key']}: p {[pt['p'] for pt in f['points']]}, a = {fmt(lin.get('a'))} "
                  f"[{fmt(lin.get('a_low'))}, {fmt(lin.get('a_high'))}], R² {fmt(lin.get('r2'))}, "
                  f"slope {fmt(f['slope'], '{:.2f}')}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "hackathon.sqlite")
