"""An example llcbench plugin: the estimator ``langevin`` (full-batch localised Langevin dynamics) and
the case family ``power_sum`` (K(w) = Σ w_i^(2k), with its own exact truth), found by llcbench
through the entry points in this package's pyproject.toml."""
