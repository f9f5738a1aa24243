"""The adaptive length of an SG-MCMC run: run on while the chains have not settled.

A run's ``steps`` and ``burn_in`` are a guess at how long its slowest
directions take. Where the guess is short the draws show it — split R-hat
above 1.1, bulk ESS below 100, a chain apart from the others, the chains'
spread E‖w − w*‖² still growing (:func:`llcbench.health.mixing_problems`,
the same tests that make a run unhealthy) — and a longer run is the cure.
So after its planned steps a run checks its draws and, while any of those
problems holds and ``max_doublings`` allows, doubles ``steps`` and
``burn_in`` and carries on from where the chains are: the chain is one
Markov chain throughout, the draws of the new window [2·burn_in, 2·steps)
are the later part of it, and everything before is burn-in. Doubling both
keeps the burn-in's share and lets the window grow with the run, as the
slow directions need.

What does not change: the kernel. The step-size rule adapts only in the
first half of the planned burn-in, and RMSProp freezes its preconditioner
at the planned burn-in's end, so every extra step is a step of the same
fixed kernel. A run whose draws are settled at its planned length is
exactly the run without this module (same λ̂ to the bit).

Divergences, a posterior that is not local and λ̂ > d are not cured by
length, so they do not extend a run (nor do the problems of a point with a
diverged chain). Runs that record per-sample losses or
train accuracy (trained anchors) keep their planned length: those probes
sum over the planned window. A shared-chain grid run (sweeps, Richardson's
ε and 2ε) extends while any of its points has a problem, so its points
stay one tensor.

Caveat (docs/defaults.md says it too): the stop rule reads the same diagnostics the
run is judged on, so a run that stops at a doubling has passed them on its
final window once; a borderline run can pass by chance where the next
window would not.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from ...health import mixing_problems


def window(config, doublings: int):
    """``config`` with steps and burn_in doubled ``doublings`` times (the draws' window after them)."""
    if doublings == 0:
        return config
    f = 2 ** doublings
    return dataclasses.replace(config, steps=int(config.steps) * f, burn_in=int(config.burn_in) * f)


def problems(summaries: list) -> list[str]:
    """What a longer run could cure in these points' summaries (:func:`.trace.summarise` dicts): one
    list over the points none of whose chains diverged (a point with a diverged chain is unhealthy
    however long it runs), each problem once."""
    out: list[str] = []
    for s in summaries:
        if s["diagnostics"].get("divergent_chains"):
            continue
        for p in mixing_problems({"diagnostics": s["diagnostics"], "lambda_hat": s["lambda_hat"]}):
            if p not in out:
                out.append(p)
    return out


def run_until_settled(run, configs: list, sample: Callable, summarise_points: Callable,
                      judge: Optional[Callable[[list], list]] = None,
                      restart: Optional[Callable[[list], bool]] = None) -> tuple[int, Optional[dict]]:
    """Run the planned steps of ``configs`` (the points of one chain tensor), then double while the
    draws have a curable problem. ``sample(start, stop, total)`` runs steps start … stop − 1 of a run
    ``total`` steps long; ``summarise_points(configs)`` summarises every point's window; ``judge``
    turns the summaries into the problems (default :func:`problems`; Richardson's judges its
    combination); ``restart(problems)``: where the chains are still spreading after the planned
    steps, replaces the run by one from the orbit or the tempered start and says whether it did
    (start = 'auto'; orbit_start.py, tempered_start.py) — the planned steps then run again from there. Returns (doublings, the
    record's ``settling`` object, None at max_doublings = 0)."""
    config = configs[0]
    limit = int(config.max_doublings)
    if run.per_sample is not None or run.accuracy is not None:
        limit = 0  # those probes sum over the planned window
    steps, burn_in = int(config.steps), int(config.burn_in)
    judge = judge or problems
    sample(0, steps, steps)
    found = None  # the problems of the current window, once judged
    if restart is not None:
        found = judge(summarise_points(configs))
        if any(p.startswith("still spreading") for p in found) and restart(found):
            sample(0, steps, steps)
            found = None  # another run: judged afresh
    if limit == 0:
        return 0, None
    history, k = [], 0
    while True:
        if found is None:
            found = judge(summarise_points([window(c, k) for c in configs]))
        history.append({"steps": steps * 2 ** k, "problems": found})
        if not found or k == limit:
            break
        k += 1
        found = None
        run.trace.grow(steps * 2 ** k)
        run.grow_aux(steps * 2 ** k)
        sample(steps * 2 ** (k - 1), steps * 2 ** k, steps * 2 ** k)
    return k, {"max_doublings": limit, "doublings": k, "steps": steps * 2 ** k, "burn_in": burn_in * 2 ** k,
               "settled": not found, "history": history}
