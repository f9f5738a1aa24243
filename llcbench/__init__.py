"""llcbench: a benchmark suite and calibration harness for LLC estimators.

The pipeline, one module (or package) per stage:

    case (TOML data, ``llcbench.catalogue``)
      -> target (``llcbench.families``: dimension, anchor w*, batched loss, truth)
      -> estimator (``llcbench.estimators``: ``estimate(target, config, seed, device)``)
      -> record (``llcbench.store``: one SQLite row per run, content-hashed)
      -> score / report (read only from the store)

Estimators and families from outside the package: ``register_estimator`` and
``register_family`` (decorators, in process) or the entry-point groups
``llcbench.estimators`` and ``llcbench.families`` (installed packages); see
``llcbench.plugins``.
"""

from .registration import register_estimator, register_family  # light: imports no torch
from .version import __version__

__all__ = ["__version__", "register_estimator", "register_family"]
