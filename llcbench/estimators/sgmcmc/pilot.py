"""The localisation of trained anchors: a γ-ladder pilot on shared chains picks γ.

A trained network's anchor has no exact λ, and the old default γ = 10⁻³·nβ
lets the chains leave it: on ``modular/add/p17`` the posterior's mean excess
train loss passes chance (ln 17). Raise γ far enough and the draws become the
localisation's Gaussian instead, E‖w − w*‖² → d/γ, and λ̂ falls with γ
(docs/locality.md has the measured ladders). The estimand is a property of
the network only on a *plateau*: a range of γ over which the posterior is
local (``llcbench.locality``) and λ̂ does not move.

The rule, for targets with ``Target.trained_anchor`` and configs with
gamma = None and localisation = 'auto' (every other target keeps
γ = gamma_scale·nβ, untouched):

1. Run the ladder γ_k = nβ·10^(−3 + k/2), k = 0 … 9 (half-decade steps, from
   the old default to 30·nβ) as one shared-chain grid run
   (:mod:`.grid`) of PILOT_CHAINS chains and PILOT_STEPS steps (half burn-in),
   with the run's sampler, seed and every other config field.
2. γ is the smallest ladder γ_k whose pilot posterior is local and whose λ̂
   is on a plateau: |λ̂(γ_{k+1}) − λ̂(γ_k)| ≤ PLATEAU_REL·|λ̂(γ_k)| with the next
   rung local too (a change of at most 15 % over half a decade, about 13 %
   per e-fold of γ — the attribution's localisation hint sits at 25 %).
3. If there is none, λ̂ is a property of γ: the run uses the smallest γ_k
   whose draws did not wander off (the excess-loss and accuracy checks pass;
   the spread check may fail), else the largest γ_k, and its record says
   ``plateau: false`` — its locality is then judged like any run's, and is
   normally False (the draws are the localisation's Gaussian).

The pilot's table (γ, λ̂, R-hat, the locality fractions) is kept in the
record (``extra.localisation_pilot``) so that λ̂ against γ can be read off
every trained run.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from ...locality import ACCURACY_DROP_MAX, EXCESS_FRACTION_MAX
from ...target import Target
from ..temperature import resolve_nbeta

LADDER = tuple(10 ** (-3 + k / 2) for k in range(10))  # γ / nβ: 10⁻³ (the old default) … 30
PILOT_CHAINS = 4
PILOT_STEPS = 1000
PLATEAU_REL = 0.15  # at most 15 % change of λ̂ between neighbouring rungs (half a decade of γ)


def applies(target: Target, config) -> bool:
    """Whether the run's γ is chosen by the pilot (module doc)."""
    return bool(target.trained_anchor) and config.gamma is None and config.localisation == "auto"


def _wandered_off(loc: dict) -> bool:
    ex, acc = loc.get("excess_fraction"), loc.get("accuracy_drop_fraction")
    return (ex is not None and ex > EXCESS_FRACTION_MAX) or (acc is not None and acc > ACCURACY_DROP_MAX)


def choose(rows: list[dict]) -> tuple[float, bool]:
    """(γ, on a plateau) from the ladder's rows (ascending γ; each with gamma, lambda_hat, local and the
    locality fractions): the rule's steps 2 and 3."""
    for k in range(len(rows) - 1):
        here, nxt = rows[k], rows[k + 1]
        if here["local"] is True and nxt["local"] is True:
            if abs(nxt["lambda_hat"] - here["lambda_hat"]) <= PLATEAU_REL * abs(here["lambda_hat"]):
                return here["gamma"], True
    for row in rows:
        if row["lambda_hat"] == row["lambda_hat"] and not _wandered_off(row):
            return row["gamma"], False
    return rows[-1]["gamma"], False


def run_pilot(target: Target, config, seed: int, device: str, sampler, run_grid: Callable) -> dict:
    """The ladder of the module doc on ``target`` with ``config``'s sampler settings: the chosen γ,
    whether it is on a plateau, and the table. ``run_grid`` is ``driver.run_sgmcmc_grid``, passed in by
    the caller (the grid runner itself runs pilots, so this module does not import it)."""
    nbeta = resolve_nbeta(target, config)
    steps = min(int(config.steps), PILOT_STEPS)
    base = dataclasses.replace(config, localisation="scale", chains=PILOT_CHAINS, steps=steps, burn_in=steps // 2,
                               thin=1, per_sample=False, gamma=None, extrapolate="none",
                               max_doublings=0)  # a fixed, short ladder: its rungs are read for locality
    points = [dataclasses.replace(base, gamma=float(nbeta * r)) for r in LADDER]
    estimates = run_grid(target, points, seed, device, sampler)
    rows = []
    for c, e in zip(points, estimates):
        loc = e.locality or {}
        rows.append({"gamma": float(c.gamma), "lambda_hat": e.lambda_hat, "se": e.se,
                     "rhat": e.diagnostics.get("rhat"), "local": loc.get("local"),
                     "excess_fraction": loc.get("excess_fraction"),
                     "accuracy_drop_fraction": loc.get("accuracy_drop_fraction"),
                     "spread_fraction": loc.get("spread_fraction"), "sensitivity_rel": loc.get("sensitivity_rel")})
    gamma, plateau = choose(rows)
    return {"rule": "gamma ladder (llcbench.estimators.sgmcmc.pilot)", "gamma": gamma, "plateau": plateau,
            "chains": PILOT_CHAINS, "steps": steps, "ladder": rows}


def configured(target: Target, config, seed: int, device: str, sampler,
               run_grid: Callable) -> tuple[object, Optional[dict]]:
    """(the config the run uses, the pilot's result or None): γ from the pilot where it applies."""
    if not applies(target, config):
        return config, None
    pilot = run_pilot(target, config, seed, device, sampler, run_grid)
    return dataclasses.replace(config, gamma=pilot["gamma"]), pilot


def annotate(estimate, pilot: Optional[dict]) -> None:
    """Put the pilot's result into the run's Estimate: extra, locality and (no plateau) a warning."""
    if pilot is None:
        return
    estimate.extra["localisation_pilot"] = pilot
    if estimate.locality is not None:
        estimate.locality["gamma_source"] = "pilot"
        estimate.locality["plateau"] = pilot["plateau"]
        if not pilot["plateau"]:
            estimate.locality["set_by_localisation"] = True
    if not pilot["plateau"]:
        estimate.warnings.append(
            f"no γ on the pilot's ladder gives a local posterior with λ̂ on a plateau: λ̂ is a property of "
            f"γ = {pilot['gamma']:.4g} (set by the localisation), not of the network alone")
