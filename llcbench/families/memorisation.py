"""A synthetic memorisation task: a simple rule, plus a known set of training samples whose labels break it.

In the spirit of the synthetic memorisation task of "Interpreting complexity"
(2025): inputs x ∈ {−1, +1}^inputs are n distinct random bit patterns
(from ``case.seed``); labels y ∈ {−1, +1} follow a rule —

- ``threshold``: y = sign(t·x), t ~ N(0, I) (a linear threshold rule);
- ``parity``: y = x_1·x_2·…·x_k, the parity of the first ``rule_bits`` bits —

except for ``memorised`` samples (chosen at random) whose label is flipped:
the rule cannot produce them, so a network that fits them has memorised
them. They are the ground truth ``memorised_samples()``.

The model is a tanh MLP with biases, widths [inputs, *hidden, 1], output
f(x); the per-sample loss is ℓ_i(w) = (f(x_i) − y_i)²/2 (a Gaussian
likelihood with σ = 1, constant dropped), so an interpolating network is a
true minimum of L_n (L_n = 0), not a point on the way to infinity as with
cross-entropy. Anchor: trained deterministically in float64 from the
case's seed (full-batch Adam, then L-BFGS, one torch thread), cached on disk
(``anchor_cache``). A case refuses to exist if the trained network does not
fit every sample, the memorised ones included (|f(x_i) − y_i| < 1/2):
then there is nothing memorised to detect.

Truth: no λ is known for this network. The truth is d/2 of kind
``theory``, the upper bound λ ≤ d/2 that holds for every analytic model
(Watanabe 2009, Algebraic Geometry and Statistical Learning Theory), NOT an
estimate of λ: the scores keep the case out of every λ̂ score, and the case
is about per-sample detection only (``llcbench.score.detection``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

import torch

from ..errors import TruthError
from ..target import Target
from ..truth import Truth
from . import anchor_cache
from .base import Family, Field

RULES = ("threshold", "parity")
MAX_INPUTS = 24  # the inputs are drawn from a permutation of all 2^inputs patterns
FIT_TOLERANCE = 0.5  # |f(x_i) − y_i| below this for every sample: sign(f) = y_i with a margin of 1/2
ADAM_STEPS = 3000
ADAM_LR = 1e-2
LBFGS_STEPS = 400
TRAINING = {"optimiser": "adam then lbfgs", "adam_steps": ADAM_STEPS, "adam_lr": ADAM_LR,
            "lbfgs_steps": LBFGS_STEPS, "dtype": "float64", "threads": 1, "init": "uniform ±1/sqrt(fan_in)"}


def layer_shapes(widths: list[int]) -> list[tuple[int, int]]:
    """(out, in) of each layer of the MLP with these widths."""
    return [(widths[i + 1], widths[i]) for i in range(len(widths) - 1)]


def mlp_dim(widths: list[int]) -> int:
    return sum(o * i + o for o, i in layer_shapes(widths))


def mlp_forward(w: torch.Tensor, x: torch.Tensor, widths: list[int]) -> torch.Tensor:
    """f(x) for every row of w (flattened [W_1, b_1, W_2, b_2, ...], W row-major out×in):
    w (chains, d), x (batch, inputs) -> (chains, batch)."""
    chains = w.shape[0]
    h = x.to(w.dtype).expand(chains, *x.shape)  # (chains, batch, width)
    pos = 0
    shapes = layer_shapes(widths)
    for k, (o, i) in enumerate(shapes):
        weight = w[:, pos : pos + o * i].reshape(chains, o, i)
        pos += o * i
        bias = w[:, pos : pos + o]
        pos += o
        h = torch.baddbmm(bias[:, None, :], h, weight.transpose(1, 2))
        if k + 1 < len(shapes):
            h = torch.tanh(h)
    return h[..., 0]


@dataclass
class MemorisationTarget(Target):
    """The MLP's mean squared loss ½(f(x_i) − y_i)² on the task's data."""

    widths: tuple = ()
    x: Optional[torch.Tensor] = None  # (num_data, inputs) in {−1, +1}
    y: Optional[torch.Tensor] = None  # (num_data,) in {−1, +1}, memorised labels flipped
    memorised: Optional[torch.Tensor] = None  # (k,) int64

    def sample_losses(self, w: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        x, y = self.x[idx], self.y[idx]
        f = mlp_forward(w, x.to(device=w.device), list(self.widths))
        return 0.5 * (f - y.to(device=w.device, dtype=w.dtype)).square()

    def loss(self, w: torch.Tensor, idx: Optional[torch.Tensor] = None) -> torch.Tensor:
        if w.dim() != 2 or w.shape[1] != self.dim:
            raise ValueError(f"w must have shape (chains, {self.dim}), got {tuple(w.shape)}")
        if idx is None:
            idx = torch.arange(self.num_data, device=self.x.device)
        return self.sample_losses(w, idx).mean(dim=1)

    @property
    def has_sample_losses(self) -> bool:
        return True

    def memorised_samples(self) -> Optional[torch.Tensor]:
        return self.memorised

    def chance_loss(self) -> Optional[float]:
        # the best constant c = mean(y): ½·mean((y − c)²)
        y = self.y.to(torch.float64)
        return float(0.5 * (y - y.mean()).square().mean())

    def accuracy(self, w: torch.Tensor) -> Optional[torch.Tensor]:
        f = mlp_forward(w, self.x.to(device=w.device), list(self.widths))
        return (torch.sign(f) == self.y.to(device=w.device, dtype=w.dtype)).to(w.dtype).mean(dim=-1)

    def chance_accuracy(self) -> Optional[float]:
        up = float((self.y > 0).to(torch.float64).mean())
        return max(up, 1.0 - up)  # the better constant sign

    @property
    def trained_anchor(self) -> bool:
        return True


def _data(params: dict, n: int, seed: int):
    """(x, y with the memorised labels flipped, the memorised indices), from the seed."""
    gen = torch.Generator().manual_seed(int(seed))
    d_in = int(params["inputs"])
    # distinct inputs (drawn without replacement from the 2^inputs bit patterns): a repeated x with a
    # flipped label could not be fitted, and would be memorised only in name
    codes = torch.randperm(2**d_in, generator=gen)[:n]
    bits = (codes[:, None] >> torch.arange(d_in)) & 1
    x = bits.to(torch.float64) * 2 - 1
    if params["rule"] == "threshold":
        teacher = torch.randn(d_in, generator=gen, dtype=torch.float64)
        y = torch.sign(x @ teacher)
    else:
        y = x[:, : int(params["rule_bits"])].prod(dim=1)
    memorised = torch.randperm(n, generator=gen)[: int(params["memorised"])].sort().values
    y = y.clone()
    y[memorised] = -y[memorised]
    return x, y, memorised


def _train(x: torch.Tensor, y: torch.Tensor, widths: list[int], seed: int) -> tuple[dict, dict]:
    """The anchor: full-batch Adam then L-BFGS on the mean ½(f − y)², float64, one thread (so that
    the same case gives the same bits whatever the caller's thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + 7)
        parts = []
        for o, i in layer_shapes(widths):
            bound = 1.0 / math.sqrt(i)
            parts.append((torch.rand(o * i, generator=gen, dtype=torch.float64) * 2 - 1) * bound)
            parts.append((torch.rand(o, generator=gen, dtype=torch.float64) * 2 - 1) * bound)
        w = torch.cat(parts).requires_grad_(True)

        def loss_fn():
            return 0.5 * (mlp_forward(w[None], x, widths)[0] - y).square().mean()

        opt = torch.optim.Adam([w], lr=ADAM_LR)
        for _ in range(ADAM_STEPS):
            opt.zero_grad()
            loss_fn().backward()
            opt.step()
        lbfgs = torch.optim.LBFGS([w], lr=1.0, max_iter=LBFGS_STEPS, tolerance_grad=1e-12, tolerance_change=0.0,
                                  history_size=50, line_search_fn="strong_wolfe")

        def closure():
            lbfgs.zero_grad()
            value = loss_fn()
            value.backward()
            return value

        lbfgs.step(closure)
        w = w.detach()
        with torch.enable_grad():
            wl = w.clone().requires_grad_(True)
            value = 0.5 * (mlp_forward(wl[None], x, widths)[0] - y).square().mean()
            (grad,) = torch.autograd.grad(value, wl)
        residual = (mlp_forward(w[None], x, widths)[0] - y).abs()
    finally:
        torch.set_num_threads(threads)
    meta = {"loss": float(value.detach()), "grad_norm": float(grad.norm()), "max_residual": float(residual.max())}
    return {"w_star": w, "residual": residual}, meta


def _check_rule(value) -> None:
    if value not in RULES:
        raise ValueError(f"must be one of {', '.join(RULES)}")


def _check_pos(value) -> None:
    if value < 1:
        raise ValueError("must be >= 1")


def _check_inputs(value) -> None:
    if not 1 <= value <= MAX_INPUTS:
        raise ValueError(f"must be between 1 and {MAX_INPUTS}")


def _check_hidden(value) -> None:
    if not value or any(h < 1 for h in value):
        raise ValueError("must be a non-empty list of widths >= 1")


class MemorisationFamily(Family):
    """A rule plus planted random-label samples, fitted by a small MLP; per-sample detection only."""

    name = "memorisation"
    trains_anchor = True
    default_n = 512
    fields = {
        "inputs": Field(type="int", default=16, check=_check_inputs, doc="number of input bits x ∈ {−1, +1}^inputs"),
        "rule": Field(type="str", default="threshold", check=_check_rule,
                      doc="'threshold' (y = sign(t·x), t ~ N(0, I)) or 'parity' (of the first rule_bits bits)"),
        "rule_bits": Field(type="int", default=3, check=_check_pos, doc="bits of the parity rule"),
        "memorised": Field(type="int", check=_check_pos, doc="number of training samples with a flipped label"),
        "hidden": Field(type="int_list", default=[64], check=_check_hidden, doc="hidden widths of the tanh MLP"),
    }

    def check(self, params: dict) -> None:
        if params["rule"] == "parity" and int(params["rule_bits"]) > int(params["inputs"]):
            raise ValueError("rule_bits: more parity bits than inputs")

    @staticmethod
    def widths(params: dict) -> list[int]:
        return [int(params["inputs"]), *[int(h) for h in params["hidden"]], 1]

    def dim(self, params: dict) -> int:
        return mlp_dim(self.widths(params))

    def truth(self, params: dict) -> Truth:
        d = self.dim(params)
        return Truth(Fraction(d, 2), 1, "theory",
                     f"no λ is known for this network: d/2 = {d}/2 is only the upper bound λ ≤ d/2 of every "
                     "analytic model (Watanabe 2009), not an estimate; the case measures per-sample detection "
                     "of the memorised samples")

    def target(self, case) -> MemorisationTarget:
        params = case.params
        self.check(params)
        n = int(case.n)
        if int(params["memorised"]) >= n:
            raise TruthError(f"memorisation: memorised = {params['memorised']} must be < n = {n}")
        if n > 2 ** int(params["inputs"]):
            raise TruthError(f"memorisation: n = {n} distinct inputs need inputs >= {math.ceil(math.log2(n))}")
        widths = self.widths(params)
        x, y, memorised = _data(params, n, case.seed)
        definition = {"case": case.definition(), "training": TRAINING}
        tensors, meta = anchor_cache.load_or_build(self.name, definition, lambda: _train(x, y, widths, case.seed))
        w_star, residual = tensors["w_star"], tensors["residual"]
        unfit = residual >= FIT_TOLERANCE
        if bool(unfit.any()):
            bad_mem = int(unfit[memorised].sum())
            raise TruthError(
                f"memorisation: the trained network does not fit {int(unfit.sum())} of its {n} samples "
                f"({bad_mem} of the {len(memorised)} memorised ones; largest |f(x) − y| = {meta['max_residual']:.3g}"
                f" ≥ {FIT_TOLERANCE}): there is nothing memorised to detect; widen 'hidden' or lower 'memorised'")
        info = {"rule": params["rule"], "inputs": int(params["inputs"]), "hidden": list(params["hidden"]),
                "memorised": int(params["memorised"]), "seed": case.seed, "anchor": "trained (Adam, L-BFGS)",
                "loss": "mean (f(x) - y)^2 / 2", "training": meta}
        return MemorisationTarget(
            id=case.id, family=self.name, dim=mlp_dim(widths), n=n, w_star=w_star, truth=self.truth(params),
            num_data=n, info=info, widths=tuple(widths), x=x, y=y, memorised=memorised,
        )
