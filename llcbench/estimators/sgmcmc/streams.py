"""The random streams of an SG-MCMC run, all derived from its one seed.

Each consumer of randomness draws from a generator of its own, so that
adding draws to one (a longer probe set, more heat batches) never shifts
another: the chains' noise does not move when the step-size rule measures
more minibatches, and two samplers run with the same seed see the same
minibatches. A stream's generator is seeded with ``seed·multiplier +
offset``; the numbers are arbitrary but fixed (they are part of what a
seed means: changing one changes every λ̂ recorded with that seed).
"""

from __future__ import annotations

from typing import Optional

import torch

# name: (multiplier, offset) — the generator of stream `name` is seeded with seed·multiplier + offset
STREAMS = {
    "chains": (1, 0),  # the samplers' Gaussian noise (and SGNHT's initial momenta)
    "batches": (1_000_003, 17),  # the minibatch sequence (batches.py)
    "grad_noise": (1, 104_729),  # the samplers' minibatch-noise estimates (Context.grad_noise)
    "trace": (1, 31_337),  # the independent trace batches (trace_batch='independent')
    "heat": (1, 130_363),  # the step-size rule's minibatch-heat measurements (stepsize.py)
    "adapt": (1, 7_919),  # the start vectors of the rule's power iterations during adaptation
    "probe": (7_919, 2_003),  # the per-sample LLC's probe set (per_sample.py; on the CPU)
    "noise_draws": (6_151, 4_241),  # the per-sample noise baseline's ξ_k (per_sample.py; on the CPU)
    "tempered": (1, 52_711),  # the tempered start's Gaussian noise (tempered_start.py)
    "tempered_batches": (1_000_003, 60_013),  # the tempered start's minibatches (tempered_start.py)
    "orbit": (1, 91_009),  # the orbit start's Gaussian noise and Metropolis moves (orbit_start.py)
    "orbit_batches": (1_000_003, 71_237),  # the orbit start's minibatches (orbit_start.py)
}


def stream_seed(name: str, seed: int) -> int:
    """The seed of stream ``name`` of a run with seed ``seed``."""
    multiplier, offset = STREAMS[name]
    return int(seed) * multiplier + offset


def generator(name: str, seed: int, device: Optional[torch.device] = None) -> torch.Generator:
    """A fresh generator of stream ``name`` (on ``device``; the CPU when None)."""
    gen = torch.Generator() if device is None else torch.Generator(device=device)
    gen.manual_seed(stream_seed(name, seed))
    return gen
