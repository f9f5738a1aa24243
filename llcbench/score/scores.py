"""The whole ``scores.json``: every score of every group, from the store and the shipped references.

The schema is documented field by field in docs/scores.md (a test checks a
built document against that page). Cases whose truth is not ``exact``
(asserted or theory-kind values) are kept out of every bias, ordinality and
calibration score and listed apart, per group, under ``apart``; the
modular-arithmetic networks' theory values are scored by their scaling in p
under ``theory`` (``scaling.py``).
"""

from __future__ import annotations

import datetime as _dt
import math
import statistics
from collections import Counter
from typing import Iterable, Optional

from ..version import __version__
from ..errors import UserError
from ..store import Store
from .bias import bias_block
from .calibration import calibration_block, covered_reference, covered_truth
from .cost import cost_block, error_against_cost
from .detection import detection_scores
from .ordinality import ordinality_block
from .scaling import scaling_block
from .trajectory import trajectory_block
from .select import Group, Selection, case_rows, config_diff, default_config, healthy, load, scored
from .sensitivity import find_sweeps, sweep_scores

SCHEMA = 1


def score_block(rows: list[dict], records: list[dict], unhealthy_runs: int = 0) -> dict:
    """Bias, ordinality, calibration and cost of some case rows and the (healthy) runs behind them;
    ``unhealthy_runs``: the runs of the same cases left out by the health rule, counted beside."""
    return {"runs": len(records), "unhealthy_runs": unhealthy_runs, "cases": len(rows), **bias_block(rows, records),
            **ordinality_block(rows), **calibration_block(rows, records), **cost_block(rows, records)}


SHARED_SUFFIX = " (shared chains)"  # a sweep's shared-chain grid points, scored apart from independent runs


def _label(group: Group, defaults: dict, modal: dict) -> tuple[str, dict, bool]:
    base = defaults.get(group.estimator) or modal.get(group.estimator)
    diff = config_diff(group.config, base)
    is_default = defaults.get(group.estimator) is not None and not diff and not group.shared_chains
    text = ("defaults" if is_default else ", ".join(f"{k}={v}" for k, v in diff.items())
            or ("defaults" if defaults.get(group.estimator) is not None and not diff else "(the usual config)"))
    return text + (SHARED_SUFFIX if group.shared_chains else ""), diff, is_default


def group_scores(group: Group, label: str, diff: dict, is_default: bool) -> dict:
    rows = case_rows(group)
    # an unhealthy run (llcbench.health) is no LLC estimate: every number below is of the healthy runs,
    # the others counted beside; a case with no healthy run is listed apart, like a theory truth
    exact = [r for r in rows if scored(r)]
    in_scores = {id(r) for r in exact}
    keys = {k for r in exact for k in r["keys"]}
    exact_records = [rec for rec in group.records if rec["key"] in keys and healthy(rec)]
    every_exact = [r for r in rows if r["truth_kind"] == "exact"]
    for r in exact:  # per-case coverage flags: the share over the case's seeds
        recs = [rec for rec in exact_records if rec["key"] in set(r["keys"])]
        t = [c for c in map(covered_truth, recs) if c is not None]
        f = [c for c in map(covered_reference, recs) if c is not None]
        r["coverage_truth"] = sum(t) / len(t) if t else None
        r["coverage_reference"] = sum(f) / len(f) if f else None
    families = {}
    for fam in sorted({r["family"] for r in every_exact}):
        fr = [r for r in exact if r["family"] == fam]
        families[fam] = score_block(fr, [rec for rec in exact_records if rec["family"] == fam],
                                    sum(r["unhealthy_runs"] for r in every_exact if r["family"] == fam))
    return {
        "id": group.id,
        "estimator": group.estimator,
        "config_hash": group.config_hash,
        "config": group.config,
        "config_diff": diff,
        "label": label,
        "is_default": is_default,
        "llcbench_version": group.version,
        "seeds": sorted({rec.get("seed") for rec in group.records}),
        "overall": score_block(exact, exact_records, sum(r["unhealthy_runs"] for r in every_exact)),
        "families": families,
        "cases": exact,
        "apart": [dict(r, coverage_truth=None, coverage_reference=None) for r in rows if id(r) not in in_scores],
        "runs": len(group.records),
        "unhealthy_runs": sum(r["unhealthy_runs"] for r in rows),
        "run_health": [run_health(rec) for rec in group.records],
        "theory": scaling_block(group.records),
        "trajectories": trajectory_block(group.records),
        "error_against_cost": error_against_cost(exact),
        "sensitivity": {"sweep": None, "stable_families": [], "stable_region_size": None},
        "headline": False,
    }


def build_scores(store: Store, estimators: Optional[Iterable[str]] = None, version: Optional[str] = None,
                 table=None) -> dict:
    """scores.json as a dict. Bad input (an empty store, an estimator the store has no run of, a
    version it does not hold) is a UserError."""
    estimators = list(estimators or [])
    if store.count() == 0:
        raise UserError(f"{store.path}: the store has no runs (llcbench run --estimator sgld fills it)")
    if estimators:
        have = {r[0] for r in store.conn.execute("SELECT DISTINCT estimator FROM runs")}
        missing = [e for e in estimators if e not in have]
        if missing:
            raise UserError(f"--estimator {missing[0]}: no run of it in {store.path} "
                            f"(the store has {', '.join(sorted(have))})")
    sel: Selection = load(store, estimators or None, version, table)
    if not sel.groups:
        raise UserError(f"{store.path}: no run of llcbench version {version} (the store has "
                        f"{', '.join(sel.other_versions) or 'none'})")
    defaults = {g.estimator: default_config(g.estimator) for g in sel.groups}
    modal = {}
    for est in {g.estimator for g in sel.groups}:
        mine = [g for g in sel.groups if g.estimator == est]
        modal[est] = max(mine, key=lambda g: len(g.records)).config
    groups = [group_scores(g, *_label(g, defaults, modal)) for g in sel.groups]
    by_id = {g["id"]: g for g in groups}
    for est in {g["estimator"] for g in groups}:  # one headline config per estimator: the figures' series
        mine = [g for g in groups if g["estimator"] == est]
        pick = next((g for g in mine if g["is_default"]), None) or max(
            mine, key=lambda g: (g["overall"]["cases"], g["overall"]["runs"], -len(g["config_diff"])))
        pick["headline"] = True
        for g in mine:  # the other configs are named by how they differ from the headline one
            if g is not pick:
                g["label"] = (", ".join(f"{k}={v}" for k, v in config_diff(g["config"], pick["config"]).items())
                              or "same config") + (SHARED_SUFFIX if g["id"].endswith("+shared") else "")
    sweeps = []
    for sweep_groups in find_sweeps(sel.groups):
        # a case with no healthy run at a grid point is there, unhealthy: the point is not stable for its family
        s = sweep_scores(sweep_groups, {g.id: by_id[g.id]["cases"] + [r for r in by_id[g.id]["apart"]
                                                                      if r["truth_kind"] == "exact"]
                                        for g in sweep_groups})
        sweeps.append(s)
        for p in s["points"]:
            by_id[p["group"]]["sensitivity"] = {"sweep": s["id"], "stable_families": p["stable_families"],
                                                "stable_region_size": len(s["stable_all"])}
    common = common_cases(groups)
    leaderboard = sorted((_leader_row(g, common) for g in groups),
                         key=lambda r: (not r["headline"], r["common_median_abs_rel_error"] is None,
                                        r["common_median_abs_rel_error"] or 0.0, r["median_abs_rel_error"] is None,
                                        r["median_abs_rel_error"] or 0.0))
    return {
        "schema": SCHEMA,
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "generated_by": f"llcbench {__version__}",
        "store": sel.store,
        "llcbench_version": sel.version,
        "other_versions": sel.other_versions,
        "provenance": sel.provenance,
        "estimators": sorted({g["estimator"] for g in groups}),
        "runs": sum(g["runs"] for g in groups),
        "unhealthy_runs": sum(g["unhealthy_runs"] for g in groups),
        "common_cases": len(common),
        "leaderboard": leaderboard,
        "groups": groups,
        "sweeps": sweeps,
        "skipped": skipped_cases(store, groups),
        "attributions": dict(Counter(r["attribution"] for g in groups for r in g["cases"] if r["attribution"])),
        "detection": detection_scores(store, sel.version, estimators or None),
    }


def run_health(rec: dict) -> dict:
    """One run's diagnostics as the health rule (``llcbench.health``) reads them, and its problems."""
    from ..health import divergent_chains, ess_bulk, problems, rhat
    from ..locality import is_local

    diag = rec.get("diagnostics") or {}
    chains = (rec.get("config") or {}).get("chains") or len(rec.get("lambda_hat_chains") or []) or None
    return {"key": rec["key"], "case": rec["case"], "seed": rec.get("seed"),
            "rhat": _finite_or_none(rhat(rec)), "ess": _finite_or_none(ess_bulk(rec)),
            "divergent_chains": divergent_chains(rec),
            "chains": chains if isinstance(chains, int) and not isinstance(chains, bool) else None,
            "local": is_local(rec), "problems": problems(rec), **_length(rec),
            "reported": sorted(k for k in ("rhat", "ess_bulk", "divergent_chains", "divergences") if k in diag)}


def _length(rec: dict) -> dict:
    """The steps an SG-MCMC run took, how often its adaptive length doubled them, and the start it
    began with: its kind ('orbit', 'tempered') and steps (None: not reported; steps 0: started at w*).
    Records of llcbench 0.9 name only a tempered start (``extra.tempered_start``)."""
    extra = rec.get("extra") or {}
    steps = extra.get("steps")
    settling = extra.get("settling") or {}
    start = extra.get("start") or ({**extra["tempered_start"], "kind": "tempered"}
                                   if isinstance(extra.get("tempered_start"), dict) else {})
    taken = start.get("steps")
    taken = taken if isinstance(taken, int) and not isinstance(taken, bool) else None
    return {"steps": steps if isinstance(steps, int) and not isinstance(steps, bool) else None,
            "doublings": settling.get("doublings") if isinstance(settling.get("doublings"), int) else None,
            "start_steps": taken,
            "start": start.get("kind") if taken else None,
            "start_step_factor": _finite_or_none(start.get("step_factor")) if taken else None}


def _finite_or_none(x):
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def skipped_cases(store: Store, groups: list[dict]) -> list[dict]:
    """The cases run requests left out for the scored estimators, with why (the store's note of
    them: ``Store.note_skipped``), less those the estimator has runs of since."""
    ran = {(g["estimator"], r["case"]) for g in groups for r in g["cases"] + g["apart"]}
    ests = {g["estimator"] for g in groups}
    return [{"estimator": est, "case": case, "reason": why}
            for est, cases in sorted(store.skipped().items()) if est in ests
            for case, why in sorted(cases.items()) if (est, case) not in ran]


def _case_id(row: dict) -> tuple:
    return row["case"], row.get("case_key")


def common_cases(groups: list[dict]) -> set:
    """The cases (id and definition) that every headline group with a scored case scored: a ranking
    compares estimators on the same cases, so a row that ran one family is not set against rows that
    ran all. Headline groups only (one per estimator): a sweep's grid point that lost a case to an
    unhealthy run must not take that case out of every estimator's comparison."""
    sets = [{_case_id(r) for r in g["cases"]} for g in groups if g["cases"] and g["headline"]]
    return set.intersection(*sets) if sets else set()


def _leader_row(g: dict, common: set) -> dict:
    o = g["overall"]
    sens = g["sensitivity"]
    mine = [abs(r["rel_error"]) for r in g["cases"] if _case_id(r) in common and r["rel_error"] is not None]
    return {
        "group": g["id"], "estimator": g["estimator"], "label": g["label"], "headline": g["headline"],
        "runs": o["runs"], "unhealthy_runs": o["unhealthy_runs"], "cases": o["cases"],
        "common_cases": len(mine), "common_median_abs_rel_error": statistics.median(mine) if mine else None,
        "median_abs_rel_error": o["median_abs_rel_error"],
        "within_10pct": o["within_10pct"], "kendall_tau": o["kendall_tau"], "coverage_truth": o["coverage_truth"],
        "coverage_reference": o["coverage_reference"], "coverage_truth_verdict": o["coverage_truth_verdict"],
        "coverage_truth_k": o["coverage_truth_k"], "coverage_reference_verdict": o["coverage_reference_verdict"],
        "coverage_reference_k": o["coverage_reference_k"], "stable_region_size": sens["stable_region_size"],
        "stable_families": sens["stable_families"], "seconds_total": o["seconds_total"],
    }
