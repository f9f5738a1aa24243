"""Modular arithmetic: a trained one-layer network, the anchor w* (Rimsky & Vaintrob 2023).

The network, its training and its data are in ``modular_training.py``; the
anchor is trained on first use and cached on disk (``anchor_cache.py``).
The target's data are the training pairs (a, b) with their labels, n = their
number, and L_n(w) their mean cross-entropy. The loss is written by hand,
batched over chains with ``bmm`` and advanced indexing (one forward for all
chains; the input maps act on the p embeddings once, and each pair gathers
its two rows); tests/test_modular.py checks it, and its autograd gradient,
against the ``nn.Module`` forward.

Tasks: ``add`` (a + b mod p: networks that generalise) and ``random`` (a
random commutative operation drawn from the seed: networks that can only
memorise). ``trojans`` = k replaces the labels of k training pairs by wrong
answers drawn from the seed; the network must fit them too (they are the
known memorised samples of per-sample scores). Truth: the theory values of
``llcbench.truth.modular`` (kind "theory").

An anchor that did not converge (train accuracy below 100 %, or final train
loss above ``LOSS_THRESHOLD``, or a planted label not fitted) is refused,
except for checkpoints of a λ̂-over-training run (``trajectory`` set), which
are not minima by design.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from ..errors import UserError
from ..target import Target
from ..truth import Truth
from . import anchor_cache
from .base import Family, Field
from .hyperplane import HyperplaneTarget
from .modular_training import OPTIMIZERS, TASKS, TrainSpec, make_data, n_train_pairs, param_count, train

# Bump when training changes what it produces: the anchor cache is keyed by it.
TRAINING_VERSION = 1
# The mean train cross-entropy an anchor must reach (nats). At nβ ≈ n/log n ≈ 100 a loss of 0.01
# puts nβ·L_n(w*) ≈ 1, small beside the λ values of these cases (≥ 25).
LOSS_THRESHOLD = 0.01


@dataclass
class ModularTarget(Target):
    """The network on the training pairs; parameters E, W_a, b_a, W_b, b_b, U (``modular_training.flatten``)."""

    p: int = 0
    embed_dim: int = 0
    hidden_dim: int = 0
    a: Optional[torch.Tensor] = None  # (n,) int64
    b: Optional[torch.Tensor] = None
    y: Optional[torch.Tensor] = None
    trojans: Optional[torch.Tensor] = None  # positions of the planted wrong labels
    softmax_floor: float = 0.0  # the loss −log(softmax + floor); 0: exact cross-entropy

    def _layers(self, w: torch.Tensor):
        p, e, h = self.p, self.embed_dim, self.hidden_dim
        sizes = [p * e, h * e, h, h * e, h, p * h]
        E, Wa, ba, Wb, bb, U = torch.split(w, sizes, dim=1)
        c = w.shape[0]
        return E.reshape(c, p, e), Wa.reshape(c, h, e), ba, Wb.reshape(c, h, e), bb, U.reshape(c, p, h)

    def logits(self, w: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(chains, len(a), p): the network of every row of w on the pairs (a, b)."""
        E, Wa, ba, Wb, bb, U = self._layers(w)
        # the input maps act on the p embeddings once; each pair then gathers its two rows
        ha = torch.bmm(E, Wa.transpose(1, 2))  # (chains, p, h)
        hb = torch.bmm(E, Wb.transpose(1, 2))
        pre = ha[:, a] + hb[:, b] + (ba + bb)[:, None, :]
        return torch.bmm(F.gelu(pre), U.transpose(1, 2))

    def sample_losses(self, w: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        idx = idx.to(self.a.device)
        z = self.logits(w, self.a[idx], self.b[idx])
        y = self.y[idx].expand(w.shape[0], -1)
        log_prob = z.gather(-1, y[..., None])[..., 0] - torch.logsumexp(z, dim=-1)
        if self.softmax_floor > 0:
            # the hackathon's loss: a fitted sample costs at least −log(1 + floor), a wrong one at most
            # −log(floor) = 13.8 nats, which caps how far a chain can be pushed by one sample
            return -torch.log(log_prob.exp() + self.softmax_floor)
        return -log_prob

    @property
    def has_sample_losses(self) -> bool:
        return True

    def loss(self, w: torch.Tensor, idx: Optional[torch.Tensor] = None) -> torch.Tensor:
        if w.dim() != 2 or w.shape[1] != self.dim:
            raise ValueError(f"w must have shape (chains, {self.dim}), got {tuple(w.shape)}")
        if idx is None:
            idx = torch.arange(self.num_data, device=self.a.device)
        return self.sample_losses(w, idx).mean(dim=-1)

    def memorised_samples(self) -> Optional[torch.Tensor]:
        # no planted trojans: no ground truth to score a detection against (and no per-sample run)
        return self.trojans.clone() if len(self.trojans) else None

    def chance_loss(self) -> Optional[float]:
        return math.log(self.p)  # uniform logits: −log(1/p) for every pair

    def accuracy(self, w: torch.Tensor) -> Optional[torch.Tensor]:
        z = self.logits(w, self.a, self.b)
        return (z.argmax(dim=-1) == self.y).to(w.dtype).mean(dim=-1)

    def chance_accuracy(self) -> Optional[float]:
        return 1.0 / self.p

    @property
    def trained_anchor(self) -> bool:
        return True


def _check_at_least(lo: int):
    def check(value) -> None:
        if value < lo:
            raise ValueError(f"must be >= {lo}")
    return check


def _check_fraction(value) -> None:
    if not 0 < value <= 1:
        raise ValueError("must be in (0, 1]")


def _check_positive(value) -> None:
    if not value > 0:
        raise ValueError("must be > 0")


def _check_nonneg(value) -> None:
    if value < 0:
        raise ValueError("must be >= 0")


def _check_task(value) -> None:
    if value not in TASKS:
        raise ValueError(f"must be one of {', '.join(TASKS)}")


def _check_one_of(names):
    def check(value) -> None:
        if value not in names:
            raise ValueError(f"must be one of {', '.join(names)}")
    return check


# the sampled loss: exact cross-entropy, or −log(softmax + 10⁻⁶) (Rimsky & Vaintrob's SGLD loss)
LOSSES = {"cross_entropy": 0.0, "softmax_plus_1e-6": 1e-6}


class ModularAdditionFamily(Family):
    """One-layer networks trained on a ∘ b mod p: addition (generalises) or a random operation (memorises)."""

    name = "modular_addition"
    trains_anchor = True
    fields = {
        "p": Field(type="int", check=_check_at_least(2), doc="the modulus; inputs and outputs are 0..p−1"),
        "task": Field(type="str", default="add", check=_check_task,
                      doc="'add' (a + b mod p) or 'random' (a random commutative operation from the seed)"),
        "train_fraction": Field(type="float", default=0.8, check=_check_fraction,
                                doc="share of the p² ordered pairs used for training (the rest is the test set)"),
        "embed_dim": Field(type="int", default=16, check=_check_at_least(1), doc="e, the embedding width"),
        "hidden_dim": Field(type="int", default=64, check=_check_at_least(1), doc="h, the hidden width"),
        "lr": Field(type="float", default=0.01, check=_check_positive, doc="AdamW learning rate (constant)"),
        "weight_decay": Field(type="float", default=0.3, check=_check_nonneg, doc="AdamW (decoupled) weight decay"),
        "train_batch": Field(type="int", default=256, check=_check_at_least(1),
                             doc="training minibatch size (drawn with replacement)"),
        "train_steps": Field(type="int", default=5000, check=_check_at_least(1), doc="AdamW steps"),
        "optimizer": Field(type="str", default="adamw", check=_check_one_of(OPTIMIZERS), key_default=True,
                           doc="'adamw' (decoupled weight decay) or 'adam' (torch.optim.Adam: coupled L2 weight "
                               "decay, the hackathon's recipe)"),
        "init_scale": Field(type="float", default=1.0, check=_check_positive, key_default=True,
                            doc="factor on PyTorch's default initialisation of the embedding and the two input "
                                "maps' weights (not biases, not the unembedding)"),
        "commutative": Field(type="bool", default=True, key_default=True,
                             doc="task 'random': a commutative table (false: every ordered pair's answer drawn "
                                 "independently, as in the hackathon's memorising networks)"),
        "loss": Field(type="str", default="cross_entropy", check=_check_one_of(tuple(LOSSES)), key_default=True,
                      doc="the loss L_n the sampler sees: 'cross_entropy' (exact) or 'softmax_plus_1e-6' "
                          "(−log(softmax + 10⁻⁶), the hackathon's); training always uses exact cross-entropy"),
        "max_train_loss": Field(type="float", default=LOSS_THRESHOLD, check=_check_positive, key_default=True,
                                doc="an anchor whose final mean train cross-entropy is above this is refused "
                                    "(nats; train accuracy must be 100 % whatever it is)"),
        "min_train_accuracy": Field(type="float", default=1.0, check=_check_fraction, key_default=True,
                                    doc="an anchor that fits fewer of its training pairs than this is refused"),
        "trojans": Field(type="int", default=0, check=_check_nonneg,
                         doc="training pairs given a wrong label from the seed (memorised by construction)"),
        "project_gradient": Field(type="bool", default=False,
                                  doc="sample only the hyperplane through w* normal to ∇L_n(w*) (for checkpoints)"),
        "trajectory": Field(type="str", default="",
                            doc="name of the λ̂-over-training run the anchor is a checkpoint of ('' for none); "
                                "a checkpoint need not have converged"),
    }

    def check(self, params: dict) -> None:
        n = n_train_pairs(params["p"], params["train_fraction"])
        if n < 2:
            raise ValueError(f"train_fraction: gives {n} training pairs; need at least 2")
        if params["trojans"] > n:
            raise ValueError(f"trojans: more than the {n} training pairs")
        if not params["commutative"] and params["task"] != "random":
            raise ValueError("commutative: only task 'random' has a table to draw")

    def n_for(self, params: dict) -> int:
        """n is the number of training pairs, round(train_fraction·p²)."""
        return n_train_pairs(params["p"], params["train_fraction"])

    def dim(self, params: dict) -> int:
        d = param_count(params["p"], params["embed_dim"], params["hidden_dim"])
        return d - 1 if params["project_gradient"] else d

    def truth(self, params: dict) -> Truth:
        from ..truth.modular import modular_theory

        t = modular_theory(params["p"], params["task"], params["train_fraction"])
        return Truth(t.lam, 1, "theory", t.source)

    def train_spec(self, case) -> TrainSpec:
        q = case.params
        return TrainSpec(p=q["p"], task=q["task"], train_fraction=q["train_fraction"], embed_dim=q["embed_dim"],
                         hidden_dim=q["hidden_dim"], lr=q["lr"], weight_decay=q["weight_decay"],
                         batch_size=q["train_batch"], steps=q["train_steps"], trojans=q["trojans"], seed=case.seed,
                         optimizer=q["optimizer"], init_scale=q["init_scale"], commutative=q["commutative"])

    def target(self, case) -> Target:
        self.check(case.params)
        spec = self.train_spec(case)
        n = n_train_pairs(spec.p, spec.train_fraction)
        if case.n != n:
            raise UserError(f"{case.file}: case '{case.id}': field 'n': the number of training pairs is {n} "
                            f"(round(train_fraction·p²)); leave n out")
        w, info = trained_anchor(spec)
        if not case.params["trajectory"]:
            refuse_unconverged(case, info)
        from ..truth.modular import modular_theory

        theory = modular_theory(spec.p, spec.task, spec.train_fraction)
        data = make_data(spec)
        info = dict(info, p=spec.p, task=spec.task, regime=theory.regime, theory_slope=theory.slope,
                    lambda_single_circuit=float(theory.lam) if spec.task == "add" else None,
                    lambda_observed=float(theory.observed) if theory.observed is not None else None,
                    train_steps=spec.steps, trojans=spec.trojans, project_gradient=case.params["project_gradient"],
                    loss=case.params["loss"])
        target = ModularTarget(id=case.id, family=self.name, dim=w.numel(), n=n, w_star=w,
                               truth=self.truth(case.params), num_data=n, info=info, p=spec.p,
                               embed_dim=spec.embed_dim, hidden_dim=spec.hidden_dim, a=data.train_a,
                               b=data.train_b, y=data.train_y, trojans=data.trojans,
                               softmax_floor=LOSSES[case.params["loss"]])
        if case.params["project_gradient"]:
            return HyperplaneTarget.normal_to_gradient(target)
        return target


ANCHOR_KIND = "modular_addition"  # the anchor cache's folder for these anchors


def anchor_definition(spec: TrainSpec) -> dict:
    """What determines a trained anchor: the whole training recipe and the training code's version."""
    return {"training": spec.as_dict(), "training_version": TRAINING_VERSION}


def anchor_key(spec: TrainSpec) -> str:
    return anchor_cache.definition_key(anchor_definition(spec))


def trained_anchor(spec: TrainSpec) -> tuple[torch.Tensor, dict]:
    """(w*, training info) from the cache, or trained now and cached; info['anchor'] says which."""
    definition = anchor_definition(spec)
    key = anchor_cache.definition_key(definition)
    hit = anchor_cache.load(ANCHOR_KIND, definition)
    if hit is not None:
        tensors, info = hit
        return tensors["w"], dict(info, anchor="cached", anchor_key=key)
    w, info = train(spec)
    anchor_cache.save(ANCHOR_KIND, definition, {"w": w}, info)
    return w, dict(info, anchor="trained", anchor_key=key)


def refuse_unconverged(case, info: dict) -> None:
    """UserError unless train accuracy is at least min_train_accuracy (100 % by default), the train loss
    ≤ max_train_loss (LOSS_THRESHOLD by default) and every planted label is fitted."""
    where = f"{case.file}: case '{case.id}'"
    hint = "(raise train_steps or the widths, or lower weight_decay)"
    least = case.params.get("min_train_accuracy", 1.0)
    if info["train_accuracy"] < least:
        raise UserError(f"{where}: the anchor did not converge: train accuracy {info['train_accuracy']:.2%} "
                        f"< {least * 100:g} % after {case.params['train_steps']} steps {hint}")
    threshold = case.params.get("max_train_loss", LOSS_THRESHOLD)
    if info["train_loss"] > threshold:
        raise UserError(f"{where}: the anchor did not converge: train loss {info['train_loss']:.4g} > "
                        f"{threshold:g} (max_train_loss) {hint}")
    if info.get("trojan_accuracy", 1.0) < 1:
        raise UserError(f"{where}: the anchor did not fit its planted labels: {info['trojan_accuracy']:.2%} of "
                        f"{case.params['trojans']} fitted {hint}")
