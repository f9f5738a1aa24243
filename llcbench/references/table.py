"""The shipped reference table: λ_nβ,γ for the catalogue at the default (nβ, γ), as package data.

Each entry is keyed by the case definition's content hash (``Case.key``),
the loss's fingerprint (:func:`loss_fingerprint`) and (nβ, γ), and carries
the value, its standard error, the method with its full config, the
diagnostics (R-hat, ESS, acceptance, divergences), the llcbench and torch
versions, the date and the seconds it took. An entry is used only when all
three keys match the run: a case whose definition changed, or whose loss
changed under the same definition (a family's data generator or loss
formula), is a different posterior, and the run is told the entry is stale
instead of being measured against it. An entry whose sampler did not meet
the reference standard is kept — that is a finding about the case — but
never serves as a reference; the run is told why.
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Optional

import torch

from ..store import posterior

DATA = Path(__file__).resolve().parent / "data" / "default.json"
SCHEMA = 1
FINGERPRINT_POINTS = 3  # perturbed parameter vectors besides w* itself
FINGERPRINT_DIGITS = 9  # significant digits kept: robust to summation order, not to a changed loss


def loss_fingerprint(target) -> str:
    """A short hash of the loss: L_n at w* and at FINGERPRINT_POINTS fixed perturbations of it
    (float64, seeded), rounded to FINGERPRINT_DIGITS significant digits, with d, n and the data
    size. Two targets with the same fingerprint have, for every practical purpose, the same loss."""
    w_star = target.w_star.detach().to(torch.float64).reshape(1, -1)
    gen = torch.Generator().manual_seed(20_240_601)
    noise = torch.randn(FINGERPRINT_POINTS, target.dim, generator=gen, dtype=torch.float64)
    w = torch.cat([w_star, w_star + 0.05 * noise])
    t64 = target.to("cpu", torch.float64)
    with torch.no_grad():
        values = t64.full_loss(w).tolist()
    text = json.dumps({"dim": target.dim, "n": target.n, "num_data": target.num_data,
                       "loss": [f"{v:.{FINGERPRINT_DIGITS}g}" for v in values]})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@lru_cache(maxsize=512)
def _fingerprint_of_definition(definition_json: str) -> str:
    from ..case import Case
    from ..catalogue import build_target

    return loss_fingerprint(build_target(Case(**json.loads(definition_json))))


def record_fingerprint(record: dict) -> Optional[str]:
    """The loss fingerprint of a record's case: stored in records since llcbench 0.3.0, else
    computed from its case definition (None when the case cannot be built here)."""
    if record.get("loss_fingerprint"):
        return record["loss_fingerprint"]
    definition = record.get("case_definition")
    if not definition:
        return None
    try:
        return _fingerprint_of_definition(json.dumps(definition, sort_keys=True))
    except Exception:  # an unknown family (a plugin not installed here): no fingerprint, no entry
        return None


def _close(a, b) -> bool:
    return a is not None and b is not None and math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


class ReferenceTable:
    """Entries of one reference file (the shipped one by default)."""

    def __init__(self, entries: list[dict], path: Optional[Path] = None):
        self.entries = entries
        self.path = path
        self._by_case: dict[str, list[dict]] = {}
        for e in entries:
            self._by_case.setdefault(e["case"], []).append(e)

    @classmethod
    def load(cls, path: Path = DATA) -> "ReferenceTable":
        if not Path(path).exists():
            return cls([], Path(path))
        data = json.loads(Path(path).read_text())
        if data.get("schema") != SCHEMA:
            raise ValueError(f"{path}: reference table schema {data.get('schema')}, expected {SCHEMA}")
        return cls(list(data.get("entries") or []), Path(path))

    def save(self, path: Optional[Path] = None) -> Path:
        path = Path(path or self.path or DATA)
        path.parent.mkdir(parents=True, exist_ok=True)
        entries = sorted(self.entries, key=lambda e: (e["case"], e["nbeta"], e["gamma"]))
        path.write_text(json.dumps({"schema": SCHEMA, "entries": entries}, indent=1, sort_keys=True) + "\n")
        return path

    def put(self, entry: dict) -> None:
        """Add an entry, replacing one of the same case, definition and (nβ, γ)."""
        self.entries = [e for e in self.entries if not (
            e["case"] == entry["case"] and e["case_key"] == entry["case_key"]
            and _close(e["nbeta"], entry["nbeta"]) and _close(e["gamma"], entry["gamma"]))]
        self.entries.append(entry)
        self._by_case = {}
        for e in self.entries:
            self._by_case.setdefault(e["case"], []).append(e)

    def candidates(self, case_id: str, nbeta, gamma) -> list[dict]:
        return [e for e in self._by_case.get(case_id, []) if _close(e["nbeta"], nbeta) and _close(e["gamma"], gamma)]

    def lookup(self, record: dict) -> tuple[Optional[dict], list[str]]:
        """(the matching entry as a reference dict, or None; notes on entries that did not qualify)."""
        found = self.candidates(record.get("case", ""), *posterior(record))
        if not found:
            return None, []
        notes = []
        for e in found:
            if e["case_key"] != record.get("case_key"):
                notes.append("shipped reference not used: the case definition changed since it was computed")
                continue
            fp = record_fingerprint(record)
            if fp is None or e["loss_fingerprint"] != fp:
                notes.append("shipped reference not used: the loss changed since it was computed "
                             f"(fingerprint {fp} ≠ {e['loss_fingerprint']})")
                continue
            if not e.get("standard_met"):
                notes.append("no shipped reference: the reference sampler did not meet the standard ("
                             + "; ".join(e.get("standard_failed") or ["?"]) + ")")
                continue
            return self.as_reference(e), []
        return None, notes

    @staticmethod
    def as_reference(entry: dict) -> dict:
        return {"lambda_hat": entry["lambda_ref"], "se": entry["se"], "estimator": entry["method"],
                "key": f"{entry['case']}@{entry['nbeta']:.6g},{entry['gamma']:.6g}", "shipped": True,
                "entry": entry}


@lru_cache(maxsize=1)
def shipped_table() -> ReferenceTable:
    """The table shipped with the package (empty when the data file is absent)."""
    return ReferenceTable.load(DATA)


def entry_from_record(record: dict) -> dict:
    """A table entry from a reference sampler's record (the store's row for that run)."""
    extra = record.get("extra") or {}
    diag = record.get("diagnostics") or {}
    keep = ("rhat", "ess_bulk", "ess_tail", "mcse_mean", "acceptance_mean", "divergences", "draws_per_chain",
            "chains_used")
    return {
        "case": record["case"],
        "case_key": record["case_key"],
        "loss_fingerprint": record_fingerprint(record),
        "family": record["family"],
        "nbeta": posterior(record)[0],
        "gamma": posterior(record)[1],
        "lambda": record["lambda"],
        "lambda_ref": record["lambda_hat"],
        "se": record["se"],
        "standard_met": bool(extra.get("standard_met")) and record.get("lambda_hat") is not None,
        "standard_failed": list(extra.get("standard_failed") or []),
        "standard": extra.get("standard"),
        "method": record["estimator"],
        "config": record["config"],
        "seed": record["seed"],
        "diagnostics": {k: diag.get(k) for k in keep if k in diag},
        "grad_evals": record.get("grad_evals"),
        "seconds": record.get("seconds"),
        "llcbench_version": record.get("llcbench_version"),
        "torch_version": record.get("torch_version"),
        "device": record.get("device"),
        "torch_threads": record.get("torch_threads"),
        "date": record.get("created_at"),
        "run_key": record.get("key"),
    }
