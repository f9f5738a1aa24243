"""llcbench: a benchmark suite and calibration harness for LLC estimators.

The pipeline, one module (or package) per stage:

    case (TOML data, ``llcbench.catalogue``)
      -> target (``llcbench.families``: dimension, anchor w*, batched loss, truth)
      -> estimator (``llcbench.estimators``: ``estimate(target, config, seed, device)``)
      -> record (``llcbench.store``: one SQLite row per run, content-hashed)
      -> score / report (read only from the store)

The library: ``llcbench.run``, ``llcbench.sweep``, ``llcbench.scores`` and
``llcbench.report`` (``llcbench.api``); the command line calls them.

Estimators and families from outside the package: ``register_estimator`` and
``register_family`` (decorators, in process) or the entry-point groups
``llcbench.estimators`` and ``llcbench.families`` (installed packages); see
``llcbench.plugins``.
"""

from .errors import UserError
from .registration import register_estimator, register_family  # light: imports no torch
from .version import __version__

# The library API (``llcbench.api``), loaded on first use so that ``import llcbench`` stays light
# (the API imports torch and the catalogue). ``report`` is also the name of the subpackage
# ``llcbench.report``, which makes itself callable as this function (see its __init__).
_API = ("run", "sweep", "scores", "report")

__all__ = ["__version__", "UserError", "register_estimator", "register_family", *_API]


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'llcbench' has no attribute {name!r}")
