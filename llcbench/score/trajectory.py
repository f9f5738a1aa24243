"""λ̂ over training: the checkpoint runs of ``llcbench trajectory``, per run and step (store only).

A checkpoint run is a ``modular_addition`` record whose case has
``trajectory`` set; its step is the case's ``train_steps`` and its train and
test accuracy come from the record's ``target_info``. Seeds of one step are
averaged. Runs with and without the gradient-normal restriction are
separate series.
"""

from __future__ import annotations

import statistics

from .select import finite


def _params(record: dict) -> dict:
    return (record.get("case_definition") or {}).get("params") or {}


def trajectory_block(records: list[dict]) -> list[dict]:
    """[{name, project_gradient, points: [...] by step}] of a group's checkpoint runs."""
    series: dict[tuple, dict[int, list]] = {}
    for r in records:
        q = _params(r)
        if r.get("family") != "modular_addition" or not q.get("trajectory") or not finite(r.get("lambda_hat")):
            continue
        key = (q["trajectory"], bool(q.get("project_gradient")))
        series.setdefault(key, {}).setdefault(int(q["train_steps"]), []).append(r)
    out = []
    for (name, projected), steps in sorted(series.items()):
        points = []
        for step in sorted(steps):
            recs = steps[step]
            info = recs[0].get("target_info") or {}
            hats = [r["lambda_hat"] for r in recs]
            ses = [r["se"] for r in recs if finite(r.get("se"))]
            points.append({"step": step, "lambda_hat": statistics.fmean(hats),
                           "se": statistics.fmean(ses) / len(ses) ** 0.5 if ses else None, "seeds": len(hats),
                           "train_accuracy": info.get("train_accuracy"), "test_accuracy": info.get("test_accuracy"),
                           "train_loss": info.get("train_loss")})
        out.append({"name": name, "project_gradient": projected, "points": points})
    return out
