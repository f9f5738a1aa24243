"""Computing reference entries: the HMC reference sampler on each case, through the store.

Every entry is a run of the ``hmc`` estimator (a record in the user's store,
keyed like every other run, so an interrupted build resumes), turned into a
table entry by :func:`~.table.entry_from_record`. ``--jobs N`` runs cases in
N worker processes with one torch thread each (the run key includes the
thread count); results are written to the store by the parent process only.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
from typing import Callable, Iterable, Optional

from ..case import Case
from ..catalogue import build_target
from ..estimators import get_estimator
from ..estimators.base import make_config
from ..runner import RunSpec, execute, run_all
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


def _worker(case: Case, overrides: list[str], seed: int, device: str) -> dict:
    import torch

    torch.set_num_threads(1)
    spec = get_estimator(METHOD)
    return execute(RunSpec(case, spec, make_config(spec.config_cls, overrides), seed), device)


def build(cases: Iterable[Case], store: Store, overrides: Optional[list[str]] = None, seed: int = 0,
          jobs: int = 1, device: str = "cpu", force: bool = False,
          on_done: Optional[Callable[[dict, bool], None]] = None) -> list[dict]:
    """Run the reference sampler on ``cases`` (those already in the store are read back unless
    ``force``) and return their table entries, in the order of ``cases``."""
    spec = get_estimator(METHOD)
    overrides = list(overrides or [])
    config = make_config(spec.config_cls, overrides)
    cases = list(cases)
    specs = [RunSpec(case, spec, config, seed) for case in cases]
    records: dict[str, dict] = {}
    if jobs <= 1:
        for record, cached in run_all(specs, store, device, force):
            records[record["case"]] = record
            if on_done is not None:
                on_done(record, cached)
    else:
        todo = []
        for s in specs:
            cached = None if force else store.get(s.key(device))
            if cached is not None:
                records[s.case.id] = cached
                if on_done is not None:
                    on_done(cached, True)
            else:
                todo.append(s)
        workers = min(jobs, len(todo), os.cpu_count() or 1) or 1
        with cf.ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(_worker, s.case, overrides, seed, device): s for s in todo}
            for fut in cf.as_completed(futures):
                record = fut.result()
                store.put(record)  # committed as it arrives: an interrupted build resumes
                records[record["case"]] = record
                if on_done is not None:
                    on_done(record, False)
    return [entry_from_record(records[c.id]) for c in cases if c.id in records]
