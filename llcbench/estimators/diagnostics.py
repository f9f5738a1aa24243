"""Convergence diagnostics of a per-draw λ trace (chains × draws), from ArviZ.

Shared by every sampling estimator (the SG-MCMC driver and NUTS), so that a
record's R-hat, ESS and standard error mean the same thing whichever
sampler produced it:

- ``rhat``: rank-normalised split R-hat (Vehtari et al. 2021);
- ``ess_bulk`` / ``ess_mean``: effective sample sizes;
- ``mcse_mean``: Monte-Carlo standard error of the mean (the λ̂ ``se``);
- ``ess_tail`` (only when asked for, ``tail=True``): the tail ESS, the
  smaller of the ESS of the 5 % and 95 % quantile indicators (Vehtari et
  al. 2021, §4.3), which bulk ESS does not bound;
- ``half_means`` / ``half_drift_z``: the means of the first and second half
  of the draws and the z-score of their difference (a trend the chains
  share, which R-hat between chains cannot see).

:func:`outlier_chains` is the rule for a chain that disagrees with the
others (one chain among eight moves split R-hat little).
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from typing import Any, Optional

import numpy as np


def finite_or_none(x) -> Optional[float]:
    x = float(x)
    return x if math.isfinite(x) else None


@contextlib.contextmanager
def quiet_arviz():
    """ArviZ without its log and warnings: one chain makes it log a shape warning, the values are still right."""
    log = logging.getLogger("arviz")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def trace_diagnostics(lam: np.ndarray, rhat_method: str = "rank", tail: bool = False) -> dict:
    """ArviZ diagnostics of ``lam`` (chains, draws); None values when there are fewer than 4 draws.

    rhat_method: ArviZ's R-hat method ("rank" or "split"). tail: also the tail
    ESS (key ``ess_tail``; off by default so that the records of the
    estimators that do not ask for it keep their keys). Never raises: an
    ArviZ failure is reported as ``diagnostics_error``.
    """
    out: dict[str, Any] = {"rhat": None, "ess_bulk": None, "ess_mean": None, "mcse_mean": None}
    if tail:
        out["ess_tail"] = None
    if lam.ndim != 2 or lam.shape[0] == 0 or lam.shape[1] < 4:
        return out
    import arviz as az

    try:
        with quiet_arviz():
            arr = np.ascontiguousarray(lam)
            out["ess_bulk"] = finite_or_none(az.ess(arr, method="bulk"))
            out["ess_mean"] = finite_or_none(az.ess(arr, method="mean"))
            if tail:
                out["ess_tail"] = finite_or_none(az.ess(arr, method="tail"))
            out["mcse_mean"] = finite_or_none(az.mcse(arr, method="mean"))
            out["rhat"] = finite_or_none(az.rhat(arr, method=rhat_method))
            half = arr.shape[1] // 2
            if half >= 4:
                a, b = arr[:, :half], arr[:, half : 2 * half]
                sa, sb = az.mcse(a, method="mean"), az.mcse(b, method="mean")
                out["half_means"] = [float(a.mean()), float(b.mean())]
                denom = math.hypot(sa, sb)
                out["half_drift_z"] = finite_or_none((b.mean() - a.mean()) / denom) if denom > 0 else None
    except Exception as exc:  # pragma: no cover - diagnostics never break an estimate
        out["diagnostics_error"] = f"{type(exc).__name__}: {exc}"
    return out


OUTLIER_ALPHA = 1e-3  # family-wise false-alarm rate of the outlier-chain test over a run's chains


def outlier_chains(lam: np.ndarray, alpha: float = OUTLIER_ALPHA) -> tuple[list[int], list[Optional[float]]]:
    """Chains whose mean λ disagrees with the mean of the other chains beyond chance: (indices, z-scores).

    For chain c, z_c = (mean_c − mean_others) / hypot(mcse_c, mcse_others), each MCSE ArviZ's
    (autocorrelation-aware) for the chain alone and for the others together; c is an outlier when
    |z_c| exceeds the two-sided Bonferroni bar Φ⁻¹(1 − alpha/(2C)) for C chains (≈ 4.0 at C = 8):
    under chains that sample one distribution, a run is flagged with probability at most alpha.
    A chain stuck in another region, or heated away from w*, has a mean many of its own standard
    errors from the others' while split R-hat, which pools it with seven agreeing chains, may stay
    near 1. Needs at least 3 chains and 8 draws each (else no chain is flagged, z-scores None).
    """
    from scipy.stats import norm

    chains = lam.shape[0] if lam.ndim == 2 else 0
    if chains < 3 or lam.shape[1] < 8:
        return [], [None] * chains
    import arviz as az

    bar = float(norm.isf(alpha / (2 * chains)))
    flagged: list[int] = []
    zs: list[Optional[float]] = []
    try:
        with quiet_arviz():
            for c in range(chains):
                rest = np.delete(lam, c, axis=0)
                s = math.hypot(az.mcse(np.ascontiguousarray(lam[c][None]), method="mean"),
                               az.mcse(np.ascontiguousarray(rest), method="mean"))
                z = (lam[c].mean() - rest.mean()) / s if s > 0 else math.nan
                zs.append(finite_or_none(z))
                if math.isfinite(z) and abs(z) > bar:
                    flagged.append(c)
    except Exception:  # pragma: no cover - diagnostics never break an estimate
        return [], [None] * chains
    return flagged, zs
