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
import os
from typing import Callable, Iterable, Iterator, Optional

from . import __version__
from .errors import UserError
from .runner import RunSpec, execute, served_warnings
from .store import Store

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


def _import_before_fork() -> None:
    """Import what a run imports lazily at its first call (ArviZ, and with it xarray, pandas and
    scipy: ≈ 1.5 s of CPU) once here, so that workers forked from this process inherit it instead
    of each importing it again (where workers are forked, the Linux default)."""
    import arviz  # noqa: F401


def run_specs(specs: Iterable[RunSpec], store: Store, device: str = "cpu", force: bool = False, jobs: int = 1,
              on_start: Optional[Callable[[RunSpec, bool], None]] = None,
              progress: Optional[Callable[[int, int], None]] = None, executor: str = "local",
              scheduler: Optional[str] = None) -> Iterator[tuple[dict, bool]]:
    """Yield (record, was_cached) for every spec: stored ones first as found, then computed ones
    as they finish (in order serially; in completion order in a pool or on Dask, whose workers
    get the runs at ``scheduler``)."""
    import torch

    if executor not in EXECUTORS:
        raise UserError(f"--executor {executor}: expected one of {', '.join(EXECUTORS)}")
    serial = executor == "local" and jobs <= 1
    threads = torch.get_num_threads()
    todo = []
    for spec in specs:
        cached = None if force else store.get(spec.key(device))
        if on_start is not None and (cached is not None or serial):
            on_start(spec, cached is not None)
        if cached is not None:
            yield dict(cached, warnings=served_warnings(cached) + list(cached.get("warnings") or [])), True
        elif serial:
            record = execute(spec, device, progress)
            store.put(record)
            yield record, False
        else:
            todo.append(spec)
    if not todo:
        return
    if executor == "dask":
        yield from _run_on_dask(todo, store, device, threads, scheduler)
        return
    workers = max(1, min(jobs, len(todo), os.cpu_count() or 1))
    _import_before_fork()
    with cf.ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_worker, s.case, s.estimator.name, s.config, s.seed, device, threads) for s in todo]
        for fut in cf.as_completed(futures):
            record = fut.result()
            store.put(record)
            yield record, False


def _run_on_dask(todo: list[RunSpec], store: Store, device: str, threads: int,
                 scheduler: Optional[str]) -> Iterator[tuple[dict, bool]]:
    """Submit every run to the Dask cluster at ``scheduler``; store and yield each record as it
    arrives; raise RunsLost at the end for the runs whose worker died."""
    try:
        from distributed import Client, KilledWorker, as_completed
    except ImportError:
        raise UserError("--executor dask needs dask.distributed: pip install 'llcbench[distributed]'") from None
    if not scheduler:
        raise UserError("--executor dask needs --scheduler ADDRESS (e.g. tcp://host:8786)")
    try:
        client = Client(scheduler, timeout="20s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise UserError(f"--scheduler {scheduler}: cannot reach a Dask scheduler: {exc}") from None
    lost: list[RunSpec] = []
    with client:
        # the task key is the run key: the same run submitted twice (or by two sweeps) is computed once
        by_key: dict[str, list[RunSpec]] = {}
        for spec in todo:
            by_key.setdefault(spec.key(device), []).append(spec)
        futures = {client.submit(_worker, s[0].case, s[0].estimator.name, s[0].config, s[0].seed, device, threads,
                                 key=f"llcbench-run-{key}"): key for key, s in by_key.items()}
        for fut in as_completed(list(futures), loop=client.loop):
            key = futures[fut]
            if fut.status != "finished":
                exc = fut.exception() if fut.status == "error" else None
                if exc is not None and not isinstance(exc, KilledWorker):
                    fut.result()  # an error of the run itself: raised here with its traceback, as serially
                lost.extend(by_key[key])  # its worker died (or the cluster cancelled it)
                continue
            record = fut.result()
            fut.release()
            if record["key"] != key:  # a worker with another llcbench version or thread count
                raise UserError(
                    f"--scheduler {scheduler}: a worker computed {record['case']} under run key {record['key'][:12]}…, "
                    f"this process expects {key[:12]}… (worker llcbench {record['llcbench_version']}, "
                    f"{record['torch_threads']} torch threads; here {__version__}, {threads}): install the same "
                    "llcbench on every worker")
            store.put(record)
            for i, _ in enumerate(by_key[key]):
                yield record, i > 0  # a duplicate spec is the stored run, as serially
    if lost:
        ids = ", ".join(dict.fromkeys(f"{s.case.id} seed {s.seed}" for s in lost))
        raise RunsLost(f"{len(lost)} run{'s' if len(lost) > 1 else ''} lost with their Dask worker ({_short(ids)}); "
                       f"the other {len(todo) - len(lost)} are in the store: rerun the same command to complete them", lost)


def _short(text: str, width: int = 200) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
