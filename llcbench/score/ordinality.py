"""Ordinality: does λ̂ put the cases in the order of their true λ?

Kendall's τ-b and Spearman's ρ between λ̂ and λ (``scipy.stats``; τ-b
counts ties in λ correctly), and the pairwise order accuracy: of the pairs
of cases with different λ, the share whose λ̂ are in the same order. The
violated pairs are listed by name, the case with the smaller λ first. A
model-selection use of an LLC estimator needs exactly this, whatever the
bias.
"""

from __future__ import annotations

import math

from scipy import stats

from .select import finite


def ordinality_block(rows: list[dict]) -> dict:
    pts = [(r["lambda_float"], r["lambda_hat"], r["case"]) for r in rows
           if finite(r["lambda_float"]) and finite(r["lambda_hat"])]
    out = {"kendall_tau": None, "spearman_rho": None, "pairwise_accuracy": None, "pairs": 0, "violated_pairs": []}
    if len(pts) < 2:
        return out
    lam = [p[0] for p in pts]
    hat = [p[1] for p in pts]
    if len(set(lam)) > 1 and len(set(hat)) > 1:
        tau = stats.kendalltau(lam, hat).statistic
        rho = stats.spearmanr(lam, hat).statistic
        out["kendall_tau"] = float(tau) if math.isfinite(tau) else None
        out["spearman_rho"] = float(rho) if math.isfinite(rho) else None
    good = 0
    violated = []
    for i in range(len(pts)):
        for j in range(i + 1, len(pts)):
            (li, hi, _), (lj, hj, _) = pts[i], pts[j]
            if li == lj:
                continue
            out["pairs"] += 1
            if (li - lj) * (hi - hj) > 0:
                good += 1
            else:
                lo, up = (pts[i], pts[j]) if li < lj else (pts[j], pts[i])
                violated.append([lo[2], up[2]])
    out["pairwise_accuracy"] = good / out["pairs"] if out["pairs"] else None
    out["violated_pairs"] = violated
    return out
