"""Is a run healthy? The rule, stated once, and the reasons a run is not.

A run is **unhealthy** — its λ̂ is no LLC estimate, so it is never scored,
never attributed to the estimand or the sampler, and is counted and shown
apart — when any of these holds:

- λ̂ is None, NaN or infinite ("λ̂ not finite");
- a chain diverged: any chain in ``diagnostics["divergent_chains"]`` (or a
  chain with a divergent transition in ``diagnostics["divergences"]``, the
  HMC/NUTS count) ("3 of 8 chains diverged");
- split R-hat of the λ trace above RHAT_MAX = 1.1 ("R-hat 1.48 > 1.1");
- bulk ESS below ESS_MIN = 100 (``diagnostics["ess_bulk"]``) ("ESS 15 < 100");
- a chain disagrees with the others: ``diagnostics["outlier_chains"]`` by the
  test of ``llcbench.estimators.diagnostics.outlier_chains`` (a chain's mean
  beyond the Bonferroni bar of the chains' MCSEs, false-alarm rate 10⁻³ per
  run for chains of one distribution) ("chain 5 an outlier (+4.4 se)"). One
  chain of eight stuck or heated elsewhere moves split R-hat little: a run
  with R-hat 1.00 and a wandering chain is caught here;
- λ̂ above the parameter count d (``record["dim"]``, else d = γ·d/γ from the
  locality object) ("λ̂ 16534 > d = 3"). No model's λ exceeds d/2, and for a
  loss that grows at least quadratically away from w* the virial identity
  E[(w − w*)·∇U] = d of the posterior ∝ exp(−U), U = nβ(L − L*) + (γ/2)‖w − w*‖²,
  bounds E[nβ(L − L*)] by d/2 at every nβ and γ. The factor 2 leaves room for
  losses that grow more slowly (cross-entropy grows linearly far from w*); an
  estimate beyond it read a posterior that is not near w*.
- the chains are still spreading: ``diagnostics["spread_growth_z"]`` above
  SPREAD_Z_MAX = 3.09 (one-sided, a false alarm in 10⁻³ runs whose spread is
  stationary) with a growth ``diagnostics["spread_growth"]`` of more than
  SPREAD_GROWTH_MIN = 5 % ("still spreading: E‖w − w*‖² +82 % over the draws
  (z 6.5)"). The chains start at w*; in directions the loss barely confines
  only the localisation pulls them back: the spread relaxes in about 1/(εγ)
  steps, the mean in twice that — on the deep linear networks ten to forty
  times the default burn-in — and every chain drifts
  alike, so split R-hat and the λ trace's drift test stay quiet while λ̂ is
  still on its way (−5 … −30 % there). The growth floor keeps a long run's
  tiny, significant drift from counting. The test is conservative: a run
  whose λ̂ does not feel those directions (the 1K protocol teachers: λ̂
  within 1.1 % of the truth while the spread doubles) is flagged too — it
  has not shown equilibrium. The same bars the other way (z below −3.09,
  a fall of more than 5 %: "still contracting") flag chains that started
  wider than their stationary spread — the tempered start
  (``llcbench.estimators.sgmcmc.tempered_start``) can overshoot; together
  the two sides raise a stationary run's false alarms to 2·10⁻³;
- the posterior is not local (``llcbench.locality.is_local`` False, today's
  thresholds on the record's ``locality``) ("not local: …");
- the run's own step blew chains up where the posterior reaches: an orbit
  start (``llcbench.estimators.sgmcmc.orbit_start``, the run's SGLD step with
  exact moves along the target's rescalings) undone because its chains blew
  up (``extra.start.tried.reset_chains``) ("step unstable where the posterior
  reaches: 592 chain blow-ups in the orbit start, undone"). The run then went
  on from w* and looks stable only because its chains stay near w*; a longer
  run does not cure it. (A tempered start's blow-ups are at its own, hotter
  step and say nothing of the run's.)

A diagnostic the record does not carry is not held against it: an
estimator that reports no R-hat (``exact``, ``hessian``), no bulk ESS
(``volume``'s importance ESS is another quantity) or no locality is judged
on what it reports. The bars are the conventional ones for split R-hat and
bulk ESS (Vehtari, Gelman, Simpson, Carpenter & Bürkner 2021, "Rank-
normalization, folding, and localization: an improved R-hat", Bayesian
Analysis 16(2): R-hat below 1.01 and ESS above 400 for final results; 1.1
and 100 here mark runs that did not mix at all, not runs that are merely
short of a publication standard).
"""

from __future__ import annotations

import math
from typing import Optional

from .locality import note as locality_note

RHAT_MAX = 1.1  # split R-hat above this: the chains disagree, the run did not mix
ESS_MIN = 100  # bulk ESS below this: too few effective draws for a mean, let alone its se
SPREAD_Z_MAX = 3.09  # Φ⁻¹(1 − 10⁻³): growth of E‖w − w*‖² over the draws beyond chance (one-sided)
SPREAD_GROWTH_MIN = 0.05  # and by more than 5 %: every run flagged in the catalogue grew by 30 % or more


def _num(x) -> Optional[float]:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _chains(record: dict, diag: dict) -> Optional[int]:
    per_chain = diag.get("divergences") if isinstance(diag.get("divergences"), (list, tuple)) else None
    for n in (len(per_chain or []) or None, (record.get("config") or {}).get("chains"),
              len(record.get("lambda_hat_chains") or []) or None):
        if isinstance(n, int) and not isinstance(n, bool) and n > 0:
            return n
    return None


def divergent_chains(record: dict) -> int:
    """Chains with a divergence: SG-MCMC's ``divergent_chains``, or HMC/NUTS chains with a divergent transition."""
    diag = record.get("diagnostics") or {}
    listed = diag.get("divergent_chains")
    count = len(listed) if isinstance(listed, (list, tuple)) else 0
    per_chain = diag.get("divergences")
    if isinstance(per_chain, (list, tuple)):
        count = max(count, sum(1 for k in per_chain if _num(k) and k > 0))
    return count


def rhat(record: dict) -> Optional[float]:
    """The record's split R-hat (None: not reported)."""
    value = record.get("rhat")
    if value is None:
        value = (record.get("diagnostics") or {}).get("rhat")
    return _num(value)


def ess_bulk(record: dict) -> Optional[float]:
    """The record's bulk ESS of the λ trace (None: not reported)."""
    return _num((record.get("diagnostics") or {}).get("ess_bulk"))


def outlier_chains(record: dict) -> list[int]:
    """The chains the SG-MCMC trace found disagreeing with the others (``diagnostics["outlier_chains"]``)."""
    listed = (record.get("diagnostics") or {}).get("outlier_chains")
    return [int(c) for c in listed if isinstance(c, int)] if isinstance(listed, (list, tuple)) else []


def spread_growth(record: dict) -> Optional[tuple[float, float]]:
    """(relative growth, z) of the chains' E‖w − w*‖² from the first to the last third of the draws, or None."""
    diag = record.get("diagnostics") or {}
    g, z = _num(diag.get("spread_growth")), _num(diag.get("spread_growth_z"))
    return None if g is None or z is None else (g, z)


def dimension(record: dict) -> Optional[int]:
    """The target's parameter count d: the record's ``dim``, else γ times the locality's d/γ, else None."""
    d = record.get("dim")
    if isinstance(d, int) and not isinstance(d, bool) and d > 0:
        return d
    loc = record.get("locality") or {}
    prior, gamma = _num(loc.get("prior_sq_distance")), _num(loc.get("gamma"))
    if prior is not None and gamma is not None and math.isfinite(prior * gamma) and prior * gamma > 0:
        return int(round(prior * gamma))
    return None


def mixing_problems(record: dict) -> list[str]:
    """The problems a longer run can cure — R-hat, ESS, outlier chains, still spreading — short, in the
    order :func:`problems` lists them (the SG-MCMC driver's adaptive length runs on while any holds)."""
    diag = record.get("diagnostics") or {}
    out: list[str] = []
    r = rhat(record)
    if r is not None and (math.isnan(r) or r > RHAT_MAX):
        out.append(f"R-hat {r:.2f} > {RHAT_MAX:g}")
    ess = ess_bulk(record)
    if ess is not None and (math.isnan(ess) or ess < ESS_MIN):
        out.append(f"ESS {ess:.0f} < {ESS_MIN}")
    outliers = outlier_chains(record)
    if outliers:
        z = diag.get("outlier_z") or []
        zs = ", ".join(f"{z[c]:+.1f} se" for c in outliers if c < len(z) and _num(z[c]) is not None)
        out.append(f"chain{'s' if len(outliers) > 1 else ''} {', '.join(map(str, outliers))} "
                   f"{'outliers' if len(outliers) > 1 else 'an outlier'}" + (f" ({zs})" if zs else ""))
    spread = spread_growth(record)
    if spread is not None and spread[1] > SPREAD_Z_MAX and spread[0] > SPREAD_GROWTH_MIN:
        out.append(f"still spreading: E‖w − w*‖² {spread[0]:+.0%} over the draws (z {spread[1]:.1f})")
    elif spread is not None and spread[1] < -SPREAD_Z_MAX and spread[0] < -SPREAD_GROWTH_MIN:
        out.append(f"still contracting: E‖w − w*‖² {spread[0]:+.0%} over the draws (z {spread[1]:.1f})")
    return out


def unstable_step(record: dict) -> str:
    """The 'step unstable' problem of the module doc, or "" (an orbit start undone by blow-ups)."""
    start = (record.get("extra") or {}).get("start")
    if not isinstance(start, dict) or start.get("kind") != "orbit" or start.get("steps"):
        return ""
    blown = start["tried"].get("reset_chains") if isinstance(start.get("tried"), dict) else None
    if not isinstance(blown, int) or isinstance(blown, bool) or blown <= 0:
        return ""
    return f"step unstable where the posterior reaches: {blown} chain blow-ups in the orbit start, undone"


def problems(record: dict) -> list[str]:
    """Why the run is unhealthy by the rule in the module doc, short; empty for a healthy run."""
    diag = record.get("diagnostics") or {}
    out: list[str] = []
    k = divergent_chains(record)
    if k:
        n = _chains(record, diag)
        out.append(f"{k} of {n} chains diverged" if n else f"{k} chain{'s' if k > 1 else ''} diverged")
    lam_hat = _num(record.get("lambda_hat"))
    if lam_hat is None or not math.isfinite(lam_hat):
        out.append("λ̂ not finite")
    out.extend(mixing_problems(record))
    d = dimension(record)
    if lam_hat is not None and math.isfinite(lam_hat) and d is not None and lam_hat > d:
        out.append(f"λ̂ {lam_hat:.4g} > d = {d}")
    far = locality_note(record)  # "" unless today's locality rule says not local
    if far:
        out.append(far)
    unstable = unstable_step(record)
    if unstable:
        out.append(unstable)
    return out


def healthy(record: dict) -> bool:
    """No problem by the rule in the module doc."""
    return not problems(record)


def reason(record: dict) -> str:
    """The problems as one short text ("" for a healthy run)."""
    return "; ".join(problems(record))
