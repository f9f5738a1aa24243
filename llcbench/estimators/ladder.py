"""The temperature ladder: λ and its multiplicity m from K inverse temperatures on shared chains.

At finite nβ the localised tempered posterior's λ_nβ,γ is not λ: by
Watanabe's expansion of the free energy (Watanabe 2009, "Algebraic
Geometry and Statistical Learning Theory", Thm 6.7 and Sec. 7.1),

    λ(nβ) := nβ·E_β[L_n − L_n(w*)] = λ − (m − 1)/log nβ + o(1/log nβ),

so a ladder of temperatures carries both λ and m (a regression over
inverse temperatures, as in the multi-temperature estimators of the RLCT). This
estimator runs K rungs nβ_k = c_k·nβ, c_k geometric from 1/ladder_span to
ladder_span (nβ = n/log n by default), as ONE shared-chain grid run of the
base sampler (:mod:`.sgmcmc.grid`: one tensor of K·chains rows, one batched
forward/backward per step), and fits

    λ̂_k = λ + s·x_k,  x_k = 1/log nβ_k,  s = −(m − 1)

by ordinary least squares: the intercept is λ̂, m̂ = 1 − ŝ. Ordinary, not
weighted: the per-rung variances are estimated from a handful of chains, and
weights built from them would add their noise to the point estimate.

The localisation is a prior, and the expansion is for a fixed prior: every
rung has the γ of the centre nβ (``ladder_gamma = 'fixed'``). With the
default rule's γ ∝ nβ at every rung ('scaled') the localisation tightens as
nβ grows and, on a singular loss, overtakes it: on dln/2-2-2-2-2/r0 the rungs
then fall with nβ and the fit goes negative (docs/estimation.md).

Where w* is not a critical point of L_n (noisy labels: w* is the teacher,
not the empirical minimiser), every rung carries −nβ_k·Δ, Δ = L_n(w*) −
min L_n ≥ 0, which grows linearly along the ladder; the fit then has the
regressor nβ_k as well (``fit_offset = 'auto'``: on where ∇L_n(w*) ≠ 0).

Uncertainty. Each rung's variance s_k² is the larger of the between-chain
variance of its per-chain means over its live chains (every chain is one
independent replicate, whatever its autocorrelation) and the base
sampler's own ESS-based se²; the fit is linear in the rung means, so
Cov(λ̂, ŝ) = A·diag(s_k²)·Aᵀ with A the least-squares map (the rungs share
minibatches, not chains: their chain-to-chain noise is independent). Two
inflations make ±2·se an honest interval: (i) where the linear model does
not fit the rungs (χ² = Σ(r_k/s_k)² above its K − p degrees of freedom: the
o(1/log nβ) terms, or a sampler bias that changes along the ladder), the
standard errors are scaled by the Birge ratio √(χ²/(K − p)), p the number
of fitted parameters; (ii) the
variances have (chains − 1) degrees of freedom, so the se is scaled by
t_{0.975, chains−1}/2 (×1.18 at 8 chains), which makes ±2·se Student's 95 %
interval.

m is always fitted, never assumed: where its standard error is above
M_RESOLVED (the fit cannot tell m from m ± 1 at two se) the run says so in a
warning; λ̂ ± se is then the wide interval of the fit with m free.

The record's λ̂ estimates the TRUE λ, not the λ_nβ,γ of one posterior:
``extra.estimand = "lambda"``. The attribution and the references
(:func:`llcbench.attribution.estimates_lambda`) therefore never split its
error against a single temperature's reference.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ..target import Target
from .base import Estimate, EstimatorSpec, doc
from .rmsprop_sgld import SAMPLER as RMSPROP_SAMPLER, RMSPropSGLDConfig
from .sgld import SAMPLER as SGLD_SAMPLER, SGLDConfig
from .sgmcmc import supports
from .sgmcmc.config import extrapolate_field
from .sgmcmc.driver import run_sgmcmc_grid
from .temperature import resolve_gamma, resolve_nbeta

BASES = {"sgld": (SGLD_SAMPLER, SGLDConfig), "rmsprop_sgld": (RMSPROP_SAMPLER, RMSPropSGLDConfig)}
M_RESOLVED = 0.5  # se(m̂) above this: two se cannot tell m from m ± 1
GAMMA_RULES = ("fixed", "lowest", "scaled")
ANCHOR_GRADIENT_TOL = 1e-8  # ‖∇L_n(w*)‖_∞ above this (float64): w* is not a critical point of L_n
ESTIMAND = "lambda"  # extra.estimand of a run that estimates λ itself (llcbench.attribution.estimates_lambda)


@dataclass
class LadderConfig(RMSPropSGLDConfig):
    """The base sampler's fields (RMSProp-SGLD's are used by base = 'rmsprop_sgld' only) and the ladder."""

    base: str = doc("sgld", "the sampler of every rung: 'sgld' or 'rmsprop_sgld'")
    rungs: int = doc(5, "K, the number of inverse temperatures nβ_k (at least 4: up to three fitted parameters)")
    ladder_span: float = doc(16.0, "the rungs nβ_k = c_k·nβ, c_k geometric from 1/ladder_span to ladder_span")
    fit_offset: str = doc(
        "auto", "fit a term −nβ_k·Δ too (Δ = L_n(w*) − min L_n ≥ 0: w* is the teacher, not the minimiser of L_n, "
        "when the labels are noisy): 'auto' (on where ∇L_n(w*) ≠ 0), 'on', 'off'", key_default=True)
    ladder_gamma: str = doc(
        "fixed", "the localisation along the ladder: 'fixed' (every rung at the γ of nβ: a fixed prior, as "
        "the expansion assumes), 'lowest' (every rung at the γ of the lowest nβ_k, fixed and weaker) or 'scaled' "
        "(γ_k = c_k·γ, the default rule's γ ∝ nβ at every rung)")
    # the rungs are one shared chain tensor at the rule's ε (λ is extrapolated in nβ, not in ε)
    extrapolate: str = extrapolate_field("none")

    def validate(self) -> None:
        super().validate()
        if self.base not in BASES:
            raise ValueError(f"base must be one of {', '.join(BASES)}, got {self.base!r}")
        if self.rungs < 4:
            raise ValueError("rungs must be >= 4 (up to three fitted parameters and a residual)")
        if not (self.ladder_span > 1 and math.isfinite(self.ladder_span)):
            raise ValueError("ladder_span must be > 1")
        if self.fit_offset not in ("auto", "on", "off"):
            raise ValueError(f"fit_offset must be one of auto, on, off, got {self.fit_offset!r}")
        if self.ladder_gamma not in GAMMA_RULES:
            raise ValueError(f"ladder_gamma must be one of {', '.join(GAMMA_RULES)}, got {self.ladder_gamma!r}")


def factors(config: LadderConfig) -> list[float]:
    """c_k: K factors geometric from 1/ladder_span to ladder_span (1 in the middle for odd K)."""
    k = int(config.rungs)
    return [float(config.ladder_span) ** (2 * i / (k - 1) - 1) for i in range(k)]


def rung_configs(target: Target, config: LadderConfig) -> list:
    """The base sampler's config at each rung: nβ scaled by c_k, γ fixed or scaled (ladder_gamma),
    every other field as given."""
    _, cls = BASES[config.base]
    nbeta = resolve_nbeta(target, config)
    low = min(factors(config)) if config.ladder_gamma == "lowest" else 1.0
    gamma = resolve_gamma(nbeta * low, config) if config.gamma is None else float(config.gamma) * low
    names = {f.name for f in dataclasses.fields(cls)}
    common = {k: v for k, v in dataclasses.asdict(config).items() if k in names}
    out = []
    for c in factors(config):
        fields = dict(common)
        if config.nbeta is None:
            fields["nbeta_scale"] = config.nbeta_scale * c
        else:
            fields["nbeta"] = config.nbeta * c
        if config.ladder_gamma in ("fixed", "lowest"):
            fields["gamma"] = gamma
        elif config.gamma is not None:  # else gamma_scale·nβ_k: the default rule scales it already
            fields["gamma"] = config.gamma * c
        out.append(cls(**fields))
    return out


def rung_variances(per_chain: np.ndarray, se: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rung means, rung variances of the mean, live chains per rung) from per-chain λ̂ (K × chains,
    NaN for a diverged chain) and the base sampler's se per rung (module doc: the larger of the two)."""
    live = np.isfinite(per_chain)
    n = live.sum(axis=1)
    means = np.array([row[ok].mean() if ok.any() else np.nan for row, ok in zip(per_chain, live)])
    between = np.array([row[ok].var(ddof=1) / ok.sum() if ok.sum() >= 2 else np.nan
                        for row, ok in zip(per_chain, live)])
    own = np.where(np.isfinite(se), np.asarray(se, dtype=float) ** 2, np.nan)
    var = np.fmax(between, own)  # fmax: NaN only where both are
    return means, var, n


def design(nbetas, offset: bool) -> np.ndarray:
    """The regressors of the fit: 1, 1/log nβ_k and, with ``offset``, nβ_k (module doc)."""
    nb = np.asarray(nbetas, dtype=float)
    cols = [np.ones_like(nb), 1.0 / np.log(nb)] + ([nb] if offset else [])
    return np.column_stack(cols)


def fit(nbetas, means, variances, dof: Optional[int] = None, offset: bool = False) -> dict:
    """The least-squares fit of the module doc: λ̂_k = λ + s/log nβ_k (− nβ_k·Δ with ``offset``).

    nbetas, means, variances: per rung (variances of the rung means). dof: the
    degrees of freedom of the variances (chains − 1), for the t-factor; None:
    none (Gaussian). Returns lambda, lambda_se, m, m_se, slope, offset (Δ or
    None), the covariance of the parameters after the inflations, residuals,
    chi2, fit_dof, birge, t_factor, m_resolved. Exact on noiseless rung values
    of the model (a test checks)."""
    nb = np.asarray(nbetas, dtype=float)
    y = np.asarray(means, dtype=float)
    v = np.asarray(variances, dtype=float)
    p = 3 if offset else 2
    nu = nb.size - p
    if nu < 1 or not (np.all(nb > 1) and np.all(np.isfinite(y)) and np.all(np.isfinite(v))):
        return {"lambda": float("nan"), "lambda_se": float("nan"), "m": float("nan"), "m_se": float("nan"),
                "slope": float("nan"), "offset": None, "residuals": [], "chi2": None, "fit_dof": nu, "birge": None,
                "t_factor": None, "m_resolved": False, "cov": None}
    X = design(nb, offset)
    A = np.linalg.pinv(X)  # (p, K): the least-squares map
    theta = A @ y
    cov = A @ np.diag(v) @ A.T
    resid = y - X @ theta
    chi2 = float(np.sum(resid ** 2 / v)) if np.all(v > 0) else float("inf") if np.any(resid != 0) else 0.0
    birge = math.sqrt(chi2 / nu) if math.isfinite(chi2) else float("inf")
    from scipy import stats  # here, not at import: scipy.stats costs ~1 s of every llcbench process's start

    t_factor = float(stats.t.ppf(0.975, dof) / 2.0) if dof is not None and dof >= 1 else 1.0
    scale = max(1.0, birge) * t_factor
    cov = cov * scale ** 2
    lam_se, s_se = math.sqrt(max(cov[0, 0], 0.0)), math.sqrt(max(cov[1, 1], 0.0))
    return {"lambda": float(theta[0]), "lambda_se": lam_se, "m": float(1.0 - theta[1]), "m_se": s_se,
            "slope": float(theta[1]), "offset": float(-theta[2]) if offset else None,
            "residuals": [float(r) for r in resid], "chi2": chi2, "fit_dof": nu, "birge": birge,
            "t_factor": t_factor, "m_resolved": bool(s_se <= M_RESOLVED),
            "cov": [[float(a) for a in row] for row in cov]}


def anchor_is_critical(target: Target) -> bool:
    """Whether ∇L_n(w*) = 0 (float64, full data): then L_n(w*) is a local minimum's value and the
    −nβ·Δ term is absent (noiseless teachers, analytic potentials); noisy labels make it nonzero."""
    t64 = target.to("cpu", torch.float64)
    w = t64.w_star.detach().to(torch.float64).reshape(1, -1)
    with torch.enable_grad():
        _, g = t64.loss_and_grad(w, None)
    return bool(g.abs().max() <= ANCHOR_GRADIENT_TOL)


def _locality(estimates: list[Estimate], centre: int) -> Optional[dict]:
    """A rung that is not local makes the ladder not local (the fit uses every rung); else the centre's."""
    for k, e in enumerate(estimates):
        if e.locality is not None and e.locality.get("local") is False:
            return dict(e.locality, rung=k)
    return estimates[centre].locality


def estimate(target: Target, config: LadderConfig, seed: int, device: str = "cpu") -> Estimate:
    """λ̂ (of the true λ) and m̂ from a temperature ladder (see the module doc)."""
    config.validate()
    sampler, _ = BASES[config.base]
    rungs = rung_configs(target, config)
    ests = run_sgmcmc_grid(target, rungs, seed, device, sampler)
    cs = factors(config)
    centre = min(range(len(cs)), key=lambda k: abs(math.log(cs[k])))
    nbetas = [float(e.extra["nbeta"]) for e in ests]
    per_chain = np.array([[x if x is not None else np.nan for x in e.lambda_hat_chains] for e in ests], dtype=float)
    means, var, live = rung_variances(per_chain, np.array([e.se for e in ests], dtype=float))
    dof = int(live.min()) - 1 if live.min() >= 2 else None
    offset = config.fit_offset == "on" or (config.fit_offset == "auto" and not anchor_is_critical(target))
    f = fit(nbetas, means, var, dof, offset)

    warnings = []
    for k, e in enumerate(ests):
        warnings += [f"rung {k} (nβ = {nbetas[k]:.4g}): {w}" for w in e.warnings]
    if not math.isfinite(f["lambda"]):
        warnings.append("the ladder fit is undefined (a rung without live chains, a non-finite rung mean, or nβ ≤ 1)")
    elif not f["m_resolved"]:
        warnings.append(f"m is not resolved by the ladder: m̂ = {f['m']:.2f} ± {f['m_se']:.2f}; λ̂ ± se is the fit "
                        "with m free (a wide interval), not an assumed m")
    if f["birge"] is not None and f["birge"] > 2 and math.isfinite(f["lambda"]):
        warnings.append(f"the rungs do not follow λ − (m−1)/log nβ (χ²/dof = {f['birge'] ** 2:.1f}): the "
                        "o(1/log nβ) terms or a sampler bias that changes with nβ; the se is widened by "
                        f"×{f['birge']:.2f}")

    # per-chain fits, pairing chain j of every rung (NaN where a rung's chain j diverged)
    chain_fits = (np.linalg.pinv(design(nbetas, offset)) @ per_chain)[0]
    rung_rows = [{"factor": c, "nbeta": nb, "gamma": e.extra.get("gamma"), "lambda_hat": float(mu),
                  "se": math.sqrt(v) if math.isfinite(v) else None, "base_se": e.se,
                  "residual": (f["residuals"][k] if f["residuals"] else None), "chains_used": int(n),
                  "rhat": e.diagnostics.get("rhat"), "step_size": e.extra.get("step_size")}
                 for k, (c, nb, e, mu, v, n) in enumerate(zip(cs, nbetas, ests, means, var, live))]
    rhats = [e.diagnostics.get("rhat") for e in ests if e.diagnostics.get("rhat") is not None]
    ess = [e.diagnostics.get("ess_bulk") for e in ests if e.diagnostics.get("ess_bulk") is not None]
    diagnostics = {
        "rhat": max(rhats) if rhats else None,
        "ess_bulk": min(ess) if ess else None,
        "divergent_chains": sorted({k * int(config.chains) + c for k, e in enumerate(ests)
                                    for c in e.diagnostics.get("divergent_chains") or []}),
        "chains_used": int(live.min()),
        **_worst_spread(ests),
        "ladder_fit": {k: f[k] for k in ("lambda", "lambda_se", "m", "m_se", "slope", "offset", "chi2", "fit_dof",
                                         "birge", "t_factor", "m_resolved", "residuals", "cov")},
    }
    extra = {
        "estimand": ESTIMAND,
        "base": config.base,
        "ladder": {"nbeta": nbetas[centre], "gamma": ests[centre].extra.get("gamma"), "factors": cs,
                   "rungs": rung_rows},
        "m_hat": f["m"], "m_se": f["m_se"], "m_resolved": f["m_resolved"],
        "lambda_nbeta_centre": float(means[centre]),  # what the base sampler alone reports at nβ
        "shared_chains": ests[0].extra.get("shared_chains"),
    }
    return Estimate(
        lambda_hat=f["lambda"], lambda_hat_chains=[float(v) for v in chain_fits], se=f["lambda_se"],
        loss_trace=ests[centre].loss_trace, diagnostics=diagnostics,
        grad_evals=sum(e.grad_evals for e in ests), seconds=sum(e.seconds for e in ests), warnings=warnings,
        extra=extra, locality=_locality(ests, centre))


SPEC = EstimatorSpec(
    name="ladder", config_cls=LadderConfig, estimate=estimate, supports=supports,
    summary="λ itself and its multiplicity m from a ladder of nβ on shared chains (sgld/rmsprop_sgld)",
)


def _worst_spread(ests: list) -> dict:
    """The spread test (``trace.spread_growth``) of the rung whose chains grow the most beyond chance: every
    rung starts at w*, and a ladder is no better equilibrated than its least equilibrated rung."""
    rungs = [e.diagnostics for e in ests if e.diagnostics.get("spread_growth_z") is not None]
    if not rungs:
        return {}
    worst = max(rungs, key=lambda d: d["spread_growth_z"])
    return {"spread_growth": worst.get("spread_growth"), "spread_growth_z": worst["spread_growth_z"]}
