"""Is a run's posterior local? The rule, stated once, and the record's ``locality`` object.

An LLC estimate reads the localised tempered posterior
p(w) ∝ exp(−nβ·L_n(w) − (γ/2)·‖w − w*‖²) *near* the anchor w*. It can fail
to be local in two opposite ways, and each SG-MCMC run is checked for both
from its own draws (no extra sampling):

1. **It wandered off.** The draws lost what the anchor fits: the posterior
   mean excess train loss L_n(w) − L_n(w*) is more than EXCESS_FRACTION_MAX
   of the way from the anchor to a chance-level predictor (``chance_excess``
   = L_chance − L_n(w*): uniform logits for cross-entropy, ln(classes); the
   best constant for squared loss), or — for classifiers — the posterior mean
   train accuracy lost more than ACCURACY_DROP_MAX of the way from the
   anchor's to chance. A quarter of the way to chance is far outside any
   neighbourhood of w*: a local posterior at nβ ≈ n/log n has excess λ/nβ,
   which for a network that fits its data is a small fraction of ln(classes)
   (e.g. the trojans case at γ = 100: 0.04 nats of ln 23 = 3.1).
2. **The loss plays no part.** E‖w − w*‖² is more than SPREAD_FRACTION_MAX
   of d/γ, the value it takes when the loss is absent (the localisation's
   Gaussian alone). Then the loss confines less than a tenth of the spread in
   the typical direction, the draws are the localisation's Gaussian, and λ̂
   measures γ, not the network (on ``modular/add/p17`` at γ ≥ 30: 0.99–1.05
   of d/γ, with λ̂ falling as γ^−2).

``local`` is False if either check fails, True if at least one check could be
made and none fails, None (undecidable) when λ̂ is not finite or no check
applies (no chance level, no classifier, γ = 0 or too few draws).

Separately, λ̂ is labelled ``set_by_localisation`` when the estimate of
∂λ̂/∂log γ from the same draws (``sgmcmc.trace.localisation``) is more than
SENSITIVITY_REL of λ̂ in size: the number is then a property of γ (a label,
not by itself a verdict of non-locality — a local posterior may still be
pulled by γ; the γ-ladder of ``llcbench.estimators.sgmcmc.pilot`` measures it).

:func:`is_local` re-reads a stored record's ``locality`` with today's rule,
so scores and attribution that call it follow a change of thresholds.
"""

from __future__ import annotations

import math
from typing import Optional

EXCESS_FRACTION_MAX = 0.25  # mean excess train loss above a quarter of the chance excess: not local
ACCURACY_DROP_MAX = 0.25  # mean train accuracy a quarter of the way from the anchor's to chance: not local
SPREAD_FRACTION_MAX = 0.9  # E‖w − w*‖² above 90 % of d/γ: the localisation's Gaussian, not local
SENSITIVITY_REL = 0.25  # |∂λ̂/∂log γ| above 25 % of λ̂: "set by the localisation" (attribution's hint bar)


def _num(x) -> Optional[float]:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def assess(*, lambda_hat: float, nbeta: float, gamma: float, dim: int, init_loss: float,
           chance_loss: Optional[float], mean_sq_distance: Optional[float], sensitivity_rel: Optional[float],
           accuracy: Optional[float], anchor_accuracy: Optional[float],
           chance_accuracy: Optional[float]) -> dict:
    """The ``locality`` object of one run from its numbers (the rule: :func:`judge`).

    excess_loss is the posterior mean of L_n(w) − L_n(w*) as the λ trace estimates it (full data
    where the target has it cheaply, else independent batches): λ̂/nβ."""
    lam = _num(lambda_hat)
    chance_excess = None if _num(chance_loss) is None else float(chance_loss) - float(init_loss)
    prior = dim / gamma if gamma > 0 and dim > 0 else None
    loc = {
        "excess_loss": None if lam is None else lam / nbeta,
        "chance_excess": chance_excess,
        "accuracy": _num(accuracy),
        "anchor_accuracy": _num(anchor_accuracy),
        "chance_accuracy": _num(chance_accuracy),
        "mean_sq_distance": _num(mean_sq_distance),
        "prior_sq_distance": prior,
        "gamma": gamma,
        "sensitivity_rel": _num(sensitivity_rel),
    }
    local, reasons, fractions = judge(loc)
    loc.update(fractions)
    loc["set_by_localisation"] = (None if loc["sensitivity_rel"] is None
                                  else abs(loc["sensitivity_rel"]) > SENSITIVITY_REL)
    loc["local"] = local
    loc["reasons"] = reasons
    return loc


def judge(loc: dict) -> tuple[Optional[bool], list[str], dict]:
    """(local, why not, the fractions compared) from a ``locality`` object's numbers (module doc)."""
    reasons: list[str] = []
    fractions: dict = {"excess_fraction": None, "accuracy_drop_fraction": None, "spread_fraction": None}
    excess, chance = _num(loc.get("excess_loss")), _num(loc.get("chance_excess"))
    if excess is None:
        return None, ["λ̂ is not finite"], fractions
    checks = 0
    if chance is not None and chance > 0:
        checks += 1
        f = fractions["excess_fraction"] = excess / chance
        if f > EXCESS_FRACTION_MAX:
            reasons.append(f"mean excess train loss {excess:.3g} is {f:.0%} of chance's {chance:.3g} "
                           f"(> {EXCESS_FRACTION_MAX:.0%})")
    acc, acc0, acc_c = (_num(loc.get(k)) for k in ("accuracy", "anchor_accuracy", "chance_accuracy"))
    if acc is not None and acc0 is not None and acc_c is not None and acc0 > acc_c:
        checks += 1
        f = fractions["accuracy_drop_fraction"] = (acc0 - acc) / (acc0 - acc_c)
        if f > ACCURACY_DROP_MAX:
            reasons.append(f"mean train accuracy {acc:.1%} (anchor {acc0:.1%}, chance {acc_c:.1%}) lost {f:.0%} "
                           f"of the way to chance (> {ACCURACY_DROP_MAX:.0%})")
    r2, prior = _num(loc.get("mean_sq_distance")), _num(loc.get("prior_sq_distance"))
    if r2 is not None and prior is not None and prior > 0:
        checks += 1
        f = fractions["spread_fraction"] = r2 / prior
        if f > SPREAD_FRACTION_MAX:
            reasons.append(f"E‖w − w*‖² = {r2:.4g} is {f:.0%} of d/γ = {prior:.4g} (> {SPREAD_FRACTION_MAX:.0%}): "
                           "the localisation, not the loss, sets the posterior")
    if checks == 0:
        return None, ["no locality check applies (no chance level, no classifier, no ‖w − w*‖² against d/γ)"], fractions
    return (not reasons), reasons, fractions


def is_local(record: dict) -> Optional[bool]:
    """Whether a run's posterior is local by today's rule (:func:`judge` on its ``locality``); None
    where undecidable or the record has none (estimators other than SG-MCMC, older records)."""
    loc = record.get("locality")
    if not isinstance(loc, dict):
        return None
    return judge(loc)[0]


def note(record: dict) -> str:
    """A short note for the run table: empty for a local (or undecidable) run."""
    loc = record.get("locality")
    if not isinstance(loc, dict) or is_local(record) is not False:
        return ""
    reasons = judge(loc)[1]
    return "not local: " + (reasons[0].split(" (>")[0] if reasons else "see locality")
