"""Chain-steps per second of the SG-MCMC estimators on a deep linear network of ≥ 10⁷ parameters, on a GPU.

Run (on a machine with CUDA; the defaults are the measurement the README asks for):

    python benchmarks/gpu_throughput.py                      # 8 chains, d = 10,200,000, cuda
    python benchmarks/gpu_throughput.py --device cpu --widths 10,20,20,10 --steps 50,150   # a quick check

The network: widths 100-1000×11-100 (ten 1000×1000 hidden layers: d =
10,200,000), teacher rank 10, n = 10,000 noiseless samples, minibatches of
1024, float32, as a catalogue DLN case (the family's moment-form loss and
hand-written gradient). For each estimator it reports, as
``benchmarks/test_speed.py`` does on the CPU:

- the MARGINAL cost of a step: (T(N2 steps) − T(N1 steps)) / (N2 − N1) for
  two complete ``estimate`` calls with an explicit step size, so that the
  fixed costs (L_n(w*), the diagnostics, the final transfer) cancel; as
  chain-steps per second = chains / that;
- the ratio of that step to a bare batched forward+backward of the same
  chains on the same batches (``target.loss_and_grad`` on the target's
  epoch plan: the gradient path the samplers use), timed between
  ``torch.cuda.synchronize()`` calls.

Best of ``--repeats`` interleaved repeats. Prints one JSON object (also to
``--out`` if given).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from llcbench.catalogue import build_target, parse_case
from llcbench.estimators import get_estimator
from llcbench.estimators.base import make_config
from llcbench.estimators.sgmcmc import EpochBatches

DEFAULT_WIDTHS = [100] + [1000] * 11 + [100]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def dln_target(widths: list[int], rank: int, n: int):
    case = parse_case({"id": f"dln/{'-'.join(map(str, widths))}/r{rank}", "family": "dln", "widths": widths,
                       "rank": rank, "n": n}, "gpu_throughput", 0)
    return build_target(case)


def estimate_seconds(target, estimator: str, chains: int, batch: int, steps: int, step_size: float,
                     device: str) -> float:
    spec = get_estimator(estimator)
    fields = {"step_size": step_size, "chains": chains, "batch_size": batch, "steps": steps,
              "burn_in": steps // 10, "dtype": "float32", "max_doublings": 0,
              "start": "w_star"}  # exactly `steps`: the marginal cost
    if estimator == "rmsprop_sgld":
        fields.update(eps_precond=1.0, warmup=1)  # no step-size rule: nothing but steps to time
    cfg = make_config(spec.config_cls, fields)
    sync(device)
    t0 = time.perf_counter()
    spec.estimate(target, cfg, seed=0, device=device)
    sync(device)
    return time.perf_counter() - t0


def bare_seconds(target_dev, chains: int, batch: int, steps: int, device: str) -> float:
    """``steps`` batched forward+backward passes of ``chains`` chains on the target's minibatch plan."""
    w = target_dev.w_star.expand(chains, target_dev.dim).clone()
    batches = EpochBatches(target_dev.num_data, batch, torch.Generator(device=device).manual_seed(0), device,
                           plan=target_dev.epoch_batches)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        target_dev.loss_and_grad(w, batches.next())
    sync(device)
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--widths", default=",".join(map(str, DEFAULT_WIDTHS)), help="input first, output last")
    p.add_argument("--rank", type=int, default=10)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--chains", type=int, default=8)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--steps", default="200,1000", metavar="N1,N2", help="the two run lengths compared")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--step-size", type=float, default=1e-9, help="explicit: no Hessian power iterations timed")
    p.add_argument("--estimators", default="sgld,rmsprop_sgld,sgnht")
    p.add_argument("--out", help="also write the JSON here")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu_throughput: --device cuda, but torch.cuda.is_available() is False")
    if args.device == "cpu":
        torch.set_num_threads(1)  # as llcbench run (a GPU machine builds the 10⁷-parameter data with all cores)
    widths = [int(x) for x in args.widths.split(",")]
    n1, n2 = (int(x) for x in args.steps.split(","))
    t0 = time.perf_counter()
    target = dln_target(widths, args.rank, args.n)
    build_s = time.perf_counter() - t0
    target_dev = target.to(args.device, torch.float32)
    out = {"device": args.device, "device_name": (torch.cuda.get_device_name(args.device)
                                                  if args.device.startswith("cuda") else platform.processor()),
           "torch": torch.__version__, "dim": target.dim, "widths": widths, "rank": args.rank, "n": args.n,
           "chains": args.chains, "batch": args.batch, "steps_compared": [n1, n2], "repeats": args.repeats,
           "target_build_seconds": build_s, "estimators": {}}
    bare_seconds(target_dev, args.chains, args.batch, 10, args.device)  # warm-up (kernels, allocator)
    names = args.estimators.split(",")
    for name in names:
        estimate_seconds(target, name, args.chains, args.batch, 20, args.step_size, args.device)
    best = {k: float("inf") for k in ["bare"] + [f"{e}_{m}" for e in names for m in (n1, n2)]}
    for _ in range(args.repeats):  # interleaved: every figure sees the same conditions
        best["bare"] = min(best["bare"], bare_seconds(target_dev, args.chains, args.batch, n2 - n1, args.device))
        for name in names:
            for m in (n1, n2):
                s = estimate_seconds(target, name, args.chains, args.batch, m, args.step_size, args.device)
                best[f"{name}_{m}"] = min(best[f"{name}_{m}"], s)
    bare_ms = best["bare"] / (n2 - n1) * 1e3
    out["bare_fwd_bwd_ms_per_step"] = bare_ms
    for name in names:
        step_ms = (best[f"{name}_{n2}"] - best[f"{name}_{n1}"]) / (n2 - n1) * 1e3
        if step_ms <= 0:  # the N2 − N1 steps cost less than the two runs' noise (a loaded machine, a tiny net)
            out["estimators"][name] = {"ms_per_step": None, "chain_steps_per_second": None,
                                       "ratio_step_over_bare": None,
                                       "note": f"not measured: T({n2} steps) − T({n1} steps) = {step_ms * (n2 - n1):.3g} ms "
                                               "is within the runs' noise; raise --steps or --repeats"}
            continue
        out["estimators"][name] = {"ms_per_step": step_ms, "chain_steps_per_second": args.chains / step_ms * 1e3,
                                   "ratio_step_over_bare": step_ms / bare_ms}
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    return out


if __name__ == "__main__":
    main()
