"""Shared-chain grid runs: several configs of one case, seed and sampler in one chain tensor.

A sensitivity sweep runs the same sampler on the same target at many
(step_scale, nβ, γ) points. On the small models of the catalogue a step
costs a few dozen kernel launches whatever the number of chains, so K runs
one after another cost K times the per-step overhead. Here the K points
share one ``(K·chains, dim)`` tensor: row block k holds point k's chains,
and ε, nβ and γ are ``(rows, 1)`` columns, so one batched forward/backward
and one update per step serve every point.

What is shared, and therefore part of what such a run *is* (its records are
keyed with the whole group, never served for an independent run): the
noise generator (one normal draw for all rows per step), the minibatch
sequence (every point sees the same batches — common random numbers, which
makes differences between grid points less noisy than between independent
runs) and the control-variate row at w*. What stays per point: nβ, γ, the
step-size rule (ε_s from the curvature and minibatch heat at w*, re-applied
during the burn-in with h and v the largest over *that point's* live
chains), the divergence threshold, and everything read off the trace.

Only samplers whose update is written for per-row columns join
(``Sampler.per_row``: sgld, rmsprop_sgld, sgnht); fields that may differ
between the points are :data:`GRID_FIELDS`. The driver runs them
(:func:`.driver.run_sgmcmc_grid`, the same loop as an independent run, whose
one point is a grid of one); this module says what may share. RMSProp-SGLD's gradient scale m
(which sets its ε and a after the warm-up) is taken per point, over that
point's chains.
"""

from __future__ import annotations

from typing import Optional

from ..base import config_dict

# GRID_FIELDS: the config fields that only enter a step as per-row numbers (ε through the rule, nβ,
# γ): points that differ in nothing else can share one chain tensor.
from ...sweep_axes import GRID_FIELDS


def extrapolated(config) -> bool:
    """Whether a config's λ̂ is extrapolated in ε (its ``extrapolation()``; plugin configs have none)."""
    return getattr(config, "extrapolation", lambda: "none")() != "none"


def shareable(configs: list) -> Optional[str]:
    """None if the configs can run as one shared-chain grid run, else why not."""
    if not configs:
        return "no configs"
    if any(extrapolated(c) for c in configs):
        return "an extrapolated config is a grid run of its own (extrapolate.py)"
    base = {k: v for k, v in config_dict(configs[0]).items() if k not in GRID_FIELDS}
    for c in configs[1:]:
        if type(c) is not type(configs[0]):
            return "configs of different estimators"
        other = {k: v for k, v in config_dict(c).items() if k not in GRID_FIELDS}
        diff = sorted(k for k in base if base[k] != other.get(k))
        if diff:
            return f"the configs differ in {', '.join(diff)} (only {', '.join(GRID_FIELDS)} may differ)"
    return None
