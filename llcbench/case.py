"""A case: one entry of a catalogue file, checked, with defaults filled in.

A case is data; its family (``llcbench.families``) turns it into a truth and
a target. The case's content hash identifies it in the results store, so a
changed definition is a different case even under the same id.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Optional

# The keys every case takes, whatever its family: name -> (type, default, meaning), as `llcbench families`
# lists them. A default in words where it depends on the family.
COMMON_FIELDS: dict[str, tuple[str, str, str]] = {
    "id": ("str", "required", "unique case id, e.g. 'dln/4-6-3-5-7/r2' (a prefix such as 'dln/' selects a group)"),
    "family": ("str", "required", "the family (listed below) that turns the case into a truth and a target"),
    "n": ("int", "the family's n", "sample size n >= 3; sets the default inverse temperature nβ* = n/log n "
          "(nominal for analytic potentials)"),
    "seed": ("int", "0", "seed of the data generator (data are generated, never downloaded)"),
    "noise_std": ("float", "the family's", "σ of the Gaussian label noise, >= 0 (0 = noiseless teacher); "
                  "only families with data noise take it"),
    "expect_lambda": ("str", "none", "rational string such as \"3/2\": the computed λ must equal it"),
    "expect_multiplicity": ("int", "none", "the computed multiplicity m must equal it"),
    "lambda": ("str", "none", "a truth the case brings (rational string, e.g. \"3/4\"): used, labelled kind "
               "'asserted', where the engine cannot certify λ; where it can, the two must agree"),
    "multiplicity": ("int", "none", "with lambda: the asserted multiplicity m (else taken as 1)"),
    "source": ("str", "none", "with lambda (required): where the asserted value comes from"),
    "note": ("str", "''", "free text shown in listings (not part of the case's identity)"),
}
COMMON_KEYS = set(COMMON_FIELDS)


@dataclass(frozen=True)
class Case:
    """One checked case.

    id: unique id, e.g. "dln/4-6-3-5-7/r2".
    family: the family's registered name.
    params: the family-specific fields, with defaults filled in.
    n: sample size (nominal for analytic potentials); sets nβ* = n / log n.
    seed: seed of the data generator (data are generated, never downloaded).
    noise_std: σ of the Gaussian output noise, for families with data.
    expect_lambda / expect_multiplicity: optional cross-checks of the computed truth.
    asserted_lambda / asserted_multiplicity / asserted_source: a truth the case states itself
        (the file's ``lambda``, ``multiplicity``, ``source``), used, labelled kind "asserted", where
        the engine cannot certify one; where it can, the two must agree.
    note: free text shown in listings.
    file: the TOML file it came from (for error messages).
    unkeyed: the names of params left out of ``definition()`` and so of every key: fields a family
        added later (``key_default``) that hold their defaults, so older cases keep their keys.
    """

    id: str
    family: str
    params: dict = field(default_factory=dict)
    n: int = 10_000
    seed: int = 0
    noise_std: Optional[float] = None
    expect_lambda: Optional[Fraction] = None
    expect_multiplicity: Optional[int] = None
    asserted_lambda: Optional[str] = None  # a rational as text, e.g. "3/4"
    asserted_multiplicity: Optional[int] = None
    asserted_source: Optional[str] = None
    note: str = ""
    file: str = "<memory>"
    unkeyed: tuple = ()  # params left out of definition() (a family's key_default fields at their defaults)

    def definition(self) -> dict[str, Any]:
        """Everything that determines the target (not the file it came from, not the note), and an
        asserted truth where the case states one (a run's error is measured against it)."""
        out = {
            "id": self.id,
            "family": self.family,
            "params": self._keyed_params(),
            "n": self.n,
            "seed": self.seed,
            "noise_std": self.noise_std,
        }
        if self.asserted_lambda is not None:
            out.update(asserted_lambda=self.asserted_lambda, asserted_multiplicity=self.asserted_multiplicity,
                       asserted_source=self.asserted_source)
        return out

    def _keyed_params(self) -> dict:
        """The params, less ``unkeyed`` (fields a family added later, holding their defaults)."""
        return {k: v for k, v in self.params.items() if k not in self.unkeyed}

    def key(self) -> str:
        """Content hash of the definition (hex sha256)."""
        text = json.dumps(self.definition(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()
