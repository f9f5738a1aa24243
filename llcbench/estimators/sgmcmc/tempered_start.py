"""Where the chains start: a tempered start that fills the directions only the localisation confines.

An SG-MCMC run's chains start at w*. In directions the loss does not
confine — the rescalings (W_l, W_{l+1}) → (A·W_l, W_{l+1}·A⁻¹) of a deep
linear network, any direction along the set of minimisers — only the
localisation γ·(w − w*) pulls, and SGLD at the step ε that the stiffest
direction allows fills them in ≈ 1/(εγ) steps: 2·10⁴–10⁶ on the deep linear
networks of the catalogue and the scale tiers, against 6,000 planned steps.
Until then E‖w − w*‖² grows over the draws (the spread test of
:mod:`llcbench.health`; dln/4-4-4/r2/generic, seed 0, 6,000 steps of plain
sgld from w*: +108 %, z 5.1) and λ̂ is on its way.

So before the sampler's first step the chains take ``tempered_start``
steps (default: the planned burn-in's length; on the same run the spread
then moves +1 %, z 0.1) of SGLD with γ kept and nβ lowered to nβ' = nβ·ε/ε_t, where
ε_t = RELAXATIONS/(tempered_start·γ): RELAXATIONS = 5 relaxation times of
those directions pass (e⁻⁵ < 1 % of the variance they lack at w* is left),
and ε_t is the step-size rule's step at nβ' (the rule's ε scales as 1/nβ
where nβ·h dominates; its heat term, ∝ nβ², falls faster, so ε_t is within
the rule's bound). Why a lower nβ leaves the slow directions right: along
an exactly flat direction the localised posterior is N(w*, 1/γ) at every
nβ, and along the orbit of a symmetry the transverse directions add
½·log det of their Hessian, which in the Laplace approximation does not
depend on nβ — so the tempered chains end near the target's law there,
and the stiff directions (≈ 1/step_scale steps at nβ) settle in the
sampler's own burn-in. That they did is measured, not assumed: the spread
test is two-sided (a run still contracting is flagged like one still
spreading).

Lowering nβ also frees the directions the loss confines only weakly
(nβ'·curvature below γ): where the rule's step is far below ε_t — on the
scale tiers' teachers, whose Hessian spectrum is broad, nβ' came out near
1, and the chains drew the localisation's Gaussian — the start is not
taken: nβ' may not fall below nβ/MAX_TEMPERING (100; the catalogue's runs
need up to nβ/94). And a start whose chains end as spread as the
localisation's Gaussian alone (E‖w − w*‖² above the locality rule's 90 %
of d/γ) is undone, the run starting at w* (the record keeps what was
tried); so is one in which a chain blew up (ε_t unstable where the chains
went: on the scale-10k teacher that needed only nβ/40, 320 blow-ups).

When: with ``start = "tempered"`` on every run; with ``start = "auto"``
(the default) only on a run whose chains are still spreading after its
planned steps from w*, which the driver then starts again from here (its
run from w* discarded and paid for). Started on every run, it cost three
valley polynomials of the catalogue their health under sgld: their chains
began the burn-in spread out, and the rule's adapted step came out 4–24×
smaller than from w*.

Not run (the record says why): where γ = 0 (nothing bounds those
directions), where the run's own step already passes RELAXATIONS
relaxation times in ``tempered_start`` steps, where the sampler has no
Langevin step to scale (SGNHT at a given step), and on trained anchors
(classifiers whose γ the pilot chooses from chains started at w*; not
measured there). The start draws from streams of its own ("tempered",
"tempered_batches"), so the sampler's noise and minibatches are those of
the run without it.
"""

from __future__ import annotations

import copy
from typing import Optional

import torch

from ...locality import SPREAD_FRACTION_MAX
from .sampler import Context, StartStep
from .streams import generator

RELAXATIONS = 5.0  # relaxation times 1/(ε_t·γ) of the localisation-only directions the start lasts
# nβ' no lower than nβ/100: started on every run, the catalogue's needed up to nβ/94; a scale-1k
# teacher needed nβ/5,568, and its chains drew the localisation's Gaussian
MAX_TEMPERING = 100.0
CHECK_EVERY = 100  # steps between checks for non-finite chains (a host sync each)


def skip_reason(target, ctx: Context, langevin_step) -> Optional[str]:
    """Why the tempered start does not run for this run, or None if it does."""
    if target.trained_anchor:
        return "a trained anchor (not measured there; its γ comes from the pilot's chains started at w*)"
    if langevin_step is None:
        return "the sampler has no Langevin step to scale (a given step)"
    gamma = ctx.gamma
    if (float(gamma.min()) if isinstance(gamma, torch.Tensor) else float(gamma)) <= 0:
        return "γ = 0: nothing bounds the directions the loss does not confine"
    return None


def run_tempered_start(target, ctx: Context, langevin_step, steps: int, seed: int) -> dict:
    """Move ``ctx.positions`` (every row w* on entry) by the tempered start; return the record's
    ``tempered_start`` object. ``langevin_step``: the run's SGLD step ε (a number, or a (rows, 1)
    column in a shared-chain grid run), None if it has none."""
    why = skip_reason(target, ctx, langevin_step)
    if why is not None:
        return {"steps": 0, "skipped": why}
    eps_t = RELAXATIONS / (steps * ctx.gamma)
    ratio = langevin_step / eps_t  # nβ'/nβ, at most 1
    if isinstance(ratio, torch.Tensor):
        ratio = ratio.clamp(max=1.0)
        if bool((ratio >= 1.0).all()):
            return {"steps": 0, "skipped": "the run's own step fills those directions in tempered_start steps"}
    elif ratio >= 1.0:
        return {"steps": 0, "skipped": "the run's own step fills those directions in tempered_start steps"}
    else:
        ratio = float(ratio)
    lowest = float(ratio.min()) if isinstance(ratio, torch.Tensor) else ratio
    if lowest * MAX_TEMPERING < 1.0:
        return {"steps": 0, "skipped": f"it would need nβ' = nβ/{1 / lowest:.3g}, below nβ/{MAX_TEMPERING:g}, where "
                                       "the loss no longer confines directions the target posterior holds"}
    eps = langevin_step / ratio
    tctx = copy.copy(ctx)
    tctx.nbeta = ctx.nbeta * ratio
    w, w_star = ctx.positions, ctx.w_star
    step = StartStep(target, tctx, eps, generator("tempered", seed, ctx.device),
                     generator("tempered_batches", seed, ctx.device))  # at nβ', γ kept
    reset = 0
    grad_mode = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    try:
        for t in range(steps):
            step(w)
            if (t + 1) % CHECK_EVERY == 0 or t + 1 == steps:
                reset += step.reset_blown_up(w, w_star)  # back to w* (and the start is undone below)
    finally:
        torch.set_grad_enabled(grad_mode)
    r2 = ((w.double() - w_star.double()) ** 2).sum(dim=1)
    points = ctx.points
    per = ctx.chains // points
    record = {"steps": int(steps), "relaxations": RELAXATIONS,
              "nbeta": _per_point(tctx.nbeta, per, points), "step_size": _per_point(eps, per, points),
              "reset_chains": reset,
              "mean_sq_distance": [float(r2[k * per:(k + 1) * per].mean()) for k in range(points)]}
    if reset:
        # ε_t is unstable somewhere the chains went (the curvature grew away from w*): a start whose
        # chains blew up is no start; undo it (on a scale-10k teacher at nβ/40: 320 blow-ups in 2,000 steps)
        w.copy_(w_star.expand_as(w))
        return {"steps": 0, "skipped": f"{reset} chain blow-ups at ε_t = {min(record['step_size']):.3g} (unstable away "
                                       "from w*), undone", "tried": record}
    prior = [ctx.dim / g for g in _per_point(ctx.gamma, per, points)]  # E‖w − w*‖² of the localisation alone
    worst = max(r / p for r, p in zip(record["mean_sq_distance"], prior))
    if worst > SPREAD_FRACTION_MAX:
        # at nβ' the loss no longer confined the chains: they drew the localisation's Gaussian, far
        # from anything the target posterior holds; start at w* instead
        w.copy_(w_star.expand_as(w))
        return {"steps": 0, "skipped": f"the tempered chains drew the localisation's Gaussian (E‖w − w*‖² "
                                       f"{worst:.0%} of d/γ at nβ' = {min(record['nbeta']):.3g}), undone",
                "tried": record}
    return record


def _per_point(value, per: int, points: int) -> list:
    if isinstance(value, torch.Tensor):
        return [float(v) for v in value[::per, 0].tolist()]
    return [float(value)] * points
