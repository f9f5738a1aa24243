"""The library's face: ``run``, ``sweep``, ``scores`` and ``report``, which the command line calls.

Each takes the choices of its command's flags and writes the same store; nothing here (or below)
prints. ``run`` returns the records as ``llcbench run --json`` prints them, ``sweep`` one summary per
grid point as ``llcbench sweep --json`` does, ``scores`` the ``scores.json`` document and ``report``
the path of ``index.html``. Bad input raises :class:`~llcbench.errors.UserError`, whose one-line
message names the flag or the file, entry and field.

    import llcbench
    records = llcbench.run("sgld", cases=["poly/w1^2"], seeds=2)
    print(records[0]["lambda_hat"], records[0]["lambda_ref"])
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

from . import plan
from .errors import UserError
from .estimators import ESTIMATORS, get_estimator
from .estimators.base import make_config
from .execute import run_specs, supports_in_workers
from .references import with_best_reference
from .store import DEFAULT_DB, Store, open_existing

PathLike = Union[str, Path]

# The keys of a record that ``llcbench run --json`` prints (``--full``, ``full=True``: all of them).
BRIEF_KEYS = ("case", "estimator", "lambda", "lambda_float", "lambda_hat", "se", "rel_error", "rhat", "ess",
              "seconds", "grad_evals", "config", "seed", "multiplicity", "truth_kind", "lambda_ref",
              "lambda_ref_source", "estimand_bias", "sampler_bias", "sampler_bias_se", "attribution",
              "attribution_reason", "findings", "warnings", "key", "cached", "torch_version", "locality")


def brief(record: dict) -> dict:
    return {k: record.get(k) for k in BRIEF_KEYS}


class Results(list):
    """A list of dicts (records, or sweep points) with what the request left out or ran over:
    ``skipped`` [(case id, why)], ``db`` the store, and for a sweep ``axes``, ``cases`` and ``runs``."""

    def __init__(self, items=(), *, db: PathLike = DEFAULT_DB, skipped: Sequence = (), **about):
        super().__init__(items)
        self.db = Path(db)
        self.skipped = list(skipped)
        self.__dict__.update(about)


def run(estimator: str, *, cases: Optional[Sequence[str]] = None, family: Optional[str] = None,
        suite: Optional[str] = None, files: Sequence[PathLike] = (), builtin: bool = True, seeds: int = 1,
        config: plan.Overrides = None, db: Optional[PathLike] = None, jobs: int = 1, device: str = "cpu",
        threads: int = 1, executor: str = "local", scheduler: Optional[str] = None, force: bool = False,
        full: bool = False, on_plan: Optional[Callable[[int], None]] = None, on_start: Optional[Callable] = None,
        on_step: Optional[Callable[[int, int], None]] = None,
        on_record: Optional[Callable[[dict], None]] = None) -> Results:
    """Run ``estimator`` over cases, seeds 0..seeds-1, into the store ``db``; return the records.

    Without ``cases``, ``family`` or ``suite`` the cases are those with a computed (exact) or
    asserted truth; naming cases also runs trained anchors and theory values. Runs already in the
    store are read back (``force``: recomputed). Each record carries today's reference λ_nβ,γ and
    attribution. ``full``: whole records (traces, diagnostics), else the ``--json`` keys.
    ``on_plan(runs)``, ``on_start(run_spec, cached)``, ``on_step(done, total)`` and ``on_record(record)``
    report progress (``on_plan`` once the request is checked, before any run).
    """
    device = plan.prologue(device, threads, jobs, executor, scheduler, seeds)
    spec = get_estimator(estimator)
    cfg = make_config(spec.config_cls, plan.suite_overrides(suite, spec.name) + plan.overrides(config))
    chosen = plan.load_cases(cases, family, suite, files, builtin)
    # targets with trained anchors are built (and their anchors trained) jobs at a time in worker processes
    answered = (lambda kept: supports_in_workers(kept, spec.name, jobs)) if executor == "local" and jobs > 1 else None
    runnable, skipped = plan.runnable_cases(chosen, spec, explicit=bool(cases), named=bool(cases or family or suite),
                                            answered=answered)
    specs = plan.run_specs(spec, cfg, runnable, seeds)
    db = Path(db) if db is not None else DEFAULT_DB
    records = []
    with Store(db) as store:  # opened (and checked) before on_plan: a refused store is one line, no progress bar
        store.note_skipped(spec.name, skipped)  # the report lists them
        if on_plan is not None:
            on_plan(len(specs))
        for record, cached in run_specs(specs, store, device, force, jobs, on_start, on_step, executor, scheduler):
            # no exact reference: a reference run of the same posterior in the store, or the shipped
            # table (today's); a stored run gets today's attribution
            record = with_best_reference(store, dict(record, cached=cached))
            records.append(record if full else brief(record))
            if on_record is not None:
                on_record(record)
    return Results(records, db=db, skipped=skipped)


def sweep(estimator: str, *, grid: plan.Grid = None, cases: Optional[Sequence[str]] = None,
          family: Optional[str] = None, suite: Optional[str] = None, files: Sequence[PathLike] = (),
          builtin: bool = True, seeds: int = 1, config: plan.Overrides = None, db: Optional[PathLike] = None,
          jobs: int = 1, device: str = "cpu", threads: int = 1, executor: str = "local",
          scheduler: Optional[str] = None, independent: bool = False, force: bool = False,
          on_plan: Optional[Callable[[int], None]] = None,
          on_record: Optional[Callable[[dict, bool], None]] = None) -> Results:
    """Run ``estimator`` at every point of ``grid`` (the product of its axes; by default the 27
    points of ``llcbench.sweep_axes.DEFAULT_GRID``) over the cases with an exact truth, into ``db``;
    ``config`` fixes fields for the whole grid. Return one summary per grid point (its values,
    runs, median and worst |rel. err.|, unhealthy runs, seconds). The points of a case and seed
    share one chain tensor where the estimator can (``independent``: one run per point);
    ``llcbench.report`` scores the sweep."""
    device = plan.prologue(device, threads, jobs, executor, scheduler, seeds)
    spec = get_estimator(estimator)
    axes = plan.grid_axes(grid, spec.config_cls)
    points, configs = plan.grid_points(axes, spec, plan.sweep_base(spec) + plan.suite_overrides(suite, spec.name)
                                       + plan.overrides(config))
    runnable, skipped = plan.sweep_cases(plan.load_cases(cases, family, suite, files, builtin), spec,
                                         explicit=bool(cases))
    specs = plan.sweep_specs(spec, configs, runnable, seeds, independent)
    db = Path(db) if db is not None else DEFAULT_DB
    by_config: dict[str, list[dict]] = {}
    with Store(db) as store:
        store.note_skipped(spec.name, skipped)
        if on_plan is not None:
            on_plan(len(specs))
        for record, cached in run_specs(specs, store, device, force, jobs, executor=executor, scheduler=scheduler):
            by_config.setdefault(plan.config_key(record["config"]), []).append(record)
            if on_record is not None:
                on_record(record, cached)
    summaries = [plan.summarise_point(point, by_config.get(plan.config_key(cfg), []))
                 for point, cfg in zip(points, configs)]
    return Results(summaries, db=db, skipped=skipped, axes=[name for name, _ in axes], cases=len(runnable),
                   runs=len(specs))


def scores(db: PathLike = DEFAULT_DB, *, estimators: Optional[Sequence[str]] = None,
           version: Optional[str] = None) -> dict:
    """The scores of the store's runs (the ``scores.json`` document; its terms: docs/scores.md), of
    the newest llcbench version in the store unless ``version`` names another."""
    from .score import build_scores

    with open_existing(db) as store:
        return build_scores(store, list(estimators) if estimators else None, version)


def report(db: PathLike = DEFAULT_DB, out: Optional[PathLike] = None, *, estimators: Optional[Sequence[str]] = None,
           version: Optional[str] = None, force: bool = False) -> Path:
    """Write the report of the store's runs — ``index.html`` (self-contained), ``report.md`` and
    ``scores.json`` — into ``out`` (default: ``NAME.report/`` beside the store ``NAME.sqlite``); return
    index.html's path. An existing report of another store is replaced only with ``force``."""
    from .report import write_report

    return write_report(db, out, estimators, version, force)


def estimators() -> list[dict]:
    """Every estimator (built-in, then plugins, then those that failed to load) with its config
    fields, as ``llcbench estimators --json`` prints them."""
    out = [{"name": name, "origin": ESTIMATORS.origin(name), "loaded": True, "summary": spec.summary,
            "fields": [{"name": f.name, "type": getattr(f.type, "__name__", str(f.type)),
                        "default": _field_default(f), "doc": f.metadata.get("doc", "")}
                       for f in dataclasses.fields(spec.config_cls)]}
           for name, spec in ESTIMATORS.items()]
    return out + [{"name": name, "origin": f.origin, "loaded": False, "source": f.source, "error": f.error}
                  for name, f in ESTIMATORS.failures().items()]


def _field_default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return "required"


def families() -> list[dict]:
    """Every case family with its fields, as ``llcbench families --json`` prints them."""
    from .families import FAMILIES

    out = [{"name": name, "origin": FAMILIES.origin(name), "loaded": True, "summary": _summary_line(fam),
            "default_n": fam.default_n, "default_noise_std": fam.default_noise_std,
            "fields": [{"name": k, "type": f.type, "required": f.required,
                        "default": None if f.required else f.default, "doc": f.doc}
                       for k, f in fam.fields.items()]}
           for name, fam in FAMILIES.items()]
    return out + [{"name": name, "origin": f.origin, "loaded": False, "source": f.source, "error": f.error}
                  for name, f in FAMILIES.failures().items()]


def _summary_line(obj) -> str:
    """The first line of a family class's docstring (its one-line summary)."""
    return ((type(obj).__doc__ or "").strip().splitlines() or [""])[0].strip()


def cases(*, cases: Optional[Sequence[str]] = None, family: Optional[str] = None, suite: Optional[str] = None,
          files: Sequence[PathLike] = (), builtin: bool = True) -> list[dict]:
    """The cases with their truth (λ exact, as text and float; m; kind; source), as ``llcbench cases
    --json`` prints them."""
    from .catalogue import case_dim, case_truth

    rows = []
    for case in plan.load_cases(cases, family, suite, files, builtin):
        truth = case_truth(case)
        rows.append({"id": case.id, "family": case.family, "dim": case_dim(case), "n": case.n,
                     "lambda": str(truth.lam), "lambda_float": float(truth.lam),
                     "multiplicity": truth.multiplicity, "kind": truth.kind, "source": truth.source})
    return rows


def run_checkpoints(estimator: str = "sgld", *, case: Optional[str] = None, files: Sequence[PathLike] = (),
                    builtin: bool = True, every: int = 250, project_gradient: bool = False,
                    config: plan.Overrides = None, seeds: int = 1, db: Optional[PathLike] = None, jobs: int = 1,
                    device: str = "cpu", threads: int = 1, force: bool = False) -> tuple[str, list[dict]]:
    """λ̂ over training: train one ``modular_addition`` network (``case``, default the shipped
    'trajectory' suite's) with a checkpoint every ``every`` steps and run ``estimator`` at each;
    ``project_gradient`` samples only the hyperplane normal to ∇L_n there. Returns (the case id,
    the full records in training order)."""
    from .catalogue import load_catalogue, select, suite_file
    from .trajectory import checkpoint_cases

    device = plan.prologue(device, threads, jobs, "local", None, seeds)
    spec = get_estimator(estimator)
    cfg = make_config(spec.config_cls, plan.overrides(config))
    chosen = (select(load_catalogue([str(f) for f in files], builtin=builtin), [case]) if case
              else load_catalogue([suite_file("trajectory")], builtin=False))
    if len(chosen) != 1:
        raise UserError(f"--case {case}: names {len(chosen)} cases; a trajectory trains one")
    checkpoints = checkpoint_cases(chosen[0], every, project_gradient)
    with Store(Path(db) if db is not None else DEFAULT_DB) as store:
        records = [r for r, _ in run_specs(plan.run_specs(spec, cfg, checkpoints, seeds), store, device, force, jobs)]
    records.sort(key=lambda r: (r["case_definition"]["params"]["train_steps"], r["seed"]))
    return chosen[0].id, records


def build_references(*, cases: Optional[Sequence[str]] = None, family: Optional[str] = None,
                     suite: Optional[str] = None, files: Sequence[PathLike] = (), builtin: bool = True,
                     checked=None, sample: Optional[int] = None, config: plan.Overrides = None, seed: int = 0,
                     jobs: int = 1, force: bool = False, device: str = "cpu", db: Optional[PathLike] = None,
                     write_table: Optional[PathLike] = None,
                     on_done: Optional[Callable[[dict, bool], None]] = None) -> tuple[list, list, dict]:
    """Reference λ_nβ,γ runs of the ``hmc`` reference sampler into ``db``, for the cases that need a
    sampled reference; with ``checked`` (a ReferenceTable), recompute up to ``sample`` of its entries
    that meet the standard; with ``write_table`` (a table file), add the entries to it. Returns (the
    entries, [(case id, why not)], the checked entries by case)."""
    from .references.build import build, needs_reference

    device = plan.prologue(device, 1, jobs, "local", None, 1)  # one thread: the run key includes it
    written = None if write_table is None else reference_table(write_table)  # bad input before any run
    todo, skipped = [], []
    for case in plan.load_cases(cases, family, suite, files, builtin):
        why = needs_reference(case)
        (skipped.append((case.id, why)) if why else todo.append(case))
    have = {}
    if checked is not None:
        have = {e["case"]: e for e in checked.entries if e.get("standard_met")}
        todo = [c for c in todo if c.id in have][:sample]
        if not todo:
            raise UserError("no shipped entry to check (check --case / --family / --table)")
    if not todo:
        raise UserError("no case needs a sampled reference (check --case / --family / --file)")
    with Store(Path(db) if db is not None else DEFAULT_DB) as store:
        entries = build(todo, store, plan.overrides(config), seed=seed, jobs=jobs, force=force, device=device,
                        on_done=on_done)
    if written is not None:
        for e in entries:
            written.put(e)
        written.save(write_table)
    return entries, skipped, have


def truth(expr: str, prior: Optional[Sequence[int]] = None) -> dict:
    """The certified λ and m of the polynomial potential ``expr`` (prior exponents ``prior``): a dict
    with ``certified`` True and the truth, or ``certified`` False with the reason and, where the
    Newton polyhedron gives one, its value ``newton_bound`` (an upper bound on λ, not λ). An
    unreadable expression raises UserError."""
    from .truth.plane import NotAPotential
    from .truth.polynomial import newton_value, parse_polynomial, polynomial_truth

    parse_polynomial(expr)  # an unreadable expression is bad input
    try:
        found = polynomial_truth(expr, list(prior) if prior else None)
    except UserError as exc:  # a well-formed polynomial the engine cannot certify
        out = {"expr": expr, "certified": False, "reason": str(exc), "newton_bound": None, "newton_m": None}
        if not isinstance(exc, NotAPotential):  # a potential: its Newton value still bounds λ
            try:
                bound, m = newton_value(expr, list(prior) if prior else None)
                out.update(newton_bound=str(bound), newton_m=m)
            except UserError:
                pass
        return out
    return {"expr": expr, "certified": True, "lambda": str(found.lam), "lambda_float": float(found.lam),
            "multiplicity": found.multiplicity, "kind": found.kind,
            "method": found.source.split(" (")[0].split(":")[0],  # the rule that certified the value
            "source": found.source}


def reference_table(path: Optional[PathLike] = None):
    """The reference table at ``path`` (default: the shipped one); a file that is not one is bad input."""
    from .references.table import DATA, ReferenceTable

    path = DATA if path is None else path
    try:
        return ReferenceTable.load(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise UserError(f"--table {path}: not a reference table ({exc})") from None
