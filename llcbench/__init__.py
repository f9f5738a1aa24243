"""llcbench: a benchmark suite and calibration harness for LLC estimators.

The pipeline, one module (or package) per stage:

    case (TOML data, ``llcbench.catalogue``)
      -> target (``llcbench.families``: dimension, anchor w*, batched loss, truth)
      -> estimator (``llcbench.estimators``: ``estimate(target, config, seed, device)``)
      -> record (``llcbench.store``: one SQLite row per run, content-hashed)
      -> score / report (read only from the store)
"""

__version__ = "0.3.0"
