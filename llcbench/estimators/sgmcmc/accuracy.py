"""The posterior mean train accuracy of the chains, for the locality check (``llcbench.locality``).

Only for targets that are classifiers (``Target.accuracy`` is not None). The
accuracy is a full-data forward pass, so it is taken at ACCURACY_POINTS
evenly spaced post-burn-in steps, not every step: enough for a mean that
tells 100 % from chance, at the cost of a few minibatch steps. It uses no
random numbers, so a run's λ̂ is the same with or without it.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ...target import Target

ACCURACY_POINTS = 20  # post-burn-in steps at which the chains' train accuracy is measured


class AccuracyProbe:
    """The chains' train accuracy at a few post-burn-in steps, and the anchor's."""

    def __init__(self, target: Target, burn_in: int, steps: int, anchor_accuracy: float):
        self.target = target
        self.burn_in = int(burn_in)
        self.stride = max(1, (int(steps) - self.burn_in) // ACCURACY_POINTS)
        self.anchor_accuracy = float(anchor_accuracy)
        self.rows: list[torch.Tensor] = []

    @classmethod
    def for_run(cls, target64: Target, w_star64: torch.Tensor, target: Target, config) -> Optional["AccuracyProbe"]:
        """The probe of a run on ``target`` (its run dtype), or None when the target is no classifier."""
        with torch.no_grad():
            anchor = target64.accuracy(w_star64[None])
        if anchor is None:
            return None
        return cls(target, int(config.burn_in), int(config.steps), float(anchor[0]))

    def due(self, t: int) -> bool:
        return t >= self.burn_in and (t - self.burn_in) % self.stride == 0

    def record(self, w: torch.Tensor) -> None:
        with torch.no_grad():
            self.rows.append(self.target.accuracy(w))

    def mean(self, mask: np.ndarray) -> Optional[float]:
        """The mean over the recorded steps and the chains in ``mask`` (the live chains of a point)."""
        if not self.rows or not mask.any():
            return None
        acc = torch.stack(self.rows).to(torch.float64).cpu().numpy()  # (points, chains)
        return float(acc[:, mask].mean())
