"""devinterp (Timaeus) as two llcbench estimators, ``devinterp_sgld`` and ``devinterp_rmsprop``.

They run devinterp's own sampler (``devinterp.slt.sampling.sample``, its SGLD or RMSProp-SGLD
optimizer and data loading) and its own LLC (``devinterp.slt.llc.compute_llc``) on an llcbench
target written as what devinterp takes: a ``torch.nn.Module`` holding w (one parameter, started at
w*) and a Hugging Face ``Dataset`` whose ``input_ids`` rows are ``[i, i]`` for the data points i.
The loss function hands each minibatch's indices to the target's own ``loss(w, idx)`` and returns
the batch mean in every row of devinterp's (batch, seq − 1) per-token shape, so devinterp's
per-step mean over the batch is exactly L_B(w). Analytic potentials (no data) get a dataset of one
dummy row and batch size 1.

Registered like any third party's estimator, through the entry-point group ``llcbench.estimators``
of llcbench's own distribution (pyproject.toml), and loaded only when the registry is listed or
asked for one of these names. Without devinterp installed the entry point fails to load with
``MissingDependency: pip install 'llcbench[devinterp]'`` (a "not loaded" row in ``llcbench estimators``,
the error when asked for by name, no warning otherwise); nothing else changes.

Two settings (``rules``):

- ``devinterp``: devinterp's README settings: lr 1e-3, n_beta 30, no localisation, 4 chains of
  200 draws, batch 32, no burn-in, one step between draws (devinterp's own defaults for everything
  it does not require);
- ``llcbench``: llcbench's rules passed into devinterp's sampler: nβ = n/log n, γ = gamma_scale·nβ,
  the SGLD step-size rule at w* (``llcbench.estimators.sgmcmc.stepsize``; devinterp's step is
  constant, so the rule is not re-applied during the burn-in), and llcbench's chains, steps,
  burn-in and batch size.

What a record carries: λ̂ = devinterp's ``llc_mean`` over the draws after the burn-in (devinterp
2.0's ``llc()`` averages every step, burn-in included: kept as ``extra.llc_all_steps``); se =
devinterp's ``llc_std``, the spread (population standard deviation) of the per-chain LLCs, as
devinterp reports it (not divided by √chains); devinterp's version and the sampler config it
recorded itself (``extra.devinterp_config``), so a record is labelled by what devinterp ran.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import Optional

import numpy as np
import torch

from .estimators.base import Estimate, EstimatorSpec, doc
from .plugins import MissingDependency
from .estimators.sgmcmc.config import SGMCMCConfig
from .estimators.sgmcmc.stepsize import StepSizeRule
from .estimators.temperature import DEFAULT_GAMMA_SCALE
from .target import Target

DIST = "devinterp"
EXTRA = "pip install 'llcbench[devinterp]'"
SUPPORTED_SERIES = (2, 0)  # the API used here (sample/compute_llc, SamplerConfig) is devinterp 2.0's

RULES = ("devinterp", "llcbench")
# devinterp's README example (lr, n_beta, chains, draws) and its sample() defaults for the rest.
README = {"lr": 1e-3, "n_beta": 30.0, "localization": 0.0, "chains": 4, "draws": 200, "burn_in": 0,
          "batch_size": 32}
_SGMCMC = SGMCMCConfig()  # llcbench's SG-MCMC defaults: chains, steps, burn-in, batch size, the rule's knobs
METHODS = {"devinterp_sgld": "sgmcmc_sgld", "devinterp_rmsprop": "rmsprop_sgld"}


def _installed_version() -> str:
    return metadata.version(DIST)


def devinterp_version() -> str:
    """The installed devinterp's version; MissingDependency (one line, naming the extra) when it is missing
    or of a series this adapter was not written for."""
    try:
        version = _installed_version()
    except metadata.PackageNotFoundError:
        raise MissingDependency(EXTRA) from None  # the listing's row: "not loaded: MissingDependency: pip install ..."
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts != SUPPORTED_SERIES:
        raise MissingDependency(f"devinterp {version} is installed, this adapter needs devinterp "
                          f"{'.'.join(map(str, SUPPORTED_SERIES))}.x: {EXTRA}")
    return version


@dataclass
class DevinterpConfig:
    """devinterp's sampler settings; None: the value ``rules`` gives."""

    rules: str = doc("devinterp", "'devinterp': its README settings (lr 1e-3, n_beta 30, no localisation, 4 chains × "
                     "200 draws, batch 32, no burn-in); 'llcbench': llcbench's nβ, γ, step-size rule, chains, steps, "
                     "burn-in and batch size passed into devinterp's sampler")
    lr: Optional[float] = doc(None, "devinterp's lr (the SGLD step ε); None: 1e-3 ('devinterp') or the SGLD rule "
                              "ε = step_scale/(nβ·max(h, curvature_floor) + heat + γ) at w* ('llcbench'; for "
                              "RMSProp-SGLD times rmsprop_eps, so that no coordinate's step exceeds it)")
    n_beta: Optional[float] = doc(None, "inverse temperature nβ; None: 30 ('devinterp') or n/log n ('llcbench')")
    localization: Optional[float] = doc(None, "localisation γ; None: 0 ('devinterp') or gamma_scale·nβ ('llcbench')")
    gamma_scale: float = doc(DEFAULT_GAMMA_SCALE, "γ = gamma_scale·nβ under rules = 'llcbench'")
    chains: Optional[int] = doc(None, "devinterp's num_chains; None: 4 ('devinterp') or llcbench's 8")
    draws: Optional[int] = doc(None, "devinterp's num_draws (steps after the burn-in); None: 200 ('devinterp') or "
                               "llcbench's steps − burn_in (4000)")
    burn_in: Optional[int] = doc(None, "devinterp's num_burnin_steps; None: 0 ('devinterp') or llcbench's 2000")
    batch_size: Optional[int] = doc(None, "minibatch size (at most n; 1 for analytic potentials); None: 32 "
                                    "('devinterp') or llcbench's 1024")
    step_scale: float = doc(_SGMCMC.step_scale, "c in llcbench's step-size rule (rules = 'llcbench', lr None)")
    dtype: str = doc("float32", "dtype of w and of the target's data (devinterp stores losses as float32)")

    def validate(self) -> None:
        if self.rules not in RULES:
            raise ValueError(f"rules must be one of {', '.join(RULES)}, got {self.rules!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        for name in ("lr", "n_beta"):
            v = getattr(self, name)
            if v is not None and not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be > 0 (or None for the rules' value)")
        for name in ("localization", "gamma_scale"):
            v = getattr(self, name)
            if v is not None and not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be >= 0")
        for name in ("chains", "draws", "batch_size"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.burn_in is not None and self.burn_in < 0:
            raise ValueError("burn_in must be >= 0")
        if not (self.step_scale > 0 and math.isfinite(self.step_scale)):
            raise ValueError("step_scale must be > 0")


def supports(target: Target) -> Optional[str]:
    """devinterp samples a flat posterior (its only prior is a Gaussian weight decay): no target with a
    prior ∏|w_i|^h."""
    if target.has_prior:
        return "the target has a prior; devinterp samples a flat posterior (its only prior is Gaussian weight decay)"
    return None


class _Weights(torch.nn.Module):
    """The model devinterp samples: w as one parameter, started at w*."""

    def __init__(self, w_star: torch.Tensor):
        super().__init__()
        self.w = torch.nn.Parameter(w_star.detach().clone())


def _loss_fn(target: Target):
    """devinterp's loss_fn(model, input_ids) -> (batch, seq − 1): L_B(w) of the batch's data points
    (column 0 of input_ids) in every row, so its mean over the batch is L_B(w)."""
    def loss_fn(model: _Weights, input_ids: torch.Tensor) -> torch.Tensor:
        idx = None if target.num_data == 0 else input_ids[:, 0].to(model.w.device)
        loss = target.loss(model.w[None], idx)[0]
        return loss.expand(input_ids.shape[0], 1)

    return loss_fn


def _dataset(target: Target):
    """The Hugging Face Dataset devinterp takes: rows [i, i] for the data points (one dummy row for an
    analytic potential)."""
    from datasets import Dataset

    rows = max(int(target.num_data), 1)
    ids = np.repeat(np.arange(rows, dtype=np.int64)[:, None], 2, axis=1)
    return Dataset.from_dict({"input_ids": ids}).with_format("torch")


def settings(target: Target, config: DevinterpConfig, method: str, seed: int, device: str) -> dict:
    """The keyword arguments of devinterp's sample() (besides model, dataset, observables, loss_fn),
    and how lr was chosen."""
    llc_rules = config.rules == "llcbench"
    nbeta = config.n_beta if config.n_beta is not None else target.nbeta_star if llc_rules else README["n_beta"]
    gamma = (config.localization if config.localization is not None
             else config.gamma_scale * nbeta if llc_rules else README["localization"])
    chains = config.chains or (_SGMCMC.chains if llc_rules else README["chains"])
    burn_in = config.burn_in if config.burn_in is not None else (_SGMCMC.burn_in if llc_rules else README["burn_in"])
    draws = config.draws or (_SGMCMC.steps - _SGMCMC.burn_in if llc_rules else README["draws"])
    batch = config.batch_size or (_SGMCMC.batch_size if llc_rules else README["batch_size"])
    batch = 1 if target.num_data == 0 else min(int(batch), int(target.num_data))
    kwargs = {}
    if config.lr is not None:
        lr, source = float(config.lr), "config"
    elif not llc_rules:
        lr, source = README["lr"], "devinterp README"
    else:
        rule_config = SGMCMCConfig(step_scale=config.step_scale, batch_size=batch)
        target64 = target.to(device, torch.float64)
        rule = StepSizeRule.at_anchor(target64, target64.w_star, [rule_config], [float(nbeta)], [float(gamma)],
                                      target.num_data > 0, seed, torch.device(device), enabled=True)
        lr, source = rule.eps_rule_init[0], "llcbench rule at w*"
        if method == "rmsprop_sgld":
            # devinterp's RMSProp step is lr/(eps + √V): lr = ε_s·eps caps every coordinate's step at ε_s.
            import inspect

            from devinterp.optim import SGMCMC

            eps = inspect.signature(SGMCMC.rmsprop_sgld).parameters["eps"].default
            lr, source = lr * eps, f"llcbench rule at w* × rmsprop eps {eps:g}"
    return {"lr": float(lr), "n_beta": float(nbeta), "localization": float(gamma), "num_chains": int(chains),
            "num_draws": int(draws), "num_burnin_steps": int(burn_in), "batch_size": int(batch),
            "init_seed": int(seed), "sampling_method": method, "device": str(device), "lr_source": source,
            **kwargs}


def _estimate(target: Target, config: DevinterpConfig, seed: int, device: str, method: str) -> Estimate:
    import arviz as az
    import xarray as xr
    from devinterp.slt import llc as di_llc
    from devinterp.slt import sampling as di_sampling

    version = devinterp_version()
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    target = target.to(device, dtype)
    kw = settings(target, config, method, seed, device)
    lr_source = kw.pop("lr_source")
    model = _Weights(target.w_star)
    caught: list = []
    with tempfile.TemporaryDirectory(prefix="llcbench-devinterp-") as tmp, \
            warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("always")
        # devinterp's progress bars go to the swallowed stderr; its warnings are kept for the record
        samples = di_sampling.sample(model=model, dataset=_dataset(target), observables={}, loss_fn=_loss_fn(target),
                                     output_path=f"{tmp}/samples.zarr", **kw)
        burn = kw["num_burnin_steps"]
        all_steps = di_llc.compute_llc(samples)
        # the same samples without the burn-in steps, through devinterp's own compute_llc
        drawn = xr.DataTree(samples.dataset.isel(step=slice(burn, None)))
        result = di_llc.compute_llc(drawn)
        per_chain = np.asarray(result["llc_per_chain"].values, dtype=np.float64)
        trace = np.asarray(result["loss_trace"].values, dtype=np.float64)  # (chains, draws): L_B(w_t)
        init_loss = float(result["init_loss"].values)
        recorded = dict(samples.dataset.attrs["metadata"]["config"]["sampler"])
        lambda_hat, std = float(result["llc_mean"].values), float(result["llc_std"].values)
        llc_all = float(all_steps["llc_mean"].values)
    lam = kw["n_beta"] * (trace - init_loss)
    finite = bool(np.isfinite(lam).all())
    diagnostics = {"rhat": float(az.rhat(lam, method="rank")) if finite and lam.shape[0] > 1 else float("nan"),
                   "ess": float(az.ess(lam, method="bulk")) if finite else float("nan"),
                   "frac_below_init": float(np.mean(lam < 0)) if finite else float("nan")}
    warn_lines = [f"devinterp: {' '.join(str(w.message).split())}" for w in caught
                  if issubclass(w.category, UserWarning) and "output_path" not in str(w.message)]
    if diagnostics["rhat"] > 1.1:
        warn_lines.append(f"split R-hat {diagnostics['rhat']:.3f} > 1.1: chains disagree")
    steps = kw["num_draws"] + kw["num_burnin_steps"]
    return Estimate(
        lambda_hat=lambda_hat, lambda_hat_chains=per_chain.tolist(), se=std,
        loss_trace=[row[:: max(1, row.size // 200)].tolist() for row in trace - init_loss],
        diagnostics=diagnostics, grad_evals=kw["num_chains"] * steps, warnings=warn_lines,
        extra={"devinterp_version": version, "rules": config.rules, "sampling_method": method,
               "nbeta": kw["n_beta"], "gamma": kw["localization"], "step_size": kw["lr"], "step_size_source": lr_source,
               "chains": kw["num_chains"], "draws": kw["num_draws"], "burn_in": kw["num_burnin_steps"],
               "batch_size": kw["batch_size"], "init_loss": init_loss, "llc_all_steps": llc_all,
               "se_source": "devinterp llc_std (spread of the per-chain LLCs)", "devinterp_config": recorded,
               "dtype": config.dtype, "device": str(device)},
    )


def _spec(name: str, summary: str) -> EstimatorSpec:
    devinterp_version()  # fails the entry point's load, with the extra to install, when devinterp is absent
    method = METHODS[name]

    def estimate(target: Target, config: DevinterpConfig, seed: int, device: str = "cpu") -> Estimate:
        return _estimate(target, config, seed, device, method)

    estimate.__qualname__ = estimate.__name__ = f"{name}_estimate"
    return EstimatorSpec(name=name, config_cls=DevinterpConfig, estimate=estimate, supports=supports,
                         summary=summary)


def sgld_spec() -> EstimatorSpec:
    """The entry point ``devinterp_sgld``."""
    return _spec("devinterp_sgld", "devinterp's SGLD sampler and LLC (Timaeus devinterp 2.0), run as it is")


def rmsprop_spec() -> EstimatorSpec:
    """The entry point ``devinterp_rmsprop``."""
    return _spec("devinterp_rmsprop", "devinterp's RMSProp-SGLD sampler and LLC (Timaeus devinterp 2.0), run as it is")
