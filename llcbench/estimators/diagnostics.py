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
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any, Optional

import numpy as np


def finite_or_none(x) -> Optional[float]:
    x = float(x)
    return x if math.isfinite(x) else None


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

    log = logging.getLogger("arviz")
    level = log.level
    log.setLevel(logging.ERROR)  # one chain: ArviZ logs a shape warning, the values are still right
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
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
    finally:
        log.setLevel(level)
    return out
