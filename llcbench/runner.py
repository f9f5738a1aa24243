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
from .references.table import loss_fingerprint
from .store import Store, run_key


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


def error_decomposition(target, estimator: str, estimate: Estimate) -> dict:
    """Split λ̂ − λ into estimand bias and sampler bias, where a reference exists.

    The reference is the ``exact`` estimator's λ_{nβ,γ} at the same (n, β, γ)
    as the run (read from the estimate's ``extra``): what an ideal sampler
    would report. estimand bias = λ_{nβ,γ} − λ (finite temperature,
    localisation, multiplicity); sampler bias = λ̂ − λ_{nβ,γ}. For SGLD on a
    quadratic potential without minibatches the reference of the
    *discretised* chain at the run's step size is added too (step-size bias).
    Empty when no reference applies (e.g. deep linear networks), and for an estimator of λ itself
    (``attribution.estimates_lambda``: no single λ_nβ,γ is its estimand).
    """
    from .estimators import exact

    if estimates_lambda(estimate.extra):
        return {}
    nbeta, gamma = estimate.extra.get("nbeta"), estimate.extra.get("gamma")
    if estimator == "exact" or nbeta is None or gamma is None or exact.supports(target) is not None:
        return {}
    try:
        ref = exact.estimate(target, exact.ExactConfig(nbeta=float(nbeta), gamma=float(gamma)))
    except UserError:
        return {}
    lam = float(target.truth.lam)
    out = {
        "lambda_ref": ref.lambda_hat,
        "lambda_ref_error": ref.se,
        "lambda_ref_method": ref.extra.get("method"),
        "lambda_ref_source": "exact",
        "estimand_bias": ref.lambda_hat - lam,
        "sampler_bias": estimate.lambda_hat - ref.lambda_hat,
        "sampler_bias_se": math.hypot(estimate.se, ref.se) if math.isfinite(estimate.se) else None,
    }
    step = estimate.extra.get("step_size")
    if estimator == "sgld" and step is not None and target.num_data == 0:
        try:
            disc = exact.estimate(target, exact.ExactConfig(nbeta=float(nbeta), gamma=float(gamma),
                                                            sgld_step_size=float(step)))
            out["lambda_ref_discrete"] = disc.lambda_hat
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


def make_record(spec: RunSpec, estimate: Estimate, device: str, decomposition: Optional[dict] = None,
                dim: Optional[int] = None) -> dict:
    truth = case_truth(spec.case)
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
        **(decomposition or {}),
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
    record.update(attribution(record))
    return record


def scalar_info(info: dict) -> dict:
    """The JSON scalars (and lists of them) of a target's info, for its record."""
    plain = (str, int, float, bool, type(None))
    return {k: v for k, v in info.items()
            if isinstance(v, plain) or (isinstance(v, list) and all(isinstance(x, plain) for x in v))}


def execute(spec: RunSpec, device: str = "cpu", progress: Optional[Callable[[int, int], None]] = None) -> dict:
    """Run one estimate (no store involved) and return its record; its ``seconds`` is the wall time
    of the estimate call, measured here."""
    target = build_target(spec.case)
    accepts = "progress" in inspect.signature(spec.estimator.estimate).parameters
    kwargs = {"progress": progress} if progress is not None and accepts else {}
    start = time.perf_counter()
    estimate = spec.estimator.estimate(target, spec.config, spec.seed, device, **kwargs)
    seconds = time.perf_counter() - start
    record = make_record(spec, estimate, device, error_decomposition(target, spec.estimator.name, estimate),
                         dim=target.dim)
    record["loss_fingerprint"] = loss_fingerprint(target)  # matches the run to shipped reference entries
    record["target_info"] = scalar_info(target.info)  # what a trained anchor reports (e.g. its test accuracy)
    # The runner's clock, so that every estimator's seconds mean the same thing (an estimator need not
    # time itself: Estimate.seconds defaults to 0.0); what the estimator reported is kept beside it.
    record.update(seconds=seconds, estimator_seconds=estimate.seconds)
    return record


def execute_grid(specs: list[RunSpec], device: str = "cpu") -> list[dict]:
    """Run the specs of one shared-chain grid (:func:`shared_grid`) as one estimate call; their
    records, each with the grid's wall time split evenly (the whole is in extra.shared_chains)."""
    first = specs[0]
    target = build_target(first.case)
    start = time.perf_counter()
    estimates = first.estimator.estimate_grid(target, [s.config for s in specs], first.seed, device)
    seconds = (time.perf_counter() - start) / len(specs)
    records = []
    for spec, estimate in zip(specs, estimates):
        record = make_record(spec, estimate, device, error_decomposition(target, spec.estimator.name, estimate),
                         dim=target.dim)
        record["loss_fingerprint"] = loss_fingerprint(target)
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
