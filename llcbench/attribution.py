"""Attribution of a run's error: is it the estimand's, the sampler's, or unknown?

A run that is not healthy (``llcbench.health``: divergent chains, split
R-hat above 1.1, bulk ESS below 100, λ̂ not finite, or a posterior that is
not local) is attributed ``"unhealthy"``, with the health rule's reasons,
whatever its error: its λ̂ is no estimate of the posterior's λ, so no part of
its error can be laid on the estimand or on the sampler's bias.

Else a run whose λ̂ is more than TOLERANCE·|λ| from λ is *attributed*, from the
record alone (so a stored run can be re-read against references added
later), to one of

- ``"estimand"``: the localised tempered posterior itself has the wrong
  answer (finite nβ, localisation γ, multiplicity), a perfect sampler would
  be off too;
- ``"sampler"``: the sampler does not sample that posterior faithfully, and
  that is what puts the run outside the band;
- ``"unattributed"``: the record cannot tell.

A healthy run within TOLERANCE·|λ| of λ has attribution None: nothing to attribute.

The rule (``attribute``), stated here once. With a reference λ_ref =
λ_nβ,γ of the run's own posterior (the ``exact`` estimator, or a stored
reference run: ``llcbench.references``) the error splits into

    λ̂ − λ = (λ_ref − λ) + (λ̂ − λ_ref) = estimand part + sampler part,

the sampler part with standard error s = hypot(se of the run, se of the
reference). Then

- ``"estimand"`` iff (i) the estimand part alone is outside the band,
  |λ_ref − λ| > TOLERANCE·|λ|; (ii) the sampler part is within Z = 3 se of
  zero, |λ̂ − λ_ref| ≤ Z·s; and (iii) that test resolves the band,
  Z·s ≤ TOLERANCE·|λ|. (iii) is what keeps a noisy run from hiding behind
  its own error bar: "within 3 se of zero" only says the sampler part is
  small when 3 se is small against the band; a sampler part that the test
  cannot rule out is then smaller than the band, so it is not what puts the
  run outside it (and, being smaller than the band, it cannot give the
  error the opposite sign from the estimand part).
- ``"sampler"`` iff the sampler part is significant, |λ̂ − λ_ref| > Z·s, and
  the estimand part alone is within the band, |λ_ref − λ| ≤ TOLERANCE·|λ|:
  a perfect sampler of the same posterior would have passed.
- ``"unattributed"`` otherwise: both parts outside (a significant sampler
  part on an estimand that is itself outside the band — two causes, neither
  alone), neither part alone outside, or a sampler part too uncertain to
  tell (no se, or Z·s wider than the band).

Z = 3 is a two-sided 0.3 % false-alarm rate per run for a Gaussian error:
across a catalogue of ~50 cases, at most a fraction of one run is expected
to be called "sampler" (or refused "estimand") by chance alone.

Without a reference there is nothing to split, and the run is
``"unattributed"``. What the record knows is given as *hints*, each with
its number, never as an attribution:

- multiplicity m > 1: E_β[nβ(L − L*)] = λ − (m − 1)/log nβ + o(1/log nβ)
  (the derivative in log nβ of the free energy λ·log nβ − (m − 1)·log log nβ;
  Watanabe 2009, "Algebraic Geometry and Statistical Learning Theory"):
  the estimand is below λ at finite nβ, to first order only;
- localisation: ∂λ̂/∂log γ from the same draws (``sgmcmc.trace.localisation``)
  is a sizeable negative fraction of λ̂ (≤ LOCALISATION_REL): the estimand
  at this γ is below its γ → 0 value, by an amount the derivative does not
  give. Only for chains that agree (split R-hat ≤ RHAT_MIXED): in chains
  still drifting, λ and ‖w − w*‖² rise together and their covariance says
  nothing about the stationary distribution.

A hint predicts a direction (both predict λ̂ below λ), not a value that an
error could be held to; only a reference can attribute.

An estimator may estimate λ itself rather than one posterior's λ_nβ,γ (the
temperature ladder, ``llcbench.estimators.ladder``: its record says
``extra.estimand = "lambda"``; :func:`estimates_lambda`). Such a run has no
single (nβ, γ) whose reference its λ̂ could be held to: it gets none, its
error beyond the band is ``"unattributed"`` with that reason, and the
multiplicity hint (which its fit already accounts for) is not given.
"""

from __future__ import annotations

import math
from typing import Optional

from .health import problems
from .store import posterior

TOLERANCE = 0.30  # runs further than 30 % of λ from λ are attributed
Z = 3.0  # a sampler part beyond Z standard errors is significant (two-sided 0.3 % for a Gaussian)
LOCALISATION_REL = -0.25  # ∂λ̂/∂log γ below −25 % of λ̂: a localisation hint
RHAT_MIXED = 1.1  # the localisation hint needs chains that agree (split R-hat at most this)

ATTRIBUTIONS = ("estimand", "sampler", "unattributed", "unhealthy")


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def estimates_lambda(record: dict) -> bool:
    """Whether the run's λ̂ estimates λ itself, not λ_nβ,γ (``extra.estimand``; a record or an Estimate's
    ``extra`` dict)."""
    extra = record.get("extra") if "extra" in record else record
    return isinstance(extra, dict) and extra.get("estimand") == "lambda"


def reference_label(record: dict) -> Optional[str]:
    """Where λ_nβ,γ came from, short: "exact", "nuts:3f2a9c1b" (a stored run's key), or None."""
    source = record.get("lambda_ref_source")
    if record.get("lambda_ref") is None:
        return None
    if not source:  # a record from before lambda_ref_source: the method says which estimator
        return "nuts" if str(record.get("lambda_ref_method") or "").startswith("nuts") else "exact"
    name, _, key = str(source).partition(":")
    return f"{name}:{key[:8]}" if key else name


def hints(record: dict) -> list[dict]:
    """What the record says about its estimand without a reference: dicts with kind, text, short."""
    out: list[dict] = []
    lam = record.get("lambda_float")
    nbeta, gamma = posterior(record)
    m = record.get("multiplicity") or 1
    if m > 1 and nbeta and nbeta > math.e and lam is not None and not estimates_lambda(record):
        first = lam - (m - 1) / math.log(nbeta)
        out.append({"kind": "multiplicity", "predicted": first,
                    "short": f"hint: m = {m}: λ − (m−1)/log nβ = {first:.3g}",
                    "text": f"hint: multiplicity m = {m}: λ − (m−1)/log nβ = {first:.3g} at nβ = {nbeta:.4g} "
                            "(first order: the estimand is below λ at finite nβ)"})
    diag = record.get("diagnostics") or {}
    rel = diag.get("localisation_sensitivity_rel")
    # a covariance of the stationary distribution: meaningless while the chains still drift apart
    mixed = (record.get("rhat") or diag.get("rhat") or 1.0) <= RHAT_MIXED
    if rel is not None and rel <= LOCALISATION_REL and mixed:
        out.append({"kind": "localisation", "predicted": None,
                    "short": f"hint: ∂λ̂/∂log γ = {rel:+.0%} of λ̂",
                    "text": f"hint: ∂λ̂/∂log γ = {rel:+.0%} of λ̂ at γ = {float('nan') if gamma is None else gamma:.3g} "
                            "(the estimand at this γ is below its γ → 0 value)"})
    return out


def attribute(record: dict) -> tuple[Optional[str], str, str]:
    """(attribution, reason, short reason) of one record by the rule in the module doc."""
    sick = problems(record)
    if sick:
        return "unhealthy", "unhealthy: " + "; ".join(sick), "; ".join(sick)
    lam, lam_hat = record.get("lambda_float"), record.get("lambda_hat")
    if not _finite(lam) or lam == 0:
        return "unattributed", "no finite nonzero λ to compare with", "no λ"
    if not _finite(lam_hat):
        return "unattributed", "λ̂ is not finite", "λ̂ not finite"
    band = TOLERANCE * abs(lam)
    if abs(lam_hat - lam) <= band:
        return None, "", ""
    if estimates_lambda(record):
        return ("unattributed", "λ̂ estimates λ itself (extrapolated over inverse temperatures): there is no single "
                                "λ_nβ,γ to split its error by", "estimates λ: no λ_nβ,γ")
    ref = record.get("lambda_ref")
    if not _finite(ref):
        return "unattributed", "no reference λ_nβ,γ to split the error by", "no reference"
    where = reference_label(record) or "reference"
    estimand, sampler = ref - lam, lam_hat - ref
    s = record.get("sampler_bias_se")
    e_txt = f"estimand {estimand:+.3g} ({estimand / abs(lam):+.0%} of λ) against {where} λ_nβ,γ = {ref:.4g}"
    if not _finite(s) or s <= 0:
        return ("unattributed", f"{e_txt}; sampler {sampler:+.3g} without a standard error",
                f"sampler {sampler:+.3g} ± ? vs {where}")
    z = abs(sampler) / s
    s_txt = f"sampler {sampler:+.3g} ± {s:.2g} ({z:.1f} se)"
    outside = abs(estimand) > band
    if z > Z:
        if not outside:
            return ("sampler", f"{s_txt}; {e_txt}, within {TOLERANCE:.0%} of λ",
                    f"{s_txt} vs {where} λ_nβ,γ = {ref:.4g}")
        return ("unattributed", f"both parts: {e_txt}, outside {TOLERANCE:.0%}, and {s_txt}",
                f"both: estimand {estimand / abs(lam):+.0%} of λ, {s_txt}")
    if Z * s > band:
        return ("unattributed", f"{s_txt}: {Z:g} se = {Z * s:.3g} is wider than the {TOLERANCE:.0%} band "
                                f"({band:.3g}), the reference cannot tell; {e_txt}",
                f"{s_txt}: {Z:g} se wider than the band")
    if outside:
        return ("estimand", f"{e_txt}; {s_txt}, within {Z:g} se of zero",
                f"{where} λ_nβ,γ = {ref:.4g} ({estimand / abs(lam):+.0%} of λ), {s_txt}")
    return ("unattributed", f"neither part alone: {e_txt}, within {TOLERANCE:.0%}; {s_txt}, within {Z:g} se",
            f"neither alone: estimand {estimand / abs(lam):+.0%} of λ, {s_txt}")


def attribution(record: dict) -> dict:
    """The fields a record carries: ``attribution`` (None for a healthy run within TOLERANCE,
    else one of ATTRIBUTIONS), ``attribution_reason`` (its numbers), ``findings`` (the reason and the hints, as
    texts) and ``findings_short`` (the same, short, for a table column)."""
    what, reason, short = attribute(record)
    found = hints(record)
    return {
        "attribution": what,
        "attribution_reason": reason or None,
        "findings": ([reason] if reason else []) + [f["text"] for f in found],
        "findings_short": ([short] if short else []) + [f["short"] for f in found],
    }
