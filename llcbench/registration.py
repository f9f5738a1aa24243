"""In-process registration of estimators and case families: the decorators ``register_estimator``
and ``register_family`` (exported as ``llcbench.register_estimator`` / ``llcbench.register_family``).

They put a plugin into the registries (``llcbench.estimators.ESTIMATORS``,
``llcbench.families.FAMILIES``; the registry class and the entry-point loading are in
``llcbench.plugins``, a leaf module). Importing this module imports neither registry: each
decorator does when it is applied.
"""

from __future__ import annotations

from typing import Callable, Optional

from .plugins import RegistrationError


def _first_line(text: Optional[str]) -> str:
    return (text or "").strip().split("\n")[0].strip()


def register_estimator(name: str, *, config: Optional[type] = None, summary: Optional[str] = None,
                       supports: Optional[Callable] = None, replace: bool = False):
    """Decorator: register an estimator under ``name``.

    On an ``estimate(target, config, seed, device)`` function, ``config`` (the config dataclass)
    is required; ``summary`` defaults to the first line of the function's docstring and
    ``supports(target)`` (None, or the reason it cannot run on the target) to "runs on every
    target". On an ``EstimatorSpec`` the spec is registered as it is, under ``name``. Returns what
    it decorates, unchanged."""

    def decorate(obj):
        from .estimators import ESTIMATORS
        from .estimators.base import EstimatorSpec

        if isinstance(obj, EstimatorSpec):
            if config is not None or summary is not None or supports is not None:
                raise RegistrationError(f"estimator {name!r}: config, summary and supports come from the spec")
            spec = obj
        elif callable(obj):
            if config is None:
                raise RegistrationError(f"estimator {name!r}: register_estimator on a function needs config=, "
                                        "the config dataclass")
            spec = EstimatorSpec(name=name, config_cls=config, estimate=obj,
                                 summary=summary if summary is not None else _first_line(obj.__doc__),
                                 **({"supports": supports} if supports is not None else {}))
        else:
            raise RegistrationError(f"estimator {name!r}: expected an estimate function or an EstimatorSpec, "
                                    f"got {type(obj).__name__}")
        ESTIMATORS.register(name, spec, replace=replace)
        return obj

    return decorate


def register_family(name: str, *, replace: bool = False):
    """Decorator: register a case family under ``name``, on a ``Family`` subclass (instantiated
    without arguments) or instance. Returns what it decorates, unchanged."""

    def decorate(obj):
        from .families import FAMILIES

        FAMILIES.register(name, obj, replace=replace)
        return obj

    return decorate
