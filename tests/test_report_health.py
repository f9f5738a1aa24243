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
    assert scores["runs"] == 12 + 4 + 3 and scores["unhealthy_runs"] == 4
    g = sgld(scores)
    assert g["runs"] == 16 and g["unhealthy_runs"] == 4
    # each number on healthy runs only, the unhealthy counted beside
    assert g["overall"]["runs"] == 12 and g["overall"]["unhealthy_runs"] == 4
    assert g["families"]["polynomial"]["unhealthy_runs"] == 2 and g["families"]["rrr"]["unhealthy_runs"] == 2
    assert g["overall"]["median_abs_rel_error"] == pytest.approx(0.03)  # +5 % and +1 %: the R-hat run is out
    rows = {r["case"]: r for r in g["cases"]}
    assert rows["syn/p2"]["lambda_hat"] == pytest.approx(2.1) and rows["syn/p2"]["seeds"] == 3
    assert rows["syn/p2"]["problems"] == ["seed 5: R-hat 1.48 > 1.1; ESS 15 < 100"]
    assert rows["syn/r2"]["problems"][0].startswith("seed 7: not local: mean excess train loss 2 is 67%")
    # the failed case: apart, its reference kept, its attribution "unhealthy"
    (dead,) = [r for r in g["apart"] if r["case"] == "syn/dead"]
    assert dead["attribution"] == "unhealthy" and dead["lambda_ref"] == pytest.approx(28.3)
    assert dead["problems"] == ["seed 0: 4 of 4 chains diverged; λ̂ not finite"]
    lead = {r["estimator"]: r for r in scores["leaderboard"]}
    assert lead["sgld"]["unhealthy_runs"] == 4 and lead["plugin_x"]["unhealthy_runs"] == 0
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


def test_the_leaderboard_ranks_on_the_cases_every_row_ran(built):
    scores, paths = built
    lead = {r["estimator"]: r for r in scores["leaderboard"]}
    assert scores["common_cases"] == 3  # the polynomial cases: the plugin ran no other
    assert lead["sgld"]["cases"] == 6 and lead["plugin_x"]["cases"] == 3
    assert lead["sgld"]["common_cases"] == lead["plugin_x"]["common_cases"] == 3
    assert lead["sgld"]["common_median_abs_rel_error"] == pytest.approx(0.05)  # polynomial only, not the +1 % rrr
    assert lead["plugin_x"]["common_median_abs_rel_error"] == pytest.approx(0.30)
    assert [r["estimator"] for r in scores["leaderboard"]] == ["sgld", "plugin_x"]
    page = paths["html"].read_text()
    assert "5.0% (3)" in page and "30.0% (3)" in page  # each row: the common-case median, over how many


def test_every_config_has_its_family_table_and_traces_are_per_estimator(tmp_path, built):
    scores, paths = built
    page = paths["html"].read_text()
    assert "plugin_x · " in page.split("Scores per family")[1].split("Run health")[0]
    # the plugin's runs are the worst and carry no trace: sgld's traces are still drawn
    assert "The worst runs carry no loss trace" not in page
    assert "No trace from plugin_x" in page
    traces = page.split("id='traces'")[1].split("<h2")[0]
    assert "<figure>" in traces


def test_figures_draw_only_what_a_row_ran(built):
    scores, _ = built
    fig, _ = figures.ordinality(scores)
    # sgld ran polynomial and rrr, the plugin polynomial only: three panels, not four
    assert sum(ax.get_visible() for ax in fig.axes) == 3
