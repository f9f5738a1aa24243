"""The configuration every SG-MCMC estimator shares (field names are a contract of the CLI and sweeps)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from ..base import doc
from ..temperature import TemperatureConfig

DTYPES = {"float32": torch.float32, "float64": torch.float64}
HEAT_RULES = ("measured", "fisher")
TRACE_BATCHES = ("auto", "full", "independent", "same")
BATCH_DRAW_NAMES = ("epoch", "iid")  # the streams of batches.BATCH_DRAWS
EXTRAPOLATIONS = ("none", "richardson", "auto")  # extrapolate.py; auto: SGMCMCConfig.extrapolation

# Diverged: nβ·(L − L_n(w*)) above this many units per parameter (see the config doc).
DIVERGENCE_PER_DIM = 1e4

LOCALISATIONS = ("auto", "scale")  # how γ is chosen when gamma is None (pilot.py)
STARTS = ("auto", "w_star", "tempered", "orbit")  # where the chains start (orbit_start.py, tempered_start.py)


def extrapolate_field(default: str):
    """The ``extrapolate`` field with an estimator's default. At 'none' the field is left out of the run
    key (key_default), so runs made before the option existed keep their keys; any other default is
    always in the key, so a stored run of the plain λ̂(ε) (whose key has no such field) is never served
    for the extrapolated default."""
    return doc(
        default, "'richardson': run the config at the rule's step ε and at 2ε (step_scale·2) as one "
        "shared-chain run and report 2·λ̂(ε) − λ̂(2ε), which removes the O(ε) discretisation bias "
        "(llcbench.estimators.sgmcmc.extrapolate; twice the gradient evaluations; needs step_size unset); "
        "'none': λ̂(ε); 'auto': 'richardson' where the step comes from the rule, 'none' where step_size "
        "is given (or the sampler has no per-row update)", key_default=default == "none")


@dataclass
class SGMCMCConfig(TemperatureConfig):
    """Fields shared by the SG-MCMC estimators (names are a contract of the CLI and sweeps)."""

    step_size: Optional[float] = doc(
        None, "step size ε (h for sgnht); None: the rule ε = step_scale/(nβ·max(h, curvature_floor) + heat + γ), "
        "h = top Hessian eigenvalue of L at w*, heat = the minibatch-noise term (minibatch_heat), "
        "adapted in the burn-in")
    step_scale: float = doc(0.2, "c in the step-size rule (used only when step_size is None)")
    batch_size: int = doc(1024, "minibatch size (see batch_draw); ignored by analytic potentials")
    batch_draw: str = doc(
        "epoch", "how minibatches are drawn: 'epoch' (without replacement, near-equal batches per epoch) or "
        "'iid' (each batch uniformly with replacement, independent of the others)", key_default=True)
    chains: int = doc(8, "number of chains, vectorised in one tensor")
    steps: int = doc(6000, "sampler steps per chain, burn-in included")
    burn_in: int = doc(2000, "initial steps excluded from every average")
    thin: int = doc(1, "keep every thin-th post-burn-in draw")
    max_doublings: int = doc(
        2, "adaptive length: while the draws show a problem a longer run can cure (split R-hat > 1.1, bulk "
        "ESS < 100, an outlier chain, chains still spreading: llcbench.health.mixing_problems), double steps "
        "and burn_in and run on from where the chains are, at most this many times (2: up to 4× steps); "
        "0: exactly steps (llcbench.estimators.sgmcmc.settle)")
    start: str = doc(
        "auto", "where the chains start: 'w_star'; 'tempered' (after the tempered start: tempered_start steps of "
        "SGLD at a lower nβ, γ kept, which fill the directions only the localisation confines; "
        "llcbench.estimators.sgmcmc.tempered_start; not on trained anchors); 'orbit' (after the orbit start: "
        "burn_in steps of the run's SGLD with Metropolis moves along the loss's rescalings, on targets that "
        "declare them, e.g. deep linear networks; llcbench.estimators.sgmcmc.orbit_start); 'auto': at w*, and a "
        "run whose chains are still spreading after its planned steps starts again from the orbit start where "
        "the target declares rescalings, else from the tempered start")
    tempered_start: Optional[int] = doc(None, "steps of the tempered start (5 relaxation times 1/(εγ) of those "
                                              "directions); None: burn_in steps")
    dtype: str = doc("float32", "sampling precision: float32 or float64 (L_n(w*) is always float64)")
    curvature_floor: float = doc(1.0, "lower bound on h in the step-size rule (h = 0 at quartic minima)")
    hessian_iters: int = doc(30, "power iterations for h in the step-size rule")
    hessian_points: int = doc(4096, "data points (fixed subset) for h in the step-size rule")
    divergence_threshold: Optional[float] = doc(
        None, "a chain diverges when nβ·(L_B − L_n(w*)) exceeds this (or is NaN/inf); "
        f"None: {DIVERGENCE_PER_DIM:g}·max(dim, 1)")
    trace_batch: str = doc(
        "auto", "data of the λ trace nβ·(L(w_t) − L(w*)) under minibatches: 'full' (all the data, for targets "
        "with a cheap full-data excess loss), 'independent' (a fresh random batch per step, independent of "
        "the gradient batches), 'same' (the gradient's own batch: biased upward with noisy labels, kept for "
        "comparison), 'auto' (full where available, else independent)")
    control_variate: bool = doc(
        True, "with a batch trace ('independent' or 'same'): L_B(w*) from the same batch as L_B(w_t) (one extra "
        "row; removes the minibatch noise of L_B(w*)); False: L_B(w_t) − L_n(w*)")
    adapt_rounds: int = doc(
        4, "re-set the rule's step this many times in the first half of the burn-in from the largest over "
        "chains of the top Hessian eigenvalue at their current positions (0: the rule at w* only)")
    adapt_growth: float = doc(4.0, "at most this factor of growth of the step per adaptation round")
    minibatch_heat: str = doc(
        "measured", "the minibatch-noise term of the step-size rule: 'measured' (nβ²·v, v the largest "
        "per-coordinate Var(∇L_B) over heat_batches random minibatches at w* and at each adaptation) or "
        "'fisher' (nβ·h·nβ/b, which assumes the per-sample gradient covariance equals the Hessian)")
    heat_batches: int = doc(16, "minibatch gradients per measurement of v (minibatch_heat = 'measured')")
    adapt_iters: int = doc(10, "power iterations per adaptation round")
    check_every: int = doc(100, "steps between divergence checks (the only host syncs of the loop)")
    trace_points: int = doc(200, "at most this many loss-trace points per chain in the record")
    per_sample: Optional[bool] = doc(
        None, "record the per-sample LLC λ̂_i = nβ·(E[ℓ_i(w)] − ℓ_i(w*)) of the probe samples from the same draws "
        "as λ̂; None: on where the target knows its memorised samples, True needs a target with per-sample "
        "losses", key_default=True)
    probe_samples: int = doc(
        4096, "per-sample LLC: all training samples when there are at most this many, else this many drawn "
        "without replacement (seeded by the run's seed)", key_default=True)
    noise_draws: int = doc(
        32, "per-sample LLC: draws ξ ~ N(0, I/γ) of the baseline loss_under_noise = mean ℓ_i(w* + ξ) − ℓ_i(w*) "
        "(a generator of its own, seeded by the run's seed)", key_default=True)

    extrapolate: str = extrapolate_field("none")
    localisation: str = doc(
        "auto", "how γ is chosen when gamma is None: 'auto' (trained anchors: the γ-ladder pilot of "
        "llcbench.estimators.sgmcmc.pilot, the smallest γ whose posterior is local with λ̂ on a plateau; other "
        "targets: gamma_scale·nβ) or 'scale' (gamma_scale·nβ always)")

    def extrapolation(self, per_row: bool = True) -> str:
        """What ``extrapolate`` does for this config: 'richardson' or 'none'. 'auto' is 'richardson' where
        the rule sets the step and the sampler can hold the two points in one chain tensor (``per_row``)."""
        if self.extrapolate == "auto":
            return "richardson" if self.step_size is None and per_row else "none"
        return self.extrapolate

    def tempered_steps(self) -> int:
        """The tempered start's steps: ``tempered_start``, or the planned burn-in where it is None."""
        return int(self.burn_in if self.tempered_start is None else self.tempered_start)

    def start_steps(self, kind: str) -> int:
        """The steps of the start ``kind`` ('tempered' or 'orbit'; the orbit start takes the planned burn-in)."""
        return self.tempered_steps() if kind == "tempered" else int(self.burn_in)

    def validate(self) -> None:
        self.validate_temperature()
        if self.localisation not in LOCALISATIONS:
            raise ValueError(f"localisation must be one of {', '.join(LOCALISATIONS)}, got {self.localisation!r}")
        _positive(self, "step_scale", "curvature_floor")
        if self.extrapolate not in EXTRAPOLATIONS:
            raise ValueError(f"extrapolate must be one of {', '.join(EXTRAPOLATIONS)}, got {self.extrapolate!r}")
        if self.extrapolate == "richardson" and self.step_size is not None:
            raise ValueError("extrapolate='richardson' doubles the step-size rule's step_scale: leave step_size "
                             "unset (or extrapolate='none')")
        if self.batch_draw not in BATCH_DRAW_NAMES:
            raise ValueError(f"batch_draw must be one of {', '.join(BATCH_DRAW_NAMES)}")
        if not (self.adapt_growth >= 1 and math.isfinite(self.adapt_growth)):
            raise ValueError("adapt_growth must be >= 1")
        if self.adapt_rounds < 0:
            raise ValueError("adapt_rounds must be >= 0")
        if self.max_doublings < 0:
            raise ValueError("max_doublings must be >= 0")
        if self.tempered_start is not None and self.tempered_start < 1:
            raise ValueError("tempered_start must be >= 1 (start='w_star' starts at w*)")
        if self.start not in STARTS:
            raise ValueError(f"start must be one of {', '.join(STARTS)}, got {self.start!r}")
        _optional_positive(self, "step_size", "divergence_threshold")
        _at_least(self, 1, "batch_size", "chains", "steps", "thin", "hessian_iters", "hessian_points", "adapt_iters",
                  "check_every", "trace_points", "probe_samples", "noise_draws")
        if self.burn_in < 0:
            raise ValueError("burn_in must be >= 0")
        if self.burn_in >= self.steps:
            raise ValueError(f"burn_in must be < steps (got burn_in={self.burn_in}, steps={self.steps})")
        if (self.steps - self.burn_in) // self.thin < 1:
            raise ValueError("no draw left: need (steps - burn_in) // thin >= 1")
        if self.minibatch_heat not in HEAT_RULES:
            raise ValueError(f"minibatch_heat must be one of {', '.join(HEAT_RULES)}, got {self.minibatch_heat!r}")
        if self.trace_batch not in TRACE_BATCHES:
            raise ValueError(f"trace_batch must be one of {', '.join(TRACE_BATCHES)}, got {self.trace_batch!r}")
        if self.heat_batches < 2:
            raise ValueError("heat_batches must be >= 2")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")


def _positive(cfg, *names):
    for name in names:
        v = getattr(cfg, name)
        if not (v > 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be > 0")


def _optional_positive(cfg, *names):
    for name in names:
        v = getattr(cfg, name)
        if v is not None and not (v > 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be > 0 (or None for the default)")


def _at_least(cfg, lo, *names):
    for name in names:
        if getattr(cfg, name) < lo:
            raise ValueError(f"{name} must be >= {lo}")

