"""The ``llcbench`` command line.

Bad input (a case file, a flag, a config value) prints one line naming the
file, the case and the field, and exits with status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
from typing import Optional, Sequence

from . import __version__
from .errors import UserError
from .attribution import ATTRIBUTIONS, TOLERANCE, Z, reference_label


class _UsageError(UserError):
    """A command-line usage error, printed as argparse does: ``PROG: error: MESSAGE``."""

    def __init__(self, prog: str, message: str):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (no usage block) and exit status 2."""

    def error(self, message: str):  # noqa: D401
        # main() prints the prefix: the message itself must not repeat the program's name
        raise _UsageError(self.prog, message)


def _fmt_table(headers: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _load_cases(args) -> list:
    from .catalogue import load_catalogue, select, suite_file

    files, builtin = list(args.file or []), not args.no_builtin
    if args.suite:  # a shipped suite replaces the built-in catalogue
        files, builtin = [suite_file(args.suite), *files], False
    cases = load_catalogue(files, builtin=builtin)
    return select(cases, getattr(args, "case", None), args.family)


# --------------------------------------------------------------------- cases
def cmd_cases(args) -> int:
    from .catalogue import case_dim, case_truth

    rows = []
    for case in _load_cases(args):
        truth = case_truth(case)
        rows.append(
            {
                "id": case.id,
                "family": case.family,
                "dim": case_dim(case),
                "n": case.n,
                "lambda": str(truth.lam),
                "lambda_float": float(truth.lam),
                "multiplicity": truth.multiplicity,
                "kind": truth.kind,
                "source": truth.source,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    headers = ["id", "family", "dim", "n", "λ", "λ (float)", "m", "kind", "source"]
    table = [
        [r["id"], r["family"], str(r["dim"]), str(r["n"]), r["lambda"], f"{r['lambda_float']:.4g}",
         str(r["multiplicity"]), r["kind"], _short(r["source"], 60)]
        for r in rows
    ]
    print(_fmt_table(headers, table, right={2, 3, 4, 5, 6}))
    print(f"\n{len(rows)} cases")
    return 0


def _short(text: str, width: int) -> str:
    """Shorten for a table cell (the whole text is in --json)."""
    return text if len(text) <= width else text[: width - 1] + "…"


# --------------------------------------------------------------------- truth
def cmd_truth(args) -> int:
    if args.case or args.family or args.file or args.suite:
        if args.expr is not None:
            raise UserError("truth: give a polynomial or catalogue cases (--case, --family, --file), not both")
        return _cases_truth(args)
    if args.expr is None:
        raise UserError("truth: give a polynomial, or --case ID for the truth of catalogue cases")
    from .truth.plane import NotAPotential
    from .truth.polynomial import newton_value, parse_polynomial, polynomial_truth

    prior = _int_list(args.prior, "--prior") if args.prior else None
    parse_polynomial(args.expr)  # an unreadable expression is bad input: exit 2
    try:
        truth = polynomial_truth(args.expr, prior)
    except UserError as exc:
        # A well-formed polynomial the engine cannot certify: say why, exit 1.
        print(f"cannot certify: {exc}")
        if isinstance(exc, NotAPotential):
            return 1  # no λ to bound
        try:
            bound, m = newton_value(args.expr, prior)
            print(f"Newton-polyhedron value 1/t* = {bound} (m = {m}) is only an upper bound on λ")
        except UserError:
            pass
        return 1
    method = truth.source.split(" (")[0].split(":")[0]  # the rule that certified the value
    if args.json:
        print(json.dumps({"expr": args.expr, "lambda": str(truth.lam), "lambda_float": float(truth.lam),
                          "multiplicity": truth.multiplicity, "kind": truth.kind, "method": method,
                          "source": truth.source}))
    else:
        print(f"λ = {truth.lam} ({float(truth.lam):.6g}), m = {truth.multiplicity}  certified by: {method}")
        print(f"  [{truth.source}]")
    return 0


def _cases_truth(args) -> int:
    """`llcbench truth --case ID`: the truth of catalogue cases, with its kind (exact or asserted)."""
    from .catalogue import case_truth

    rows = []
    for case in _load_cases(args):
        t = case_truth(case)
        rows.append({"case": case.id, "lambda": str(t.lam), "lambda_float": float(t.lam),
                     "multiplicity": t.multiplicity, "kind": t.kind, "source": t.source})
    if args.json:
        print(json.dumps(rows))
        return 0
    for r in rows:
        print(f"{r['case']}: λ = {r['lambda']} ({r['lambda_float']:.6g}), m = {r['multiplicity']}, "
              f"kind {r['kind']}  [{r['source']}]")
    return 0


def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{flag} {text}: expected comma-separated integers, e.g. 1,1") from None


# ------------------------------------------------------------ families / estimators
def _summary_line(obj) -> str:
    """The first line of a family class's docstring (its one-line summary)."""
    return ((type(obj).__doc__ or "").strip().splitlines() or [""])[0].strip()


def _plugins_note() -> Optional[str]:
    from .plugins import NO_PLUGINS_ENV, plugins_disabled

    return f"entry-point plugins not loaded: {NO_PLUGINS_ENV} is set" if plugins_disabled() else None


def cmd_families(args) -> int:
    from .catalogue import COMMON_FIELDS
    from .families import FAMILIES

    families = dict(FAMILIES.items())  # built-in first, then the plugins (loaded now)
    failures = FAMILIES.failures()
    if args.json:
        out = [{"name": name, "origin": FAMILIES.origin(name), "loaded": True, "summary": _summary_line(fam),
                "default_n": fam.default_n, "default_noise_std": fam.default_noise_std,
                "fields": [{"name": k, "type": f.type, "required": f.required,
                            "default": None if f.required else f.default, "doc": f.doc}
                           for k, f in fam.fields.items()]}
               for name, fam in families.items()]
        out += [{"name": name, "origin": f.origin, "loaded": False, "source": f.source, "error": f.error}
                for name, f in failures.items()]
        print(json.dumps(out, indent=2, default=str))
        return 0
    print("common fields (every case, whatever its family)")
    for fname, (ftype, default, meaning) in COMMON_FIELDS.items():
        default = default if default in ("required", "none") or default.startswith("the ") else f"default {default}"
        print(f"  {fname:<19} {ftype:<10} {default:<22} {meaning}")
    rows = [[name, FAMILIES.origin(name), str(fam.default_n),
             "—" if fam.default_noise_std is None else f"{fam.default_noise_std:g}", _short(_summary_line(fam), 70)]
            for name, fam in families.items()]
    rows += [[name, f.origin, "—", "—", _short(f"not loaded: {f.error}", 70)] for name, f in failures.items()]
    print()
    print(_fmt_table(["family", "origin", "default n", "noise_std", "summary"], rows, right={2, 3}))
    if _plugins_note():
        print(f"({_plugins_note()})")
    for name, family in families.items():
        noise = ("no noise_std" if family.default_noise_std is None
                 else f"default noise_std = {family.default_noise_std:g}")
        print(f"\n{name}  (default n = {family.default_n}, {noise})  [{FAMILIES.origin(name)}]")
        for fname, f in family.fields.items():
            default = "required" if f.required else f"default {f.default!r}"
            print(f"  {fname:<19} {f.type:<10} {default:<22} {f.doc}")
    for name, f in failures.items():
        print(f"\n{name}  not loaded: {f.error} ({f.source})  [{f.origin}]")
    return 0


def cmd_estimators(args) -> int:
    from .estimators import ESTIMATORS

    specs = dict(ESTIMATORS.items())  # built-in first, then the plugins (loaded now)
    failures = ESTIMATORS.failures()
    if args.json:
        out = [{"name": name, "origin": ESTIMATORS.origin(name), "loaded": True, "summary": spec.summary,
                "fields": [{"name": f.name, "type": getattr(f.type, "__name__", str(f.type)),
                            "default": _field_default(f), "doc": f.metadata.get("doc", "")}
                           for f in dataclasses.fields(spec.config_cls)]}
               for name, spec in specs.items()]
        out += [{"name": name, "origin": f.origin, "loaded": False, "source": f.source, "error": f.error}
                for name, f in failures.items()]
        print(json.dumps(out, indent=2, default=str))
        return 0
    rows = [[name, ESTIMATORS.origin(name), _short(spec.summary, 80)] for name, spec in specs.items()]
    rows += [[name, f.origin, _short(f"not loaded: {f.error}", 80)] for name, f in failures.items()]
    print(_fmt_table(["estimator", "origin", "summary"], rows))
    if _plugins_note():
        print(f"({_plugins_note()})")
    for name, spec in specs.items():
        print(f"\n{name}  [{ESTIMATORS.origin(name)}]: {spec.summary}")
        fields = dataclasses.fields(spec.config_cls)  # a dataclass: the registry checks it
        width = max((len(f.name) for f in fields), default=0)
        for f in fields:
            print(f"  {f.name:<{width}} = {_field_default(f)!r:<12} {f.metadata.get('doc', '')}")
    for name, f in failures.items():
        print(f"\n{name}  [{f.origin}]: not loaded: {f.error} ({f.source})")
    return 0


def _field_default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return "required"


# ----------------------------------------------------------------------- run
def _num(x: Optional[float], fmt: str = "{:.3g}") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return fmt.format(x)


def _check_executor(args) -> None:
    """--executor / --scheduler / --jobs agree (one line each otherwise)."""
    if args.executor == "dask" and not args.scheduler:
        raise UserError("--executor dask needs --scheduler ADDRESS (e.g. tcp://host:8786)")
    if args.scheduler and args.executor != "dask":
        raise UserError(f"--scheduler {args.scheduler}: only with --executor dask")
    if args.executor == "dask" and args.jobs > 1:
        raise UserError(f"--jobs {args.jobs}: only with --executor local (a Dask cluster runs as many runs at once "
                        "as its workers have threads)")


def cmd_run(args) -> int:
    import torch

    from .catalogue import build_target, case_truth
    from .estimators import get_estimator
    from .estimators.base import make_config
    from .execute import run_specs
    from .references import with_best_reference
    from .runner import RunSpec, check_device
    from .store import Store

    if args.seeds < 1:
        raise UserError(f"--seeds {args.seeds}: must be >= 1")
    if args.threads < 1:
        raise UserError(f"--threads {args.threads}: must be >= 1")
    if args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: must be >= 1")
    _check_executor(args)
    # one intra-op thread by default: the catalogue's models are small, where a thread pool costs
    # more than it gains, and 10x more when another process competes for the cores
    torch.set_num_threads(args.threads)
    device = check_device(args.device)
    spec = get_estimator(args.estimator)
    suite_settings = []  # a suite's own sampler settings ([estimator.NAME]); --set overrides them
    if args.suite:
        from .catalogue import suite_config

        suite_settings = [f"{k}={v}" for k, v in suite_config(args.suite, spec.name).items()]
    config = make_config(spec.config_cls, suite_settings + (args.set or []))
    cases = _load_cases(args)
    explicit = bool(args.case)

    runnable = []
    skipped = []
    for case in cases:
        truth = case_truth(case)
        # a truth the case asserts runs (labelled, scored apart); other non-exact kinds (trained anchors,
        # theory values) run when named: by --case, --family or --suite
        if not (explicit or args.family or args.suite) and truth.kind not in ("exact", "asserted"):
            skipped.append((case.id, f"truth kind is {truth.kind}"))
            continue
        reason = spec.supports(build_target(case))
        if reason:
            if explicit:
                raise UserError(f"--case {case.id}: estimator {spec.name} does not support it: {reason}")
            skipped.append((case.id, reason))
            continue
        runnable.append(case)
    if not runnable:
        raise UserError("no case to run (check --case / --family / --file)")

    specs = [RunSpec(case, spec, config, seed) for case in runnable for seed in range(args.seeds)]
    records = []
    with Store(args.db) as store:
        bar = _progress(len(specs), args.quiet)
        def on_start(run, cached):
            if bar is not None:
                bar.set_description(f"{run.case.id} seed {run.seed}" + (" (stored)" if cached else ""))
        def step_progress(done, total):
            if bar is not None:
                bar.set_postfix_str(f"step {done}/{total}", refresh=False)
        for record, cached in run_specs(specs, store, device, args.force, args.jobs, on_start, step_progress,
                                              args.executor, args.scheduler):
            # no exact reference: a reference run of the same posterior in the store, or the shipped
            # table (today's); a stored run gets today's attribution
            record = with_best_reference(store, dict(record, cached=cached))
            records.append(record)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()

    if args.json:
        print(json.dumps(records if args.full else [_brief(r) for r in records], indent=2, default=str))
        return 0
    with_ref = any(r.get("lambda_ref") is not None for r in records)
    headers = ["case", "λ", "λ̂ ± se", "rel.err", "R-hat", "ESS", "seconds"]
    if with_ref:
        headers[4:4] = ["λ_nβ,γ", "ref", "estimand bias", "sampler bias"]
    headers.append("")
    rows = []
    for r in records:
        row = [
            r["case"] + (f" #{r['seed']}" if args.seeds > 1 else ""),
            r["lambda"] + (f" ({r['truth_kind']})" if r.get("truth_kind") not in (None, "exact") else ""),
            f"{_num(r['lambda_hat'], '{:.4g}')} ± {_num(r['se'], '{:.2g}')}",
            _num(r["rel_error"], "{:+.1%}"),
            _num(r["rhat"], "{:.3f}"),
            _num(r["ess"], "{:.0f}"),
            _num(r["seconds"], "{:.1f}"),
        ]
        if with_ref:
            row[4:4] = [
                _num(r.get("lambda_ref"), "{:.4g}"),
                reference_label(r) or "—",
                _num(r.get("estimand_bias"), "{:+.3g}"),
                (_num(r.get("sampler_bias"), "{:+.3g}") + " ± " + _num(r.get("sampler_bias_se"), "{:.2g}"))
                if r.get("sampler_bias") is not None else "—",
            ]
        row.append(("stored " if r["cached"] else "") + _note(r))
        rows.append(row)
    print(_fmt_table(headers, rows, right=set(range(2, len(headers) - 1))))
    # runs against a truth that is not computed (asserted by the case) are counted apart
    errs = sorted(abs(r["rel_error"]) for r in records if r["rel_error"] is not None and math.isfinite(r["rel_error"])
                  and r.get("truth_kind") in (None, "exact"))
    fresh = sum(not r["cached"] for r in records)
    summary = f"\n{len(records)} runs ({fresh} computed, {len(records) - fresh} from {args.db})"
    if errs:
        median = errs[len(errs) // 2] if len(errs) % 2 else 0.5 * (errs[len(errs) // 2 - 1] + errs[len(errs) // 2])
        summary += f"; median |rel.err| {median:.1%}, worst {errs[-1]:.1%}"
    apart = [r for r in records if r.get("truth_kind") not in (None, "exact")]
    if apart:
        summary += (f"\n{len(apart)} against a truth that is not computed ({', '.join(sorted({r['truth_kind'] for r in apart}))}; "
                    f"not in the median): {', '.join(r['case'] for r in apart[:4])}{', …' if len(apart) > 4 else ''}")
    refd = [r for r in records if r.get("sampler_bias") is not None and r.get("sampler_bias_se")]
    if refd:
        sig = [r for r in refd if abs(r["sampler_bias"]) > Z * r["sampler_bias_se"]]
        summary += (f"\n{len(refd)} with a reference λ_nβ,γ: {len(sig)} with a sampler bias beyond {Z:g} se"
                    + (f" ({', '.join(r['case'] for r in sig[:4])}{', …' if len(sig) > 4 else ''})" if sig else ""))
    off = [r for r in records if r.get("attribution") is not None]
    if off:
        counts = ", ".join(f"{sum(r['attribution'] == a for r in off)} {a}" for a in ATTRIBUTIONS)
        summary += f"\n{len(off)} worse than {TOLERANCE:.0%}: {counts} (see the note column)"
    print(summary)
    detected = _detection_summary(records)
    if detected:
        print(detected)
    stale = sorted({r.get("torch_version") or "?" for r in records
                    if r["cached"] and r.get("torch_version") != torch.__version__})
    if stale:
        n_stale = sum(r["cached"] and r.get("torch_version") != torch.__version__ for r in records)
        print(f"⚠ {n_stale} stored run{'s' if n_stale > 1 else ''} made with torch {', '.join(stale)}, this is "
              f"torch {torch.__version__}: a rerun may give another λ̂ (--force recomputes)")
    by_reason: dict[str, list[str]] = {}
    for cid, why in skipped:
        # Group reasons that differ only by the case named in them.
        generic = re.sub(r"\s*\(d = \d+\)", "", why.replace(cid, "…"))
        by_reason.setdefault(generic, []).append(cid)
    for why, ids in by_reason.items():
        print(f"skipped {len(ids)} case{'s' if len(ids) > 1 else ''} ({', '.join(ids[:3])}{', …' if len(ids) > 3 else ''}): {why}")
    return 0


def _detection_summary(records: list) -> str:
    """One line for runs whose targets know their memorised samples: the mean AUROC of λ̂_i at finding
    them, beside the two baselines at w* (``llcbench report`` has the intervals and curves)."""
    from .score.detection import auroc

    rows = [r["per_sample"] for r in records if (r.get("per_sample") or {}).get("memorised")]
    if not rows:
        return ""
    mean = lambda col: sum(auroc([math.nan if v is None else v for v in ps[col]], ps["memorised"])  # noqa: E731
                           for ps in rows) / len(rows)
    return (f"per-sample LLC of {len(rows)} run{'s' if len(rows) > 1 else ''} with known memorised samples: mean AUROC "
            f"{mean('lambda'):.3f} (baselines at w*: loss {mean('loss_star'):.3f}, gradient norm "
            f"{mean('grad_norm_star'):.3f}; llcbench report shows the intervals)")


def _note(record: dict) -> str:
    """The last column: for a run worse than the tolerance, its attribution with the numbers behind
    it and the hints; else its first warning."""
    if record.get("attribution") is None:
        return _warning_note(record["warnings"])
    texts = record.get("findings_short") or []
    note = record["attribution"] + (": " + "; ".join(texts) if texts else "")
    if record["attribution"] == "unattributed" and record["warnings"]:
        note += "; " + _warning_note(record["warnings"])
    return note


def _warning_note(warnings: list) -> str:
    """The first warning, shortened, and how many more (all are in the record: --json --full)."""
    if not warnings:
        return ""
    first = warnings[0] if len(warnings[0]) <= 70 else warnings[0][:69] + "…"
    return f"⚠ {first}" + (f" (+{len(warnings) - 1})" if len(warnings) > 1 else "")


_BRIEF_KEYS = ("case", "estimator", "lambda", "lambda_float", "lambda_hat", "se", "rel_error", "rhat", "ess",
               "seconds", "grad_evals", "config", "seed", "multiplicity", "truth_kind", "lambda_ref",
               "lambda_ref_source", "estimand_bias", "sampler_bias", "sampler_bias_se", "attribution",
               "attribution_reason", "findings", "warnings", "key", "cached", "torch_version")


def _brief(record: dict) -> dict:
    return {k: record.get(k) for k in _BRIEF_KEYS}


def _progress(total: int, quiet: bool):
    if quiet:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="run", file=sys.stderr, dynamic_ncols=True, leave=False)


# ---------------------------------------------------------------------- main
# --------------------------------------------------------------------- sweep
# The default grid of the SG-MCMC estimators: the three knobs that move an LLC estimate by factors
# of two (step size, temperature, localisation), each a factor ≈ 4–10 either side of its default.
DEFAULT_GRID = (("step_scale", ("0.05", "0.2", "0.8")), ("nbeta_scale", ("0.3", "1", "3")),
                ("gamma_scale", ("1e-4", "1e-3", "1e-2")))


def _parse_grid(items: Optional[list], config_cls) -> list[tuple[str, list[str]]]:
    fields = {f.name for f in dataclasses.fields(config_cls)}
    if not items:
        if not all(name in fields for name, _ in DEFAULT_GRID):
            raise UserError("--grid: this estimator has no default grid; give --grid FIELD=V1,V2,...")
        return [(name, list(values)) for name, values in DEFAULT_GRID]
    grid = []
    for item in items:
        name, eq, values = item.partition("=")
        name = name.strip()
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not eq or not name or not vals:
            raise UserError(f"--grid {item!r}: expected FIELD=V1,V2,...")
        if name not in fields:
            raise UserError(f"--grid {item!r}: unknown config field {name!r} (see `llcbench estimators`)")
        if any(name == g for g, _ in grid):
            raise UserError(f"--grid: field {name!r} given twice")
        grid.append((name, vals))
    return grid


SHARED_GRID_MAX_POINTS = 32  # grid points per shared chain tensor (rows = points × chains)


def _sweep_specs(spec, configs: list, cases: list, seeds: int, independent: bool) -> list:
    """The sweep's runs. Where the estimator can (``estimate_grid``) and the grid's configs differ
    only in ε, nβ, γ, the points of one case and seed share one chain tensor (in chunks of at most
    SHARED_GRID_MAX_POINTS), keyed as such; otherwise, or with --independent, one run per point."""
    from .estimators.sgmcmc.grid import shareable
    from .runner import RunSpec, shared_grid

    if independent or spec.estimate_grid is None or len(configs) < 2 or shareable(configs) is not None:
        return [RunSpec(case, spec, cfg, seed) for cfg in configs for case in cases for seed in range(seeds)]
    chunks = [configs[i : i + SHARED_GRID_MAX_POINTS] for i in range(0, len(configs), SHARED_GRID_MAX_POINTS)]
    return [s for case in cases for seed in range(seeds) for chunk in chunks
            for s in shared_grid(case, spec, chunk, seed)]


def cmd_trajectory(args) -> int:
    """Train one network with checkpoints and estimate λ̂ at each (``llcbench.trajectory``)."""
    import torch

    from .catalogue import load_catalogue, select, suite_file
    from .estimators import get_estimator
    from .estimators.base import make_config
    from .execute import run_specs
    from .runner import RunSpec, check_device
    from .store import Store
    from .trajectory import checkpoint_cases

    for flag in ("seeds", "jobs", "threads"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} {getattr(args, flag)}: must be >= 1")
    torch.set_num_threads(args.threads)
    device = check_device(args.device)
    spec = get_estimator(args.estimator)
    config = make_config(spec.config_cls, args.set or [])
    files = list(args.file or [])
    cases = (select(load_catalogue(files, builtin=not args.no_builtin), [args.case]) if args.case
             else load_catalogue([suite_file("trajectory")], builtin=False))
    if len(cases) != 1:
        raise UserError(f"--case {args.case}: names {len(cases)} cases; a trajectory trains one")
    checkpoints = checkpoint_cases(cases[0], args.every, args.project_gradient)
    specs = [RunSpec(c, spec, config, seed) for c in checkpoints for seed in range(args.seeds)]
    with Store(args.db) as store:
        records = [r for r, _ in run_specs(specs, store, device, args.force, args.jobs)]
    records.sort(key=lambda r: (r["case_definition"]["params"]["train_steps"], r["seed"]))
    rows = []
    for r in records:
        info = r.get("target_info") or {}
        rows.append([str(r["case_definition"]["params"]["train_steps"]), str(r["seed"]),
                     _num(info.get("train_accuracy"), "{:.1%}"), _num(info.get("test_accuracy"), "{:.1%}"),
                     _num(info.get("train_loss"), "{:.3g}"),
                     f"{_num(r['lambda_hat'], '{:.4g}')} ± {_num(r['se'], '{:.2g}')}", _num(r["rhat"], "{:.3f}")])
    print(_fmt_table(["step", "seed", "train acc", "test acc", "train loss", "λ̂ ± se", "R-hat"], rows,
                     right={2, 3, 4, 5, 6}))
    print(f"\n{len(records)} runs of {cases[0].id} into {args.db}"
          + (" (sampler restricted to the hyperplane normal to ∇L_n)" if args.project_gradient else ""))
    return 0


def cmd_sweep(args) -> int:
    import itertools
    import statistics

    import torch

    from .catalogue import build_target, case_truth
    from .estimators import get_estimator
    from .estimators.base import config_dict, make_config
    from .execute import run_specs
    from .store import Store

    for flag in ("seeds", "jobs"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} {getattr(args, flag)}: must be >= 1")
    _check_executor(args)
    torch.set_num_threads(1)
    spec = get_estimator(args.estimator)
    grid = _parse_grid(args.grid, spec.config_cls)
    points = [dict(zip([g for g, _ in grid], values)) for values in itertools.product(*[v for _, v in grid])]
    fixed = list(args.set or [])
    configs = [make_config(spec.config_cls, fixed + [f"{k}={v}" for k, v in point.items()]) for point in points]
    cases = [c for c in _load_cases(args) if case_truth(c).kind == "exact" or args.case]
    runnable = [c for c in cases if not spec.supports(build_target(c))]
    if not runnable:
        raise UserError("no case to run (check --case / --family / --file)")
    specs = _sweep_specs(spec, configs, runnable, args.seeds, independent=args.independent)
    by_config: dict[str, list[dict]] = {}
    with Store(args.db) as store:
        bar = _progress(len(specs), args.quiet)
        for record, cached in run_specs(specs, store, "cpu", args.force, args.jobs,
                                              executor=args.executor, scheduler=args.scheduler):
            by_config.setdefault(json.dumps(record["config"], sort_keys=True), []).append(record)
            if bar is not None:
                bar.set_description(f"{record['case']}" + (" (stored)" if cached else ""))
                bar.update(1)
        if bar is not None:
            bar.close()
    rows, out = [], []
    for point, cfg in zip(points, configs):
        recs = by_config.get(json.dumps(config_dict(cfg), sort_keys=True), [])
        errs = [abs(r["rel_error"]) for r in recs if r.get("rel_error") is not None and math.isfinite(r["rel_error"])]
        unhealthy = sum(bool((r.get("diagnostics") or {}).get("divergent_chains")) or (r.get("rhat") or 1) > 1.1
                        for r in recs)
        summary = {**point, "runs": len(recs), "median_abs_rel_error": statistics.median(errs) if errs else None,
                   "worst_abs_rel_error": max(errs) if errs else None, "unhealthy": unhealthy,
                   "seconds": sum(r.get("seconds") or 0 for r in recs)}
        out.append(summary)
        rows.append([*point.values(), str(len(recs)), _num(summary["median_abs_rel_error"], "{:.1%}"),
                     _num(summary["worst_abs_rel_error"], "{:.1%}"), str(unhealthy), _num(summary["seconds"], "{:.0f}")])
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    names = [g for g, _ in grid]
    print(_fmt_table([*names, "runs", "median |rel.err|", "worst", "unhealthy", "seconds"], rows,
                     right=set(range(len(names) + 5))))
    print(f"\n{len(points)} grid points × {len(runnable)} cases × {args.seeds} seed(s) = {len(specs)} runs in "
          f"{args.db}; unhealthy = a divergent chain or split R-hat > 1.1; `llcbench report` scores the sweep")
    return 0


# --------------------------------------------------------------------- references
def _reference_cases(args) -> tuple[list, list]:
    """(cases that need a sampled reference, [(case id, why not)])."""
    from .references.build import needs_reference

    todo, skipped = [], []
    for case in _load_cases(args):
        why = needs_reference(case)
        (skipped.append((case.id, why)) if why else todo.append(case))
    return todo, skipped


def _entry_row(e: dict, status: str = "") -> list[str]:
    d = e.get("diagnostics") or {}
    rel = e["se"] / abs(float(e["lambda_ref"])) if e.get("lambda_ref") and e.get("se") is not None else None
    return [e["case"], str(e.get("lambda", "")), _num(e.get("nbeta"), "{:.4g}"), _num(e.get("gamma"), "{:.3g}"),
            f"{_num(e.get('lambda_ref'), '{:.4g}')} ± {_num(e.get('se'), '{:.2g}')}", _num(rel, "{:.2%}"),
            _num(d.get("rhat"), "{:.3f}"), _num(d.get("ess_bulk"), "{:.0f}"), _num(d.get("ess_tail"), "{:.0f}"),
            str(sum(d.get("divergences") or [])), _num(e.get("seconds"), "{:.1f}"),
            status or ("met" if e.get("standard_met") else "NOT MET: " + "; ".join(e.get("standard_failed") or []))]


_ENTRY_HEADERS = ["case", "λ", "nβ", "γ", "λ_nβ,γ ± se", "se/λ_ref", "R-hat", "ESS bulk", "ESS tail", "div.",
                  "seconds", "standard"]


def cmd_references(args) -> int:
    import torch

    from .references.table import DATA, ReferenceTable

    def load_table(path):
        try:
            return ReferenceTable.load(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
            raise UserError(f"--table {path}: not a reference table ({exc})") from None

    if args.action == "show":
        table = load_table(args.table or DATA)
        rows = [_entry_row(e) for e in sorted(table.entries, key=lambda e: e["case"])]
        if args.json:
            print(json.dumps(table.entries, indent=1))
            return 0
        print(_fmt_table(_ENTRY_HEADERS, rows, right={2, 3, 4, 5, 6, 7, 8, 9, 10}))
        met = sum(bool(e.get("standard_met")) for e in table.entries)
        print(f"\n{len(table.entries)} entries in {table.path} ({met} meet the standard)")
        return 0
    if args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: must be >= 1")
    torch.set_num_threads(1)  # the run key includes the thread count: workers run one thread each
    from .references.build import build
    from .runner import check_device

    device = check_device(args.device)
    from .store import Store

    todo, skipped = _reference_cases(args)
    if args.action == "check":
        table = load_table(args.table or DATA)
        have = {e["case"]: e for e in table.entries if e.get("standard_met")}
        todo = [c for c in todo if c.id in have][: args.sample]
        if not todo:
            raise UserError("no shipped entry to check (check --case / --family / --table)")
    if not todo:
        raise UserError("no case needs a sampled reference (check --case / --family / --file)")
    if args.action == "build" and args.write_table:
        table = load_table(args.write_table)  # a bad table file is refused before any run
    with Store(args.db) as store:
        entries = build(todo, store, args.set or [], seed=args.seed, jobs=args.jobs, force=args.force, device=device,
                        on_done=None if args.quiet else
                        (lambda rec, cached: print(f"  {rec['case']}: {rec['lambda_hat']:.5g} ± {rec['se']:.2g}"
                                                   f"{' (stored)' if cached else ''}", file=sys.stderr)))
    if args.action == "check":
        rows, worst = [], 0.0
        for e in entries:
            old = have[e["case"]]
            z = (e["lambda_ref"] - old["lambda_ref"]) / math.hypot(e["se"], old["se"])
            worst = max(worst, abs(z))
            rows.append([e["case"], f"{old['lambda_ref']:.5g} ± {old['se']:.2g}",
                         f"{e['lambda_ref']:.5g} ± {e['se']:.2g}", f"{z:+.2f}", "ok" if abs(z) <= 3 else "DISAGREE"])
        if args.json:
            print(json.dumps(entries, indent=1))
        else:
            print(_fmt_table(["case", "shipped", f"seed {args.seed}", "z", ""], rows, right={1, 2, 3}))
            print(f"\n{len(rows)} entries recomputed with seed {args.seed}; largest |z| {worst:.2f} "
                  "(|z| > 3: the two runs disagree beyond their standard errors)")
        return 0 if worst <= 3 else 1
    if args.write_table:
        for e in entries:
            table.put(e)
        path = table.save(args.write_table)
    if args.json:
        print(json.dumps(entries, indent=1))
        return 0
    print(_fmt_table(_ENTRY_HEADERS, [_entry_row(e) for e in entries], right={2, 3, 4, 5, 6, 7, 8, 9, 10}))
    met = sum(bool(e.get("standard_met")) for e in entries)
    print(f"\n{len(entries)} entries ({met} meet the standard) in {args.db}"
          + (f"; table written to {path}" if args.write_table else ""))
    for cid, why in skipped:
        if args.case:
            print(f"skipped {cid}: {why}")
    return 0


# ---------------------------------------------------------------------- report
def cmd_report(args) -> int:
    from pathlib import Path

    from .report import build_report
    from .score import build_scores
    from .store import Store

    db = Path(args.db)
    if not db.is_file():  # opening would create an empty store: say what is missing instead
        raise UserError(f"--db {db}: no store there (llcbench run --estimator sgld makes one)")
    out = Path(args.out) if args.out else db.parent / "report"
    with Store(db) as store:
        scores = build_scores(store, args.estimator, args.version)
        paths = build_report(scores, out, store)
    print(f"{paths['html']} ({scores['runs']} runs of llcbench {scores['llcbench_version']}, "
          f"{len(scores['leaderboard'])} estimator × config rows); also {paths['markdown'].name}, "
          f"{paths['scores'].name}")
    if scores["other_versions"]:
        print("not scored (other llcbench versions): "
              + "; ".join(f"{v}: {o['runs']} runs" for v, o in scores["other_versions"].items()))
    if args.open:
        import webbrowser

        webbrowser.open(paths["html"].resolve().as_uri())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="llcbench", description="Benchmark and calibrate local learning coefficient estimators.")
    parser.add_argument("--version", action="version", version=f"llcbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def executor_args(p):
        p.add_argument("--executor", choices=("local", "dask"), default="local",
                       help="local: serial, or --jobs worker processes (default); dask: the workers of a Dask "
                            "cluster (pip install 'llcbench[distributed]'), results into the store from here")
        p.add_argument("--scheduler", metavar="ADDRESS", help="with --executor dask: the scheduler, e.g. tcp://host:8786")

    def case_args(p, with_case: bool):
        p.add_argument("--file", action="append", metavar="F.toml", help="also load this case file (repeatable)")
        p.add_argument("--no-builtin", action="store_true", help="only the --file cases, not the built-in catalogue")
        p.add_argument("--suite", metavar="NAME", help="a shipped suite instead of the built-in catalogue "
                       "(holdout: out-of-sample cases, never used for tuning)")
        p.add_argument("--family", metavar="NAME", help="only cases of this family")
        if with_case:
            p.add_argument("--case", action="append", metavar="ID", help="only this case (repeatable; 'dln/' selects a prefix)")

    p = sub.add_parser("cases", help="list the cases with their exact truth")
    case_args(p, with_case=False)
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_cases)

    p = sub.add_parser("truth", help="λ and m of a polynomial potential, or why they cannot be certified "
                       "(--case/--family: of catalogue cases, with their kind)")
    p.add_argument("expr", nargs="?", help='polynomial in w1, w2, ..., e.g. "w1**2 * w2**4"')
    case_args(p, with_case=True)  # --case ID: the truth of catalogue cases (kind exact or asserted) instead
    p.add_argument("--prior", metavar="H1,H2,...", help="prior exponents h: prior ∝ ∏|w_i|^h_i")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_truth)

    p = sub.add_parser("families", help="list the case families (built-in and plugins) and their fields")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_families)

    p = sub.add_parser("estimators", help="list the estimators (built-in and plugins) and their config fields")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_estimators)

    p = sub.add_parser("run", help="run an estimator over cases; results go to the store")
    p.add_argument("--estimator", required=True, metavar="NAME")
    case_args(p, with_case=True)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
    p.add_argument("--seeds", type=int, default=1, metavar="K", help="run seeds 0..K-1 (default 1)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch intra-op threads (default 1: fastest for the catalogue's small models; "
                        "λ̂ is bit-identical for a fixed N)")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (default 1)")
    executor_args(p)
    p.add_argument("--db", default=str(_default_db()), metavar="PATH", help="results store (default %(default)s)")
    p.add_argument("--force", action="store_true", help="recompute runs already in the store")
    p.add_argument("--json", action="store_true", help="print the records as JSON")
    p.add_argument("--full", action="store_true", help="with --json: whole records (traces, diagnostics)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("trajectory", help="λ̂ over training: train one modular_addition network with checkpoints, "
                                          "estimate λ̂ at each into the store")
    p.add_argument("--estimator", default="sgld", metavar="NAME")
    p.add_argument("--case", metavar="ID", help="the case to train (default: the shipped 'trajectory' suite's one)")
    p.add_argument("--file", action="append", metavar="F.toml", help="also load this case file (repeatable)")
    p.add_argument("--no-builtin", action="store_true", help="only the --file cases, not the built-in catalogue")
    p.add_argument("--every", type=int, default=250, metavar="K", help="a checkpoint every K training steps")
    p.add_argument("--project-gradient", action="store_true",
                   help="sample only the hyperplane normal to the loss gradient at each checkpoint")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
    p.add_argument("--seeds", type=int, default=1, metavar="K", help="run seeds 0..K-1 (default 1)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=1, metavar="N", help="torch intra-op threads (default 1)")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (default 1)")
    p.add_argument("--db", default=str(_default_db()), metavar="PATH", help="results store (default %(default)s)")
    p.add_argument("--force", action="store_true", help="recompute runs already in the store")
    p.set_defaults(func=cmd_trajectory)

    p = sub.add_parser("sweep", help="run an estimator over a grid of config values; results go to the store")
    p.add_argument("--estimator", required=True, metavar="NAME")
    case_args(p, with_case=True)
    p.add_argument("--grid", action="append", metavar="FIELD=V1,V2,...",
                   help="a config field and its values (repeatable; the grid is their product; default for "
                        "SG-MCMC estimators: " + " ".join(f"{k}={','.join(v)}" for k, v in DEFAULT_GRID) + ")")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="a config field fixed for the whole grid")
    p.add_argument("--seeds", type=int, default=1, metavar="K", help="run seeds 0..K-1 at every grid point")
    p.add_argument("--independent", action="store_true",
                   help="one run per grid point, each with its own chains (the records `llcbench run` makes); "
                        "by default the points of a case share one chain tensor where the estimator can "
                        "(sgld, rmsprop_sgld, sgnht), several times faster, keyed as shared-chain runs")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (default 1)")
    executor_args(p)
    p.add_argument("--db", default=str(_default_db()), metavar="PATH", help="results store (default %(default)s)")
    p.add_argument("--force", action="store_true", help="recompute runs already in the store")
    p.add_argument("--json", action="store_true", help="print a summary per grid point as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("report", help="scores and a self-contained HTML report from the store")
    p.add_argument("--db", default=str(_default_db()), metavar="PATH", help="results store (default %(default)s)")
    p.add_argument("--estimator", action="append", metavar="NAME", help="only this estimator (repeatable)")
    p.add_argument("--version", metavar="V", help="score the runs of this llcbench version (default: the newest "
                   "in the store; the others are listed, never pooled)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: report/ beside the store)")
    p.add_argument("--open", action="store_true", help="open index.html in the web browser")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("references", help="the reference λ_nβ,γ table: build, check, show")
    refs = p.add_subparsers(dest="action", required=True, parser_class=_Parser)
    for action, text in (("build", "compute references with the HMC reference sampler (into the store)"),
                         ("check", "recompute shipped entries with another seed and show agreement"),
                         ("show", "list the entries of the shipped (or a given) table")):
        q = refs.add_parser(action, help=text)
        q.add_argument("--table", metavar="PATH", help="a reference table file instead of the shipped one")
        q.add_argument("--json", action="store_true", help="print the entries as JSON")
        q.set_defaults(func=cmd_references)
        if action == "show":
            continue
        case_args(q, with_case=True)
        q.add_argument("--set", action="append", metavar="KEY=VALUE", help="override an hmc config field")
        q.add_argument("--seed", type=int, default=0 if action == "build" else 1)
        q.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (one thread each)")
        q.add_argument("--device", default="cpu", help="cpu or cuda (the reference sampler's device)")
        q.add_argument("--db", default=str(_default_db()), metavar="PATH", help="results store (default %(default)s)")
        q.add_argument("--force", action="store_true", help="recompute runs already in the store")
        q.add_argument("--quiet", action="store_true", help="no per-case progress lines")
        if action == "build":
            q.add_argument("--write-table", metavar="PATH", help="also add the entries to this table file")
        else:
            q.add_argument("--sample", type=int, default=5, metavar="K", help="how many entries to recompute")
    return parser


def _default_db():
    from .store import DEFAULT_DB

    return DEFAULT_DB


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except UserError as exc:
        prog = exc.prog if isinstance(exc, _UsageError) else "llcbench"
        print(f"{prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("llcbench: interrupted; finished runs are in the store, rerun to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
