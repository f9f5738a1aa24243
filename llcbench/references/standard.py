"""The reference standard: when a sampled λ_nβ,γ may serve as the reference of other runs.

A reference decides the sign of every sampler bias measured against it, so
it is held to the bar of published reference posteriors rather than to "the
chains roughly agree": posteriordb's reference posteriors (Magnusson et al.
2024, arXiv 2407.04967) use 10 chains × 10,000 draws and require R-hat <
1.01 and enough effective draws; Vehtari, Gelman, Simpson, Carpenter &
Bürkner (2021, "Rank-normalization, folding, and localization: an improved
R-hat", Bayesian Analysis 16(2)) recommend at least 4 chains,
rank-normalised split R-hat < 1.01 and bulk ESS > 100 per chain before a
mean and its MCSE are trusted. Here:

- at least 4 chains: fewer cannot show a chain stuck in another mode, and
  R-hat from 2 chains is itself too noisy to certify 1.01 (a 2-chain run of
  300 draws can show R-hat ≤ 1.05 and still put λ_nβ,γ on the wrong side of
  a sampler bias that 4 longer chains resolve);
- split R-hat of the λ trace ≤ 1.01 (rank-normalised, ArviZ);
- bulk ESS ≥ 400 (100 per chain at 4 chains): below it the MCSE — the
  reference's se that enters every sampler bias's se — is itself unreliable;
- no divergent transition: a divergence marks a region the integrator could
  not follow, so the draws may miss it (Betancourt 2017, arXiv 1701.02434) —
  a bias no se shows;
- a finite se;
- a run that checks a stricter standard of its own (the HMC reference
  sampler also asks for tail ESS) must report it met.

The default `nuts` config (4 chains × 1,000 draws after 500 warm-up,
target_accept 0.95) meets it where NUTS mixes: on dln/2-2-2/r0 it gave split
R-hat 1.001, bulk ESS 2117, no divergence.
"""

from __future__ import annotations

import math
from typing import Optional

REFERENCE_ESTIMATORS = ("exact", "nuts", "hmc")  # samples (or values) of the localised tempered posterior
REFERENCE_MIN_CHAINS = 4
REFERENCE_MAX_RHAT = 1.01
REFERENCE_MIN_ESS = 400.0


def reference_refusal(ref: dict) -> Optional[str]:
    """None if a stored sampled record (NUTS, HMC) meets the reference standard above, else why not."""
    diag = ref.get("diagnostics") or {}
    extra = ref.get("extra") or {}
    chains = diag.get("chains_used", extra.get("chains"))
    rhat, ess, se = ref.get("rhat"), ref.get("ess", diag.get("ess_bulk")), ref.get("se")
    divergences = diag.get("divergences")
    if chains is None or chains < REFERENCE_MIN_CHAINS:
        return f"{chains} chains < {REFERENCE_MIN_CHAINS}"
    if rhat is None or not rhat <= REFERENCE_MAX_RHAT:
        return f"split R-hat {rhat} > {REFERENCE_MAX_RHAT}"
    if ess is None or not ess >= REFERENCE_MIN_ESS:
        return f"bulk ESS {ess} < {REFERENCE_MIN_ESS:g}"
    if divergences is None or sum(divergences):
        return f"divergent transitions {divergences}"
    if se is None or not math.isfinite(se):
        return "no finite se"
    if extra.get("standard_met") is False:
        return "its own standard not met: " + "; ".join(extra.get("standard_failed") or ["?"])
    return None
