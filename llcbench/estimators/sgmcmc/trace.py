"""The per-draw λ trace of the SG-MCMC chains and what is read off it.

Each step records, for every chain, an estimate of L_n(w_t) − L_n(w*) (the
λ trace divided by nβ); :class:`LambdaTrace` keeps them on the device and
copies them in one kernel per check. :func:`summarise` turns the trace of
the post-burn-in draws into λ̂ (the mean over the live chains' draws), the
per-chain values, the ArviZ diagnostics (:mod:`..diagnostics`), the
localisation sensitivity and the warnings a user should see.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from ...health import SPREAD_GROWTH_MIN, SPREAD_Z_MAX
from ..diagnostics import finite_or_none, outlier_chains, trace_diagnostics

# ‖w − w*‖² is recorded every this many post-burn-in steps (for the localisation sensitivity)
LOCALISATION_STRIDE = 5


class LambdaTrace:
    """Per-step losses of every chain, and the reference they are measured from.

    width: values recorded per step: the chains' losses, then (``reference_column``)
    the loss at w* from the same evaluation; otherwise the chains' values are
    measured from the scalar ``offset`` (L_n(w*), or 0 when the recorded values
    are already differences). ``excess`` gives L(w_t) − reference.
    """

    def __init__(self, steps: int, chains: int, reference_column: bool, offset: float, dtype, device,
                 localisation_from: int):
        self.chains = chains
        self.reference_column = reference_column
        self.offset = float(offset)
        self.raw = torch.empty(steps, chains + (1 if reference_column else 0), dtype=dtype, device=device)
        self.pending: list[torch.Tensor] = []
        self.filled = 0
        self.loc_from = int(localisation_from)
        self.r2_rows: list[torch.Tensor] = []

    def excess(self, block: torch.Tensor) -> torch.Tensor:
        return block[:, : self.chains] - (block[:, self.chains :] if self.reference_column else self.offset)

    def record(self, value: torch.Tensor) -> None:
        """The step's values (width,): kept on the device until the next :meth:`flush`."""
        self.pending.append(value)

    def record_distance(self, t: int, w: torch.Tensor, w_star: torch.Tensor) -> None:
        """‖w_t − w*‖² at every LOCALISATION_STRIDE-th post-burn-in step (same w_t as the loss)."""
        if t >= self.loc_from and (t - self.loc_from) % LOCALISATION_STRIDE == 0:
            self.r2_rows.append(torch.sub(w, w_star).square_().sum(dim=1))

    def flush(self, upto: int) -> Optional[torch.Tensor]:
        """Copy the pending values into the buffer; the excess of the steps not yet flushed."""
        if self.pending:
            torch.stack(self.pending, out=self.raw[upto - len(self.pending) : upto])
            self.pending.clear()
        if upto <= self.filled:
            return None
        block = self.excess(self.raw[self.filled : upto])
        self.filled = upto
        return block

    def grow(self, steps: int) -> None:
        """Room for ``steps`` steps in all (the adaptive length, :mod:`.settle`); call after a flush."""
        if self.pending:
            raise RuntimeError("grow() with values pending: flush first")
        raw = torch.empty(steps, self.raw.shape[1], dtype=self.raw.dtype, device=self.raw.device)
        raw[: self.filled] = self.raw[: self.filled]
        self.raw = raw

    def to_numpy(self) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """(steps × chains excess in float64, k × chains ‖w − w*‖² or None): one transfer each."""
        trace = self.excess(self.raw.to(torch.float64)).cpu().numpy()
        r2 = torch.stack(self.r2_rows).to(torch.float64).cpu().numpy() if self.r2_rows else None
        return trace, r2


def summarise(trace_np: np.ndarray, r2: Optional[np.ndarray], alive: np.ndarray, nbeta: float, gamma: float,
              burn_in: int, thin: int, loc_from: int, threshold: float, divergence_step: dict) -> dict:
    """λ̂, per-chain λ̂, diagnostics and warnings from the whole trace (steps × chains)."""
    steps, chains = trace_np.shape
    draws_loss = trace_np[burn_in::thin].T  # (chains, draws): L(w_t) − reference
    lam_draws = nbeta * draws_loss
    divergent = [int(i) for i in np.flatnonzero(~alive)]
    warn: list[str] = []
    per_chain = [float(lam_draws[c].mean()) if alive[c] else float("nan") for c in range(chains)]
    good = lam_draws[alive]
    if divergent:
        warn.append(
            f"{len(divergent)} of {chains} chains diverged (loss NaN/inf or nβ·(L − L*) > {threshold:g}) "
            f"and were excluded from λ̂: chains {divergent}; consider a smaller step_size/step_scale")
    if good.shape[0] == 0:
        lambda_hat = float("nan")
        warn.append("all chains diverged: λ̂ is NaN")
    else:
        lambda_hat = float(good.mean())
    diagnostics = trace_diagnostics(good)
    diagnostics["frac_below_init"] = float((draws_loss[alive] < 0).mean()) if good.size else None
    if r2 is not None:
        at = np.arange(loc_from, steps, LOCALISATION_STRIDE)[: r2.shape[0]]
        kept = at >= burn_in  # all of them but where the adaptive length moved the burn-in on (settle.py)
        at, r2 = at[kept], r2[: len(kept)][kept]
    if r2 is not None and r2.shape[0]:
        diagnostics.update(localisation(nbeta * trace_np[at][:, alive], r2[:, alive], gamma, lambda_hat))
        diagnostics.update(spread_growth(r2[:, alive]))
    diagnostics["divergent_chains"] = divergent
    diagnostics["divergence_step"] = {str(k): v for k, v in sorted(divergence_step.items())}
    diagnostics["divergence_threshold"] = threshold
    flagged, zs = outlier_chains(good)
    live = np.flatnonzero(alive)
    diagnostics["outlier_chains"] = [int(live[i]) for i in flagged]
    z_all: list = [None] * chains
    for i, z in zip(live, zs):
        z_all[int(i)] = z
    diagnostics["outlier_z"] = z_all
    diagnostics["draws_per_chain"] = int(lam_draws.shape[1])
    diagnostics["chains_used"] = int(good.shape[0])
    warn.extend(_warnings(diagnostics, per_chain, lambda_hat))
    se = diagnostics.get("mcse_mean")
    return {"lambda_hat": lambda_hat, "per_chain": per_chain, "se": float("nan") if se is None else se,
            "diagnostics": diagnostics, "warnings": warn, "draws_loss": draws_loss}


def _warnings(diagnostics: dict, per_chain: list, lambda_hat: float) -> list[str]:
    """What a user must be told about the draws: chains that disagree (R-hat), outlier chains
    (:func:`..diagnostics.outlier_chains`), drift."""
    warn: list[str] = []
    rhat = diagnostics.get("rhat")
    if rhat is not None and rhat > 1.1:
        warn.append(f"split R-hat of the λ trace is {rhat:.3f} > 1.1: chains disagree "
                    "(not mixed, or burn-in too short)")
    outliers = diagnostics.get("outlier_chains") or []
    if outliers:
        z = diagnostics.get("outlier_z") or []
        warn.append(f"chains {outliers} disagree with the other chains (per-chain λ̂ "
                    f"{', '.join(f'{per_chain[c]:.4g}' for c in outliers)} against {lambda_hat:.4g} over all; "
                    f"{', '.join(f'{z[c]:+.1f}' for c in outliers if z[c] is not None)} standard errors): a chain "
                    "stuck or heated in another region; the run is not healthy")
    growth, gz = diagnostics.get("spread_growth"), diagnostics.get("spread_growth_z")
    if growth is not None and gz is not None and gz > SPREAD_Z_MAX and growth > SPREAD_GROWTH_MIN:
        warn.append(f"chains still spreading: E‖w − w*‖² grew {growth:+.0%} from the first to the last third of "
                    f"the draws (z = {gz:.1f}), so λ̂ is still on its way; directions the loss barely confines "
                    "relax only under the localisation, in about 2/(εγ) steps: increase steps and burn_in")
    drift = diagnostics.get("half_means")
    if drift is not None and diagnostics.get("half_drift_z") is not None:
        z = diagnostics["half_drift_z"]
        if abs(z) > 4 and abs(drift[1] - drift[0]) > 0.05 * max(abs(lambda_hat), 1e-12):
            warn.append(f"λ trace still drifting: mean {drift[0]:.4g} in the first half of the draws, "
                        f"{drift[1]:.4g} in the second (z = {z:.1f}); increase steps and burn_in")
    return warn


def spread_growth(r2: np.ndarray) -> dict:
    """Whether the chains' spread ‖w − w*‖² still grows after the burn-in: r2 (draws, chains).

    The chains start at w*; in directions the loss barely confines (a deep linear network's
    rescalings, a singular model's valleys) only the localisation pulls them back, on a time of
    about 1/(εγ) steps, which can be ten times the burn-in. The λ trace hardly moves there,
    so its drift test and R-hat (every chain drifts alike) miss it; the spread does not.
    Compares the mean over chains of the first and last third of the draws: the relative
    growth and its z-score, each third's standard error ArviZ's MCSE.
    """
    k = r2.shape[0] // 3
    if k < 4 or r2.shape[1] == 0:
        return {}
    import arviz as az

    from ..diagnostics import quiet_arviz

    a, b = np.ascontiguousarray(r2[:k].T), np.ascontiguousarray(r2[-k:].T)
    with quiet_arviz():
        se = math.hypot(float(az.mcse(a, method="mean")), float(az.mcse(b, method="mean")))
    ma, mb = float(a.mean()), float(b.mean())
    return {"spread_growth": finite_or_none(mb / ma - 1.0) if ma > 0 else None,
            "spread_growth_z": finite_or_none((mb - ma) / se) if se > 0 else None}


def localisation(lam: np.ndarray, r2: np.ndarray, gamma: float, lambda_hat: float) -> dict:
    """How much the estimand moves with the localisation, from the same draws.

    For p_γ ∝ exp(−nβL − (γ/2)‖w − w*‖²), ∂E[f]/∂γ = −½·Cov(f, ‖w − w*‖²), so
    ∂λ_γ/∂log γ = −(γ/2)·Cov(nβ(L − L*), ‖w − w*‖²): estimated with the
    within-chain covariance (minibatch noise in the λ trace is independent of
    w_t, so it adds variance, not bias). A value that is a sizeable fraction
    of λ̂ says the estimand at this γ is still set by the localisation, not by
    the loss. lam, r2: (draws, chains) at the same steps.
    """
    if lam.shape[0] < 8 or lam.shape[1] == 0:
        return {}
    cov = float(np.mean((lam - lam.mean(axis=0)) * (r2 - r2.mean(axis=0))))
    sens = -0.5 * gamma * cov
    rel = sens / lambda_hat if math.isfinite(lambda_hat) and lambda_hat != 0 else None
    return {"localisation_sensitivity": finite_or_none(sens),
            "localisation_sensitivity_rel": None if rel is None else finite_or_none(rel),
            "mean_sq_distance": finite_or_none(float(r2.mean()))}


def loss_trace_points(draws_loss: np.ndarray, trace_points: int) -> tuple[list, int]:
    """The loss trace kept in the record: at most ``trace_points`` points per chain, and the stride."""
    stride = max(1, -(-draws_loss.shape[1] // int(trace_points)))
    return [[finite_or_none(x) for x in draws_loss[c, ::stride]] for c in range(draws_loss.shape[0])], stride
