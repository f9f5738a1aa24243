"""λ̂, se and R-hat of the SG-MCMC estimators, pinned bit for bit on a fixed list of case × sampler runs.

The values are float.hex strings recorded from the code at commit 5a9195e (the Richardson runs and
sgnht-grid-dln's second point re-recorded in llcbench 0.8.0, when points of one nβ and γ began to
share the step rule's curvature: StepSizeRule.leader) (``python
tests/test_bit_identical.py`` prints the table). A change to the sampling loop that is meant to
be a pure refactor must keep every one of them; a change that moves any is a change of behaviour
and re-records the table in the same commit, saying why. Short runs (a few hundred steps): the
point is the arithmetic and the random draws, not the accuracy. Every config names ``extrapolate``
and ``max_doublings`` (0: the planned length; these short runs would all double) so that a change of
their defaults does not move the pins; tests/test_settle.py checks that a doubled run is the longer run.
"""

from __future__ import annotations

import sys

import pytest

from llcbench.catalogue import build_target, load_catalogue
from llcbench.estimators import get_estimator
from llcbench.estimators.base import make_config

SHORT = ["steps=300", "burn_in=100", "chains=3", "hessian_iters=10", "adapt_iters=5", "max_doublings=0",
         "start=w_star"]

# id: (estimator, case, seed, config overrides); a list of overrides per point is a grid run
RUNS = {
    "sgld-poly": ("sgld", "poly/w1^4", 0, ["extrapolate=none"]),
    "sgld-poly-richardson": ("sgld", "poly/w1^4", 1, ["extrapolate=richardson"]),
    "sgld-rrr": ("sgld", "rrr/5-3-5/r0", 2, ["extrapolate=none"]),
    "sgld-regression": ("sgld", "reg/w1*x+w2^2*x^2", 3, ["extrapolate=none"]),
    "sgld-regression-per-sample": ("sgld", "reg/w1*x+w2^2*x^2", 4,
                                   ["extrapolate=none", "per_sample=true", "probe_samples=16", "noise_draws=4"]),
    "rmsprop-regular": ("rmsprop_sgld", "regular/linear-5x4", 5, ["extrapolate=none"]),
    "rmsprop-logistic-richardson": ("rmsprop_sgld", "regular/logistic-3", 6, ["extrapolate=richardson"]),
    "sgnht-dln": ("sgnht", "dln/3-2-3/r1", 7, ["extrapolate=none"]),
    "sgnht-euler-dln": ("sgnht", "dln/3-2-3/r1", 8, ["extrapolate=none", "integrator=euler"]),
    "sgnht-rrr-richardson": ("sgnht", "rrr/5-3-5/r0", 9, ["extrapolate=richardson"]),
    "sgnht-euler-regression-richardson": ("sgnht", "reg/w1*x+w2^2*x^2", 10,
                                          ["extrapolate=richardson", "integrator=euler"]),
    "sgld-grid-regular": ("sgld", "regular/linear-5x4", 11,
                          [["extrapolate=none", "step_scale=0.1"], ["extrapolate=none", "nbeta_scale=3"],
                           ["extrapolate=none", "gamma_scale=0.01"]]),
    "sgnht-grid-dln": ("sgnht", "dln/3-2-3/r1", 12, [["extrapolate=none"], ["extrapolate=none", "step_scale=0.4"]]),
    "ladder-poly": ("ladder", "poly/w1^4", 13, ["extrapolate=none", "rungs=4"]),
}


def values(run_id: str) -> list[list[str]]:
    """[λ̂, se, R-hat] as float.hex strings, one triple per estimate (one per point of a grid run), and
    for a per-sample run its per-sample λ̂_i too."""
    name, case_id, seed, overrides = RUNS[run_id]
    spec = get_estimator(name)
    (case,) = [c for c in load_catalogue() if c.id == case_id]
    target = build_target(case)
    if overrides and isinstance(overrides[0], list):
        estimates = spec.estimate_grid(target, [make_config(spec.config_cls, SHORT + p) for p in overrides], seed,
                                       "cpu")
    else:
        estimates = [spec.estimate(target, make_config(spec.config_cls, SHORT + overrides), seed, "cpu")]
    out = []
    for e in estimates:
        out.append([_hex(e.lambda_hat), _hex(e.se), _hex(e.diagnostics.get("rhat"))])
        if e.per_sample is not None:
            out.append([_hex(v) for v in e.per_sample["lambda"]])
    return out


def _hex(x) -> str:
    return "None" if x is None else float(x).hex()


PINNED = {  # recorded at 5a9195e, one torch thread, cpu
    'sgld-poly': [
        ['0x1.6f33449588f66p-2', '0x1.86f305261eedcp-5', '0x1.08364401bf98ap+0'],
    ],
    'sgld-poly-richardson': [
        ['0x1.1d3dd161016e4p-2', '0x1.2bf6aead6b042p-3', '0x1.1aad490a941f3p+0'],
    ],
    'sgld-rrr': [
        ['0x1.79102db58b1a6p+2', '0x1.11231ce27bc20p-2', '0x1.04733e7ded19dp+0'],
    ],
    'sgld-regression': [
        ['0x1.60fea2af6d5c0p-1', '0x1.677a945f277cbp-3', '0x1.2d3bb1856c19ep+0'],
    ],
    'sgld-regression-per-sample': [
        ['0x1.00935564e573bp-1', '0x1.bb03f6b88ffe8p-4', '0x1.19cbbdd392e9ep+0'],
        ['0x1.a2286a17e6caap-1', '0x1.98f0ffeb308dep-2', '-0x1.5f0ded3267255p+2',
         '-0x1.3643245ccf8d2p+1', '-0x1.512105c421fd8p+3', '-0x1.9ee2863f60368p+1',
         '-0x1.96fe41b4ccf77p+2', '-0x1.1c4b9ae98d02ap+1', '0x1.758771647f698p+1',
         '-0x1.14c229629737dp+4', '-0x1.43a6968e07e80p-1', '0x1.9fd1bde93db2ap-1',
         '-0x1.d7edcb79abfbep-1', '-0x1.9d2e3d528e89fp-2', '-0x1.6f5c1894a7fe4p+1',
         '0x1.417dd998186c2p-3'],
    ],
    'rmsprop-regular': [
        ['0x1.39d0d789c330cp+3', '0x1.b54e6d58b132fp-2', '0x1.0ba63cf3f2743p+0'],
    ],
    'rmsprop-logistic-richardson': [
        ['0x1.3c36717c32591p+1', '0x1.b5b964c67e54ap-1', '0x1.110fbbc463e58p+0'],
    ],
    'sgnht-dln': [
        ['0x1.1743eb808d455p+1', '0x1.ac722cf917f9fp-4', '0x1.18a0732c17773p+0'],
    ],
    'sgnht-euler-dln': [
        ['0x1.58e4d85488fdcp+1', '0x1.0edf927dce80ap-1', '0x1.7ae3c160fe35dp+0'],
    ],
    'sgnht-rrr-richardson': [
        ['0x1.c9fdad2a9d9b6p+2', '0x1.ba8ec40a4d8bap-1', '0x1.19794f4e71cb9p+0'],
    ],
    'sgnht-euler-regression-richardson': [
        ['0x1.6c07232a9b538p-3', '0x1.e63097c28e4b4p-3', '0x1.0501e6410f9b4p+0'],
    ],
    'sgld-grid-regular': [
        ['0x1.2cf93ad2c49f6p+3', '0x1.e4b944f826153p-1', '0x1.459da73420c7ep+0'],
        ['0x1.4ca6f5e0c6938p+3', '0x1.659c6d239ce06p-1', '0x1.1e53a71676984p+0'],
        ['0x1.4a4fb00fd2a53p+3', '0x1.d3765db04b7a7p-2', '0x1.10ed733c4dc0cp+0'],
    ],
    'sgnht-grid-dln': [
        ['0x1.f12a979b86e82p+0', '0x1.46c242ed4c734p-3', '0x1.2a1dda45ef617p+0'],
        ['0x1.883170912e154p+1', '0x1.0697ddf9b0347p-2', '0x1.21800ea462e2dp+0'],
    ],
    'ladder-poly': [
        ['0x1.ef1e629829252p-3', '0x1.13f088a3cc0b7p-2', '0x1.38022ea476279p+0'],
    ],
}


@pytest.mark.parametrize("run_id", sorted(RUNS))
def test_bit_identical(run_id):
    assert values(run_id) == PINNED[run_id]


if __name__ == "__main__":  # print the table to paste into PINNED
    import torch

    torch.set_num_threads(1)
    for run_id in (sys.argv[1:] or RUNS):
        print(f"    {run_id!r}: {values(run_id)!r},", flush=True)
