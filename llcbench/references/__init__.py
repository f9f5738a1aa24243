"""References λ_nβ,γ: the estimand of a run's own localised tempered posterior, from elsewhere.

A run's error splits into estimand and sampler parts only against a
reference value of the same posterior (same case definition, nβ and γ). In
order of preference:

- ``exact``: computed at run time where the posterior allows it (quadrature,
  Gaussian closed form; ``runner.exact_reference``);
- a stored reference run in the user's store (``stored.py``): an ``exact``
  run, or a NUTS or HMC run that meets the reference standard
  (``standard.py``);
- the shipped table (``table.py``): entries computed by the many-chain HMC
  reference sampler for the catalogue at the default (nβ, γ), shipped as
  data with the package, each with its standard error, diagnostics and
  provenance (like Inference Gym's ground truths and posteriordb's reference
  posteriors), rebuilt by ``llcbench references build`` (``build.py``).

Among stored runs and table entries that qualify, the one with the smallest
standard error is used.
"""

from .standard import reference_refusal
from .stored import best_reference, stored_reference, with_best_reference, with_reference
from .table import ReferenceTable, loss_fingerprint, shipped_table

__all__ = ["ReferenceTable", "best_reference", "loss_fingerprint", "reference_refusal", "shipped_table",
           "stored_reference", "with_best_reference", "with_reference"]
