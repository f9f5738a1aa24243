"""Minibatches without replacement, one seeded permutation per epoch."""

from __future__ import annotations

from typing import Callable, Optional

import torch


class EpochBatches:
    """Minibatches without replacement.

    Each epoch draws a fresh permutation of range(num_data) from ``generator``
    and splits it into ceil(num_data / batch_size) near-equal contiguous
    slices (sizes differ by at most one, so that the mean of the batch means
    over an epoch is the full-data mean). Every index is visited exactly once
    per epoch. ``plan(perm, count)`` turns an epoch's permutation into what
    the loss takes per step: by default the index slices themselves
    (``torch.tensor_split``); a target may precompute per-batch statistics for
    the whole epoch at once (``Target.epoch_batches``). ``next()`` costs one
    list lookup.
    """

    def __init__(self, num_data: int, batch_size: int, generator: torch.Generator, device="cpu",
                 plan: Optional[Callable[[torch.Tensor, int], list]] = None):
        if num_data < 1:
            raise ValueError("EpochBatches needs num_data >= 1")
        self.num_data = int(num_data)
        self.per_epoch = -(-self.num_data // int(batch_size))
        self.generator = generator
        self.device = torch.device(device)
        self.plan = plan or (lambda perm, count: list(torch.tensor_split(perm, count)))
        self.epoch = -1
        self._batches: list = []
        self._pos = 0

    def _new_epoch(self) -> None:
        perm = torch.randperm(self.num_data, generator=self.generator, device=self.device)
        self._batches = self.plan(perm, self.per_epoch)
        self._pos = 0
        self.epoch += 1

    def next(self):
        if self._pos >= len(self._batches):
            self._new_epoch()
        batch = self._batches[self._pos]
        self._pos += 1
        return batch

