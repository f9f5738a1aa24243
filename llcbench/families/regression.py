"""Polynomial regression models with data: y = f(w, x) + σ·ξ at a true parameter w*.

A case gives f as a string polynomial in its declared parameters and inputs
(``model``, ``parameters``, ``inputs``), the true parameter ``w_star``, the
input distribution (``normal`` with ``input_std``, or ``uniform`` on the box
``input_bounds``), the noise σ (``noise_std``), n and the data seed. From
``case.seed``: x_i drawn from the input distribution, ξ_i ~ N(0, 1), and
y_i = f(w*, x_i) + σ·ξ_i. The loss is the per-sample Gaussian NLL
L_B(w) = mean_{i∈B} (y_i − f(w, x_i))²/(2σ²) (constant ½·log 2πσ² dropped;
σ = 0 gives noiseless labels and a loss scaled with σ = 1).

With f(w, x) − f(w*, x) = Σ_α h_α(w)·x^α (``truth.regression``) the
residual is y_i − f(w, x_i) = e_i − h(w)·φ(x_i), with features
φ_α(x) = x^α and e_i = σ·ξ_i the residual at w*. So the loss is the Gaussian
loss of the linear map h(w) on the rows [φ | e] and is evaluated from their
batch moments (``moments.py``, the same number as the per-sample mean): the
data enter only through a (k+1)×(k+1) moment matrix, k the number of
monomials x^α that depend on w. h(w) and its Jacobian are polynomials in
u = w − w* with exact (rational, then float) coefficients, evaluated for all
chains at once; ∇L = Jᵀ·∂L/∂h in closed form. The full-data excess
L_n(w) − L_n(w*) comes from the precomputed full moments (exact and as
cheap as a minibatch loss), and L_n is stated exactly as a polynomial in u
(``polynomial()``), its coefficients the data moments.

Truth: that of H = Σ_α h_α² by the polynomial engine (Aoyagi 2024,
Theorem 1; see ``truth.regression``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..errors import TruthError
from ..target import PolynomialForm, Target
from ..truth import Truth
from . import moments
from .base import Family, Field

DISTRIBUTIONS = ("normal", "uniform")


@dataclass
class PolynomialMap:
    """k polynomials in u ∈ R^d and their Jacobian, as one table of monomials.

    exponents: (m, d) int64, the monomials u^a that occur in any h_α or ∂h_α/∂u_j.
    values: (m, k) float, h = mono(u) @ values.  jacobian: (m, k·d), J = mono(u) @ jacobian.
    """

    exponents: torch.Tensor
    values: torch.Tensor
    jacobian: torch.Tensor
    max_degree: int

    @classmethod
    def from_polys(cls, polys: list, gens: tuple) -> "PolynomialMap":
        d, k = len(gens), len(polys)
        index: dict[tuple, int] = {}
        entries: list[tuple[int, int, float]] = []  # (monomial, column, coefficient)
        jac_entries: list[tuple[int, int, float]] = []

        def slot(mon):
            return index.setdefault(tuple(int(e) for e in mon), len(index))

        for a, poly in enumerate(polys):
            for mon, c in poly.terms():
                entries.append((slot(mon), a, float(c)))
            for j, g in enumerate(gens):
                for mon, c in poly.diff(g).terms():
                    if c != 0:
                        jac_entries.append((slot(mon), a * d + j, float(c)))
        exps = torch.tensor(sorted(index, key=index.get), dtype=torch.int64).reshape(len(index), d)
        values = torch.zeros(len(index), k, dtype=torch.float64)
        jac = torch.zeros(len(index), k * d, dtype=torch.float64)
        for row, col, c in entries:
            values[row, col] += c
        for row, col, c in jac_entries:
            jac[row, col] += c
        return cls(exps, values, jac, int(exps.max().item()) if exps.numel() else 0)

    def monomials(self, u: torch.Tensor) -> torch.Tensor:
        """(chains, m): every monomial at every row of u, from a power table built by repeated
        products (exact at u_i = 0, where torch.pow's gradient would be 0·∞)."""
        pows = [torch.ones_like(u)]
        for _ in range(self.max_degree):
            pows.append(pows[-1] * u)
        table = torch.stack(pows, dim=-1)  # (chains, d, deg+1)
        exps = self.exponents.to(u.device)
        cols = torch.arange(u.shape[1], device=u.device).expand_as(exps)
        return table[:, cols, exps].prod(dim=-1)

    def value(self, u: torch.Tensor) -> torch.Tensor:
        return self.monomials(u) @ self.values.to(device=u.device, dtype=u.dtype)

    def value_and_jacobian(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mono = self.monomials(u)
        k = self.values.shape[1]
        jac = (mono @ self.jacobian.to(device=u.device, dtype=u.dtype)).reshape(u.shape[0], k, u.shape[1])
        return mono @ self.values.to(device=u.device, dtype=u.dtype), jac

    def to(self, device, dtype) -> "PolynomialMap":
        return PolynomialMap(self.exponents.to(device), self.values.to(device=device, dtype=dtype),
                             self.jacobian.to(device=device, dtype=dtype), self.max_degree)


@dataclass
class RegressionTarget(Target):
    """The Gaussian NLL of a polynomial regression model, from batch moments of [φ(x) | e]."""

    coefficient_map: Optional[PolynomialMap] = None  # u -> h(w* + u)
    features: Optional[torch.Tensor] = None  # φ(x_i): (num_data, k)
    z: Optional[torch.Tensor] = None  # [φ | e] (None when e ≡ 0: noiseless labels)
    full_moments: Optional[torch.Tensor] = None  # zᵀz/n (or φᵀφ/n) over all the data
    sigma: float = 1.0  # loss scale
    prior_h: Optional[torch.Tensor] = None  # (d,) prior ∏|w_i − w*_i|^h_i, or None (flat)

    def to(self, device="cpu", dtype=torch.float64) -> "RegressionTarget":
        new = super().to(device, dtype)
        new.coefficient_map = self.coefficient_map.to(device, dtype)
        return new

    def _check(self, w: torch.Tensor) -> None:
        if w.dim() != 2 or w.shape[1] != self.dim:
            raise ValueError(f"w must have shape (chains, {self.dim}), got {tuple(w.shape)}")

    def _offset(self, w: torch.Tensor) -> torch.Tensor:
        return w - self.w_star.to(device=w.device, dtype=w.dtype)

    def _moments(self, idx, w: torch.Tensor) -> torch.Tensor:
        m = self.full_moments if idx is None else moments.batch_moments(self.features, self.z, idx)
        return m.to(device=w.device, dtype=w.dtype)

    def epoch_batches(self, perm: torch.Tensor, count: int) -> list:
        plan = moments.epoch_moments(self.features, self.z, perm, count)
        return plan if plan is not None else super().epoch_batches(perm, count)

    def loss(self, w: torch.Tensor, idx: Optional[torch.Tensor] = None) -> torch.Tensor:
        self._check(w)
        h = self.coefficient_map.value(self._offset(w))  # differentiable (step-size rule: Hessian products)
        return moments.loss_from_moments(h[:, None, :], self._moments(idx, w), self.sigma)

    def loss_and_grad(self, w: torch.Tensor, idx: Optional[torch.Tensor] = None):
        self._check(w)
        w = w.detach()
        h, jac = self.coefficient_map.value_and_jacobian(self._offset(w))
        loss, g_h = moments.loss_and_map_grad(h[:, None, :], self._moments(idx, w), self.sigma)
        return loss, torch.bmm(g_h, jac)[:, 0, :]  # ∇_w L = Jᵀ ∂L/∂h

    def full_loss(self, w: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
        return self.loss(w)  # the full moments: no pass over the data

    @property
    def has_full_excess_loss(self) -> bool:
        return True

    def full_excess_loss(self, w: torch.Tensor) -> torch.Tensor:
        self._check(w)
        h = self.coefficient_map.value(self._offset(w.detach()))
        return moments.excess_from_moments(h[:, None, :], self._moments(None, w), self.sigma)

    def loss_grad_and_excess(self, w: torch.Tensor, idx=None):
        """One evaluation of h and its Jacobian serves the minibatch gradient and the full excess."""
        self._check(w)
        w = w.detach()
        h, jac = self.coefficient_map.value_and_jacobian(self._offset(w))
        d = h[:, None, :]
        loss, g_h = moments.loss_and_map_grad(d, self._moments(idx, w), self.sigma)
        excess = moments.excess_from_moments(d, self._moments(None, w), self.sigma)
        return loss, torch.bmm(g_h, jac)[:, 0, :], excess

    @property
    def has_sample_losses(self) -> bool:
        return True

    def sample_losses(self, w: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """ℓ_i(w) = (e_i − h(w)·φ(x_i))²/(2σ²) for the data points idx: (chains, len(idx))."""
        self._check(w)
        h = self.coefficient_map.value(self._offset(w))
        phi = self.features.index_select(0, idx).to(device=w.device, dtype=w.dtype)
        resid = -(h @ phi.T)
        if self.z is not None:
            resid = resid + self.z[:, -1].index_select(0, idx).to(device=w.device, dtype=w.dtype)
        return resid.square() / (2.0 * self.sigma**2)

    def log_prior(self, w: torch.Tensor) -> Optional[torch.Tensor]:
        if self.prior_h is None:
            return None
        h = self.prior_h.to(device=w.device, dtype=w.dtype)
        return (h * torch.log(self._offset(w).abs())).sum(dim=-1)

    @property
    def has_prior(self) -> bool:
        return self.prior_h is not None

    def polynomial(self) -> PolynomialForm:
        """L_n(w* + u) exactly as a polynomial in u: (hᵀS_φφh − 2·S_eφ·h + S_ee)/(2σ²) with the full
        data moments, expanded term by term (float64; the monomials of h(u) are those of the map)."""
        cmap = self.coefficient_map.to("cpu", torch.float64)
        A = cmap.exponents.numpy()
        C = cmap.values.numpy()  # (m, k)
        M = self.full_moments.detach().cpu().to(torch.float64).numpy()
        k = C.shape[1]
        sxx = M[:k, :k]
        terms: dict[tuple, float] = {}
        Q = C @ sxx @ C.T  # (m, m): coefficient of mono_a·mono_b in hᵀS_φφh
        for a in range(len(A)):
            for b in range(len(A)):
                if Q[a, b] != 0:
                    key = tuple(int(v) for v in A[a] + A[b])
                    terms[key] = terms.get(key, 0.0) + Q[a, b] / (2.0 * self.sigma**2)
        if M.shape[0] > k:
            lin = C @ M[k, :k]  # S_eφ·h, per monomial
            for a in range(len(A)):
                if lin[a] != 0:
                    key = tuple(int(v) for v in A[a])
                    terms[key] = terms.get(key, 0.0) - lin[a] / self.sigma**2
            terms[(0,) * self.dim] = terms.get((0,) * self.dim, 0.0) + M[k, k] / (2.0 * self.sigma**2)
        keys = sorted(terms)
        exps = torch.tensor(keys, dtype=torch.int64).reshape(len(keys), self.dim)
        coeffs = torch.tensor([terms[key] for key in keys], dtype=torch.float64)
        return PolynomialForm(exps, coeffs, None if self.prior_h is None else self.prior_h.to(torch.float64))


def _parse(params: dict):
    from ..truth.regression import parse_model

    return parse_model(params["model"], params["parameters"], params["inputs"], params["w_star"])


def _check_distribution(value) -> None:
    if value not in DISTRIBUTIONS:
        raise ValueError(f"must be one of {', '.join(DISTRIBUTIONS)}")


def _check_std(value) -> None:
    if not value > 0:
        raise ValueError("must be > 0")


def _check_bounds(value) -> None:
    if len(value) != 2 or not value[0] < value[1]:
        raise ValueError("must be [low, high] with low < high")


def _check_prior(value) -> None:
    if any(isinstance(h, bool) or not isinstance(h, int) or h < 0 for h in value):
        raise ValueError("prior exponents must be integers >= 0")


def _check_names(value) -> None:
    if not value:
        raise ValueError("must name at least one variable")


class RegressionFamily(Family):
    """y = f(w, x) + σ·ξ with f polynomial in w and x, at the true parameter w*; λ from H = Σ_α h_α²."""

    name = "regression"
    default_n = 10_000
    default_noise_std = 1.0
    fields = {
        "model": Field(type="str", doc="f(w, x), a polynomial in the parameters and inputs with rational "
                                       "coefficients, e.g. 'w1 * w2**3 * x'"),
        "parameters": Field(type="str_list", check=_check_names, doc="the parameter names, in the order of w"),
        "inputs": Field(type="str_list", default=["x"], check=_check_names, doc="the input names"),
        "w_star": Field(type="float_list", doc="the true parameter w*, one value per parameter "
                                               "(decimals taken exactly: 0.1 = 1/10)"),
        "input_distribution": Field(type="str", default="normal", check=_check_distribution,
                                    doc="inputs i.i.d. per coordinate: 'normal' (mean 0, input_std) or "
                                        "'uniform' (on input_bounds)"),
        "input_std": Field(type="float", default=1.0, check=_check_std, doc="σ_x of the normal inputs"),
        "input_bounds": Field(type="float_list", default=[-1.0, 1.0], check=_check_bounds,
                              doc="[low, high] of the uniform inputs"),
        "prior_exponents": Field(type="int_list", default=[], check=_check_prior,
                                 doc="prior density ∏|w_i − w*_i|^h_i, one h_i per parameter; [] = flat prior"),
    }

    def check(self, params: dict) -> None:
        try:
            _parse(params)
        except TruthError as exc:
            raise ValueError(str(exc)) from None
        h = list(params.get("prior_exponents") or [])
        if h and len(h) != len(params["parameters"]):
            raise ValueError(f"prior_exponents: needs {len(params['parameters'])} entries (one per parameter), "
                             f"got {len(h)}")

    def dim(self, params: dict) -> int:
        return len(params["parameters"])

    def truth(self, params: dict) -> Truth:
        from ..truth.regression import regression_truth

        return regression_truth(params["model"], params["parameters"], params["inputs"], params["w_star"],
                                list(params.get("prior_exponents") or []) or None)

    def target(self, case) -> RegressionTarget:
        params = case.params
        self.check(params)
        parsed = _parse(params)
        n, p = int(case.n), len(parsed.inputs)
        sigma = self.default_noise_std if case.noise_std is None else float(case.noise_std)
        gen = torch.Generator().manual_seed(int(case.seed))
        if params["input_distribution"] == "normal":
            x = float(params["input_std"]) * torch.randn(n, p, generator=gen, dtype=torch.float64)
        else:
            low, high = (float(b) for b in params["input_bounds"])
            x = low + (high - low) * torch.rand(n, p, generator=gen, dtype=torch.float64)
        noise = sigma * torch.randn(n, generator=gen, dtype=torch.float64)  # e = y − f(w*, x)
        alphas = parsed.alphas
        exps = torch.tensor(alphas, dtype=torch.int64)  # (k, p)
        features = torch.stack([torch.prod(x ** exps[a], dim=1) for a in range(len(alphas))], dim=1)
        z = torch.cat([features, noise[:, None]], dim=1) if bool(noise.any()) else None
        cmap = PolynomialMap.from_polys([parsed.coefficients[a] for a in alphas], parsed.u)
        h = list(params.get("prior_exponents") or [])
        info = {"model": params["model"], "parameters": list(parsed.params), "inputs": list(parsed.inputs),
                "w_star": [str(s) for s in parsed.w_star], "monomials": [list(a) for a in alphas],
                "input_distribution": params["input_distribution"], "noise_std": sigma, "seed": case.seed,
                "loss": "mean (y - f(w, x))^2 / (2 sigma^2), constant dropped",
                "h": [str(parsed.coefficients[a].as_expr()) for a in alphas]}
        if params["input_distribution"] == "normal":
            info["input_std"] = float(params["input_std"])
        else:
            info["input_bounds"] = [float(b) for b in params["input_bounds"]]
        return RegressionTarget(
            id=case.id, family=self.name, dim=len(parsed.params), n=n,
            w_star=torch.tensor([float(s) for s in parsed.w_star], dtype=torch.float64),
            truth=self.truth(params), num_data=n, info=info, coefficient_map=cmap, features=features, z=z,
            full_moments=moments.batch_moments(features, z, None), sigma=sigma if sigma > 0 else 1.0,
            prior_h=torch.tensor(h, dtype=torch.float64) if h else None,
        )

