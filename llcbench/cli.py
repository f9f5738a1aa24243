"""The ``llcbench`` command line: argument parsing, one call into the library (``llcbench.api``) per
command, and printing (the tables are built in ``llcbench.report.console``).

Bad input (a case file, a flag, a config value) prints one line naming the
file, the case and the field, and exits with status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from .version import __version__
from .errors import UserError
from .store import DEFAULT_DB
from .sweep_axes import DEFAULT_GRID


class _UsageError(UserError):
    """A command-line usage error, printed as argparse does: ``PROG: error: MESSAGE``."""

    def __init__(self, prog: str, message: str):
        super().__init__(message)
        self.prog = prog


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples as written; ``{estimators}`` and ``{suites}`` in a flag's help become the
    installed names when the help is shown (so plugins load only then, never at ``import llcbench``)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "{estimators}" in text:
            text = text.replace("{estimators}", ", ".join(_estimator_names()))
        if "{suites}" in text:
            from .catalogue import suite_names

            text = text.replace("{suites}", ", ".join(suite_names()))
        return text


def _estimator_names() -> list[str]:
    """The installed estimators: the built-ins, then the plugins (loaded on first call)."""
    from .estimators import ESTIMATORS

    return list(ESTIMATORS)


def _estimator(name: str) -> str:
    """argparse ``type`` of --estimator: an installed name, else the registry's one-line reason, which
    argparse prefixes with the flag ('argument --estimator: unknown estimator ...')."""
    from .estimators import get_estimator

    try:
        get_estimator(name)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (no usage block) and exit status 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D401
        # main() prints the prefix: the message itself must not repeat the program's name
        raise _UsageError(self.prog, message)


def _case_choice(args) -> dict:
    """The case-selecting flags as the library's keywords."""
    return {"cases": getattr(args, "case", None), "family": args.family, "suite": args.suite,
            "files": list(args.file or []), "builtin": not args.no_builtin}


def _executor_choice(args) -> dict:
    return {"jobs": args.jobs, "executor": args.executor, "scheduler": args.scheduler}


def _plugins_note() -> Optional[str]:
    from .plugins import NO_PLUGINS_ENV, plugins_disabled

    return f"entry-point plugins not loaded: {NO_PLUGINS_ENV} is set" if plugins_disabled() else None


# --------------------------------------------------------------------- listings
def cmd_cases(args) -> int:
    from .api import cases
    from .report.console import cases_table

    rows = cases(**_case_choice(args))
    print(json.dumps(rows, indent=2) if args.json else cases_table(rows))
    return 0


def cmd_families(args) -> int:
    from .api import families
    from .case import COMMON_FIELDS
    from .report.console import families_listing

    rows = families()
    print(json.dumps(rows, indent=2, default=str) if args.json else families_listing(rows, COMMON_FIELDS, _plugins_note()))
    return 0


def cmd_estimators(args) -> int:
    from .api import estimators
    from .report.console import estimators_listing

    rows = estimators()
    print(json.dumps(rows, indent=2, default=str) if args.json else estimators_listing(rows, _plugins_note()))
    return 0


# --------------------------------------------------------------------- truth
def cmd_truth(args) -> int:
    from .api import cases, truth
    from .report.console import cases_truth_text, truth_text

    if args.case or args.family or args.file or args.suite:
        if args.expr is not None:
            raise UserError("truth: give a polynomial or catalogue cases (--case, --family, --file), not both")
        rows = [{"case": r["id"], **{k: r[k] for k in ("lambda", "lambda_float", "multiplicity", "kind", "source")}}
                for r in cases(**_case_choice(args))]
        print(json.dumps(rows) if args.json else cases_truth_text(rows))
        return 0
    if args.expr is None:
        raise UserError("truth: give a polynomial, or --case ID for the truth of catalogue cases")
    found = truth(args.expr, _int_list(args.prior, "--prior") if args.prior else None)
    if args.json and found["certified"]:
        print(json.dumps({k: v for k, v in found.items() if k != "certified"}))
    else:
        print(truth_text(found))
    return 0 if found["certified"] else 1  # a well-formed polynomial the engine cannot certify: 1


def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{flag} {text}: expected comma-separated integers, e.g. 1,1") from None


# ----------------------------------------------------------------------- run
def cmd_run(args) -> int:
    import torch

    from .api import brief, run
    from .report.console import Progress, run_summary, run_table

    bar = Progress(args.quiet)

    def on_start(spec, cached):
        bar.describe(f"{spec.case.id} seed {spec.seed}" + (" (stored)" if cached else ""))

    def on_step(done, total):
        bar.postfix(f"step {done}/{total}")

    try:
        records = run(args.estimator, **_case_choice(args), seeds=args.seeds, config=args.set or [], db=args.db,
                      device=args.device, threads=args.threads, **_executor_choice(args), force=args.force,
                      full=True, on_plan=bar.start, on_start=on_start, on_step=on_step,
                      on_record=lambda record: bar.update(1))
    finally:
        bar.close()
    if args.json:
        print(json.dumps(records if args.full else [brief(r) for r in records], indent=2, default=str))
        return 0
    print(run_table(records, args.seeds, wide=args.wide))
    print(run_summary(records, args.db, records.skipped, torch.__version__))
    return 0


def cmd_trajectory(args) -> int:
    """Train one network with checkpoints and estimate λ̂ at each (``llcbench.trajectory``)."""
    from .api import run_checkpoints
    from .report.console import trajectory_table

    case, records = run_checkpoints(args.estimator, case=args.case, files=list(args.file or []),
                                    builtin=not args.no_builtin, every=args.every,
                                    project_gradient=args.project_gradient, config=args.set or [],
                                    seeds=args.seeds, db=args.db, jobs=args.jobs, device=args.device,
                                    threads=args.threads, force=args.force)
    print(trajectory_table(records))
    print(f"\n{len(records)} runs of {case} into {args.db}"
          + (" (sampler restricted to the hyperplane normal to ∇L_n)" if args.project_gradient else ""))
    return 0


def cmd_sweep(args) -> int:
    from .api import sweep
    from .report.console import Progress, sweep_table

    bar = Progress(args.quiet)

    def on_record(record, cached):
        bar.describe(f"{record['case']}" + (" (stored)" if cached else ""))
        bar.update(1)

    try:
        points = sweep(args.estimator, grid=args.grid, **_case_choice(args), seeds=args.seeds, config=args.set or [],
                       db=args.db, device=args.device, threads=args.threads, **_executor_choice(args),
                       independent=args.independent, force=args.force, on_plan=bar.start, on_record=on_record)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(points, indent=2))
        return 0
    print(sweep_table(points, points.axes, args.seeds, points.cases, points.runs, args.db))
    return 0


# --------------------------------------------------------------------- references
def cmd_references(args) -> int:
    from .api import build_references, reference_table
    from .report.console import check_table, entries_summary

    if args.action == "show":
        table = reference_table(args.table)
        entries = sorted(table.entries, key=lambda e: e["case"])
        print(json.dumps(table.entries, indent=1) if args.json else entries_summary(entries, f" in {table.path}"))
        return 0
    checked = reference_table(args.table) if args.action == "check" else None
    written = getattr(args, "write_table", None)
    entries, skipped, have = build_references(
        **_case_choice(args), checked=checked, sample=getattr(args, "sample", None), config=args.set or [],
        seed=args.seed, jobs=args.jobs, force=args.force, device=args.device, db=args.db, write_table=written,
        on_done=None if args.quiet else
        (lambda rec, cached: print(f"  {rec['case']}: {rec['lambda_hat']:.5g} ± {rec['se']:.2g}"
                                   f"{' (stored)' if cached else ''}", file=sys.stderr)))
    if args.action == "check":
        text, worst = check_table(entries, have, args.seed)
        print(json.dumps(entries, indent=1) if args.json else text)
        return 0 if worst <= 3 else 1
    if args.json:
        print(json.dumps(entries, indent=1))
        return 0
    print(entries_summary(entries, f" in {args.db}", f"; table written to {written}" if written else ""))
    for cid, why in skipped if args.case else []:
        print(f"skipped {cid}: {why}")
    return 0


# ---------------------------------------------------------------------- report
def cmd_report(args) -> int:
    from .api import report
    from .report.console import report_summary

    html = report(args.db, args.out, estimators=args.estimator, version=args.version, force=args.force)
    print(report_summary(html, json.loads((html.parent / "scores.json").read_text(encoding="utf-8"))))
    if args.open:
        import webbrowser

        webbrowser.open(Path(html).resolve().as_uri())
    return 0


# ----------------------------------------------------------------------- store
def cmd_store(args) -> int:
    from .store_check import run_check

    text, status = run_check(args.db, args.repair, args.json)
    print(text)
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="llcbench", description="Benchmark and calibrate local learning coefficient estimators.")
    parser.add_argument("--version", action="version", version=f"llcbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(subs, name: str, help: str, example: str):
        """A subcommand whose --help starts with its one-line description and ends with an example."""
        return subs.add_parser(name, help=help, description=(help[0].upper() if help[0].isascii() else help[0]) + help[1:] + ".",
                               epilog="example:\n  " + "\n  ".join(example.splitlines()))

    def executor_args(p):
        p.add_argument("--executor", choices=("local", "dask"), default="local",
                       help="local: serial, or --jobs worker processes (default); dask: the workers of a Dask "
                            "cluster (pip install 'llcbench[distributed]'), results into the store from here")
        p.add_argument("--scheduler", metavar="ADDRESS", help="with --executor dask: the scheduler, e.g. tcp://host:8786")

    def run_args(p, set_help="override a config field (repeatable)", seeds_help="run seeds 0..K-1 (default 1)"):
        """The flags every command that runs an estimator takes."""
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help=set_help)
        p.add_argument("--seeds", type=int, default=1, metavar="K", help=seeds_help)
        p.add_argument("--device", default="cpu", help="cpu or cuda")
        p.add_argument("--threads", type=int, default=1, metavar="N",
                       help="torch intra-op threads (default 1: fastest for the catalogue's small models; "
                            "λ̂ is bit-identical for a fixed N)")
        p.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (default 1)")
        p.add_argument("--db", default=str(DEFAULT_DB), metavar="PATH", help="results store (default %(default)s)")
        p.add_argument("--force", action="store_true", help="recompute runs already in the store")

    def case_args(p, with_case: bool):
        p.add_argument("--file", action="append", metavar="F.toml", help="also load this case file (repeatable)")
        p.add_argument("--no-builtin", action="store_true", help="only the --file cases, not the built-in catalogue")
        p.add_argument("--suite", metavar="NAME", help="a shipped suite instead of the built-in catalogue: "
                       "{suites} (holdout: out-of-sample cases, never used for tuning)")
        p.add_argument("--family", metavar="NAME", help="only cases of this family")
        if with_case:
            p.add_argument("--case", action="append", metavar="ID", help="only this case (repeatable; 'dln/' selects a prefix)")
        p.add_argument("--force-size", action="store_true",
                       help="lift the size limits of docs/limits.md (for someone who really means it)")

    p = command(sub, "cases", "list the cases with their exact truth", "llcbench cases --family polynomial")
    case_args(p, with_case=False)
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_cases)

    p = command(sub, "truth", "λ and m of a polynomial potential, or why they cannot be certified "
                "(--case/--family: of catalogue cases, with their kind)",
                'llcbench truth "w1**2 * w2**4"\nllcbench truth --case poly/w1^4')
    p.add_argument("expr", nargs="?", help='polynomial in w1, w2, ..., e.g. "w1**2 * w2**4"')
    case_args(p, with_case=True)  # --case ID: the truth of catalogue cases (kind exact or asserted) instead
    p.add_argument("--prior", metavar="H1,H2,...", help="prior exponents h: prior ∝ ∏|w_i|^h_i")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_truth)

    p = command(sub, "families", "list the case families (built-in and plugins) and their fields", "llcbench families")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_families)

    p = command(sub, "estimators", "list the estimators (built-in and plugins) and their config fields",
                "llcbench estimators")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_estimators)

    p = command(sub, "run", "run an estimator over cases; results go to the store",
                "llcbench run --estimator sgld --family polynomial --seeds 2")
    p.add_argument("--estimator", required=True, metavar="NAME", type=_estimator, help="the estimator: {estimators} (`llcbench estimators` describes them)")
    case_args(p, with_case=True)
    run_args(p)
    executor_args(p)
    p.add_argument("--json", action="store_true", help="print the records as JSON")
    p.add_argument("--full", action="store_true", help="with --json: whole records (traces, diagnostics)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--wide", action="store_true", help="the run table with every column in full (by default "
                   "it fits 160 columns: the reference and the biases share columns, long cells are cut)")
    p.set_defaults(func=cmd_run)

    p = command(sub, "trajectory", "λ̂ over training: train one modular_addition network with checkpoints, "
                "estimate λ̂ at each into the store", "llcbench trajectory --every 500")
    p.add_argument("--estimator", default="sgld", metavar="NAME", type=_estimator,
                   help="the estimator (default sgld): {estimators}")
    p.add_argument("--case", metavar="ID", help="the case to train (default: the shipped 'trajectory' suite's one)")
    p.add_argument("--file", action="append", metavar="F.toml", help="also load this case file (repeatable)")
    p.add_argument("--no-builtin", action="store_true", help="only the --file cases, not the built-in catalogue")
    p.add_argument("--every", type=int, default=250, metavar="K", help="a checkpoint every K training steps")
    p.add_argument("--project-gradient", action="store_true",
                   help="sample only the hyperplane normal to the loss gradient at each checkpoint")
    run_args(p)
    p.set_defaults(func=cmd_trajectory)

    p = command(sub, "sweep", "run an estimator over a grid of config values; results go to the store",
                "llcbench sweep --estimator sgld --family polynomial --grid step_scale=0.1,0.2,0.4")
    p.add_argument("--estimator", required=True, metavar="NAME", type=_estimator, help="the estimator: {estimators} (`llcbench estimators` describes them)")
    case_args(p, with_case=True)
    p.add_argument("--grid", action="append", metavar="FIELD=V1,V2,...",
                   help="a config field and its values (repeatable; the grid is their product; default for "
                        "SG-MCMC estimators: " + " ".join(f"{k}={','.join(v)}" for k, v in DEFAULT_GRID) + ")")
    run_args(p, "a config field fixed for the whole grid", "run seeds 0..K-1 at every grid point")
    p.add_argument("--independent", action="store_true",
                   help="one run per grid point, each with its own chains (the records `llcbench run` makes); "
                        "by default the points of a case share one chain tensor where the estimator can "
                        "(sgld, rmsprop_sgld, sgnht), several times faster, keyed as shared-chain runs")
    executor_args(p)
    p.add_argument("--json", action="store_true", help="print a summary per grid point as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)

    p = command(sub, "report", "scores and a self-contained HTML report from the store",
                "llcbench report --db results.sqlite --open")
    p.add_argument("--db", default=str(DEFAULT_DB), metavar="PATH", help="results store (default %(default)s)")
    p.add_argument("--estimator", action="append", metavar="NAME", help="only this estimator (repeatable)")
    p.add_argument("--version", metavar="V", help="score the runs of this llcbench version (default: the newest "
                   "in the store; the others are listed, never pooled)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: NAME.report/ beside the store NAME.sqlite)")
    p.add_argument("--force", action="store_true", help="write into --out even if it holds another store's report")
    p.add_argument("--open", action="store_true", help="open index.html in the web browser")
    p.set_defaults(func=cmd_report)

    p = command(sub, "store", "check a results store for damaged records (and move them aside)",
                "llcbench store check --db results.sqlite")
    stores = p.add_subparsers(dest="action", required=True, parser_class=_Parser)
    q = command(stores, "check", "report damaged records; --repair moves them aside (bytes kept)",
                "llcbench store check --db results.sqlite --repair")
    q.add_argument("--db", default=str(DEFAULT_DB), metavar="PATH", help="results store (default %(default)s)")
    q.add_argument("--repair", action="store_true", help="move damaged records into the table damaged_runs "
                   "(a store SQLite finds damaged: its readable runs into a fresh store, the file moved aside)")
    q.add_argument("--json", action="store_true", help="print the findings as JSON")
    q.set_defaults(func=cmd_store)

    p = command(sub, "references", "the reference λ_nβ,γ table: build, check, show", "llcbench references show")
    refs = p.add_subparsers(dest="action", required=True, parser_class=_Parser)
    for action, text in (("build", "compute references with the HMC reference sampler (into the store)"),
                         ("check", "recompute shipped entries with another seed and show agreement"),
                         ("show", "list the entries of the shipped (or a given) table")):
        q = command(refs, action, text, f"llcbench references {action}" + (" --case poly/w1^4" if action == "build" else ""))
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
        q.add_argument("--db", default=str(DEFAULT_DB), metavar="PATH", help="results store (default %(default)s)")
        q.add_argument("--force", action="store_true", help="recompute runs already in the store")
        q.add_argument("--quiet", action="store_true", help="no per-case progress lines")
        if action == "build":
            q.add_argument("--write-table", metavar="PATH", help="also add the entries to this table file")
        else:
            q.add_argument("--sample", type=int, default=5, metavar="K", help="how many entries to recompute")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        from . import limits

        limits.lift(bool(getattr(args, "force_size", False)))
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
