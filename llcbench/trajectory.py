"""λ̂ over training: one network trained once, λ̂ estimated at each checkpoint, every run into the store.

Training uses a constant learning rate, so the checkpoint after k steps is
exactly the anchor of the same case with ``train_steps = k``
(``modular_training``); each checkpoint is written to the anchor cache under
that case's key and then run as an ordinary case (id ``BASE@step-K``,
``trajectory`` naming the run), keyed, stored and served like any other run.
Checkpoints are not minima; ``project_gradient`` restricts the sampler to the
hyperplane normal to ∇L_n at the checkpoint (Rimsky & Vaintrob 2023).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from .case import Case
from .errors import UserError
from .families import anchor_cache
from .families.modular_addition import ANCHOR_KIND, ModularAdditionFamily, anchor_definition
from .families.modular_training import train


def checkpoint_case(base: Case, step: int, name: str, project_gradient: bool) -> Case:
    params = dict(base.params, train_steps=step, trajectory=name, project_gradient=project_gradient)
    suffix = "/normal" if project_gradient else ""
    return dataclasses.replace(base, id=f"{base.id}@step-{step:05d}{suffix}", params=params,
                               note=f"checkpoint {step} of {base.id}")


def checkpoint_cases(base: Case, every: int, project_gradient: bool = False, name: Optional[str] = None,
                     on_step: Optional[Callable[[int, dict], None]] = None) -> list[Case]:
    """Train ``base`` once with a checkpoint every ``every`` steps, cache each checkpoint as the anchor
    of its own case, and return those cases in step order."""
    if base.family != ModularAdditionFamily.name:
        raise UserError(f"{base.file}: case '{base.id}': trajectories need a modular_addition case, "
                        f"not {base.family!r}")
    total = int(base.params["train_steps"])
    if not 1 <= every <= total:
        raise UserError(f"--every {every}: must be between 1 and the case's train_steps ({total})")
    name = name or base.params.get("trajectory") or base.id
    family = ModularAdditionFamily()
    spec = family.train_spec(base)
    steps: list[int] = []

    def save(step, w, metrics):
        definition = anchor_definition(dataclasses.replace(spec, steps=step))
        if anchor_cache.load(ANCHOR_KIND, definition) is None:
            anchor_cache.save(ANCHOR_KIND, definition, {"w": w}, dict(metrics, train_seconds=None, params=w.numel()))
        steps.append(step)
        if on_step is not None:
            on_step(step, metrics)

    train(spec, checkpoint_every=every, on_checkpoint=save)
    return [checkpoint_case(base, k, name, project_gradient) for k in steps]
