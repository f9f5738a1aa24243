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

from .runner import RunSpec, execute, execute_grid, served_warnings, shared_grid
from .store import Store


def _worker(case, estimator_name: str, config, seed: int, device: str, threads: int) -> dict:
    import torch

    from .estimators import get_estimator

    torch.set_num_threads(threads)
    return execute(RunSpec(case, get_estimator(estimator_name), config, seed), device)


def _grid_worker(case, estimator_name: str, configs: list, seed: int, device: str, threads: int) -> list[dict]:
    import torch

    from .estimators import get_estimator

    torch.set_num_threads(threads)
    return execute_grid(shared_grid(case, get_estimator(estimator_name), configs, seed), device)


def _units(specs: Iterable[RunSpec]) -> list[list[RunSpec]]:
    """The specs in units of work: one spec each, except the points of one shared-chain grid run,
    which run together (in the order given)."""
    units: list[list[RunSpec]] = []
    grids: dict[str, list[RunSpec]] = {}
    for spec in specs:
        if not spec.shared_chains:
            units.append([spec])
        elif spec.shared_chains in grids:
            grids[spec.shared_chains].append(spec)
        else:
            grids[spec.shared_chains] = [spec]
            units.append(grids[spec.shared_chains])
    return units


def _compute(unit: list[RunSpec], device: str, progress) -> list[dict]:
    if unit[0].shared_chains:
        return execute_grid(unit, device)
    return [execute(unit[0], device, progress)]


def _submit(pool, unit: list[RunSpec], device: str, threads: int):
    s = unit[0]
    if s.shared_chains:
        return pool.submit(_grid_worker, s.case, s.estimator.name, [u.config for u in unit], s.seed, device, threads)
    return pool.submit(_worker, s.case, s.estimator.name, s.config, s.seed, device, threads)


def run_specs(specs: Iterable[RunSpec], store: Store, device: str = "cpu", force: bool = False, jobs: int = 1,
              on_start: Optional[Callable[[RunSpec, bool], None]] = None,
              progress: Optional[Callable[[int, int], None]] = None) -> Iterator[tuple[dict, bool]]:
    """Yield (record, was_cached) for every spec: stored ones first as found, then computed ones
    as they finish (in order with jobs = 1; in completion order with jobs > 1). The points of a
    shared-chain grid run are computed together, and all again if any of them is missing."""
    import torch

    threads = torch.get_num_threads()
    todo = []
    for unit in _units(specs):
        cached = [None if force else store.get(s.key(device)) for s in unit]
        done = all(c is not None for c in cached)
        if on_start is not None and (done or jobs <= 1):
            on_start(unit[0], done)
        if done:
            for c in cached:
                yield dict(c, warnings=served_warnings(c) + list(c.get("warnings") or [])), True
        elif jobs <= 1:
            for record in _compute(unit, device, progress):
                store.put(record)
                yield record, False
        else:
            todo.append(unit)
    if not todo:
        return
    workers = max(1, min(jobs, len(todo), os.cpu_count() or 1))
    with cf.ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [_submit(pool, unit, device, threads) for unit in todo]
        for fut in cf.as_completed(futures):
            result = fut.result()
            for record in (result if isinstance(result, list) else [result]):
                store.put(record)
                yield record, False
