"""`llcbench report`: a self-contained page built from the scores, figures that aggregate, bad input."""

import json
import re

from llcbench.report import build_report
from llcbench.score import build_scores
from llcbench.store import Store
from synthetic_records import BASE_CONFIG, record, sweep_records

GRID = {"step_scale": [0.05, 0.2, 0.8], "nbeta_scale": [0.3, 1.0]}


def build(tmp_path, records, name="rep"):
    with Store(tmp_path / f"{name}.sqlite") as store:
        for r in records:
            store.put(r)
        scores = build_scores(store)
        paths = build_report(scores, tmp_path / name, store)
    return scores, paths


def test_report_is_self_contained_and_leaderboard_first(tmp_path):
    recs = sweep_records(grid=GRID, seeds=1)
    recs.append(record("p/old", "polynomial", 1.0, "sgld", dict(BASE_CONFIG), 0, 1.0, version="0.1.0"))
    scores, paths = build(tmp_path, recs)
    page = paths["html"].read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", page)  # nothing fetched from elsewhere
    assert "<link" not in page and "@import" not in page
    srcs = re.findall(r"<img [^>]*src='([^']*)'", page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    # the leaderboard is the first table, with a row per estimator × config
    first_table = page.index("<table")
    assert page.index('id="leaderboard"' if 'id="leaderboard"' in page else "id='leaderboard'") < first_table + 30
    assert page.index("Leaderboard") < page.index("<img")
    assert len(re.findall(r"<tr data-estimator=", page)) == len(scores["leaderboard"]) == 2 * 6
    # every figure has a caption; sweeps give heatmaps and curves
    assert page.count("<figure>") == page.count("<figcaption>") == len(srcs)
    assert "Sensitivity of sgld: stable region" in page and "Sensitivity of rmsprop_sgld" in page
    # provenance, and the older version kept apart
    assert "llcbench 0.3.0" in page and "torch 2.13.0+cpu" in page and "abc123" in page
    assert "llcbench 0.1.0: 1 runs" in page
    doc = json.loads(paths["scores"].read_text())
    assert doc["llcbench_version"] == "0.3.0" and "0.1.0" in doc["other_versions"]
    md = paths["markdown"].read_text()
    assert md.startswith("# llcbench calibration report") and "| estimator | config |" in md


def test_figure_count_does_not_grow_with_runs(tmp_path):
    _, few = build(tmp_path, sweep_records(grid=GRID, seeds=1), "few")
    _, many = build(tmp_path, sweep_records(grid=GRID, seeds=4), "many")
    count = lambda p: p.read_text().count("<img ")  # noqa: E731
    assert count(few["html"]) == count(many["html"]) > 0


def test_without_a_sweep_the_page_says_so(tmp_path):
    recs = [record(f"p/{i}", "polynomial", lam, "sgld", dict(BASE_CONFIG), 0, lam * 1.05)
            for i, lam in enumerate([0.5, 1.0, 2.0])]
    _, paths = build(tmp_path, recs)
    page = paths["html"].read_text()
    assert "No sweep in the store" in page and "heat0" not in page


def test_cli_report_and_bad_input(cli, tmp_path):
    db = tmp_path / "s.sqlite"
    with Store(db) as store:
        for r in sweep_records(grid={"step_scale": [0.1, 0.2]}, seeds=1, estimators=("sgld",)):
            store.put(r)
    out = tmp_path / "out"
    ok = cli("report", "--db", db, "--out", out)
    assert ok.returncode == 0, ok.stderr
    assert (out / "index.html").is_file() and (out / "report.md").is_file() and (out / "scores.json").is_file()
    for args, words in ((["--estimator", "nope"], "--estimator nope: no run of it"),
                        (["--version", "9.9"], "no run of llcbench version 9.9")):
        bad = cli("report", "--db", db, "--out", out, *args)
        assert bad.returncode == 2 and words in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    missing = cli("report", "--db", tmp_path / "none.sqlite", "--out", out)
    assert missing.returncode == 2 and "no store there" in missing.stderr
    assert not (tmp_path / "none.sqlite").exists()
    Store(tmp_path / "empty.sqlite").close()
    empty = cli("report", "--db", tmp_path / "empty.sqlite", "--out", out)
    assert empty.returncode == 2 and "no runs" in empty.stderr and len(empty.stderr.strip().splitlines()) == 1
