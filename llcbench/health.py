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
- the posterior is not local (``llcbench.locality.is_local`` False, today's
  thresholds on the record's ``locality``) ("not local: …").

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
    r = rhat(record)
    if r is not None and (math.isnan(r) or r > RHAT_MAX):
        out.append(f"R-hat {r:.2f} > {RHAT_MAX:g}")
    ess = ess_bulk(record)
    if ess is not None and (math.isnan(ess) or ess < ESS_MIN):
        out.append(f"ESS {ess:.0f} < {ESS_MIN}")
    far = locality_note(record)  # "" unless today's locality rule says not local
    if far:
        out.append(far)
    return out


def healthy(record: dict) -> bool:
    """No problem by the rule in the module doc."""
    return not problems(record)


def reason(record: dict) -> str:
    """The problems as one short text ("" for a healthy run)."""
    return "; ".join(problems(record))
