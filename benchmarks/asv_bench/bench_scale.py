"""Cost of a chain step against d on the published benchmark's random teachers (CPU), from 10³ to 10⁵.

``time_step`` times one iteration of the shared driver loop, as
``bench_sgmcmc.StepSuite`` does, on three protocol teachers (variant
``protocol``: Xavier-normal layers, one rank-reduced, inputs uniform on
[−10, 10]) of d = 1,000, 10,000 and 100,000, at the protocol's batch of 500
and 8 chains; divided by 8 it is the per-chain-step time, which should grow
linearly in d. ``peakmem_run`` is the peak resident memory of a short run on
the same teacher (data, chains' buffers and trace included).
"""

from __future__ import annotations

import importlib
from functools import lru_cache

from llcbench.catalogue import build_target, parse_case
from llcbench.families.dln import protocol_layer_ranks
from llcbench.estimators.sgmcmc import driver
from llcbench.runner import RunSpec, execute

from .common import config

# protocol teachers of d = 1,000, 10,000, 100,000 (one layer rank-reduced each)
TEACHERS = {
    "1e3": ([20, 25, 20], [-1, 5]),
    "1e4": ([50, 50, 50, 50, 50], [-1, 20, -1, -1]),
    "1e5": ([150, 200, 200, 150], [-1, 60, -1]),
}
N = 100_000
CHAINS = 8
BATCH = 500
BURN_IN = 30
CAPACITY = 20_000
RUN_FIELDS = ("adapt_rounds=0", "start=w_star", f"steps={BURN_IN + CAPACITY}", f"burn_in={BURN_IN}",
              f"chains={CHAINS}", f"batch_size={BATCH}", "gamma=1.0")


@lru_cache(maxsize=None)
def protocol_case(size: str):
    widths, keep = TEACHERS[size]
    rank = min(protocol_layer_ranks(widths, keep))
    entry = {"id": f"bench/dln/{'-'.join(map(str, widths))}", "family": "dln", "variant": "protocol",
             "widths": widths, "keep": keep, "rank": rank, "inputs": "uniform", "n": N, "seed": 1}
    return parse_case(entry, "bench_scale", 0)


@lru_cache(maxsize=None)
def protocol_target(size: str):
    return build_target(protocol_case(size))


class ScaleStepSuite:
    params = (["sgld", "rmsprop_sgld"], list(TEACHERS))
    param_names = ["estimator", "d"]
    timeout = 600

    def setup(self, estimator, size):
        key = (estimator, size)
        run = _RUNS.get(key)
        if run is None or run[1] >= BURN_IN + CAPACITY - 1:
            extra = ("warmup=20",) if estimator == "rmsprop_sgld" else ()
            spec, cfg = config(estimator, (*RUN_FIELDS, *extra))
            sampler = importlib.import_module(f"llcbench.estimators.{estimator}").SAMPLER
            state = driver._setup(protocol_target(size), cfg, 0, "cpu", sampler)
            driver._sample(state, cfg, None, 0, BURN_IN)
            run = _RUNS[key] = [state, BURN_IN, cfg]
        self.run = run

    def time_step(self, estimator, size):
        state, t, cfg = self.run
        driver._sample(state, cfg, None, t, t + 1)
        self.run[1] = t + 1


_RUNS: dict = {}


class ScaleRunMemorySuite:
    """Peak resident memory of a 300-step sgld run (100 burn-in) on each teacher."""

    params = [list(TEACHERS)]
    param_names = ["d"]
    timeout = 600

    def setup(self, size):
        spec, cfg = config("sgld", ("steps=300", "burn_in=100", f"chains={CHAINS}", f"batch_size={BATCH}",
                                    "gamma=1.0", "step_size=5e-7"))
        self.spec = RunSpec(protocol_case(size), spec, cfg, 0)

    def peakmem_run(self, size):
        execute(self.spec)
