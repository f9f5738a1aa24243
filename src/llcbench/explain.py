"""Why a run is off: what the record itself says about its error.

Reads only a record (so it can be rebuilt from the store) and returns
findings, each with the estimand value it predicts where it predicts one:

- ``reference``: λ_nβ,γ of the run's own localised tempered posterior, from
  the ``exact`` estimator where it applies, else from a NUTS run of the same
  posterior in the store (``runner.stored_reference``): the estimand.
  λ̂ − λ_nβ,γ is the sampler's part.
- ``multiplicity``: m > 1. E_β[nβ(L − L*)] = λ − (m − 1)/log nβ + o(1/log nβ)
  (the derivative in log nβ of the free energy λ·log nβ − (m − 1)·log log nβ):
  an estimand below λ at any finite nβ, first order only.
- ``localisation``: ∂λ̂/∂log γ from the same draws (see
  ``sgmcmc._localisation``) is a sizeable negative fraction of λ̂: the
  estimand at this γ is still set by the localisation, so it is below the
  γ → 0 value; no predicted value. Only for runs whose chains agree (split
  R-hat ≤ 1.1): in chains still drifting, λ and ‖w − w*‖² rise together and
  their covariance says nothing about the stationary distribution.

A run is *explained* when its error beyond TOLERANCE is accounted for: the
residual against a predicted estimand is within TOLERANCE·λ, or (without a
prediction) the localisation finding holds. The sampler's own warnings
(R-hat, drift, divergences) are left in the record's warnings.
"""

from __future__ import annotations

import math
from typing import Optional

TOLERANCE = 0.30  # the benchmark's accuracy bar: a run more than 30 % off needs an explanation
LOCALISATION_REL = -0.25  # ∂λ̂/∂log γ below −25 % of λ̂: localisation-dominated
RHAT_MIXED = 1.1  # the localisation finding needs chains that agree (split R-hat at most this)


def findings(record: dict) -> list[dict]:
    """Estimand findings of one record: dicts with kind, text, short text and (optional) predicted λ."""
    out: list[dict] = []
    lam = record.get("lambda_float")
    extra = record.get("extra") or {}
    nbeta = extra.get("nbeta")
    ref = record.get("lambda_ref")
    if ref is not None:
        how = "NUTS" if str(record.get("lambda_ref_method") or "").startswith("nuts") else "exact"
        out.append({"kind": "reference", "predicted": ref, "short": f"{how} λ_nβ,γ = {ref:.4g}",
                    "text": f"{how} λ_nβ,γ = {ref:.4g} (estimand {ref - lam:+.3g}, sampler "
                            f"{record.get('sampler_bias', float('nan')):+.3g})"})
    m = record.get("multiplicity") or 1
    if m > 1 and nbeta and nbeta > math.e and lam is not None:
        first = lam - (m - 1) / math.log(nbeta)
        out.append({"kind": "multiplicity", "predicted": first,
                    "short": f"m = {m}: λ − (m−1)/log nβ = {first:.3g}",
                    "text": f"multiplicity m = {m}: λ − (m−1)/log nβ = {first:.3g} at nβ = {nbeta:.4g} "
                            "(first order; estimand)"})
    diag = record.get("diagnostics") or {}
    rel = diag.get("localisation_sensitivity_rel")
    # a covariance of the stationary distribution: meaningless while the chains still drift apart
    mixed = (record.get("rhat") or diag.get("rhat") or 1.0) <= RHAT_MIXED
    if rel is not None and rel <= LOCALISATION_REL and mixed:
        out.append({"kind": "localisation", "predicted": None, "short": f"∂λ̂/∂log γ = {rel:+.0%} of λ̂",
                    "text": f"localisation-dominated: ∂λ̂/∂log γ = {rel:+.0%} of λ̂ at γ = "
                            f"{extra.get('gamma', float('nan')):.3g} (estimand below its γ → 0 value)"})
    return out


def explained(record: dict, found: Optional[list[dict]] = None) -> Optional[bool]:
    """None when the run is within TOLERANCE (nothing to explain), else whether a finding accounts for it."""
    lam, lam_hat = record.get("lambda_float"), record.get("lambda_hat")
    if lam is None or lam_hat is None or not math.isfinite(lam_hat) or lam == 0:
        return False
    if abs(lam_hat - lam) <= TOLERANCE * abs(lam):
        return None
    found = findings(record) if found is None else found
    predicted = [f["predicted"] for f in found if f["predicted"] is not None]
    # a reference value (exact, or a stored NUTS run), when there is one, is the estimand; else the
    # first-order prediction
    reference = [f["predicted"] for f in found if f["kind"] == "reference"]
    candidates = reference or predicted
    if any(abs(lam_hat - p) <= TOLERANCE * abs(lam) for p in candidates):
        return True
    return any(f["kind"] == "localisation" for f in found) and not reference


def explanation(record: dict) -> dict:
    """The fields a record carries: ``explanations`` (texts), ``explanations_short`` (for a table
    column) and ``explained`` (None/True/False)."""
    found = findings(record)
    return {"explanations": [f["text"] for f in found], "explanations_short": [f["short"] for f in found],
            "explained": explained(record, found)}
