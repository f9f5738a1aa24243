"""Reduced-rank regression y = B A x: the three-width deep linear network.

A: H×M, B: N×H (M inputs, H hidden, N outputs), teacher of rank r at the
canonical block factorisation (A = [[I_r, 0], [0, 0]], B likewise; w* = 0 when
r = 0). Parameters, data, loss and anchor are those of ``dln`` with widths
(M, H, N) (A flattened first, then B); the truth is Aoyagi & Watanabe (2005).
"""

from __future__ import annotations

from ..errors import TruthError
from ..truth import Truth
from .base import Field
from .dln import DLNFamily, DLNTarget, build_dln_target


def _check_pos(value) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError("must be an integer >= 1")


def _check_rank(value) -> None:
    if not isinstance(value, int) or value < 0:
        raise ValueError("rank must be an integer >= 0")


class RRRFamily(DLNFamily):
    """Reduced-rank regression (one hidden linear layer), canonical teacher."""

    name = "rrr"
    fields = {
        "inputs": Field(type="int", check=_check_pos, doc="M, number of inputs"),
        "hidden": Field(type="int", check=_check_pos, doc="H, hidden width (rank bound of B·A)"),
        "outputs": Field(type="int", check=_check_pos, doc="N, number of outputs"),
        "rank": Field(type="int", check=_check_rank, doc="rank r of the teacher B·A, 0 <= r <= min(M, H, N)"),
    }

    def _spec(self, params: dict) -> tuple[list[int], int, str]:
        widths = [int(params["inputs"]), int(params["hidden"]), int(params["outputs"])]
        return widths, int(params["rank"]), "canonical"

    def check(self, params: dict) -> None:
        widths, r, _ = self._spec(params)
        if r > min(widths):
            raise ValueError(f"rank: must be <= min(inputs, hidden, outputs) = {min(widths)}, got {r}")

    def truth(self, params: dict) -> Truth:
        from ..truth.rrr import rrr_truth

        (m, h, n), r, _ = self._spec(params)
        if r > min(m, h, n):
            raise TruthError(f"rrr: rank {r} exceeds min(M, H, N) = {min(m, h, n)}")
        t = rrr_truth(m, h, n, r)
        return Truth(t.lam, t.multiplicity, "exact",
                     f"{t.source}; anchor: canonical block factorisation, where the local value equals the global one")

    def target(self, case, data: bool = True) -> DLNTarget:
        self.check(case.params)
        widths, r, variant = self._spec(case.params)
        return build_dln_target(case, self.name, widths, r, variant, self.truth(case.params),
                                self.default_noise_std, data=data)
