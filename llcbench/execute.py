"""Executors: run planned runs serially, in worker processes or on a Dask cluster, with the same records.

A run's record depends only on its spec, device and torch thread count (its
key says so), never on which process ran it: workers pin the parent's torch
thread count, so a run computed in a worker has the key and the λ̂ the
serial run would have. Records are written to the store by the submitting
process only, one transaction each, as they arrive (workers never see the
store), so an interrupted sweep loses at most the runs in flight and resumes
from the store.

Executors: ``local`` (serial for jobs = 1, else a ``concurrent.futures``
process pool) and ``dask`` (a ``dask.distributed`` cluster at a scheduler
address; the optional extra ``llcbench[distributed]``). On Dask a worker
that dies loses only the runs it was computing (Dask resubmits them to
another worker up to its ``allowed-failures``; beyond that they are lost):
the others still reach the store, and :class:`RunsLost` names what a rerun
of the same command completes.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import re
from typing import Callable, Iterable, Iterator, Optional

from .version import __version__
from .errors import UserError
from .runner import RunSpec, execute, execute_grid, served_warnings, shared_grid
from .store import Store
from .worker_lifetime import die_with_parent

EXECUTORS = ("local", "dask")


class RunsLost(UserError):
    """Some runs did not come back (their worker died); every other run is in the store."""

    def __init__(self, message: str, runs: list[RunSpec]):
        super().__init__(message)
        self.runs = runs  # the lost runs


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


def _import_before_fork() -> None:
    """Import what a run imports lazily at its first call (ArviZ, and with it xarray, pandas and
    scipy: ≈ 1.5 s of CPU) once here, so that workers forked from this process inherit it instead
    of each importing it again (where workers are forked, the Linux default)."""
    import arviz  # noqa: F401


def _supports(case, estimator_name: str) -> tuple[bool, Optional[str]]:
    from .catalogue import build_target
    from .estimators import get_estimator

    try:  # building the target trains its anchor into the cache
        return True, get_estimator(estimator_name).supports(build_target(case))
    except Exception:  # noqa: BLE001 - planning builds the case itself and reports its error as always
        return False, None


def supports_in_workers(cases: list, estimator_name: str, jobs: int) -> dict[str, Optional[str]]:
    """{case id: why the estimator does not support it, or None} for the cases whose family trains its
    anchor (``Family.trains_anchor``), their targets built ``jobs`` at a time in worker processes.
    Planning asks the estimator about every target, and would otherwise train the anchors one after
    another while the workers wait; built here, each anchor is trained once and cached for the runs.
    Training is deterministic and the cache written atomically, so only *when* an anchor is trained
    changes, never what it is. A case whose build fails is left out (planning builds it and says why)."""
    from .families import FAMILIES

    todo = [c for c in cases if FAMILIES[c.family].trains_anchor]
    workers = min(jobs, len(todo), os.cpu_count() or 1)
    if workers <= 1:
        return {}
    with cf.ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        answers = [(c.id, pool.submit(_supports, c, estimator_name)) for c in todo]
        return {cid: reason for cid, (built, reason) in ((cid, f.result()) for cid, f in answers) if built}


def run_specs(specs: Iterable[RunSpec], store: Store, device: str = "cpu", force: bool = False, jobs: int = 1,
              on_start: Optional[Callable[[RunSpec, bool], None]] = None,
              progress: Optional[Callable[[int, int], None]] = None, executor: str = "local",
              scheduler: Optional[str] = None) -> Iterator[tuple[dict, bool]]:
    """Yield (record, was_cached) for every spec: stored ones first as found, then computed ones
    as they finish (in order serially; in completion order in a pool or on Dask, whose workers
    get the runs at ``scheduler``). The points of a shared-chain grid run are computed together,
    and all again if any of them is missing."""
    import torch

    if executor not in EXECUTORS:
        raise UserError(f"--executor {executor}: expected one of {', '.join(EXECUTORS)}")
    serial = executor == "local" and jobs <= 1
    threads = torch.get_num_threads()
    specs = list(specs)
    # worker processes on this machine hold their runs at once; Dask's workers are other machines' memory
    _check_sizes(specs, device, at_once=min(jobs, len(specs)) if executor == "local" else 1)
    if executor == "dask":
        check_scheduler_address(scheduler)  # before any run is computed here
    todo = []
    for unit in _units(specs):
        cached = [None if force else store.get(s.key(device)) for s in unit]
        done = all(c is not None for c in cached)
        if on_start is not None and (done or serial):
            on_start(unit[0], done)
        if done:
            for c in cached:
                yield dict(c, warnings=served_warnings(c) + list(c.get("warnings") or [])), True
        elif serial:
            for record in _compute(unit, device, progress):
                store.put(record)
                yield record, False
        else:
            todo.append(unit)
    if not todo:
        return
    if executor == "dask":
        yield from _run_on_dask(todo, store, device, threads, scheduler)
        return
    workers = max(1, min(jobs, len(todo), os.cpu_count() or 1))
    _import_before_fork()
    # workers end with this process, however it ends: no orphan computes on after a kill
    with cf.ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        futures = [_submit(pool, unit, device, threads) for unit in todo]
        for fut in cf.as_completed(futures):
            result = fut.result()
            for record in (result if isinstance(result, list) else [result]):
                store.put(record)
                yield record, False

def _check_sizes(specs: list[RunSpec], device: str = "cpu", at_once: int = 1) -> None:
    """Refuse, before anything runs, a run whose traces and copies of its data would not fit in memory
    (docs/limits.md)."""
    from .catalogue import case_dim, case_run_data_bytes
    from .estimators.base import config_dict
    from .limits import check_run_size

    seen = set()
    for s in specs:
        what = (s.case.key(), json.dumps(config_dict(s.config), sort_keys=True, default=str))
        if what not in seen:
            seen.add(what)
            check_run_size(s.config, case_dim(s.case), f"{s.case.file}: case '{s.case.id}'",
                           data_bytes=case_run_data_bytes(s.case, s.config, device), at_once=at_once)


_ADDRESS = re.compile(r"(?:(tcp|tls|ucx|ws|wss)://)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})/?")


def check_scheduler_address(scheduler: Optional[str]) -> None:
    """A Dask scheduler address is [scheme://]host:port: anything else is refused at once (a Client
    would try to resolve it for tens of seconds before its ValueError)."""
    if not scheduler or re.fullmatch(r"inproc://\S+", scheduler):  # an in-process cluster's own address
        return
    match = _ADDRESS.fullmatch(scheduler)
    if not match or not 0 < int(match.group(3)) < 65536:
        raise UserError(f"--scheduler {scheduler}: not a scheduler address; expected [tcp://]HOST:PORT, "
                        "e.g. tcp://127.0.0.1:8786")


def _run_on_dask(todo: list[list[RunSpec]], store: Store, device: str, threads: int,
                 scheduler: Optional[str]) -> Iterator[tuple[dict, bool]]:
    """Submit every unit of work (a run, or the points of a shared-chain grid run) to the Dask
    cluster at ``scheduler``; store and yield each record as it arrives; raise RunsLost at the end
    for the runs whose worker died."""
    try:
        from distributed import Client, KilledWorker, as_completed
    except ImportError:
        raise UserError("--executor dask needs dask.distributed: pip install 'llcbench[distributed]'") from None
    if not scheduler:
        raise UserError("--executor dask needs --scheduler ADDRESS (e.g. tcp://host:8786)")
    try:
        client = Client(scheduler, timeout="20s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise UserError(f"--scheduler {scheduler}: cannot reach a Dask scheduler: {exc}") from None
    lost: list[RunSpec] = []
    with client:
        # the task key is the (first) run key: the same work submitted twice (or by two sweeps) is
        # computed once
        units: dict[str, list[RunSpec]] = {}
        planned: dict[str, int] = {}
        for unit in todo:
            key = unit[0].key(device)
            units.setdefault(key, unit)
            planned[key] = planned.get(key, 0) + 1
        futures = {}
        for key, unit in units.items():
            s = unit[0]
            if s.shared_chains:
                fut = client.submit(_grid_worker, s.case, s.estimator.name, [u.config for u in unit], s.seed, device,
                                    threads, key=f"llcbench-grid-{key}")
            else:
                fut = client.submit(_worker, s.case, s.estimator.name, s.config, s.seed, device, threads,
                                    key=f"llcbench-run-{key}")
            futures[fut] = key
        for fut in as_completed(list(futures), loop=client.loop):
            unit = units[futures[fut]]
            if fut.status != "finished":
                exc = fut.exception() if fut.status == "error" else None
                if exc is not None and not isinstance(exc, KilledWorker):
                    fut.result()  # an error of the run itself: raised here with its traceback, as serially
                lost.extend(unit)  # its worker died (or the cluster cancelled it)
                continue
            result = fut.result()
            fut.release()
            records = result if isinstance(result, list) else [result]
            expected = [u.key(device) for u in unit]
            if sorted(r["key"] for r in records) != sorted(expected):  # a worker with another llcbench version
                r = records[0]
                raise UserError(
                    f"--scheduler {scheduler}: a worker computed {r['case']} under run key {r['key'][:12]}…, "
                    f"this process expects {expected[0][:12]}… (worker llcbench {r['llcbench_version']}, "
                    f"{r['torch_threads']} torch threads; here {__version__}, {threads}): install the same "
                    "llcbench on every worker")
            for record in records:
                store.put(record)
                yield record, False
            for _ in range(planned[futures[fut]] - 1):  # planned again: the stored run, as serially
                for record in records:
                    yield record, True
    if lost:
        ids = ", ".join(dict.fromkeys(f"{s.case.id} seed {s.seed}" for s in lost))
        n = sum(len(u) for u in todo)
        raise RunsLost(f"{len(lost)} run{'s' if len(lost) > 1 else ''} lost with their Dask worker ({_short(ids)}); "
                       f"the other {n - len(lost)} are in the store: rerun the same command to complete them", lost)


def _short(text: str, width: int = 200) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
