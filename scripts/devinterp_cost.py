"""One estimate by devinterp's sampler or by llcbench's sgld at identical settings: for timing them side by side.

    python scripts/devinterp_cost.py --impl devinterp|llcbench --case ID [--chains 4] [--steps 300] [--burn-in 100]

Both run the same chains and steps from w*, with nβ = n/log n, γ = 1e-3·nβ, the same fixed step ε
(llcbench's SGLD rule at w*, computed once here), the same minibatch size (1024, at most n) and
float32, on one torch thread; llcbench's λ trace is the gradient batch's own loss (trace_batch =
same, no control variate), as devinterp's is. Prints one line: the estimate call's wall and CPU seconds and
both per chain-step (the process's start-up is outside it; time the whole process with
farm-bench, A = --impl devinterp, B = --impl llcbench).
"""

from __future__ import annotations

import argparse
import time

import torch

from llcbench.catalogue import load_catalogue
from llcbench.estimators.base import make_config
from llcbench.families import get_family


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--impl", choices=("devinterp", "llcbench"), required=True)
    p.add_argument("--case", required=True)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--burn-in", type=int, default=100)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    (case,) = [c for c in load_catalogue() if c.id == args.case]
    target = get_family(case.family).target(case)
    from llcbench.devinterp_adapter import DevinterpConfig, settings

    rules = make_config(DevinterpConfig, ["rules=llcbench"])
    kw = settings(target, rules, "sgmcmc_sgld", 0, "cpu")  # ε, nβ, γ, batch: llcbench's rules
    draws = args.steps - args.burn_in
    if args.impl == "devinterp":
        from llcbench.devinterp_adapter import sgld_spec

        spec = sgld_spec()
        config = make_config(DevinterpConfig, [f"lr={kw['lr']!r}", f"n_beta={kw['n_beta']!r}",
                                               f"localization={kw['localization']!r}", f"chains={args.chains}",
                                               f"draws={draws}", f"burn_in={args.burn_in}",
                                               f"batch_size={kw['batch_size']}"])
    else:
        from llcbench.estimators import get_estimator

        spec = get_estimator("sgld")
        config = make_config(spec.config_cls, [f"step_size={kw['lr']!r}", f"nbeta={kw['n_beta']!r}",
                                               f"gamma={kw['localization']!r}", f"chains={args.chains}",
                                               f"steps={args.steps}", f"burn_in={args.burn_in}",
                                               f"batch_size={kw['batch_size']}", "trace_batch=same",
                                               "control_variate=false", "per_sample=false",
                                               "max_doublings=0", "start=w_star"])  # exactly the steps timed
    t0, c0 = time.perf_counter(), time.process_time()
    est = spec.estimate(target, config, 0, "cpu")
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"{args.impl} {args.case} chains={args.chains} steps={args.steps} batch={kw['batch_size']} "
          f"lr={kw['lr']:.4g} lambda_hat={est.lambda_hat:.4g} seconds={sec:.3f} "
          f"per_chain_step_ms={1e3 * sec / (args.chains * args.steps):.4f} cpu_seconds={cpu:.3f} "
          f"cpu_per_chain_step_ms={1e3 * cpu / (args.chains * args.steps):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
