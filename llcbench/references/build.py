"""Computing reference entries: the HMC reference sampler on each case, through the store.

Every entry is a run of the ``hmc`` estimator (a record in the user's store,
keyed like every other run, so an interrupted build resumes), turned into a
table entry by :func:`~.table.entry_from_record`. ``--jobs N`` runs cases in
N worker processes (``llcbench.execute``).
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional

from ..case import Case
from ..catalogue import build_target
from ..estimators import get_estimator
from ..estimators.base import make_config
from ..execute import run_specs
from ..runner import RunSpec
from ..store import Store
from .table import entry_from_record

METHOD = "hmc"


def needs_reference(case: Case) -> Optional[str]:
    """None if the case needs a sampled reference (no exact value, a flat prior), else why not."""
    from ..catalogue import case_truth
    from ..estimators import exact

    kind = case_truth(case).kind
    if kind == "theory":  # trained anchors: scored by scaling in p, never by bias against a reference
        return "a theory-kind truth (scored by its scaling, not against a reference)"
    target = build_target(case)
    if exact.supports(target) is None:
        return "the exact estimator computes its λ_nβ,γ"
    if target.has_prior:
        return "a prior-weighted case (the references are of flat-prior posteriors)"
    return None


def refused_entry(case: Case, reason: str, overrides: Optional[list[str]] = None) -> dict:
    """A table entry for a case the reference sampler refuses (too large for its budget, say): no
    value, the standard not met, and why — a finding about the case, reported like the others."""
    from ..estimators.temperature import resolve_gamma, resolve_nbeta
    from .table import loss_fingerprint

    spec = get_estimator(METHOD)
    config = make_config(spec.config_cls, list(overrides or []))
    target = build_target(case)
    nbeta = resolve_nbeta(target, config)
    return {"case": case.id, "case_key": case.key(), "loss_fingerprint": loss_fingerprint(target),
            "family": case.family, "nbeta": nbeta, "gamma": resolve_gamma(nbeta, config),
            "lambda": str(target.truth.lam), "lambda_ref": None, "se": None, "standard_met": False,
            "standard_failed": [f"not run: {reason}"], "method": METHOD, "config": None, "diagnostics": {}}


def build(cases: Iterable[Case], store: Store, overrides: Optional[list[str]] = None, seed: int = 0,
          jobs: int = 1, device: str = "cpu", force: bool = False,
          on_done: Optional[Callable[[dict, bool], None]] = None) -> list[dict]:
    """Run the reference sampler on ``cases`` (those already in the store are read back unless
    ``force``) and return their table entries, in the order of ``cases``."""
    spec = get_estimator(METHOD)
    config = make_config(spec.config_cls, list(overrides or []))
    cases = list(cases)
    specs = [RunSpec(case, spec, config, seed) for case in cases]
    records: dict[str, dict] = {}
    refused = {c.id: spec.supports(build_target(c)) for c in cases}
    runnable = [s for s in specs if not refused[s.case.id]]
    for record, cached in run_specs(runnable, store, device, force, jobs):
        records[record["case"]] = record
        if on_done is not None:
            on_done(record, cached)
    return [entry_from_record(records[c.id]) if c.id in records else refused_entry(c, refused[c.id], overrides)
            for c in cases if c.id in records or refused[c.id]]
