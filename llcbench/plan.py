"""Which runs a request means: the cases, the truth kinds that run, the seeds, the sweep grid, and the
prologue every request shares (counts checked, torch threads set, device and executor checked).

``llcbench.api`` turns a request into runs with these functions; nothing here runs an estimator or
prints. Bad input raises :class:`~llcbench.errors.UserError` with the one-line message the command
line prints, naming the flag.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
from typing import Callable, Iterable, Mapping, Optional, Sequence, Union

import torch

from .catalogue import case_truth, load_catalogue, select, suite_config, suite_file, support_target
from .errors import UserError
from .estimators.base import EstimatorSpec, config_dict, make_config
from .execute import EXECUTORS
from .runner import RunSpec, check_device, shared_grid
from .health import healthy
from .sweep_axes import DEFAULT_GRID

# A config as the library takes it: {field: value} (values given as their type or as text), or the
# command line's ["field=value", ...].
Overrides = Union[Mapping[str, object], Sequence[str], None]
# A sweep grid: {field: [values]}, or the command line's ["field=v1,v2", ...].
Grid = Union[Mapping[str, Iterable[object]], Sequence[str], None]

SHARED_GRID_MAX_POINTS = 32  # grid points per shared chain tensor (rows = points × chains)


# ----------------------------------------------------------------------------------- the prologue
def check_counts(**counts: int) -> None:
    """--seeds, --jobs, --threads and the like are at least 1."""
    for flag, value in counts.items():
        if value < 1:
            raise UserError(f"--{flag} {value}: must be >= 1")


def check_executor(executor: str, scheduler: Optional[str], jobs: int) -> None:
    """--executor / --scheduler / --jobs agree (one line each otherwise)."""
    if executor not in EXECUTORS:
        raise UserError(f"--executor {executor}: expected one of {', '.join(EXECUTORS)}")
    if executor == "dask" and not scheduler:
        raise UserError("--executor dask needs --scheduler ADDRESS (e.g. tcp://host:8786)")
    if scheduler and executor != "dask":
        raise UserError(f"--scheduler {scheduler}: only with --executor dask")
    from .execute import check_scheduler_address

    check_scheduler_address(scheduler)  # a malformed address fails now, not after a connect timeout
    if executor == "dask" and jobs > 1:
        raise UserError(f"--jobs {jobs}: only with --executor local (a Dask cluster runs as many runs at once "
                        "as its workers have threads)")


def prologue(device: str, threads: int, jobs: int, executor: str, scheduler: Optional[str], seeds: int) -> str:
    """Check the request's counts and executor, set torch's intra-op threads, and return the checked
    device. One thread by default: the catalogue's models are small, where a thread pool costs more
    than it gains, and far more when another process competes for the cores. The thread count is in
    every run key (it changes λ̂ in the last bits)."""
    check_counts(seeds=seeds, threads=threads, jobs=jobs)
    check_executor(executor, scheduler, jobs)
    torch.set_num_threads(threads)
    return check_device(device)


# ----------------------------------------------------------------------------------- cases
def load_cases(cases: Optional[Sequence[str]] = None, family: Optional[str] = None, suite: Optional[str] = None,
               files: Sequence[str] = (), builtin: bool = True) -> list:
    """The cases a request names: the built-in catalogue (or a shipped suite instead) plus case
    files, narrowed to ids or prefixes (``"dln/"``) and a family."""
    files = [str(f) for f in files]
    if suite:  # a shipped suite replaces the built-in catalogue
        files, builtin = [suite_file(suite), *files], False
    return select(load_catalogue(files, builtin=builtin), list(cases) if cases else None, family)


def runnable_cases(cases: list, spec: EstimatorSpec, *, explicit: bool, named: bool,
                   answered: Optional[Callable[[list], dict]] = None) -> tuple[list, list]:
    """(the cases to run, [(case id, why skipped)]). A truth the case asserts runs (labelled, scored
    apart); other non-exact kinds (trained anchors, theory values) run only when named (``named``:
    by case, family or suite). A case the estimator does not support is skipped, or an error when
    the request names it (``explicit``). ``answered`` gets the cases of the kinds that run and may
    answer the support question for some of them ({id: reason or None}, e.g.
    ``execute.supports_in_workers``); the others are asked here of ``catalogue.support_target``."""
    runnable, skipped, kept = [], [], []
    for case in cases:
        truth = case_truth(case)
        if not named and truth.kind not in ("exact", "asserted"):
            skipped.append((case.id, f"truth kind is {truth.kind}"))
        else:
            kept.append(case)
    known = answered(kept) if answered is not None else {}
    for case in kept:
        reason = known[case.id] if case.id in known else spec.supports(support_target(case))
        if reason:
            if explicit:
                raise UserError(f"--case {case.id}: estimator {spec.name} does not support it: {reason}")
            skipped.append((case.id, reason))
            continue
        runnable.append(case)
    if not runnable:
        raise UserError("no case to run (check --case / --family / --file)")
    order = {c.id: i for i, c in enumerate(cases)}
    return runnable, sorted(skipped, key=lambda s: order[s[0]])  # in the request's order


def overrides(config: Overrides) -> list[str]:
    """A config request as ``field=value`` texts, parsed by ``make_config`` as the field's type (so
    ``{"nbeta_scale": 1}`` and ``--set nbeta_scale=1`` are the same config, with the same run key)."""
    if config is None:
        return []
    if isinstance(config, Mapping):
        return [f"{k}={v}" for k, v in config.items()]
    if isinstance(config, str):
        raise UserError(f"config {config!r}: expected a dict of fields or a list of 'field=value'")
    return list(config)


def sweep_base(spec: EstimatorSpec) -> list[str]:
    """What a sweep sets before the caller's fields: the plain λ̂(ε) (``extrapolate=none``) for an
    estimator whose default extrapolates in ε, so that the grid's points share one chain tensor
    (an extrapolated point is a two-point run of its own); ``--set extrapolate=richardson`` still
    runs the grid extrapolated, point by point."""
    fields = {f.name: f.default for f in dataclasses.fields(spec.config_cls)} if dataclasses.is_dataclass(spec.config_cls) else {}
    return ["extrapolate=none"] if fields.get("extrapolate", "none") != "none" else []


def suite_overrides(suite: Optional[str], estimator: str) -> list[str]:
    """A suite's own settings for ``estimator`` (its ``[estimator.NAME]`` table, e.g. a published
    protocol's sampler settings) as ``field=value`` texts, to go before the request's own overrides
    (which then win)."""
    if not suite:
        return []
    return [f"{k}={v}" for k, v in suite_config(suite, estimator).items()]


def run_specs(spec: EstimatorSpec, config, cases: list, seeds: int) -> list[RunSpec]:
    return [RunSpec(case, spec, config, seed) for case in cases for seed in range(seeds)]


# ----------------------------------------------------------------------------------- sweeps
def grid_axes(grid: Grid, config_cls: type) -> list[tuple[str, list[str]]]:
    """The grid's axes, [(field, [value texts])], checked against the estimator's config; the
    default grid (``llcbench.sweep_axes``) where none is given."""
    fields = {f.name for f in dataclasses.fields(config_cls)}
    if not grid:
        if not all(name in fields for name, _ in DEFAULT_GRID):
            raise UserError("--grid: this estimator has no default grid; give --grid FIELD=V1,V2,...")
        return [(name, list(values)) for name, values in DEFAULT_GRID]
    items = ([f"{k}={','.join(str(v) for v in vs)}" for k, vs in grid.items()] if isinstance(grid, Mapping)
             else list(grid))
    axes: list[tuple[str, list[str]]] = []
    for item in items:
        name, eq, values = item.partition("=")
        name = name.strip()
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not eq or not name or not vals:
            raise UserError(f"--grid {item!r}: expected FIELD=V1,V2,...")
        if name not in fields:
            raise UserError(f"--grid {item!r}: unknown config field {name!r} (see `llcbench estimators`)")
        if any(name == g for g, _ in axes):
            raise UserError(f"--grid: field {name!r} given twice")
        axes.append((name, vals))
    return axes


def grid_points(axes: list[tuple[str, list[str]]], spec: EstimatorSpec, fixed: list[str]) -> tuple[list, list]:
    """([{field: value text}] per grid point, [its config]): the product of the axes, each point
    with the fields fixed for the whole grid."""
    names = [name for name, _ in axes]
    points = [dict(zip(names, values)) for values in itertools.product(*[v for _, v in axes])]
    for name, values in axes:  # a value of the grid that is not of its field's type is --grid's fault, not --set's
        for v in values:
            try:
                make_config(spec.config_cls, [f"{name}={v}"])
            except UserError as exc:
                if str(exc).startswith(f"--set {name}={v}:"):
                    raise UserError(f"--grid {name}={','.join(values)}: {v!r}: {str(exc).split(': ', 1)[1]}") from None
    configs = [make_config(spec.config_cls, fixed + [f"{k}={v}" for k, v in p.items()]) for p in points]
    return points, configs


def sweep_cases(cases: list, spec: EstimatorSpec, explicit: bool) -> tuple[list, list]:
    """(the cases a sweep runs: those with an exact truth (any named by id) that the estimator
    supports, [(case id, why skipped)])."""
    runnable, skipped = [], []
    for c in cases:
        kind = case_truth(c).kind
        reason = None if explicit or kind == "exact" else f"truth kind is {kind}"
        reason = reason or spec.supports(support_target(c))
        if reason:
            skipped.append((c.id, reason))
        else:
            runnable.append(c)
    if not runnable:
        raise UserError("no case to run (check --case / --family / --file)")
    return runnable, skipped


def sweep_specs(spec: EstimatorSpec, configs: list, cases: list, seeds: int, independent: bool) -> list[RunSpec]:
    """The sweep's runs. Where the estimator can (``estimate_grid``) and the grid's configs differ
    only in the sweep axes, the points of one case and seed share one chain tensor (in chunks of at
    most SHARED_GRID_MAX_POINTS), keyed as such; otherwise, or ``independent``, one run per point."""
    from .estimators.sgmcmc.grid import shareable

    if independent or spec.estimate_grid is None or len(configs) < 2 or shareable(configs) is not None:
        return [RunSpec(case, spec, cfg, seed) for cfg in configs for case in cases for seed in range(seeds)]
    chunks = [configs[i: i + SHARED_GRID_MAX_POINTS] for i in range(0, len(configs), SHARED_GRID_MAX_POINTS)]
    return [s for case in cases for seed in range(seeds) for chunk in chunks
            for s in shared_grid(case, spec, chunk, seed)]


def summarise_point(point: dict, records: list[dict]) -> dict:
    """One grid point's summary: runs, median and worst |rel. err.|, how many runs are not healthy
    (``llcbench.health``, the definition every score uses), seconds."""
    errs = [abs(r["rel_error"]) for r in records if r.get("rel_error") is not None and math.isfinite(r["rel_error"])]
    return {**point, "runs": len(records), "median_abs_rel_error": statistics.median(errs) if errs else None,
            "worst_abs_rel_error": max(errs) if errs else None,
            "unhealthy": sum(not healthy(r) for r in records),
            "seconds": sum(r.get("seconds") or 0 for r in records)}


def config_key(config) -> str:
    """A config's identity for grouping records by grid point."""
    import json

    return json.dumps(config_dict(config) if dataclasses.is_dataclass(config) else config, sort_keys=True)
