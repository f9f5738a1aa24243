"""The tables of docs/replication.md: the hackathon suites' runs, per p, and λ̂ over training, from stores.

    python scripts/replication_table.py add.sqlite random.sqlite [--trajectory traj.sqlite]

Reads every sgld run of the suites hackathon-add and hackathon-random (case ids ``hackathon/...``) and
prints, per task and p: the mean λ̂ over networks and its spread, λ̂/p and λ̂/(0.8·p²), the anchors' train
and test accuracy and train loss, and what the diagnostics say — bulk ESS, the split R-hat of the chain's
two halves (ArviZ, from the stored trace: one chain has no between-chain R-hat), and the record's
``locality`` object (``llcbench.locality``): how many runs are local, the mean excess train loss as a
fraction of chance's, the train accuracy lost towards chance, E‖w − w*‖² against d/γ and dλ̂/d ln γ ÷ λ̂.
Non-local runs are counted and never enter a line or slope: the lines are llcbench's scaling scores
(``llcbench.score.scaling``) on the runs it scores. With ``--trajectory``, one row per checkpoint of each
``llcbench trajectory`` run in that store, with the checkpoint's γ (from the pilot) and locality.
"""

from __future__ import annotations

import argparse
import math
import statistics

import numpy as np

from llcbench.estimators.diagnostics import trace_diagnostics
from llcbench.locality import is_local
from llcbench.score.scaling import exclusion, scaling_block
from llcbench.store import Store


def split_rhat(rec: dict) -> float | None:
    trace = np.asarray(rec.get("loss_trace") or [], dtype=float)
    if trace.ndim != 2 or trace.shape[0] != 1 or trace.shape[1] < 16:
        return None
    half = trace.shape[1] // 2
    return trace_diagnostics(np.stack([trace[0, :half], trace[0, half:2 * half]]))["rhat"]


def run_row(rec: dict) -> dict:
    q, loc, info = rec["case_definition"]["params"], rec.get("locality") or {}, rec["target_info"]
    return {"p": q["p"], "task": q["task"], "lam": rec["lambda_hat"], "ess": rec.get("ess"),
            "rhat2": split_rhat(rec), "local": is_local(rec), "excess": loc.get("excess_fraction"),
            "acc_drop": loc.get("accuracy_drop_fraction"), "spread": loc.get("spread_fraction"),
            "sens": loc.get("sensitivity_rel"), "train_acc": info["train_accuracy"],
            "test_acc": info["test_accuracy"], "train_loss": info["train_loss"], "excluded": exclusion(rec)}


def fmt(x, f="{:.3g}"):
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f.format(x)


def span(xs, f="{:.2f}"):
    xs = [x for x in xs if x is not None]
    return "—" if not xs else f"{f.format(min(xs))}–{f.format(max(xs))}"


def provenance(recs: list[dict]) -> str:
    versions = sorted({str(r.get("llcbench_version")) for r in recs})
    commits = sorted({str(r.get("git_commit")) for r in recs})
    torch = sorted({str(r.get("torch_version")) for r in recs})
    return f"records: llcbench {', '.join(versions)}; git commit {', '.join(commits)}; torch {', '.join(torch)}"


def suite_tables(recs: list[dict]) -> None:
    rows = [run_row(r) for r in recs]
    for task, per, name in (("add", "p", "Generalising (`hackathon-add`)"),
                            ("random", "0.8·p²", "Memorising (`hackathon-random`)")):
        sub = [r for r in rows if r["task"] == task]
        if not sub:
            continue
        print(f"\n### {name}: {len(sub)} runs\n")
        print(f"| p | networks | local | mean λ̂ | sd over networks | λ̂/{per} | train acc. (min) | test acc. (min–max) "
              "| train loss (max) | bulk ESS (min–max) | split R-hat of halves (max) | excess / chance "
              "| accuracy drop | E‖w−w*‖² / (d/γ) | dλ̂/d ln γ ÷ λ̂ |")
        print("|" + "---|" * 15)
        for p in sorted({r["p"] for r in sub}):
            g = [r for r in sub if r["p"] == p]
            lam = [r["lam"] for r in g]
            m = statistics.fmean(lam)
            scale = p if task == "add" else 0.8 * p * p
            sens = [r["sens"] for r in g if r["sens"] is not None]
            print(f"| {p} | {len(g)} | {sum(r['local'] is True for r in g)} | {m:.1f} "
                  f"| {fmt(statistics.stdev(lam) if len(g) > 1 else None, '{:.1f}')} "
                  f"| {m / scale:.2f} | {min(r['train_acc'] for r in g):.4f} "
                  f"| {span([r['test_acc'] for r in g], '{:.3f}')} | {max(r['train_loss'] for r in g):.3g} "
                  f"| {span([r['ess'] for r in g], '{:.0f}')} "
                  f"| {fmt(max((r['rhat2'] for r in g if r['rhat2'] is not None), default=None), '{:.3f}')} "
                  f"| {span([r['excess'] for r in g])} | {span([r['acc_drop'] for r in g])} "
                  f"| {span([r['spread'] for r in g])} | {fmt(statistics.fmean(sens) if sens else None, '{:.1f}')} |")
        counts = {k: sum(r["excluded"] == k for r in sub) for k in ("non_local", "unhealthy", "low_ess", None)}
        print(f"\nllcbench's screen: {counts[None]} scored, {counts['non_local']} not local, "
              f"{counts['unhealthy']} otherwise unhealthy, {counts['low_ess']} bulk ESS < 100 only "
              f"(a non-local run is counted as non-local whatever else is wrong with it).")
    block = scaling_block(recs)
    if block:
        excluded = ", ".join(f"{v} {k.replace('_', '-')}" for k, v in block["excluded"].items())
        print(f"\nScaling scores (`llcbench.score.scaling`): {block['scored']} runs scored, excluded: {excluded}; "
              f"{len(block['fits'])} fits.")
        for f in block["fits"]:
            lin = f["linear"] or {}
            print(f"- {f['task']} (recipe {f['recipe_key']}): p {[pt['p'] for pt in f['points']]}, "
                  f"λ̂ = a·{f['linear_in']} + b with a = {fmt(lin.get('a'))} [{fmt(lin.get('a_low'))}, "
                  f"{fmt(lin.get('a_high'))}], R² {fmt(lin.get('r2'))}; log-log slope {fmt(f['slope'], '{:.2f}')}")
    print(f"\n{provenance(recs)}")


def trajectory_table(recs: list[dict]) -> None:
    print("\n| run | step | train acc. | test acc. | train loss | γ | pilot plateau | λ̂ ± se | R-hat | bulk ESS "
          "| excess / chance | accuracy drop | E‖w−w*‖² / (d/γ) | local |")
    print("|" + "---|" * 14)
    for r in sorted(recs, key=lambda r: (r["case_definition"]["params"].get("trajectory", ""),
                                         r["case_definition"]["params"]["train_steps"])):
        q, loc, info = r["case_definition"]["params"], r.get("locality") or {}, r["target_info"]
        pilot = (r.get("extra") or {}).get("localisation_pilot") or {}
        print(f"| {q.get('trajectory')} | {q['train_steps']} | {info['train_accuracy']:.1%} "
              f"| {info['test_accuracy']:.1%} | {info['train_loss']:.3g} | {fmt(r['extra'].get('gamma'))} "
              f"| {fmt(pilot.get('plateau'), '{}')} | {r['lambda_hat']:.3g} ± {fmt(r.get('se'), '{:.2g}')} "
              f"| {fmt(r.get('rhat'), '{:.2f}')} | {fmt(r.get('ess'), '{:.0f}')} "
              f"| {fmt(loc.get('excess_fraction'), '{:.2f}')} | {fmt(loc.get('accuracy_drop_fraction'), '{:.2f}')} "
              f"| {fmt(loc.get('spread_fraction'), '{:.2f}')} | {fmt(is_local(r), '{}')} |")
    piloted = [r for r in recs if (r.get("extra") or {}).get("localisation_pilot")]
    if piloted:  # λ̂ at every rung of each checkpoint's γ-ladder (pilot chains), and whether the rung is local
        first = piloted[0]
        print("\nλ̂ on each checkpoint's γ-ladder (pilot chains; * marks a local rung):\n")
        print("| run | step | " + " | ".join(f"γ/nβ = {row['gamma'] / first['extra']['nbeta']:.3g}"
                                            for row in first["extra"]["localisation_pilot"]["ladder"]) + " |")
        print("|" + "---|" * (2 + len(first["extra"]["localisation_pilot"]["ladder"])))
        for r in sorted(piloted, key=lambda r: (r["case_definition"]["params"].get("trajectory", ""),
                                                r["case_definition"]["params"]["train_steps"])):
            q = r["case_definition"]["params"]
            cells = [f"{row['lambda_hat']:.3g}{'*' if row.get('local') else ''}"
                     for row in r["extra"]["localisation_pilot"]["ladder"]]
            print(f"| {q.get('trajectory')} | {q['train_steps']} | " + " | ".join(cells) + " |")
    print(f"\n{provenance(recs)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("db", nargs="*", help="stores holding the hackathon suites' runs")
    ap.add_argument("--trajectory", metavar="DB", help="a store of `llcbench trajectory` runs")
    args = ap.parse_args()
    recs = []
    for db in args.db:
        with Store(db) as store:
            recs += [r for r in store.records(estimator="sgld") if r["case"].startswith("hackathon/")]
    if recs:
        suite_tables(recs)
    if args.trajectory:
        with Store(args.trajectory) as store:
            traj = [r for r in store.records() if (r["case_definition"]["params"]).get("trajectory")]
        trajectory_table(traj)


if __name__ == "__main__":
    main()
