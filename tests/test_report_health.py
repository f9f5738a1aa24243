"""Every record shape a store can hold is scored and reported (a failed run, no trace, NaN se, an
estimator from a plugin not installed here, another llcbench version); health reaches the scores and
the page (a health section, skipped cases, a per-case table); rows are ranked on common cases."""

import html
import json
import math

import pytest

from llcbench.report import build_report, figures
from llcbench.score import build_scores
from llcbench.store import Store
from synthetic_records import BASE_CONFIG, record

C = dict(BASE_CONFIG)
POLY = [("syn/p0", 0.5), ("syn/p1", 1.0), ("syn/p2", 2.0)]
RRR = [("syn/r0", 1.0), ("syn/r1", 6.0), ("syn/r2", 13.0)]


def every_shape():
    """sgld on two families (+5 %, +1 %), with failed and unhealthy runs; a plugin (not installed
    here, no traces, NaN se) on polynomial only, far worse (+30 %) but ranked on the same cases."""
    recs = [record(c, "polynomial", lam, "sgld", C, s, lam * 1.05) for c, lam in POLY for s in range(2)]
    recs += [record(c, "rrr", lam, "sgld", C, s, lam * 1.01) for c, lam in RRR for s in range(2)]
    # every chain diverged: λ̂ None (as stored) and NaN (as computed), one with a reference
    recs.append(record("syn/p0", "polynomial", 0.5, "sgld", C, 2, None, se=None, rhat=None, divergent=(0, 1, 2, 3)))
    recs.append(record("syn/dead", "rrr", 29.0, "sgld", C, 0, math.nan, se=None, rhat=None,
                       divergent=tuple(range(4)), lambda_ref=28.3))
    # the shape that crashed the report: a failed run whose reference is looked up (a stored exact run)
    recs.append(record("syn/r1", "rrr", 6.0, "sgld", C, 3, None, se=None, rhat=None, divergent=(0, 1, 2, 3)))
    ref = record("syn/r1", "rrr", 6.0, "exact", {"nbeta": None}, 0, 5.9, se=0.0, rhat=None, trace_points=0)
    ref["extra"] = dict(recs[-1]["extra"])
    recs.append(ref)
    # R-hat 1.48, ESS 15: λ̂ finite and 40 % off, but no estimate; scored apart from the healthy seeds
    recs.append(record("syn/p2", "polynomial", 2.0, "sgld", C, 5, 2.8, rhat=1.48, ess=15.0))
    # not local: two thirds of the way to chance
    recs.append(record("syn/r2", "rrr", 13.0, "sgld", C, 7, 13.1,
                       locality={"excess_loss": 2.0, "chance_excess": 3.0}))
    recs += [record(c, "polynomial", lam, "plugin_x", {"foo": 1}, 0, lam * 1.3, se=math.nan, rhat=None,
                    trace_points=0) for c, lam in POLY]
    recs.append(record("syn/p1", "polynomial", 1.0, "sgld", C, 0, 3.0, version="0.0.1"))  # another version
    return recs


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shapes")
    with Store(tmp / "s.sqlite") as store:
        for r in every_shape():
            store.put(r)
        store.note_skipped("sgld", [("syn/big", "estimator sgld does not support it: d = 10⁷")])
        store.note_skipped("sgld", [("syn/p0", "named later")])  # since run: not listed as skipped
        scores = build_scores(store)
        paths = build_report(scores, tmp / "rep", store)
    return scores, paths


def sgld(scores):
    return next(g for g in scores["groups"] if g["estimator"] == "sgld")


def test_every_shape_is_scored_and_rendered(built):
    scores, paths = built
    json.loads(paths["scores"].read_text())  # strict JSON: no NaN anywhere
    page, md = html.unescape(paths["html"].read_text()), paths["markdown"].read_text()
    assert "plugin_x" in page and "llcbench 0.0.1: 1 runs" in page
    assert scores["runs"] == 12 + 5 + 3 + 1 and scores["unhealthy_runs"] == 5
    g = sgld(scores)
    assert g["runs"] == 17 and g["unhealthy_runs"] == 5
    # each number on healthy runs only, the unhealthy counted beside
    assert g["overall"]["runs"] == 12 and g["overall"]["unhealthy_runs"] == 5
    assert g["families"]["polynomial"]["unhealthy_runs"] == 2 and g["families"]["rrr"]["unhealthy_runs"] == 3
    assert g["overall"]["median_abs_rel_error"] == pytest.approx(0.03)  # +5 % and +1 %: the R-hat run is out
    rows = {r["case"]: r for r in g["cases"]}
    assert rows["syn/p2"]["lambda_hat"] == pytest.approx(2.1) and rows["syn/p2"]["seeds"] == 3
    assert rows["syn/p2"]["problems"] == ["seed 5: R-hat 1.48 > 1.1; ESS 15 < 100"]
    # the healthy seeds of syn/r1 split against the stored exact run; the failed one is only counted
    assert rows["syn/r1"]["lambda_ref"] == pytest.approx(5.9) and rows["syn/r1"]["unhealthy_runs"] == 1
    assert rows["syn/r2"]["problems"][0].startswith("seed 7: not local: mean excess train loss 2 is 67%")
    # the failed case: apart, its reference kept, its attribution "unhealthy"
    (dead,) = [r for r in g["apart"] if r["case"] == "syn/dead"]
    assert dead["attribution"] == "unhealthy" and dead["lambda_ref"] == pytest.approx(28.3)
    assert dead["problems"] == ["seed 0: 4 of 4 chains diverged; λ̂ not finite"]
    lead = {r["estimator"]: r for r in scores["leaderboard"]}
    assert lead["sgld"]["unhealthy_runs"] == 5 and lead["plugin_x"]["unhealthy_runs"] == 0
    # the page: health section, per-case table, skipped cases with why; markdown too
    for text in (page, md):
        assert "Run health" in text and "Per case" in text
        assert "R-hat 1.48 > 1.1; ESS 15 < 100" in text and "4 of 4 chains diverged; λ̂ not finite" in text
        assert "syn/big" in text and "d = 10⁷" in text
        assert "syn/dead" in text and "not scored: no healthy run" in text
    assert [s["case"] for s in scores["skipped"]] == ["syn/big"]
    # the per-case table sorts in the page, without any script from outside it
    assert "class=sortable" in page and "data-v=" in page and "<script src" not in page
    # an unhealthy case is not listed among the truths that are not exact (the store has none)
    assert "Cases scored apart" not in md and "Cases scored apart" not in page


def test_the_leaderboard_ranks_on_the_cases_every_row_ran(tmp_path):
    recs = [r for r in every_shape() if r["estimator"] != "exact"]
    # another sgld config that ran one case: not a headline row, so it does not shrink the common set
    recs.append(record("syn/p0", "polynomial", 0.5, "sgld", dict(C, step_scale=0.1), 0, 0.6))
    with Store(tmp_path / "s.sqlite") as store:
        for r in recs:
            store.put(r)
        scores = build_scores(store)
        paths = build_report(scores, tmp_path / "rep", store)
    lead = {(r["estimator"], r["headline"]): r for r in scores["leaderboard"]}
    assert lead["sgld", False]["common_cases"] == 1 and lead["sgld", False]["common_median_abs_rel_error"] == pytest.approx(0.2)
    lead = {r["estimator"]: r for r in scores["leaderboard"] if r["headline"]}
    assert scores["common_cases"] == 3  # the polynomial cases: the plugin ran no other
    assert lead["sgld"]["cases"] == 6 and lead["plugin_x"]["cases"] == 3
    assert lead["sgld"]["common_cases"] == lead["plugin_x"]["common_cases"] == 3
    assert lead["sgld"]["common_median_abs_rel_error"] == pytest.approx(0.05)  # polynomial only, not the +1 % rrr
    assert lead["plugin_x"]["common_median_abs_rel_error"] == pytest.approx(0.30)
    assert [r["estimator"] for r in scores["leaderboard"]] == ["sgld", "plugin_x", "sgld"]
    page = paths["html"].read_text()
    assert "5.0% (3)" in page and "30.0% (3)" in page  # each row: the common-case median, over how many


def test_every_config_has_its_family_table_and_traces_are_per_estimator(tmp_path, built):
    scores, paths = built
    page = paths["html"].read_text()
    assert "plugin_x · " in page.split("Scores per family")[1].split("Run health")[0]
    # the plugin's runs are the worst and carry no trace: sgld's traces are still drawn
    assert "The worst runs carry no loss trace" not in page
    traces = page.split("id='traces'")[1].split("<h2")[0]
    assert "No trace from exact, plugin_x: none of its worst runs records one" in traces
    assert "<figure>" in traces


def test_figures_draw_only_what_a_row_ran(built):
    scores, _ = built
    fig, _ = figures.ordinality(scores)
    # sgld ran polynomial and rrr, the plugin polynomial only, exact rrr only: four panels of six
    assert len(fig.axes) == 6 and sum(ax.get_visible() for ax in fig.axes) == 4


def test_a_failed_run_is_stored_served_and_rerun_with_force(tmp_path):
    """sgld at step_size 1e-3 on rrr/1-1-1/r1: every chain diverges (λ̂ NaN, stored as null). The record
    is stored, served by the next run with its verdict, and recomputed with force."""
    import llcbench

    db = tmp_path / "s.sqlite"
    kw = dict(cases=["rrr/1-1-1/r1"], config=["step_size=1e-3", "steps=1000", "burn_in=200"], db=db)
    (first,) = llcbench.run("sgld", **kw)
    assert first["lambda_hat"] is None or math.isnan(first["lambda_hat"])
    assert first["attribution"] == "unhealthy" and "chains diverged" in first["attribution_reason"]
    (served,) = llcbench.run("sgld", **kw)
    assert served["cached"] and served["lambda_hat"] is None and served["attribution"] == "unhealthy"
    assert served["lambda_ref"] == first["lambda_ref"]  # the shipped reference still found, no sampler part
    assert served["sampler_bias"] is None
    (again,) = llcbench.run("sgld", force=True, **kw)
    assert not again["cached"] and again["attribution"] == "unhealthy"


@pytest.mark.slow  # ≈ 15–25 s on 2 busy cores: the store of every_shape() has the same record shapes
def test_the_all_diverged_rrr_run_then_report(tmp_path):
    """The command a new user tried: `llcbench run --estimator sgld --family rrr --set step_size=1e-3
    --set steps=1000 --set burn_in=200`, then `llcbench report` (which crashed on λ̂ None)."""
    import llcbench

    db = tmp_path / "s.sqlite"
    records = llcbench.run("sgld", family="rrr", config=["step_size=1e-3", "steps=1000", "burn_in=200"], db=db)
    failed = [r for r in records if r["lambda_hat"] is None or not math.isfinite(r["lambda_hat"])]
    assert failed and all(r["attribution"] == "unhealthy" for r in failed)
    index = llcbench.report(db)
    scores = json.loads((index.parent / "scores.json").read_text())
    assert scores["unhealthy_runs"] >= len(failed)
    assert "chains diverged" in html.unescape(index.read_text())


def test_the_cases_a_run_skips_reach_the_scores(tmp_path):
    """`exact` has no method for a 4-variable quartic: the run skips it, the store keeps a note of
    that, and the scores (so the report) list it with why."""
    import llcbench

    cases = tmp_path / "cases.toml"
    cases.write_text('[[case]]\nid = "t/a"\nfamily = "polynomial"\nexpr = "w1**2"\n\n'
                     '[[case]]\nid = "t/q"\nfamily = "polynomial"\nexpr = "w1**4 + w2**4 + w3**4 + w4**4"\n')
    db = tmp_path / "s.sqlite"
    records = llcbench.run("exact", files=[cases], builtin=False, db=db)
    assert [r["case"] for r in records] == ["t/a"] and [c for c, _ in records.skipped] == ["t/q"]
    (skipped,) = llcbench.scores(db)["skipped"]
    assert skipped["estimator"] == "exact" and skipped["case"] == "t/q"
    assert skipped["reason"] == records.skipped[0][1]


def test_two_definitions_of_one_case_id_are_never_pooled(tmp_path):
    old = record("syn/p0", "polynomial", 0.5, "sgld", C, 0, 0.5)
    new = dict(record("syn/p0", "polynomial", 0.5, "sgld", C, 1, 1.0), case_key="ck-redefined")
    with Store(tmp_path / "s.sqlite") as store:
        store.put(old)
        store.put(new)
        g = sgld(build_scores(store))
    assert sorted(r["lambda_hat"] for r in g["cases"]) == [0.5, 1.0]  # two rows, not one mean of 0.75


def test_run_health_says_how_long_a_run_took_and_how_often_it_doubled():
    from llcbench.report.text import HEALTH_HEADERS, health_cells
    from llcbench.score.scores import run_health

    rec = record("syn/p0", "polynomial", 0.5, "sgld", C, 0, 0.51)
    rec["extra"] = dict(rec.get("extra") or {}, steps=24000,
                        settling={"doublings": 2, "settled": True, "history": []})
    h = run_health(rec)
    assert (h["steps"], h["doublings"]) == (24000, 2)
    cells = dict(zip(HEALTH_HEADERS, health_cells(h)))
    assert cells["steps"] == "24,000 (doubled ×2)"
    # started again after a tempered start (start = 'auto' on chains still spreading from w*; a 0.9 record)
    rec["extra"]["tempered_start"] = {"steps": 2000, "after": {"steps": 6000, "problems": []}}
    h = run_health(rec)
    assert (h["start"], h["start_steps"]) == ("tempered", 2000)
    assert dict(zip(HEALTH_HEADERS, health_cells(h)))["steps"] == "24,000 (doubled ×2; after a 2,000-step tempered start)"
    # after an orbit start (a deep linear network's run, llcbench 0.10)
    rec["extra"]["start"] = {"kind": "orbit", "steps": 2000, "after": {"steps": 6000, "problems": []}}
    h = run_health(rec)
    assert (h["start"], h["start_steps"]) == ("orbit", 2000)
    assert dict(zip(HEALTH_HEADERS, health_cells(h)))["steps"] == "24,000 (doubled ×2; after a 2,000-step orbit start)"
    # whose chains blew up at the rule's step and held at a smaller one (llcbench 0.11)
    rec["extra"]["start"] = {"kind": "orbit", "steps": 2000, "step_factor": 0.0182, "retries": [{"steps": 400}]}
    assert run_health(rec)["start_step_factor"] == 0.0182
    assert dict(zip(HEALTH_HEADERS, health_cells(run_health(rec))))["steps"] == (
        "24,000 (doubled ×2; after a 2,000-step orbit start at 0.018× the rule's step)")
    rec["extra"]["start"] = {"kind": "w_star", "steps": 0, "skipped": "start = 'w_star'"}
    assert (run_health(rec)["start"], run_health(rec)["start_steps"]) == (None, 0)
    # a record that reports neither (an older record, another estimator): a dash, not a number
    plain = run_health(record("syn/p1", "polynomial", 1.0, "hmc", {"nbeta": None}, 0, 1.0))
    assert (plain["steps"], plain["doublings"]) == (None, None)
    assert dict(zip(HEALTH_HEADERS, health_cells(plain)))["steps"] == "—"
    # planned length, never doubled, from w*: the steps alone
    rec["extra"]["tempered_start"] = {"steps": 0, "skipped": "start = 'w_star'"}
    rec["extra"]["settling"]["doublings"] = 0
    rec["extra"]["steps"] = 6000
    assert dict(zip(HEALTH_HEADERS, health_cells(run_health(rec))))["steps"] == "6,000"
