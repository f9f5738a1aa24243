"""The seeded minibatch streams of the SG-MCMC loop.

- ``EpochBatches``: without replacement, one permutation per epoch (every sample once per epoch);
- ``IIDBatches``: every batch drawn uniformly with replacement, independently of the others.

Why two: an epoch stream makes consecutive batches dependent (an epoch of k batches visits each
sample once, so the gradient noise of a step is anti-correlated with that of the steps before it
in the same epoch). A sampler without memory barely notices; a sampler with momentum averages
the noise over its memory (SGNHT: tens of steps), longer than an epoch of a few batches, and so
sees a noise that depends on where it is in the epoch. With i.i.d. batches the noise of every
step is independent, as the SG-MCMC analyses assume (Chen, Fox & Guestrin 2014; Ding et al. 2014).
"""

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
        self._batches = []  # the previous epoch's plan goes before the next one is made (memory_terms in dln.py)
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



class IIDBatches(EpochBatches):
    """Minibatches drawn with replacement: each step's ``batch_size`` indices are i.i.d. uniform on
    range(num_data), independent of every other step's.

    Drawn an "epoch" (ceil(num_data / batch_size) batches) at a time so that the target's
    ``plan`` can precompute the batches' statistics at once, exactly as for ``EpochBatches``; the
    draws are i.i.d. whatever the grouping.
    """

    def __init__(self, num_data: int, batch_size: int, generator: torch.Generator, device="cpu",
                 plan: Optional[Callable[[torch.Tensor, int], list]] = None):
        super().__init__(num_data, batch_size, generator, device, plan)
        self.batch_size = int(batch_size)

    def _new_epoch(self) -> None:
        self._batches = []
        idx = torch.randint(self.num_data, (self.per_epoch * self.batch_size,), generator=self.generator,
                            device=self.device)
        self._batches = self.plan(idx, self.per_epoch)  # equal slices of batch_size each
        self._pos = 0
        self.epoch += 1


BATCH_DRAWS = {"epoch": EpochBatches, "iid": IIDBatches}
