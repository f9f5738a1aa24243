"""Scores and report from a store of 5,000 runs: seconds, not minutes.

The store is a synthetic two-estimator sweep (27 grid points × 47 cases × 2 seeds, the first 5,000 records,
each with an 8-chain × 200-point loss trace like a real sgld record); the timed call reads it, scores
it and writes index.html, report.md and scores.json.

    python -m pytest benchmarks/test_report_speed.py -n0 --benchmark-enable -s
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from llcbench.report import build_report  # noqa: E402
from llcbench.score import build_scores  # noqa: E402
from llcbench.store import Store  # noqa: E402
from synthetic_records import CASES, sweep_records  # noqa: E402

CASES_47 = [(f"{c}-{k}", fam, lam * (1 + 0.1 * k)) for k in range(4) for c, fam, lam in CASES][:47]


def test_report_from_5000_runs(benchmark, tmp_path):
    records = sweep_records(cases=CASES_47, seeds=2, trace_points=200)[:5000]
    for r in records:
        r["loss_trace"] = r["loss_trace"] * 2  # 8 chains
    db = tmp_path / "big.sqlite"
    with Store(db) as store:
        store.conn.execute("BEGIN")  # one transaction for the fill: only the report is timed
        for r in records:
            _put(store, r)
        store.conn.execute("COMMIT")
        assert store.count() == 5000

    timings = {}

    def report():
        with Store(db) as store:
            t0 = time.perf_counter()
            scores = build_scores(store)
            t1 = time.perf_counter()
            build_report(scores, tmp_path / "report", store)
            timings.update(scores=t1 - t0, report=time.perf_counter() - t1)
        return scores

    scores = benchmark.pedantic(report, rounds=1, iterations=1)
    assert scores["runs"] == 5000
    print(f"\n5,000 runs: scores {timings['scores']:.2f} s, report {timings['report']:.2f} s "
          f"({(tmp_path / 'report' / 'index.html').stat().st_size / 1e6:.1f} MB index.html)")


def _put(store, record):
    """Store.put without its own transaction (the fill runs in one)."""
    import json

    from llcbench.store import _json_safe

    rec = _json_safe(record)
    row = (rec["key"], rec["case"], rec["case_key"], rec["family"], rec["estimator"], rec["seed"],
           json.dumps(rec["config"], sort_keys=True), rec["lambda"], rec["lambda_float"], rec["multiplicity"],
           rec["truth_kind"], rec["lambda_hat"], rec["se"], rec["rel_error"], rec["rhat"], rec["ess"],
           rec["grad_evals"], rec["seconds"], rec["device"], rec["llcbench_version"], rec["git_commit"],
           rec["torch_version"], rec["created_at"], json.dumps(rec, sort_keys=True))
    store.conn.execute(f"INSERT OR REPLACE INTO runs VALUES ({', '.join('?' * len(row))})", row)
