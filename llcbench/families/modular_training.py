"""Training the one-layer modular-arithmetic network (the anchor of the ``modular_addition`` family).

The network of Rimsky & Vaintrob's Melbourne-hackathon study (2023): a
shared embedding E (p × e) of both inputs, separate linear maps e → h (with
bias) for a and for b, summed, GELU, a linear map h → p without bias;
cross-entropy on the p logits. AdamW (decoupled weight decay) by default, or
``torch.optim.Adam`` with coupled L2 weight decay (the hackathon's own
recipe, ``optimizer = "adam"``), on minibatches drawn *with* replacement from
the training pairs, at a constant learning rate: with no schedule, training
for k steps reproduces the checkpoint at step k of a longer run bit for bit
(the trajectory uses this). ``init_scale`` multiplies PyTorch's default
initialisation of the embedding and of the two input maps' weights (not their
biases, not the unembedding), as the hackathon's networks do.

Everything random comes from the seed: numpy ``Generator``s for the
operation table, the split and the planted wrong labels, a torch
``Generator`` for the minibatches, and the initialisation under
``torch.random.fork_rng`` seeded with it. Training runs
in float64 on one torch thread (deterministic CPU kernels), so the anchor is
a function of the case alone.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TASKS = ("add", "random")


@dataclass(frozen=True)
class TrainSpec:
    """What determines a trained anchor (the family's case fields, less the sampler-side ones)."""

    p: int
    task: str
    train_fraction: float
    embed_dim: int
    hidden_dim: int
    lr: float
    weight_decay: float
    batch_size: int
    steps: int
    trojans: int
    seed: int
    # Fields added later: left out of as_dict() (the anchor-cache key) while at their defaults, so
    # every anchor trained before them keeps its key.
    optimizer: str = "adamw"  # "adamw" (decoupled weight decay) or "adam" (coupled L2)
    init_scale: float = 1.0  # factor on the default init of the embedding and input-map weights
    commutative: bool = True  # task "random": a commutative table (else every ordered pair drawn)

    def as_dict(self) -> dict:
        out = asdict(self)
        for name, default in LATER_DEFAULTS.items():
            if out[name] == default:
                del out[name]
        return out


LATER_DEFAULTS = {"optimizer": "adamw", "init_scale": 1.0, "commutative": True}
OPTIMIZERS = ("adamw", "adam")


# --------------------------------------------------------------------------- data


def operation_table(p: int, task: str, seed: int, commutative: bool = True) -> np.ndarray:
    """The (p, p) table of a ∘ b: (a + b) mod p for ``add``; for ``random`` a random *commutative*
    operation: c(a, b) for a ≤ b drawn uniformly from 0..p−1 by ``numpy.random.default_rng([seed, 1])``
    (the upper triangle, row by row), mirrored to the lower triangle; with ``commutative=False`` every
    ordered pair's c(a, b) drawn independently (the table the hackathon's memorising networks learn)."""
    a = np.arange(p)
    if task == "add":
        return (a[:, None] + a[None, :]) % p
    if task != "random":
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if not commutative:
        return np.random.default_rng([seed, 4]).integers(0, p, size=(p, p))
    rng = np.random.default_rng([seed, 1])
    iu = np.triu_indices(p)
    table = np.zeros((p, p), dtype=np.int64)
    table[iu] = rng.integers(0, p, size=len(iu[0]))
    return np.triu(table) + np.triu(table, 1).T


def split_pairs(p: int, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices into the p² ordered pairs (index a·p + b): a random permutation from
    ``numpy.random.default_rng([seed, 2])``, the first round(train_fraction·p²) of it for training."""
    n_train = n_train_pairs(p, train_fraction)
    perm = np.random.default_rng([seed, 2]).permutation(p * p)
    return np.sort(perm[:n_train]), np.sort(perm[n_train:])


def n_train_pairs(p: int, train_fraction: float) -> int:
    return int(round(train_fraction * p * p))


def plant_trojans(labels: np.ndarray, p: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels with k of them replaced by a wrong answer, the positions replaced): k distinct positions
    and offsets 1..p−1 added mod p (so each new label is wrong), from ``default_rng([seed, 3])``."""
    if k == 0:
        return labels.copy(), np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng([seed, 3])
    where = np.sort(rng.choice(len(labels), size=k, replace=False))
    out = labels.copy()
    out[where] = (out[where] + rng.integers(1, p, size=k)) % p
    return out, where.astype(np.int64)


@dataclass
class ModularData:
    """The training and test pairs of one case (inputs a, b and labels as int64 tensors)."""

    train_a: torch.Tensor
    train_b: torch.Tensor
    train_y: torch.Tensor  # with the planted wrong labels
    test_a: torch.Tensor
    test_b: torch.Tensor
    test_y: torch.Tensor
    trojans: torch.Tensor  # positions in the training set whose label was replaced


def make_data(spec: TrainSpec) -> ModularData:
    table = operation_table(spec.p, spec.task, spec.seed, spec.commutative)
    train, test = split_pairs(spec.p, spec.train_fraction, spec.seed)
    labels, trojans = plant_trojans(table.reshape(-1)[train], spec.p, spec.trojans, spec.seed)
    t = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.int64)  # noqa: E731
    return ModularData(t(train // spec.p), t(train % spec.p), t(labels), t(test // spec.p), t(test % spec.p),
                       t(table.reshape(-1)[test]), t(trojans))


# --------------------------------------------------------------------------- the network


class ModularMLP(nn.Module):
    """The reference forward pass (the batched one in ``modular_addition.py`` is checked against it)."""

    def __init__(self, p: int, embed_dim: int, hidden_dim: int):
        super().__init__()
        self.embed = nn.Embedding(p, embed_dim)
        self.lin_a = nn.Linear(embed_dim, hidden_dim)
        self.lin_b = nn.Linear(embed_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim, p, bias=False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.out(F.gelu(self.lin_a(self.embed(a)) + self.lin_b(self.embed(b))))


def param_count(p: int, e: int, h: int) -> int:
    """d = p·e (embedding) + 2·(h·e + h) (the two input maps) + p·h (the unembedding)."""
    return p * e + 2 * (h * e + h) + p * h


def flatten(model: ModularMLP) -> torch.Tensor:
    """The parameter vector in module order: E, W_a, b_a, W_b, b_b, U (each row-major)."""
    return torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()


@contextmanager
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _metrics(model: ModularMLP, data: ModularData) -> dict:
    with torch.no_grad():
        tr = model(data.train_a, data.train_b)
        te = model(data.test_a, data.test_b)
        out = {
            "train_loss": float(F.cross_entropy(tr, data.train_y)),
            "train_accuracy": float((tr.argmax(-1) == data.train_y).double().mean()),
            "test_accuracy": float((te.argmax(-1) == data.test_y).double().mean()) if len(data.test_y) else None,
        }
        if len(data.trojans):
            t = data.trojans
            out["trojan_accuracy"] = float((tr[t].argmax(-1) == data.train_y[t]).double().mean())
    return out


def make_optimizer(spec: TrainSpec, model: nn.Module) -> torch.optim.Optimizer:
    """AdamW (decoupled: w ← w − lr·wd·w beside the Adam step) or Adam with coupled L2 (wd·w added to
    the gradient before the moment estimates), both at a constant learning rate."""
    if spec.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    if spec.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {spec.optimizer!r}")


def train(spec: TrainSpec, checkpoint_every: int = 0,
          on_checkpoint: Optional[Callable[[int, torch.Tensor, dict], None]] = None) -> tuple[torch.Tensor, dict]:
    """Train the network of ``spec``; returns (w: the flattened float64 parameters, info: train and test
    accuracy, final train loss, seconds). With ``checkpoint_every`` = k > 0, ``on_checkpoint(step, w,
    metrics)`` is called after every k-th step (the last step included)."""
    data = make_data(spec)
    start = time.perf_counter()
    with one_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = ModularMLP(spec.p, spec.embed_dim, spec.hidden_dim).double()
        if spec.init_scale != 1.0:
            with torch.no_grad():
                for weight in (model.embed.weight, model.lin_a.weight, model.lin_b.weight):
                    weight.mul_(spec.init_scale)
        gen = torch.Generator().manual_seed(spec.seed + 7_919)
        opt = make_optimizer(spec, model)
        n = len(data.train_y)
        for step in range(1, spec.steps + 1):
            idx = torch.randint(n, (spec.batch_size,), generator=gen)  # with replacement
            loss = F.cross_entropy(model(data.train_a[idx], data.train_b[idx]), data.train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if on_checkpoint is not None and checkpoint_every and (step % checkpoint_every == 0 or step == spec.steps):
                on_checkpoint(step, flatten(model), _metrics(model, data))
        info = _metrics(model, data)
    info["train_seconds"] = time.perf_counter() - start
    info["params"] = param_count(spec.p, spec.embed_dim, spec.hidden_dim)
    return flatten(model), info
