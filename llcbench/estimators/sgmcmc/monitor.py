"""The chain monitor: divergence detection and parking of the SG-MCMC chains.

A chain whose trace value nβ·(L − L*) becomes NaN/inf or exceeds the
divergence threshold is flagged, parked at w* (its state is never updated
again, so it cannot poison anything) and excluded from λ̂. The check runs
on a block of trace values every ``check_every`` steps: the only host sync
of the sampling loop.
"""

from __future__ import annotations

from typing import Optional

import torch


class ChainMonitor:
    """Which chains are alive, and since when the dead ones diverged.

    excess_limit: the divergence threshold in loss units (threshold / nβ): a number, or one per
    chain (a shared-chain grid run, whose points have different nβ).
    """

    def __init__(self, chains: int, excess_limit, device: torch.device):
        self.excess_limit = (excess_limit.to(device) if isinstance(excess_limit, torch.Tensor)
                             else float(excess_limit))
        self.alive = torch.ones(chains, dtype=torch.bool, device=device)
        self.alive_col: Optional[torch.Tensor] = None  # (chains, 1) once a chain has diverged
        self.divergence_step: dict[int, int] = {}

    def check(self, block: torch.Tensor, end: int) -> Optional[torch.Tensor]:
        """Flag the live chains that diverged in ``block`` (steps × chains of L − L*, ending
        before step ``end``); returns the newly dead chains' mask, or None when there are none."""
        bad = (~torch.isfinite(block) | (block > self.excess_limit)).any(dim=0) & self.alive
        if not bool(bad.any()):  # host sync
            return None
        for r in bad.nonzero().flatten().tolist():
            col = block[:, r]
            limit = self.excess_limit[r] if isinstance(self.excess_limit, torch.Tensor) else self.excess_limit
            hit = (~torch.isfinite(col) | (col > limit)).nonzero()
            self.divergence_step[r] = int(end - block.shape[0] + int(hit[0]))
        self.alive.logical_and_(~bad)
        self.alive_col = self.alive[:, None]
        return bad

    def hold(self, w: torch.Tensor, w_star: torch.Tensor) -> None:
        """Keep parked chains at w* after a step (no-op while every chain is alive)."""
        if self.alive_col is not None:
            w.copy_(torch.where(self.alive_col, w, w_star))

    def live(self, w: torch.Tensor) -> torch.Tensor:
        """The rows of w of the live chains."""
        return w[self.alive] if self.alive_col is not None else w

    @property
    def divergent(self) -> list[int]:
        return [int(i) for i in torch.nonzero(~self.alive).flatten().tolist()]
