"""The estimator contract.

An estimator is one module with a config dataclass (every hyperparameter with
a documented default, in the field's ``metadata["doc"]``) and one function

    estimate(target, config, seed, device) -> Estimate

with explicit state and no globals (same seed, same target, same config ->
same λ̂ on CPU). Chains are vectorised in one tensor.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..errors import UserError
from ..target import Target


@dataclass
class Estimate:
    """What one run of an estimator returns.

    lambda_hat: the estimate λ̂ (mean over the chains that did not diverge).
    lambda_hat_chains: per-chain λ̂ (NaN for a diverged chain).
    se: standard error of λ̂ (from the effective sample size where there are draws).
    loss_trace: per chain, thinned post-burn-in L(w_t) − L(w*) ... as nested lists
        (chains × draws); empty for estimators that do not sample.
    diagnostics: rhat, ess, frac_below_init, divergent_chains, ... (JSON-able).
    grad_evals: number of gradient evaluations (summed over chains), the cost unit.
    seconds: the estimator's own wall time, if it measures one (optional: the runner times every
        estimate call itself for the record's ``seconds`` and keeps this as ``estimator_seconds``).
    warnings: human-readable warnings that a report must show.
    extra: estimator-specific JSON-able values (e.g. init loss, nβ used).
    per_sample: the per-sample LLC of a probe set of training samples with its standard errors and
        the baselines at w* (JSON-able lists; ``llcbench.estimators.sgmcmc.per_sample``), or None.
    locality: whether the posterior stayed local (``llcbench.locality``; the SG-MCMC estimators), or None.
    nbeta, gamma: the inverse temperature nβ and localisation γ of the posterior whose λ_nβ,γ the run
        estimates (what a reference must match), or None for an estimator of λ itself. An estimator
        that leaves them unset but reports ``extra["nbeta"]``/``extra["gamma"]`` gets those.
    """

    lambda_hat: float
    lambda_hat_chains: list[float]
    se: float
    loss_trace: list[list[float]] = field(default_factory=list)
    diagnostics: dict = field(default_factory=dict)
    grad_evals: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    per_sample: Optional[dict] = None
    locality: Optional[dict] = None
    nbeta: Optional[float] = None
    gamma: Optional[float] = None

    def __post_init__(self):
        if self.nbeta is None and self.extra.get("nbeta") is not None:
            self.nbeta = float(self.extra["nbeta"])
        if self.gamma is None and self.extra.get("gamma") is not None:
            self.gamma = float(self.extra["gamma"])


def doc(default: Any, text: str, **kw) -> Any:
    """A dataclass field with a default and a one-line doc (shown by ``llcbench estimators``)."""
    return field(default=default, metadata={"doc": text, **kw})


@dataclass(frozen=True)
class EstimatorSpec:
    """A registered estimator.

    supports(target) returns None if the estimator can run on the target,
    else a short reason (used to pick the default catalogue for it). It decides
    from what the target declares (family, d, n, prior, quadratic form, trained
    anchor), not from its data: planning asks it of ``catalogue.support_target``,
    which for deep linear networks holds no data.
    estimate_grid(target, configs, seed, device) -> [Estimate]: optional; runs
    configs that differ only in ε, nβ, γ in one chain tensor (sweeps use it).
    """

    name: str
    config_cls: type
    estimate: Callable[..., Estimate]
    summary: str
    supports: Callable[[Target], Optional[str]] = lambda target: None
    estimate_grid: Optional[Callable[..., list]] = None


def _coerce(name: str, ftype: Any, text: str) -> Any:
    """Parse the string ``text`` as the type of config field ``name``."""
    t = ftype if isinstance(ftype, str) else getattr(ftype, "__name__", str(ftype))
    t = t.replace(" ", "")
    optional = t.startswith("Optional[") or t.endswith("|None")
    base = t.removeprefix("Optional[").removesuffix("]") if t.startswith("Optional[") else t.removesuffix("|None")
    if optional and text.lower() in ("none", "null", ""):
        return None
    try:
        if base == "int":
            return int(text)
        if base == "float":
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
            return value
        if base == "bool":
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if base == "str":
            return text
    except ValueError:
        raise UserError(f"--set {name}={text}: expected a value of type {base}") from None
    raise UserError(f"--set {name}: field of type {base} cannot be set from the command line")


def make_config(config_cls: type, overrides: dict[str, str] | list[str] | None = None):
    """Build a config from its defaults and ``key=value`` overrides, with type checking.

    Raises UserError (one line) for an unknown key, a badly typed value, or a
    value the config's own ``validate()`` refuses.
    """
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    values: dict[str, Any] = {}
    items = overrides.items() if isinstance(overrides, dict) else [
        _split_override(item) for item in (overrides or [])
    ]
    for key, text in items:
        if key not in fields:
            raise UserError(
                f"--set {key}: unknown field for {config_cls.__name__}; known: {', '.join(fields)}"
            )
        values[key] = _coerce(key, fields[key].type, str(text)) if isinstance(text, str) else text
    config = config_cls(**values)
    validate = getattr(config, "validate", None)
    if validate is not None:
        try:
            validate()
        except ValueError as exc:
            raise UserError(f"--set: {exc}") from None
    return config


def _split_override(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise UserError(f"--set {item}: expected key=value")
    key, _, value = item.partition("=")
    return key.strip(), value.strip()


def config_dict(config) -> dict:
    """The full config as a JSON-able dict (part of a run's content hash).

    A field declared with ``key_default=True`` is left out while it holds its default: a field added
    to a config later then leaves the keys (and the config groups of the scores) of every run made
    without it unchanged."""
    out = dataclasses.asdict(config)
    if dataclasses.is_dataclass(config):
        for f in dataclasses.fields(config):
            if f.metadata.get("key_default") and f.default is not dataclasses.MISSING and out.get(f.name) == f.default:
                out.pop(f.name, None)
    return out
