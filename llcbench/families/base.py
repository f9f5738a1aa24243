"""The family contract: how a case's fields become a truth and a target.

A family declares the fields its cases take (name, type, default) so that the
catalogue can check a user's TOML before anything is built, and name the
file, the case and the field of any mistake.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..target import Target
from ..truth import Truth

_MISSING = object()


@dataclass(frozen=True)
class Field:
    """One family-specific field of a case.

    type: "int", "float", "str", "bool", "int_list" or "float_list".
    default: the value when the field is absent; leave it out for a required field.
    check: optional function raising ValueError (with a short reason) on a bad value.
    doc: one line for the docs.
    key_default: a field added to a family later: left out of the case's definition (its run key)
        while it holds its default, so the runs of every case made before it keep their keys.
    """

    type: str
    default: Any = _MISSING
    check: Optional[Callable[[Any], None]] = None
    doc: str = ""
    key_default: bool = False

    @property
    def required(self) -> bool:
        return self.default is _MISSING


class Family(ABC):
    """A kind of case. Subclasses set ``name``, ``fields`` and ``default_n``."""

    name: str = ""
    fields: dict[str, Field] = {}
    default_n: int = 10_000
    default_noise_std: Optional[float] = None  # None: the family has no noise
    # its target() trains the anchor on first use (then cached): planning may train several at once
    trains_anchor: bool = False

    def check(self, params: dict) -> None:
        """Cross-field checks (raise ValueError(field, reason) as ``ValueError("field: reason")``)."""

    def n_for(self, params: dict) -> Optional[int]:
        """The case's n when the family fixes it from its fields (e.g. the number of training pairs),
        else None (then ``default_n`` unless the case sets n)."""
        return None

    @abstractmethod
    def dim(self, params: dict) -> int:
        """Number of parameters d, without building data."""

    def run_data_bytes(self, case, config, device: str = "cpu") -> int:
        """Bytes of the copies of the case's data a run under ``config`` on ``device`` holds in host
        memory at its peak, where the family counts them (checked before any run with the traces,
        ``limits.check_run_size``); 0: not counted."""
        return 0

    @abstractmethod
    def truth(self, params: dict) -> Truth:
        """(λ, m, kind, source) at this case's anchor, exact; raises TruthError if it cannot."""

    @abstractmethod
    def target(self, case) -> Target:
        """Build the target (data generated deterministically from ``case.seed``)."""

    def support_target(self, case) -> Target:
        """The target as planning asks an estimator's ``supports`` about it: by default the target
        itself; a family whose data are large may leave them out (deep linear networks do), since
        ``supports`` decides from what a target declares, not from its data."""
        return self.target(case)
