"""Peak memory of deep-linear-network runs, measured, against the bound the size check uses.

Runs one DLN case per size in a fresh subprocess (``llcbench run``, a short
SG-MCMC run) and reads its peak resident set (``ru_maxrss``, and VmRSS polled
every 5 ms) less the resident set after the same run at a tiny n (the
interpreter, torch and the libraries loaded): the memory the data cost,
printed beside the size check's need (``llcbench.families.dln.run_data_bytes``
plus ``llcbench.limits.run_size_bytes``: the bound) and the data alone (``data_bytes``: x, and with noisy labels y and [x | e], in float64).

    python scripts/dln_memory.py                      # the default sizes
    python scripts/dln_memory.py --tree /other/checkout --size 200000:200,150,200
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = ("200000:200,150,200", "500000:200,150,200", "1000000:200,150,200", "1000000:50,100,400",
         "500000:150,100,150:0.1")
RUN = ("run", "--estimator", "sgld", "--no-builtin", "--set", "steps=300", "--set", "burn_in=100", "--force",
       "--quiet", "--threads", "1")
# in the child: a tiny run first (every library loaded, the allocator warm), then the resident set
# as the baseline, then the run measured: its peak by ru_maxrss and by polling VmRSS every 5 ms
CHILD = """
import json, resource, sys, threading, time
from llcbench.cli import main

def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))

tiny, case, *run = sys.argv[1:]
assert main([*run, "--file", tiny]) == 0
base, polled, stop = rss(), [0], threading.Event()

def poll():
    while not stop.is_set():
        polled[0] = max(polled[0], rss())
        time.sleep(0.005)

thread = threading.Thread(target=poll, daemon=True)
thread.start()
rc = main([*run, "--file", case])
stop.set()
thread.join()
print(json.dumps({"rc": rc, "base": base, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "polled": polled[0]}))
"""
GIB = 2**30


def case_text(n: int, widths: list[int], noise: float) -> str:
    return (f'[[case]]\nid = "mem/{n}/{"-".join(map(str, widths))}"\nfamily = "dln"\n'
            f"widths = {widths}\nrank = {min(widths) // 2}\nn = {n}\nseed = 1\n"
            + (f"noise_std = {noise}\n" if noise else ""))


def growth(tree: Path, n: int, widths: list[int], noise: float, work: Path) -> tuple[int, int]:
    """(peak by ru_maxrss, peak by polling) of one run of the case, less the resident set before it."""
    tiny, case = work / "tiny.toml", work / "case.toml"
    tiny.write_text(case_text(2000, widths, noise))
    case.write_text(case_text(n, widths, noise))
    env = dict(os.environ, PYTHONPATH=str(tree))
    args = [sys.executable, "-c", CHILD, str(tiny), str(case), *RUN, "--db", str(work / "s.sqlite")]
    # cwd: the scratch folder, so that `python -c` (the current folder first on sys.path) imports the tree's llcbench
    proc = subprocess.run(args, env=env, cwd=work, capture_output=True, text=True, check=False)
    out = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not out or json.loads(out[-1])["rc"] != 0:
        raise SystemExit(f"the run failed:\n{proc.stderr[-2000:]}")
    got = json.loads(out[-1])
    return got["peak"] - got["base"], got["polled"] - got["base"]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", type=Path, default=ROOT, help="the llcbench checkout to run (default: this one)")
    ap.add_argument("--size", action="append", help="N:H0,...,HM[:NOISE_STD] (repeatable)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from llcbench import __version__
    from llcbench.estimators import get_estimator
    from llcbench.estimators.base import make_config
    from llcbench.families.dln import data_bytes, dln_dim, memory_terms, run_data_bytes
    from llcbench.limits import run_size_bytes

    spec = get_estimator("sgld")
    config = make_config(spec.config_cls, [RUN[i + 1] for i, a in enumerate(RUN) if a == "--set"])

    print(f"# llcbench {__version__} ({args.tree}), {platform.machine()}, {os.cpu_count()} cores; "
          "sgld, steps=300, burn_in=100, batch 1024, float32, 1 thread")
    print("| n | widths | noise | measured peak (GiB) | polled (GiB) | bound (GiB) | data only (GiB) | measured / bound |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for size in args.size or SIZES:
            parts = size.split(":")
            n, widths = int(parts[0]), [int(h) for h in parts[1].split(",")]
            noise = float(parts[2]) if len(parts) > 2 else 0.0
            grown, polled = growth(args.tree, n, widths, noise, work)
            # the check's need: the data's copies and the chains' copies and traces
            bound = (run_data_bytes(n, widths, noise > 0, batch_size=config.batch_size, dtype=config.dtype)
                     + run_size_bytes(config, dln_dim(widths)))
            terms = memory_terms(n, widths, noise > 0, batch_size=1024, dtype="float32")
            print(f"| {n:,} | {widths} | {noise:g} | {grown / GIB:.3f} | {polled / GIB:.3f} | {bound / GIB:.3f} | "
                  f"{data_bytes(n, widths, noise > 0) / GIB:.3f} | {grown / bound:.3f} |", flush=True)
            print("#   " + ", ".join(f"{k} {v / GIB:.2f}" for k, v in terms.items()), flush=True)


if __name__ == "__main__":
    main()
