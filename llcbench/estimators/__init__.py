"""The estimator registry.

``ESTIMATORS`` maps a name to its :class:`~llcbench.estimators.base.EstimatorSpec`;
``get_estimator(name)`` looks one up. Built in: "sgld", "rmsprop_sgld",
"sgnht" (stochastic-gradient MCMC, :mod:`llcbench.estimators.sgmcmc`); the
references "exact", "nuts", "hmc" and the negative control "hessian"; and "volume"
(local volume by random directions).

Plugins: a third-party package can register more estimators through the
entry-point group ``llcbench.estimators``; each entry point must load to an
``EstimatorSpec`` (or a zero-argument callable returning one), e.g. in its
pyproject.toml::

    [project.entry-points."llcbench.estimators"]
    my_sampler = "my_package.llc:SPEC"

Entry points are discovered lazily, on the first lookup of a name that is
not built in (or on :func:`all_estimators`); a built-in name is never
shadowed, and a plugin that fails to load is reported in the error of a
lookup of its name (and by :func:`plugin_errors`, which ``llcbench
estimators`` lists) rather than breaking the others.
"""

from __future__ import annotations

from typing import Optional

from ..errors import UserError
from .base import Estimate, EstimatorSpec
from . import exact, hessian, hmc, nuts, rmsprop_sgld, sgld, sgnht, volume

ENTRY_POINT_GROUP = "llcbench.estimators"

# Built in: one module per estimator, each exporting SPEC (the same contract a plugin follows).
ESTIMATORS: dict[str, EstimatorSpec] = {
    m.SPEC.name: m.SPEC for m in (sgld, rmsprop_sgld, sgnht, exact, nuts, hmc, hessian, volume)
}

BUILTIN = frozenset(ESTIMATORS)

_plugins_loaded = False
_plugin_errors: dict[str, str] = {}
_plugin_sources: dict[str, str] = {}  # name -> the entry point's "module:attr"


def _load_plugins() -> None:
    """Add the specs of the ``llcbench.estimators`` entry points to ESTIMATORS (once)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    try:
        eps = entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # pragma: no cover - broken metadata must not break the built-ins
        return
    for ep in eps:
        _plugin_sources[ep.name] = ep.value
        if ep.name in ESTIMATORS:
            if ep.name in BUILTIN:
                _plugin_errors[ep.name] = f"{ep.name!r} is a built-in estimator's name"
            continue
        try:
            obj = ep.load()
            spec = obj if isinstance(obj, EstimatorSpec) else obj()
            if not isinstance(spec, EstimatorSpec):
                raise TypeError(f"expected an EstimatorSpec, got {type(spec).__name__}")
        except Exception as exc:
            _plugin_errors[ep.name] = f"{type(exc).__name__}: {exc}"
            continue
        ESTIMATORS[ep.name] = spec


def all_estimators() -> dict[str, EstimatorSpec]:
    """Built-in and plugin estimators."""
    _load_plugins()
    return ESTIMATORS


def plugin_errors() -> dict[str, str]:
    """Entry points of ``llcbench.estimators`` that did not load: name -> "ErrorType: message"."""
    _load_plugins()
    return dict(_plugin_errors)


def plugin_source(name: str) -> Optional[str]:
    """The value ("module:attr") of the entry point called ``name``, or None if there is none."""
    _load_plugins()
    return _plugin_sources.get(name)


def get_estimator(name: str) -> EstimatorSpec:
    """The estimator called ``name``; UserError naming the known ones otherwise."""
    spec: Optional[EstimatorSpec] = ESTIMATORS.get(name) if isinstance(name, str) else None
    if spec is None:
        _load_plugins()
        spec = ESTIMATORS.get(name) if isinstance(name, str) else None
    if spec is None:
        if isinstance(name, str) and name in _plugin_errors:
            raise UserError(f"estimator {name!r} (plugin) failed to load: {_plugin_errors[name]}")
        known = ", ".join(sorted(ESTIMATORS))
        raise UserError(f"unknown estimator {name!r}; known: {known}")
    return spec


__all__ = ["BUILTIN", "ESTIMATORS", "ENTRY_POINT_GROUP", "Estimate", "EstimatorSpec", "all_estimators",
           "get_estimator", "plugin_errors", "plugin_source"]
