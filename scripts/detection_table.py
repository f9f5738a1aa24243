"""Per-sample detection of every stored run with known memorised samples, run by run: for docs/per-sample.md.

    python scripts/detection_table.py --db tmp/detection.sqlite

One row per run (case × γ-choice × seed): its γ, whether its posterior is
local (``llcbench.locality.is_local``), whether the run is healthy (``llcbench.health``; else its
first reason), and the AUROC and average precision,
each with its 95 % stratified-bootstrap interval, of the four scores of
``llcbench.score.detection`` (llc, loss, grad_norm, noise), all read from
the records (``per_sample``). Unhealthy runs (non-local among them) are listed too, marked: their
λ̂_i is no per-sample LLC estimate (the scores keep them apart).
"""

from __future__ import annotations

import argparse

from llcbench.score.detection import METHODS, detection_scores
from llcbench.store import Store


def _cell(m: dict, key: str) -> str:
    if m is None or m[key] is None:
        return "—"
    lo, hi = m[f"{key}_interval"]
    return f"{m[key]:.3f} [{lo:.3f}, {hi:.3f}]"


def table(store: Store) -> str:
    det = detection_scores(store)
    records = {r["key"]: r for r in store.records_without(("loss_trace",))}
    rows = sorted(det["runs"] + det["apart"], key=lambda r: (r["setting"], r["case"], r["seed"], r["key"]))
    head = (["case", "γ from", "γ", "local", "healthy"] + [f"AUROC {m}" for m in METHODS]
            + [f"AP {m}" for m in METHODS])
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        rec = records[r["key"]]
        loc = rec.get("locality") or {}
        src = loc.get("gamma_source") or rec["config"].get("localisation") or "?"
        cells = [r["case"], str(src), f"{rec['extra']['gamma']:.3g}", {True: "yes", False: "**no**", None: "?"}[r["local"]],
                 "yes" if r["healthy"] else f"**no**: {r['problem'].split(';')[0]}"]
        cells += [_cell(r["methods"].get(m), "auroc") for m in METHODS]
        cells += [_cell(r["methods"].get(m), "average_precision") for m in METHODS]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append(f"{len(det['runs'])} healthy runs scored, {det['unhealthy_runs']} unhealthy runs apart "
               f"({det['non_local_runs']} of them not local).")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True)
    print(table(Store(ap.parse_args().db, readonly=True)))


if __name__ == "__main__":
    main()
