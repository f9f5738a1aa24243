"""Cost: gradient evaluations (summed over chains, the estimators' own count) and wall seconds
(the runner's clock around each estimate call), and error against cost."""

from __future__ import annotations

import statistics

from .select import finite


def cost_block(rows: list[dict], records: list[dict]) -> dict:
    secs = [r["seconds"] for r in records if finite(r.get("seconds"))]
    grads = [r["grad_evals"] for r in records if finite(r.get("grad_evals"))]
    return {
        "seconds_total": sum(secs) if secs else None,
        "seconds_median": statistics.median(secs) if secs else None,
        "grad_evals_total": sum(grads) if grads else None,
        "grad_evals_median": statistics.median(grads) if grads else None,
    }


def error_against_cost(rows: list[dict]) -> list[list]:
    """[grad evals per run, |rel. error|] per case row with both (the points of the cost figure)."""
    return [[r["grad_evals"], abs(r["rel_error"])] for r in rows
            if finite(r.get("grad_evals")) and finite(r.get("rel_error"))]
