"""Where the chains start on a target with a continuous symmetry: Metropolis moves along its orbits.

A deep linear network's loss is unchanged by the rescalings (W_i, W_{i+1}) →
(A·W_i, W_{i+1}·A⁻¹), A ∈ GL(H_i), at every hidden vertex i (the target
declares them: :meth:`llcbench.target.Target.rescalings`). Along these orbits
only the localisation γ·(w − w*) pulls, and SGLD at the step the stiffest
direction allows fills them in ≈ 1/(εγ) steps: 10⁶ on the scale tiers'
teachers (inputs on [−10, 10] make ε small), where the tempered start
(tempered_start.py) would need nβ' below nβ/1,000 and is refused. So a run
whose chains still spread from w* spreads along these orbits for the whole
of its budget (docs/scale.md).

The orbit start moves the chains along the orbits directly. For
``steps`` steps (the planned burn-in's length), each step is the run's own
SGLD step (its nβ, γ and ε, from streams of the start's own) followed, at
every hidden vertex, by Metropolis moves along the rescalings of two kinds:
a transvection A = I + t·u·vᵀ (u, v random, v ⊥ u, so A⁻¹ = I − t·u·vᵀ and
det A = 1), ``moves_per_step(H_i)`` of them, and one scalar rescaling
A = eᵗ·I. Each proposal w' = (…, A·W_i, W_{i+1}·A⁻¹, …) is accepted with
probability

    min(1, exp(−γ/2·(‖w' − w*‖² − ‖w − w*‖²)) · |det A|^(H_{i−1} − H_{i+1})).

The loss L_n(w') = L_n(w) exactly (the network computes the same function),
so no data are read, and a move costs O(H_i·(H_{i−1} + H_{i+1})) per chain
(no matrix exponential or inverse). The moves are exact for the localised
tempered posterior p(w) ∝ exp(−nβ·L_n(w) − γ/2·‖w − w*‖²): t and −t are
equally likely, so a proposal and its inverse are (the group-move
Metropolis of Liu & Sabatti 2000, Biometrika 87, "Generalised Gibbs sampler
and multigrid Monte Carlo for Bayesian computation"; GL(H) is unimodular),
and |det A|^(H_{i−1} − H_{i+1}) is the Jacobian of w ↦ w' (A acts on the
H_{i−1} columns of W_i, A⁻¹ on the H_{i+1} rows of W_{i+1}). Transvections
generate SL(H_i) and with the scalings all of GL⁺(H_i). A one-direction
move relaxes the H_i² directions of the group in about H_i² moves, hence
``moves_per_step`` grows with H_i². The SGLD steps keep the directions
across the orbits settled. The scale of each kind of move adapts per chain
toward 30 % acceptance during the first half of the start and is fixed after it.

On scale-1k/dln/18-12-27/02 (every layer of full rank, so the set of true
parameters is one orbit: 12² = 144 directions), seed 0, sgld at the
defaults: the chains end the start at E‖w − w*‖² = 16.6 (144/γ = 16.6), and
the run's spread moves +0.1 % (z 0.0) over its draws, healthy at 6,000 steps; from w* it
moved +93 % (z 9.7) at 24,000 (llcbench 0.9.0).

Where the orbits take the chains the curvature across them can be far larger
than at w* (a layer scaled up by eᵗ makes the next one's directions e^{2t}
stiffer), and the run's step, set by the rule at w*, then blows chains up.
Such a start goes back to w* and tries again at the rule's step for the
largest top Hessian eigenvalue the chains had met (at most half the last
step; MAX_TRIES in all), and the run takes that smaller step too, its
adaptation never above it: a step that blows up where the posterior reaches
does not sample it. On scale-1k/dln/24-8-15-47-22/01 (sgld, defaults) one
chain of 16 blew up within 400 steps; the chains had met h ≈ 1.2·10⁴, 55×
the curvature at w*, and the run's adaptation measured h ≈ 1.45·10⁴ at its
chains afterwards. A step the user gave (``step_size``) is not the start's
to change: its blow-up undoes the start, and the run goes on from w*.

What it does not reach: directions along the set of true parameters that are
not rescalings (a rank-deficient layer's rows that the next layer ignores),
which still fill at ≈ 1/(εγ). The run's spread test judges the result, as
for any start.

Not run (the record says why): on targets that declare no rescalings, on
trained anchors, where γ = 0, where the sampler has no Langevin step.
"""

from __future__ import annotations

from typing import Optional

import torch

from . import tempered_start
from .sampler import Context, StartStep
from .stepsize import default_step_size, hessian_subset, top_hessian_eigenvalues
from .streams import generator

SWEEPS = 4  # transvections per step per vertex: SWEEPS·⌈H²/1,000⌉ (H² directions relax in ≈ H² moves)
TARGET_ACCEPTANCE = 0.3
ADAPT_EVERY = 50  # steps between adaptations of the move scales (first half of the start only)
INITIAL_SCALE = 0.01  # the proposals' t: N(0, scale²)
CHECK_EVERY = 100  # steps between checks for non-finite chains (a host sync each)
MAX_TRIES = 4  # a start whose chains blow up at the rule's step tries again with a smaller one, this often in all
MAX_SHRINK = 0.5  # each try's step at most half the last


def skip_reason(target, ctx: Context, langevin_step) -> Optional[str]:
    """Why the orbit start does not run for this run, or None if it does: a target without rescalings,
    or what stops the tempered start too (a trained anchor, no Langevin step, γ = 0)."""
    if not target.rescalings():
        return "the target declares no rescalings to move along"
    return tempered_start.skip_reason(target, ctx, langevin_step)


def moves_per_step(width: int) -> int:
    """Transvections per step at a vertex of this width."""
    return SWEEPS * -(-width * width // 1000)


def run_orbit_start(target, ctx: Context, langevin_step, steps: int, seed: int) -> dict:
    """Move ``ctx.positions`` (every row w* on entry) by the orbit start; return the record's start
    object. ``langevin_step``: the run's SGLD step ε (a number, or a (rows, 1) column in a shared-chain
    grid run).

    Where a chain blows up and the run's step comes from the rule (``ctx.eps_rule`` set), the start
    goes back to w* and tries again with the step the rule gives at the stiffest chain left (at most
    half the last), up to MAX_TRIES times in all; the record's ``step_factor`` is then the factor the
    run's own step must take too (the driver applies it). A given step (``step_size`` set) is not the
    start's to change: its blow-up undoes the start."""
    why = skip_reason(target, ctx, langevin_step)
    if why is not None:
        return {"steps": 0, "skipped": why}
    w, w_star = ctx.positions, ctx.w_star
    noise_gen = generator("orbit", seed, ctx.device)
    batch_gen = generator("orbit_batches", seed, ctx.device)
    shrinkable = ctx.eps_rule is not None
    factor, retries = 1.0, []
    while True:
        last = not shrinkable or len(retries) + 1 >= MAX_TRIES
        eps = langevin_step if factor == 1.0 else langevin_step * factor
        record, seen = _walk(target, ctx, StartStep(target, ctx, eps, noise_gen, batch_gen), steps, stop_early=not last)
        if not record["reset_chains"]:
            break
        if last:
            w.copy_(w_star.expand_as(w))  # the run's own step blew up where the chains went: no start
            undone = {"steps": 0, "skipped": f"{record['reset_chains']} chain blow-ups, undone", "tried": record}
            return {**undone, "retries": retries} if retries else undone
        shrink, h_max = smaller_step(target, ctx, eps, seen)
        retries.append({**record, "step_factor": factor, "h_max": h_max})
        factor *= shrink
        w.copy_(w_star.expand_as(w))
    return {**record, "step_factor": factor, "retries": retries} if retries else record


def smaller_step(target, ctx: Context, eps, seen: torch.Tensor) -> tuple[float, Optional[float]]:
    """The factor for the start's step ``eps`` after a blow-up: the rule's ε = step_scale/(nβ·h + γ) at h
    the largest top Hessian eigenvalue over the chains where they last were all finite (``seen``, at
    most CHECK_EVERY steps before), over ``eps``, and at most ½ (the chain that blew up went on to
    stiffer places; the minibatch heat is left out, as it only lowers the rule's ε); with h."""
    config = ctx.config
    with torch.enable_grad():
        h = top_hessian_eigenvalues(target, seen, hessian_subset(target, int(config.hessian_points), seen.device),
                                    int(config.adapt_iters))
    h = h[torch.isfinite(h)]
    h_max = float(h.max()) if h.numel() else None
    if h_max is None:
        return MAX_SHRINK, None
    nbeta = torch.as_tensor(ctx.nbeta, dtype=torch.float64).flatten().cpu()
    gamma = torch.as_tensor(ctx.gamma, dtype=torch.float64).flatten().cpu()
    rule = default_step_size(h_max, nbeta, gamma, config, floor=0.0)  # per row in a grid run
    ratio = float((rule / torch.as_tensor(eps, dtype=torch.float64).flatten().cpu()).min())
    return min(ratio, MAX_SHRINK), h_max


def _walk(target, ctx: Context, step: StartStep, steps: int, stop_early: bool) -> tuple[dict, torch.Tensor]:
    """``steps`` steps of the orbit start from the positions (w*), in place: the SGLD step then the moves
    at every vertex; the start's record, and (``stop_early``: the walk stops at the first check that finds
    a chain blown up) every chain where the check before it found them all finite. Without
    ``stop_early`` blown-up chains go back to w* and the walk goes on."""
    w, w_star = ctx.positions, ctx.w_star
    rows = w.shape[0]
    noise_gen = step.noise_gen
    gamma = ctx.gamma[:, 0] if isinstance(ctx.gamma, torch.Tensor) else torch.full((rows,), float(ctx.gamma),
                                                                                     dtype=w.dtype, device=w.device)
    kinds = [(vertex, move, moves_per_step(vertex.width) if move is transvection else 1)
             for vertex in target.rescalings() for move in ((transvection, scaling) if vertex.width > 1 else (scaling,))]
    zeros = lambda: torch.zeros(rows, dtype=w.dtype, device=w.device)  # noqa: E731
    scale = [torch.full((rows,), INITIAL_SCALE, dtype=w.dtype, device=w.device) for _ in kinds]
    window, accepted = [zeros() for _ in kinds], [zeros() for _ in kinds]
    reset, taken = 0, steps
    seen = w.clone() if stop_early else w[:0]  # a copy of every chain only where a retry may read it
    grad_mode = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    try:
        for t in range(steps):
            step(w)  # the run's own SGLD step
            late = t >= steps // 2
            for k, (vertex, move, count) in enumerate(kinds):
                for _ in range(count):
                    ok = move(w, w_star, vertex, scale[k], gamma, noise_gen)
                    (accepted[k] if late else window[k]).add_(ok)
            if not late and (t + 1) % ADAPT_EVERY == 0:
                for k, (_, _, count) in enumerate(kinds):
                    scale[k].mul_(torch.exp(window[k] / (ADAPT_EVERY * count) - TARGET_ACCEPTANCE))
                    window[k].zero_()
            if (t + 1) % CHECK_EVERY == 0 or t + 1 == steps:
                reset += step.reset_blown_up(w, w_star)
                if reset and stop_early:
                    taken = t + 1
                    break
                if stop_early:
                    seen.copy_(w)
    finally:
        torch.set_grad_enabled(grad_mode)
    r2 = ((w.double() - w_star.double()) ** 2).sum(dim=1)
    points = ctx.points
    per = ctx.chains // points
    late_steps = max(min(taken, steps) - steps // 2, 1)
    record = {"steps": int(taken),
              "moves": [{"vertex": vertex.width, "kind": move.__name__, "per_step": count,
                         "acceptance": round(float(accepted[k].mean()) / (late_steps * count), 4),
                         "scale": float(scale[k].mean())}
                        for k, (vertex, move, count) in enumerate(kinds)],
              "reset_chains": reset,
              "mean_sq_distance": [float(r2[k * per:(k + 1) * per].mean()) for k in range(points)]}
    return record, seen


def transvection(w: torch.Tensor, w_star: torch.Tensor, vertex, scale: torch.Tensor, gamma: torch.Tensor,
                 gen: torch.Generator) -> torch.Tensor:
    """One Metropolis move of every chain by A = I + t·u·vᵀ (v ⊥ u: A⁻¹ = I − t·u·vᵀ, det A = 1) at
    ``vertex``, in place; 1.0 where accepted (per chain)."""
    rows, h = w.shape[0], vertex.width
    u = torch.randn(rows, h, generator=gen, dtype=w.dtype, device=w.device)
    v = torch.randn(rows, h, generator=gen, dtype=w.dtype, device=w.device)
    u.div_(u.norm(dim=1, keepdim=True))
    v.sub_(u * (u * v).sum(dim=1, keepdim=True))
    v.div_(v.norm(dim=1, keepdim=True))
    t = torch.randn(rows, generator=gen, dtype=w.dtype, device=w.device).mul_(scale)
    w_in, w_out = vertex.incoming(w), vertex.outgoing(w)  # views (rows, H_i, H_{i-1}), (rows, H_{i+1}, H_i)
    tu = t[:, None] * u
    new_in = w_in + tu[:, :, None] * torch.bmm(v[:, None, :], w_in)  # A·W_in = W_in + t·u·(vᵀW_in)
    new_out = w_out - torch.bmm(w_out, tu[:, :, None]) * v[:, None, :]  # W_out·A⁻¹ = W_out − t·(W_out u)·vᵀ
    return _accept(w, w_star, vertex, new_in, new_out, torch.zeros_like(t), gamma, gen)


def scaling(w: torch.Tensor, w_star: torch.Tensor, vertex, scale: torch.Tensor, gamma: torch.Tensor,
            gen: torch.Generator) -> torch.Tensor:
    """One Metropolis move of every chain by A = eᵗ·I at ``vertex``, in place; 1.0 where accepted."""
    t = torch.randn(w.shape[0], generator=gen, dtype=w.dtype, device=w.device).mul_(scale)
    c = torch.exp(t)[:, None, None]
    new_in, new_out = vertex.incoming(w) * c, vertex.outgoing(w) / c
    return _accept(w, w_star, vertex, new_in, new_out, t * vertex.width, gamma, gen)


def _accept(w, w_star, vertex, new_in, new_out, log_det, gamma, gen) -> torch.Tensor:
    """Metropolis: keep (new_in, new_out) where u < exp(−γ/2·Δ‖w − w*‖²)·|det A|^(fan_in − fan_out)."""
    w_in, w_out = vertex.incoming(w), vertex.outgoing(w)
    s_in, s_out = vertex.incoming(w_star[None]), vertex.outgoing(w_star[None])
    before = ((w_in - s_in) ** 2).sum(dim=(1, 2)) + ((w_out - s_out) ** 2).sum(dim=(1, 2))
    after = ((new_in - s_in) ** 2).sum(dim=(1, 2)) + ((new_out - s_out) ** 2).sum(dim=(1, 2))
    log_ratio = -0.5 * gamma * (after - before) + log_det * (vertex.fan_in - vertex.fan_out)
    u = torch.rand(w.shape[0], generator=gen, dtype=w.dtype, device=w.device)
    ok = (torch.log(u) < log_ratio) & torch.isfinite(after)
    w_in[ok] = new_in[ok]
    w_out[ok] = new_out[ok]
    return ok.to(w.dtype)
