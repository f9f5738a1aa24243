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
    """None if the case needs a sampled reference (no exact value, a target the HMC reference
    sampler supports), else why not."""
    from ..estimators import exact

    target = build_target(case)
    if exact.supports(target) is None:
        return "the exact estimator computes its λ_nβ,γ"
    return get_estimator(METHOD).supports(target)


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
    for record, cached in run_specs(specs, store, device, force, jobs):
        records[record["case"]] = record
        if on_done is not None:
            on_done(record, cached)
    return [entry_from_record(records[c.id]) for c in cases if c.id in records]
