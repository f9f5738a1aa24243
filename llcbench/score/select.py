"""Which runs a score is about: records from the store, grouped by estimator × config, per version.

A *group* is every run of one estimator at one full config (its content
hash) made by one llcbench version: runs of another version may differ in
what the estimator does, so they are never pooled; nor are the points of
shared-chain grid runs (a sweep's) pooled with independent runs. Within a group the runs
of one case (several seeds) are aggregated into one *case row*: the mean of
λ̂ over seeds is the group's estimate of the case, and its standard error
is the root-mean-square se over √k. Each run is first read with today's
references and attribution (``llcbench.references.with_best_reference``),
so scores change when a reference is added, as the run table does.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Iterable, Optional

from ..health import healthy, problems
from ..locality import is_local
from ..references import with_best_reference
from ..store import Store


# Most of a record's bytes, and needed only for the traces figure (read back by key for a few runs).
HEAVY_FIELDS = ("loss_trace", "lambda_hat_chains", "per_sample")


def finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def config_hash(config: dict) -> str:
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def version_key(version: Optional[str]) -> tuple:
    """Sortable form of "0.3.0" (unknown or odd versions sort first)."""
    parts = []
    for p in str(version or "").split("."):
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else -1)
    return tuple(parts)




def default_config(estimator: str) -> Optional[dict]:
    """The estimator's default config as a record stores it, or None when it is not installed here."""
    try:
        from ..estimators import get_estimator
        from ..estimators.base import config_dict, make_config

        return config_dict(make_config(get_estimator(estimator).config_cls, []))
    except Exception:  # an estimator from a plugin not installed here: labels fall back to the store
        return None


@dataclass
class Group:
    """Runs of one estimator at one config by one llcbench version."""

    estimator: str
    config: dict
    version: str
    records: list = field(default_factory=list)
    shared_chains: bool = False  # points of shared-chain grid runs (a sweep's), kept apart from independent runs

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)

    @property
    def id(self) -> str:
        return f"{self.estimator}@{self.config_hash}" + ("+shared" if self.shared_chains else "")


def case_row(records: list[dict], unhealthy: Optional[list[dict]] = None) -> dict:
    """One case of one group: the runs of its seeds aggregated; ``unhealthy``: the case's runs that
    are not (``llcbench.health``), counted and named beside it (``records`` then holds the others)."""
    unhealthy = unhealthy or []
    first = records[0]
    lam = first.get("lambda_float")
    hats = [r["lambda_hat"] for r in records if finite(r.get("lambda_hat"))]
    ses = [r["se"] for r in records if finite(r.get("lambda_hat")) and finite(r.get("se"))]
    k = len(hats)
    lam_hat = statistics.fmean(hats) if hats else None
    se = math.sqrt(statistics.fmean([s * s for s in ses]) / len(ses)) if ses else None
    rel = (lam_hat - lam) / abs(lam) if lam_hat is not None and finite(lam) and lam != 0 else None
    # a failed run (no finite λ̂) still shows the reference of its posterior, without a sampler part
    refd = [r for r in records if finite(r.get("lambda_ref")) and (finite(r.get("lambda_hat")) or not hats)]
    lam_ref = statistics.fmean(r["lambda_ref"] for r in refd) if refd else None
    estimand_rel = (lam_ref - lam) / abs(lam) if lam_ref is not None and finite(lam) and lam != 0 else None
    sampler_rel = rel - estimand_rel if estimand_rel is not None and rel is not None else None
    spread = statistics.stdev(hats) if k >= 2 else None
    grad = [r["grad_evals"] for r in records if finite(r.get("grad_evals"))]
    secs = [r["seconds"] for r in records if finite(r.get("seconds"))]
    attributions = [r.get("attribution") for r in records if r.get("attribution")]
    return {
        "case": first["case"],
        "family": first.get("family"),
        "truth_kind": first.get("truth_kind"),
        "lambda": first.get("lambda"),
        "lambda_float": lam,
        "multiplicity": first.get("multiplicity"),
        "seeds": len(records) + len(unhealthy),
        "lambda_hat": lam_hat,
        "se": se,
        "rel_error": rel,
        "lambda_ref": lam_ref,
        "reference": _ref_label(refd[0]) if refd else None,
        "estimand_rel": estimand_rel,
        "sampler_rel": sampler_rel,
        "seed_spread": spread,
        "mean_se": statistics.fmean(ses) if ses else None,
        "healthy": all(healthy(r) for r in records + unhealthy),
        "unhealthy_runs": sum(not healthy(r) for r in records + unhealthy),
        "problems": [f"seed {r.get('seed')}: {'; '.join(problems(r))}" for r in records + unhealthy if not healthy(r)],
        "local": _local(records + unhealthy),
        "non_local_runs": sum(is_local(r) is False for r in records + unhealthy),
        "rhat": max((r["rhat"] for r in records if finite(r.get("rhat"))), default=None),
        "ess": min((r["ess"] for r in records if finite(r.get("ess"))), default=None),
        "grad_evals": statistics.fmean(grad) if grad else None,
        "seconds": statistics.fmean(secs) if secs else None,
        "attribution": max(attributions, key=attributions.count) if attributions else None,
        "keys": [r["key"] for r in records + unhealthy],
    }


def _local(records: list[dict]) -> Optional[bool]:
    """False if a seed's posterior is not local (``llcbench.locality``), True if every seed's is, else None."""
    verdicts = [is_local(r) for r in records]
    return False if False in verdicts else True if verdicts and all(v is True for v in verdicts) else None


def _ref_label(record: dict) -> str:
    from ..attribution import reference_label

    return reference_label(record) or "reference"


@dataclass
class Selection:
    """The runs a report is about, and what was left out."""

    store: str
    version: Optional[str]  # the llcbench version scored (the newest in the store by default)
    groups: list  # of Group, that version only
    other_versions: dict  # version -> {"runs": n, "estimators": [...]}, kept apart
    provenance: dict  # git commits, torch versions, devices of the runs scored


def load(store: Store, estimators: Optional[Iterable[str]] = None, version: Optional[str] = None,
         table=None) -> Selection:
    """Read the store (without the heavy fields), keep ``estimators`` (all by default) and one
    llcbench version (the newest by default), read every run against today's references, group."""
    wanted = set(estimators) if estimators else None
    records = [r for r in store.records_without(HEAVY_FIELDS) if wanted is None or r.get("estimator") in wanted]
    versions: dict[str, list] = {}
    for r in records:
        versions.setdefault(r.get("llcbench_version") or "?", []).append(r)
    if version is None and versions:
        version = max(versions, key=version_key)
    chosen = versions.get(version, []) if version is not None else []
    others = {v: {"runs": len(rs), "estimators": sorted({r["estimator"] for r in rs})}
              for v, rs in sorted(versions.items(), key=lambda kv: version_key(kv[0]), reverse=True) if v != version}
    cache: dict = {}
    groups: dict[tuple, Group] = {}
    for r in chosen:
        r = with_best_reference(store, r, table, cache)
        gk = (r["estimator"], config_hash(r["config"]), bool(r.get("shared_chains")))
        if gk not in groups:
            groups[gk] = Group(r["estimator"], r["config"], version, shared_chains=gk[2])
        groups[gk].records.append(r)
    prov = {
        "git_commits": sorted({str(r.get("git_commit")) for r in chosen}),
        "torch_versions": sorted({str(r.get("torch_version")) for r in chosen}),
        "devices": sorted({str(r.get("device")) for r in chosen}),
        "first_run": min((r["created_at"] for r in chosen), default=None),
        "last_run": max((r["created_at"] for r in chosen), default=None),
    }
    ordered = sorted(groups.values(), key=lambda g: (g.estimator, -len(g.records), g.config_hash))
    return Selection(str(store.path), version, ordered, others, prov)


def case_rows(group: Group) -> list[dict]:
    """The group's case rows, in the order its cases were first run: one per case definition (id
    and content hash: runs of two definitions are never pooled), aggregated over its healthy runs
    (``llcbench.health``; over all of them, to show them, when none is healthy)."""
    by_case: dict[tuple, list] = {}
    for r in group.records:
        by_case.setdefault((r["case"], r.get("case_key")), []).append(r)
    rows = []
    for rs in by_case.values():
        rs = sorted(rs, key=lambda r: r.get("seed") or 0)
        good = [r for r in rs if healthy(r)]
        rows.append(case_row(good, [r for r in rs if not healthy(r)]) if good else case_row(rs))
    return rows


def scored(row: dict) -> bool:
    """Whether a case row enters the scores: an exact truth and at least one healthy run."""
    return row["truth_kind"] == "exact" and row["unhealthy_runs"] < row["seeds"]


def config_diff(config: dict, base: Optional[dict]) -> dict:
    """The fields of ``config`` that differ from ``base`` (all of them when base is None)."""
    if base is None:
        return dict(config)
    return {k: v for k, v in sorted(config.items()) if base.get(k) != v}
