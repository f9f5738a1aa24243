"""Per-sample detection at the pilot's localisation, with a baseline that survives an anchor fitting every sample.

    python scripts/detection_noise_baseline.py --db reports/locality.sqlite [--draws 32] [--noise-gamma 100]

For every stored run with per-sample values and known memorised samples
(trojans suite, memorisation family) it prints AUROC and average precision,
with the bootstrap intervals of ``llcbench.score.detection``, of

- ``llc``: the run's per-sample LLC λ̂_i;
- ``loss``, ``grad_norm``: ℓ_i(w*) and ‖∇ℓ_i(w*)‖ at the anchor (stored in the run);
- ``noise``: E_ξ[ℓ_i(w* + ξ)] − ℓ_i(w*), ξ ~ N(0, I/γ) with the run's γ, over --draws draws
  (seeded): the per-sample loss under the localisation's Gaussian alone, i.e. what λ̂_i/nβ would be
  if the loss played no part. An anchor that fits every sample gives ℓ_i(w*) ≈ 0 for all i, but
  not the same curvature around each, so this baseline still ranks samples; computed here, not yet
  part of the run record.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from llcbench.catalogue import build_target, load_catalogue, select, suite_file
from llcbench.locality import is_local
from llcbench.score.detection import method_scores
from llcbench.store import Store


def noise_baseline(target, probe: list[int], gamma: float, draws: int, seed: int = 0) -> np.ndarray:
    gen = torch.Generator().manual_seed(seed)
    w_star = target.w_star.to(torch.float64)
    idx = torch.tensor(probe)
    with torch.no_grad():
        star = target.sample_losses(w_star[None], idx)[0]
        xi = torch.randn(draws, target.dim, generator=gen, dtype=torch.float64) / gamma ** 0.5
        noisy = target.sample_losses(w_star[None] + xi, idx)  # (draws, probe)
    return (noisy.mean(dim=0) - star).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--draws", type=int, default=32)
    ap.add_argument("--noise-gamma", type=float, action="append", default=[],
                    help="also the noise baseline at this γ (repeatable), besides the run's")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cases = {c.id: c for c in load_catalogue() + load_catalogue([suite_file("trojans")], builtin=False)}
    print("| case | γ | local | method | AUROC [95 %] | AP [95 %] |")
    print("|---|---|---|---|---|---|")
    for r in sorted(Store(args.db).records_without(("loss_trace",)), key=lambda r: r["case"]):
        ps = r.get("per_sample") or {}
        if not any(ps.get("memorised") or []):  # no known memorised sample (e.g. add without trojans)
            continue
        target = build_target(select(list(cases.values()), [r["case"]])[0])
        gamma = r["extra"]["gamma"]
        cols = {"llc": ps["lambda"], "loss": ps["loss_star"], "grad_norm": ps["grad_norm_star"],
                "noise": noise_baseline(target, ps["probe"], gamma, args.draws).tolist()}
        for g in args.noise_gamma:
            cols[f"noise γ={g:g}"] = noise_baseline(target, ps["probe"], g, args.draws).tolist()
        for name, col in cols.items():
            m = method_scores(col, ps["memorised"], int(r.get("seed") or 0))
            a, p = m["auroc_interval"], m["average_precision_interval"]
            print(f"| {r['case']} | {gamma:.3g} | {is_local(r)} | {name} | {m['auroc']:.3f} [{a[0]:.3f}, {a[1]:.3f}] | "
                  f"{m['average_precision']:.3f} [{p[0]:.3f}, {p[1]:.3f}] |")


if __name__ == "__main__":
    main()
