"""Executors: run planned runs serially or in worker processes, with the same records either way.

A run's record depends only on its spec, device and torch thread count (its
key says so), never on which process ran it: workers pin one torch thread,
as the parent does, so a run computed in a worker has the key and the λ̂ the
serial run would have. Records are written to the store by the parent only,
one transaction each, as they arrive, so an interrupted sweep loses at most
the runs in flight and resumes from the store.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
from typing import Callable, Iterable, Iterator, Optional

from .runner import RunSpec, execute, served_warnings
from .store import Store


def _worker(case, estimator_name: str, config, seed: int, device: str, threads: int) -> dict:
    import torch

    from .estimators import get_estimator

    torch.set_num_threads(threads)
    return execute(RunSpec(case, get_estimator(estimator_name), config, seed), device)


def run_specs(specs: Iterable[RunSpec], store: Store, device: str = "cpu", force: bool = False, jobs: int = 1,
              on_start: Optional[Callable[[RunSpec, bool], None]] = None,
              progress: Optional[Callable[[int, int], None]] = None) -> Iterator[tuple[dict, bool]]:
    """Yield (record, was_cached) for every spec: stored ones first as found, then computed ones
    as they finish (in order with jobs = 1; in completion order with jobs > 1)."""
    import torch

    threads = torch.get_num_threads()
    todo = []
    for spec in specs:
        cached = None if force else store.get(spec.key(device))
        if on_start is not None and (cached is not None or jobs <= 1):
            on_start(spec, cached is not None)
        if cached is not None:
            yield dict(cached, warnings=served_warnings(cached) + list(cached.get("warnings") or [])), True
        elif jobs <= 1:
            record = execute(spec, device, progress)
            store.put(record)
            yield record, False
        else:
            todo.append(spec)
    if not todo:
        return
    workers = max(1, min(jobs, len(todo), os.cpu_count() or 1))
    with cf.ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_worker, s.case, s.estimator.name, s.config, s.seed, device, threads) for s in todo]
        for fut in cf.as_completed(futures):
            record = fut.result()
            store.put(record)
            yield record, False
