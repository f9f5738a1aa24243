"""Speed of the SG-MCMC estimators: one step, a full default run, and the peak memory of a large run.

``time_step`` times ONE iteration of the shared driver loop (the batched
minibatch loss and gradient, the λ trace, the sampler's update, the chain
monitor: ``llcbench.estimators.sgmcmc.driver._sample`` over one step) after
a short burn-in, so RMSProp's warm-up and freeze and SGNHT's thermostat
set-up are behind it. It is parametrised by the estimator, the
size of the deep linear network (d = 75, 800, 10,000) and the number of
chains (1, 8, 64), so that growth with d and with the chains shows.
"""

from __future__ import annotations

import importlib

from llcbench.estimators.sgmcmc import driver
from llcbench.runner import RunSpec, execute

from .common import DLN, SGMCMC, SMALL, case, config, target

BURN_IN = 30  # steps run in setup: RMSProp's warm-up (WARMUP steps) and its freeze, SGNHT's thermostat start
WARMUP = 20
CAPACITY = 20_000  # trace rows after the burn-in: more steps than asv times in one process
# the step-size rule at w* only (no adaptation rounds: they would cost more than the steps timed, and a
# step costs the same at any step size)
# (not named SETUP: asv reads module attributes case-insensitively, and would take it for setup)
RUN_FIELDS = ("adapt_rounds=0", "start=w_star", f"steps={BURN_IN + CAPACITY}", f"burn_in={BURN_IN}")


class StepSuite:
    params = (SGMCMC, list(DLN), [1, 8, 64])
    param_names = ["estimator", "size", "chains"]
    timeout = 300

    def setup(self, estimator, size, chains):
        # asv re-runs setup before every timed call: build the run once per process, then advance it
        key = (estimator, size, chains)
        run = _RUNS.get(key)
        if run is None or run[1] >= BURN_IN + CAPACITY - 1:
            extra = (f"warmup={WARMUP}",) if estimator == "rmsprop_sgld" else ()
            spec, cfg = config(estimator, (f"chains={chains}", *RUN_FIELDS, *extra))
            sampler = importlib.import_module(f"llcbench.estimators.{estimator}").SAMPLER
            state = driver._setup(target(DLN[size]), cfg, 0, "cpu", sampler)
            driver._sample(state, cfg, None, 0, BURN_IN)
            run = _RUNS[key] = [state, BURN_IN, cfg]
        self.run = run

    def time_step(self, estimator, size, chains):
        state, t, cfg = self.run
        driver._sample(state, cfg, None, t, t + 1)
        self.run[1] = t + 1


_RUNS: dict = {}


class DefaultRunSuite:
    """A whole default run (setup, sampling, diagnostics, record) on a small case."""

    params = [SGMCMC]
    param_names = ["estimator"]
    timeout = 300
    repeat = (1, 5, 60.0)

    def setup(self, estimator):
        spec, cfg = config(estimator)
        self.spec = RunSpec(case(SMALL), spec, cfg, 0)
        target(SMALL)

    def time_default_run(self, estimator):
        execute(self.spec)


class LargeRunMemorySuite:
    """Peak resident memory of a run on the 10,000-parameter network (the process's, imports included):
    the default config but 1,000 steps (300 burn-in), since what grows with the steps — the trace,
    steps × chains numbers — is 0.2 MB at the default 6,000; the data, its batch moments, the chains'
    buffers and the step-size rule's Hessian-vector products are what a longer run holds too."""

    params = [SGMCMC]
    param_names = ["estimator"]
    timeout = 600

    def setup(self, estimator):
        spec, cfg = config(estimator, ("steps=1000", "burn_in=300"))
        self.spec = RunSpec(case(DLN["large"]), spec, cfg, 0)

    def peakmem_run_large(self, estimator):
        execute(self.spec)
