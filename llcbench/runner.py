"""Runs: case × estimator × config × seed -> a record in the store.

A record is a flat JSON-able dict: the case and its truth, the estimator and
its full config, the seed, the estimate with its diagnostics, and the
provenance (llcbench version, git commit, torch version, device, time).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import inspect
import json
import math
import subprocess
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import torch

from .version import __version__
from .case import Case
from .catalogue import build_target, case_truth
from .errors import UserError
from .estimators.base import Estimate, EstimatorSpec, config_dict
from .attribution import attribution, estimates_lambda
from .references.stored import with_reference
from .references.table import loss_fingerprint
from .store import Store, run_key
from .truth import Truth


@lru_cache(maxsize=1)
def git_commit() -> Optional[str]:
    """The commit of the llcbench checkout, if it is one (with '+dirty' for local changes)."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=5
        )
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def check_device(device: str) -> str:
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: CUDA is not available on this machine")
        return device
    raise UserError(f"--device {device}: expected cpu or cuda")


def device_key(device: str) -> str:
    """The device as it enters a run key: "cpu", or "cuda:K" ("cuda" is the current CUDA device, so
    "cuda" and "cuda:0" name the same run on a one-GPU machine)."""
    dev = torch.device(device)
    if dev.type == "cpu":
        return "cpu"
    if dev.type == "cuda" and dev.index is None:
        return f"cuda:{torch.cuda.current_device() if torch.cuda.is_available() else 0}"
    return str(dev)


@dataclass(frozen=True)
class RunSpec:
    """One planned run."""

    case: Case
    estimator: EstimatorSpec
    config: object
    seed: int
    shared_chains: str = ""  # a point of a shared-chain grid run: that grid's hash (shared_grid)

    def key(self, device: str) -> str:
        """The run key on ``device`` at the current torch intra-op thread count: both change λ̂
        (reduction order differs between devices and between thread counts), so a run on another
        device or thread count is another run. The torch version is provenance, not key (a stored
        run from another torch version is served, with a warning: ``served_warnings``)."""
        return run_key(self.case.definition(), self.estimator.name, config_dict(self.config), self.seed,
                       __version__, device_key(device), torch.get_num_threads(), self.shared_chains)


def shared_grid(case: Case, estimator: EstimatorSpec, configs: list, seed: int) -> list[RunSpec]:
    """The specs of one shared-chain grid run (``estimator.estimate_grid``): the configs of one case
    and seed, each keyed with the hash of the whole ordered grid it runs in."""
    # the case and seed are in the run key already; they are in the grid's hash so that one grid's
    # points (the unit an executor runs together) are told apart from another case's or seed's
    text = json.dumps([case.definition(), estimator.name, seed, [config_dict(c) for c in configs]],
                      sort_keys=True, separators=(",", ":"), default=str)
    grid = f"{len(configs)}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    return [RunSpec(case, estimator, c, seed, grid) for c in configs]


def exact_reference(target, estimator: str, estimate: Estimate) -> Optional[dict]:
    """The ``exact`` estimator's λ_nβ,γ at the run's (nβ, γ) — what an ideal sampler would report —
    as a reference for ``references.with_reference``, where one applies; for SGLD on a quadratic
    potential without minibatches with the λ of the *discretised* chain at the run's step size too.

    None for an estimator of λ itself (``attribution.estimates_lambda``: no single λ_nβ,γ is its
    estimand), for a run without a posterior (nβ, γ), and where the exact estimator does not apply
    (e.g. deep linear networks).
    """
    from .estimators import exact

    nbeta, gamma = estimate.nbeta, estimate.gamma
    if (estimates_lambda(estimate.extra) or estimator == "exact" or nbeta is None or gamma is None
            or exact.supports(target) is not None):
        return None
    try:
        ref = exact.estimate(target, exact.ExactConfig(nbeta=float(nbeta), gamma=float(gamma)))
    except UserError:
        return None
    out = {"estimator": "exact", "computed": True, "lambda_hat": ref.lambda_hat, "se": ref.se,
           "method": ref.extra.get("method")}
    step = estimate.extra.get("step_size")
    if estimator == "sgld" and step is not None and target.num_data == 0:
        try:
            out["lambda_ref_discrete"] = exact.estimate(
                target, exact.ExactConfig(nbeta=float(nbeta), gamma=float(gamma), sgld_step_size=float(step))).lambda_hat
        except UserError:
            pass
    return out


def served_warnings(record: dict) -> list[str]:
    """Warnings about serving a stored record in this process: another torch version (not in the
    run key: a new torch would otherwise discard every stored run, yet its kernels may round
    differently, so λ̂ of a rerun need not be bit-identical)."""
    ran = record.get("torch_version")
    if ran != torch.__version__:
        return [f"stored run made with torch {ran}, this is torch {torch.__version__}: a rerun may give "
                "another λ̂ (--force recomputes)"]
    return []


def make_record(spec: RunSpec, estimate: Estimate, device: str, reference: Optional[dict] = None,
                dim: Optional[int] = None, truth: Optional[Truth] = None) -> dict:
    """The run's record (``store.RunRecord``), decomposed against ``reference`` (``exact_reference``)
    where one is given, with its attribution. ``truth``: the case's checked truth where the caller
    has it (the target carries it), else computed here."""
    truth = case_truth(spec.case) if truth is None else truth
    lam = float(truth.lam)
    lam_hat = estimate.lambda_hat
    rel = (lam_hat - lam) / lam if lam != 0 and math.isfinite(lam_hat) else float("nan")
    diag = estimate.diagnostics
    record = {
        "key": spec.key(device),
        "case": spec.case.id,
        "case_key": spec.case.key(),
        "family": spec.case.family,
        "case_definition": spec.case.definition(),
        "n": spec.case.n,
        "dim": dim,  # the target's parameter count d (health: no local posterior gives λ̂ far above d/2)
        "lambda": str(truth.lam),
        "lambda_float": lam,
        "multiplicity": truth.multiplicity,
        "truth_kind": truth.kind,
        "truth_source": truth.source,
        "estimator": spec.estimator.name,
        "config": config_dict(spec.config),
        "seed": spec.seed,
        "shared_chains": spec.shared_chains or None,  # the grid hash of a shared-chain grid run's point
        "nbeta": estimate.nbeta,  # the posterior whose λ_nβ,γ the run estimates (None: an estimator of λ)
        "gamma": estimate.gamma,
        "lambda_hat": lam_hat,
        "lambda_hat_chains": estimate.lambda_hat_chains,
        "se": estimate.se,
        "rel_error": rel,
        "rhat": diag.get("rhat"),
        "ess": diag.get("ess", diag.get("ess_bulk")),
        "diagnostics": diag,
        "warnings": estimate.warnings,
        "loss_trace": estimate.loss_trace,
        "extra": estimate.extra,
        "lambda_ref": None,
        "lambda_ref_source": None,
        "estimand_bias": None,
        "sampler_bias": None,
        "sampler_bias_se": None,
        "grad_evals": estimate.grad_evals,
        "seconds": estimate.seconds,
        "device": device,
        "llcbench_version": __version__,
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),  # bit-identical λ̂ holds for a fixed thread count
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if estimate.locality is not None:  # is the posterior local? (llcbench.locality)
        record["locality"] = estimate.locality
    if estimate.per_sample is not None:  # λ̂_i of the probe samples and the baselines (sgmcmc.per_sample)
        record["per_sample"] = estimate.per_sample
    if reference is not None:
        record = with_reference(record, reference)
    record.update(attribution(record))
    return record


def scalar_info(info: dict) -> dict:
    """The JSON scalars (and lists of them) of a target's info, for its record."""
    plain = (str, int, float, bool, type(None))
    return {k: v for k, v in info.items()
            if isinstance(v, plain) or (isinstance(v, list) and all(isinstance(x, plain) for x in v))}


def execute(spec: RunSpec, device: str = "cpu", progress: Optional[Callable[[int, int], None]] = None) -> dict:
    """Run one estimate (no store involved) and return its record (:func:`execute_grid` of one spec)."""
    return execute_grid([spec], device, progress)[0]


def execute_grid(specs: list[RunSpec], device: str = "cpu",
                 progress: Optional[Callable[[int, int], None]] = None) -> list[dict]:
    """Run the specs of one shared-chain grid (:func:`shared_grid`) as one estimate call, or one
    independent run (one spec, not a grid point); their records. ``seconds`` is the wall time of the
    estimate call, measured here (split evenly between a grid's points; the whole is in
    extra.shared_chains), so that every estimator's seconds mean the same thing (an estimator need
    not time itself: Estimate.seconds defaults to 0.0); what the estimator reported is kept beside
    it as ``estimator_seconds``."""
    first = specs[0]
    target = build_target(first.case)
    start = time.perf_counter()
    if first.shared_chains:
        estimates = first.estimator.estimate_grid(target, [s.config for s in specs], first.seed, device)
    else:
        accepts = "progress" in inspect.signature(first.estimator.estimate).parameters
        kwargs = {"progress": progress} if progress is not None and accepts else {}
        estimates = [first.estimator.estimate(target, first.config, first.seed, device, **kwargs)]
    seconds = (time.perf_counter() - start) / len(specs)
    fingerprint, info = loss_fingerprint(target), scalar_info(target.info)
    records = []
    for spec, estimate in zip(specs, estimates):
        record = make_record(spec, estimate, device, exact_reference(target, spec.estimator.name, estimate),
                             dim=target.dim, truth=target.truth)
        record["loss_fingerprint"] = fingerprint  # matches the run to shipped reference entries
        record["target_info"] = info  # what a trained anchor reports (e.g. its test accuracy)
        record.update(seconds=seconds, estimator_seconds=estimate.seconds)
        records.append(record)
    return records


def run_all(
    specs: Iterable[RunSpec],
    store: Store,
    device: str = "cpu",
    force: bool = False,
    on_start: Optional[Callable[[RunSpec, bool], None]] = None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> Iterator[tuple[dict, bool]]:
    """Run each spec unless its record is already stored; yield (record, was_cached).

    Each record is committed as soon as it is computed, so an interrupted
    sweep loses at most the run in flight and resumes from the store.
    """
    for spec in specs:
        key = spec.key(device)
        cached = None if force else store.get(key)
        if on_start is not None:
            on_start(spec, cached is not None)
        if cached is not None:
            yield dict(cached, warnings=served_warnings(cached) + list(cached.get("warnings") or [])), True
            continue
        record = execute(spec, device, progress)
        store.put(record)
        yield record, False
