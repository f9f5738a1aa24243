"""The estimator registry.

``ESTIMATORS`` maps a name to its :class:`~llcbench.estimators.base.EstimatorSpec`;
``get_estimator(name)`` looks one up. Built in: "sgld", "rmsprop_sgld",
"sgnht" (stochastic-gradient MCMC, :mod:`llcbench.estimators.sgmcmc`); the
references "exact", "nuts", "hmc" and the negative control "hessian"; "volume"
(local volume by random directions); and "ladder" (λ and m from a temperature ladder on shared
chains, an estimate of the true λ).

Plugins (:mod:`llcbench.plugins`): ``@llcbench.register_estimator("name", config=...)`` in
process, or the entry-point group ``llcbench.estimators`` from an installed package; each entry
point loads to an ``EstimatorSpec`` (or a zero-argument callable returning one), e.g. in its
pyproject.toml::

    [project.entry-points."llcbench.estimators"]
    my_sampler = "my_package.llc:SPEC"

``ESTIMATORS`` is a :class:`~llcbench.plugins.Registry`: built-ins first, entry points loaded on the
first listing or the first lookup of a name it does not have; a name is never taken twice unless
``replace=True`` is asked for, and a plugin that fails to load is reported by name, breaking nothing
else.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from ..errors import UserError
from ..plugins import Registry
from .base import Estimate, EstimatorSpec
from . import exact, hessian, hmc, ladder, nuts, rmsprop_sgld, sgld, sgnht, volume

ENTRY_POINT_GROUP = "llcbench.estimators"


def _as_spec(obj: Any, name: str) -> EstimatorSpec:
    """The spec an entry point (or a registration) names: an EstimatorSpec, or a zero-argument
    callable returning one; renamed to its registered name, which records and workers look up."""
    spec = obj if isinstance(obj, EstimatorSpec) else obj() if callable(obj) else obj
    if not isinstance(spec, EstimatorSpec):
        raise TypeError(f"expected an EstimatorSpec (or a callable returning one), got {type(spec).__name__}")
    if not (isinstance(spec.config_cls, type) and dataclasses.is_dataclass(spec.config_cls)):
        raise TypeError(f"its config_cls must be a dataclass (--set and `llcbench estimators` read its fields), "
                        f"got {spec.config_cls!r}")
    if not callable(spec.estimate):
        raise TypeError("its estimate is not callable")
    return spec if spec.name == name else dataclasses.replace(spec, name=name)


# Built in: one module per estimator, each exporting SPEC (the same contract a plugin follows).
ESTIMATORS = Registry("estimator", ENTRY_POINT_GROUP, {
    m.SPEC.name: m.SPEC for m in (sgld, rmsprop_sgld, sgnht, ladder, exact, nuts, hmc, hessian, volume)
}, _as_spec)

BUILTIN = frozenset(ESTIMATORS.builtins)


def all_estimators() -> Registry:
    """Built-in and plugin estimators (loads the entry points)."""
    ESTIMATORS.load()
    return ESTIMATORS


def plugin_errors() -> dict[str, str]:
    """Plugins that did not load: name -> "ErrorType: message"."""
    return {name: f.error for name, f in ESTIMATORS.failures().items()}


def plugin_source(name: str) -> Optional[str]:
    """The origin of the estimator called ``name``: "built-in", "plugin <distribution>", "registered
    in-process"; None if there is none."""
    if name in ESTIMATORS.failures():
        return ESTIMATORS.failures()[name].origin
    return ESTIMATORS.origin(name) if name in ESTIMATORS else None


def get_estimator(name: str) -> EstimatorSpec:
    """The estimator called ``name``; UserError naming the known ones (or the plugin's error) otherwise."""
    if isinstance(name, str) and name in ESTIMATORS:
        return ESTIMATORS[name]
    raise UserError(ESTIMATORS.unknown(name))


__all__ = ["BUILTIN", "ESTIMATORS", "ENTRY_POINT_GROUP", "Estimate", "EstimatorSpec", "all_estimators",
           "get_estimator", "plugin_errors", "plugin_source"]
