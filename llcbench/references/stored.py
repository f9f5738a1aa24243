"""Choosing the reference of a record: a stored reference run, or the shipped table."""

from __future__ import annotations

import math
from typing import Optional

from ..attribution import attribution, estimates_lambda
from ..store import Store, posterior
from .standard import REFERENCE_ESTIMATORS, reference_refusal
from .table import ReferenceTable, shipped_table


def same_value(a, b) -> bool:
    return a is not None and b is not None and math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def stored_reference(store: Store, record: dict) -> Optional[dict]:
    """The best reference run of the same case definition at the same (nβ, γ) in the store, or None.

    What a run is compared with must be the same posterior: same case
    definition (its content hash), same resolved nβ and γ. A stored ``exact``
    run wins; else, of the sampled runs (NUTS, HMC) that meet the reference
    standard (``reference_refusal``), the one with the smallest standard error.
    """
    nbeta, gamma = posterior(record)
    if nbeta is None or gamma is None or record.get("estimator") in REFERENCE_ESTIMATORS:
        return None
    best = None
    for name in REFERENCE_ESTIMATORS:
        for ref in store.records(estimator=name, case_id=record["case"]):
            rb, rg = posterior(ref)
            if ref.get("case_key") != record.get("case_key") or not (same_value(rb, nbeta) and same_value(rg, gamma)):
                continue
            lam = ref.get("lambda_hat")
            if lam is None or not math.isfinite(lam):
                continue
            if name == "exact":
                return ref
            if reference_refusal(ref) is None and _finite(ref.get("se")) and (best is None or ref["se"] < best["se"]):
                best = ref
    return best


def with_reference(record: dict, ref: dict) -> dict:
    """The record with the decomposition λ̂ − λ = (λ_nβ,γ − λ) + (λ̂ − λ_nβ,γ) against a reference of
    its posterior, as a new dict: a stored run, a shipped entry (as ``ReferenceTable.as_reference``
    gives it, ``shipped``), or the exact λ_nβ,γ computed for the run (``computed``: the runner's,
    where the target exists). The one place a record's reference fields are written."""
    lam = record.get("lambda_float")
    ref_se = ref.get("se") if _finite(ref.get("se")) else 0.0
    se, lam_hat = record.get("se"), record.get("lambda_hat")
    shipped, computed = ref.get("shipped", False), ref.get("computed", False)
    # a failed run (λ̂ None or NaN: every chain diverged) keeps the reference, never a sampler part
    sampler = lam_hat - ref["lambda_hat"] if _finite(lam_hat) else None
    if computed:
        method, source = ref.get("method"), ref["estimator"]
    elif shipped:  # "shipped:hmc"
        method, source = f"{ref['estimator']} (shipped reference table)", f"shipped:{ref['estimator']}"
    else:  # the stored run's estimator and full key
        method, source = f"{ref['estimator']} (stored run {ref['key'][:12]})", f"{ref['estimator']}:{ref['key']}"
    out = dict(
        record,
        lambda_ref=ref["lambda_hat"],
        lambda_ref_error=ref_se,
        lambda_ref_method=method,
        lambda_ref_source=source,
        estimand_bias=ref["lambda_hat"] - lam if _finite(lam) else None,
        sampler_bias=sampler,
        sampler_bias_se=math.hypot(se, ref_se) if sampler is not None and _finite(se) else None,
    )
    if ref.get("lambda_ref_discrete") is not None:  # the discretised chain's λ at the run's step
        out["lambda_ref_discrete"] = ref["lambda_ref_discrete"]
    return out


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def best_reference(store: Optional[Store], record: dict, table: Optional[ReferenceTable] = None
                   ) -> tuple[Optional[dict], list[str]]:
    """(the reference to decompose ``record`` against, notes): the better of the best stored run and
    the shipped entry (a stored ``exact`` run always wins; else the smaller se), or None. The notes
    say why a shipped entry for the case was not used (stale definition or loss, standard not met)."""
    if record.get("estimator") in REFERENCE_ESTIMATORS:
        return None, []
    stored = stored_reference(store, record) if store is not None else None
    if stored is not None and stored.get("estimator") == "exact":
        return stored, []
    table = shipped_table() if table is None else table
    shipped, notes = table.lookup(record)
    candidates = [r for r in (stored, shipped) if r is not None]
    if not candidates:
        return None, notes
    return min(candidates, key=lambda r: r["se"]), notes


def with_best_reference(store: Optional[Store], record: dict, table: Optional[ReferenceTable] = None,
                        cache: Optional[dict] = None) -> dict:
    """The record as read today: decomposed against the best reference (``best_reference``) unless
    it already carries one (an exact λ_nβ,γ computed at run time) or estimates λ itself
    (``attribution.estimates_lambda``: no reference applies), the notes on unusable shipped
    entries added to its warnings, and its attribution recomputed (``llcbench.attribution``) — so
    that a reference added after the run changes what the run and every score built on it say.
    ``cache`` (a dict the caller keeps) shares the look-up between runs of one posterior: the same
    case definition, loss fingerprint and (nβ, γ)."""
    if record.get("lambda_ref") is None and not estimates_lambda(record):
        key = (record.get("estimator") in REFERENCE_ESTIMATORS, record.get("case"), record.get("case_key"),
               record.get("loss_fingerprint"), *posterior(record))
        if cache is not None and key in cache:
            ref, notes = cache[key]
        else:
            ref, notes = best_reference(store, record, table)
            if cache is not None:
                cache[key] = (ref, notes)
        if ref is not None:
            record = with_reference(record, ref)
        elif notes:
            record = dict(record, warnings=list(record.get("warnings") or []) + notes)
    else:
        record = dict(record)
    record.update(attribution(record))
    return record
