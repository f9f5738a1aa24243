"""Per-chain-step time of sgld and rmsprop_sgld against d on the protocol teachers of
benchmarks/asv_bench/bench_scale.py (CPU), as a Markdown table for docs/scale.md.

Times ``steps`` iterations of the driver loop after the asv suite's burn-in, best of ``repeats``;
per chain-step = that / chains. One torch thread, as the asv suite and ``llcbench run``.

    python scripts/scale_cost.py [--steps 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    torch.set_num_threads(1)
    from asv_bench import bench_scale

    from llcbench.families.dln import dln_dim

    print("| estimator | d | per chain-step (µs) | per chain-step / d (ns) |")
    print("|---|---|---|---|")
    for estimator in ("sgld", "rmsprop_sgld"):
        for size, (widths, _keep) in bench_scale.TEACHERS.items():
            suite = bench_scale.ScaleStepSuite()
            best = float("inf")
            for _ in range(args.repeats):
                suite.setup(estimator, size)
                start = time.perf_counter()
                for _ in range(args.steps):
                    suite.time_step(estimator, size)
                best = min(best, (time.perf_counter() - start) / args.steps)
            per_chain = best / bench_scale.CHAINS
            d = dln_dim(widths)
            print(f"| {estimator} | {d:,} | {per_chain * 1e6:.1f} | {per_chain / d * 1e9:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
