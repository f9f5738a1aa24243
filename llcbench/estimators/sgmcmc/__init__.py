"""Shared machinery of the stochastic-gradient MCMC estimators of the LLC.

A sampler (:class:`Sampler`, in ``sampler.py``) is a few small functions with
explicit state (BlackJAX-like); ONE driver loop (``driver.py``,
:func:`run_sgmcmc`) owns everything they share:

- the tempered, localised target
  p(w) ∝ exp(−nβ·L_n(w) − (γ/2)·‖w − w*‖²)  (× the prior φ, if the target has one);
- the seeded minibatch stream (``batches.py``);
- the batched forward/backward: all chains in one ``(chains, dim)`` tensor,
  ONE ``target.loss_and_grad`` call per step (autograd, or the family's
  closed form), never a Python loop over chains;
- the step-size rule and its adaptation in the burn-in (``stepsize.py``);
- the tempered start (``tempered_start.py``) and the adaptive length (``settle.py``);
- the chain monitor: divergence detection and parking (``monitor.py``);
- the per-draw λ trace and what is read off it: λ̂, ArviZ diagnostics, the
  localisation sensitivity ∂λ̂/∂log γ = −(γ/2)·Cov(nβL, ‖w − w*‖²) from the
  same draws, warnings (``trace.py``).

Defaults users can trust (each is a documented config field, ``config.py``):

- nβ = nbeta_scale·n/log n (``target.nbeta_star``), never b/log b;
- γ = gamma_scale·nβ (10⁻³·nβ: ≈ 1.1 at n = 10⁴, ≈ 8.7 at n = 10⁵), chosen
  by measurement on the catalogue (docs/defaults.md); an absolute ``gamma``
  is used as is;
- L_n(w*) on the FULL data (``target.full_loss``), in float64;
- burn-in excluded from every average;
- minibatches without replacement: each epoch a fresh seeded permutation of
  the data split into ceil(N/batch_size) near-equal batches (sizes differ by
  at most one), so every point is visited exactly once per epoch (sgnht:
  i.i.d. batches, ``batch_draw = "iid"``, for its momentum's sake); analytic
  potentials (num_data == 0) and batch_size ≥ N use the exact loss;
- per-draw λ trace nβ·(L_n(w_t) − L_n(w*)) estimated WITHOUT bias
  (``trace_batch``, :func:`~.driver.trace_mode`): on all the data where the
  target computes the full-data excess at the cost of a minibatch loss
  (Gaussian losses of linear maps from batch moments: deep linear networks,
  reduced-rank and linear regression), else on a fresh uniform batch drawn
  independently of the chain, with L_B(w*) of the same batch as control
  variate (w* rides along as one extra row), which removes the minibatch
  noise of L_B(w*) itself (at n = 10⁵, b = 256 that noise is ≈ ±850 per draw
  on a λ of 11). Never the gradient's own batch: within an epoch it is
  disjoint from the batches that just moved w_t, so it acts as a held-out
  loss and overstates L_n(w_t) when the labels are noisy (+5 % on the
  regular linear cases; ``trace_batch='same'`` keeps it for comparison);
- step-size extrapolation by ``extrapolate`` (``extrapolate.py``: 2·λ̂(ε) − λ̂(2ε)
  from one shared-chain run): ``"auto"`` (sgld, rmsprop_sgld) applies it where the
  rule sets the step, ``"none"`` (sgnht, the ladder's rungs, sweeps) never;
- chains start at w*, then take ``tempered_start`` (default: the burn-in's
  length) steps of SGLD at a lower nβ with γ kept, which fill the directions
  only the localisation confines (``tempered_start.py``); a chain whose loss becomes NaN/inf or whose
  nβ·(L − L*) exceeds ``divergence_threshold`` is flagged, parked at w* and
  excluded from λ̂; if every chain diverges λ̂ is NaN with a warning.

Each sampler maps the rule's ε_s to its own step (SGLD: ε = ε_s; SGNHT:
h = √ε_s; RMSProp-SGLD: see its module). A user-given ``step_size`` is used
as is.

Determinism: every source of randomness is a named stream of the one
``seed`` (``streams.py``: the noise, the minibatch order — so two samplers
run with the same seed see the same batches — the rule's measurements, ...);
same target, config and seed give a bit-identical λ̂ on CPU (for a fixed number of torch threads).
Device: everything lives on ``device`` (generators included); the loop never
calls ``.item()``: the only host syncs are the divergence checks every
``check_every`` steps, the adaptation rounds, and the final transfer.
"""

from ..temperature import TemperatureConfig, resolve_gamma, resolve_nbeta
from .batches import EpochBatches
from .config import DIVERGENCE_PER_DIM, DTYPES, HEAT_RULES, SGMCMCConfig
from .driver import prior_problem, run_sgmcmc, supports
from .monitor import ChainMonitor
from .sampler import Context, Sampler, potential_gradient
from .stepsize import (StepSizeRule, adaptation_steps, default_step_size, minibatch_gradient_variance,
                       minibatch_heat, top_hessian_eigenvalue, top_hessian_eigenvalues)
from .trace import LOCALISATION_STRIDE, LambdaTrace, localisation

__all__ = [
    "ChainMonitor", "Context", "DIVERGENCE_PER_DIM", "DTYPES", "EpochBatches", "HEAT_RULES", "LOCALISATION_STRIDE",
    "LambdaTrace", "SGMCMCConfig", "Sampler", "StepSizeRule", "TemperatureConfig", "adaptation_steps",
    "default_step_size", "localisation", "minibatch_gradient_variance", "minibatch_heat", "potential_gradient",
    "prior_problem", "resolve_gamma", "resolve_nbeta", "run_sgmcmc", "supports", "top_hessian_eigenvalue",
    "top_hessian_eigenvalues",
]
