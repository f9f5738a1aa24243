"""Formatting shared by the HTML and Markdown pages."""

from __future__ import annotations

import math


def pct(x, digits: int = 1) -> str:
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}%}"


def num(x, fmt: str = "{:.3g}") -> str:
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else fmt.format(x)


def stable(row: dict) -> str:
    """"k pts" of the sweep stable for every family, and how many families this config is stable for."""
    size = row.get("stable_region_size")
    if size is None:
        return "—"
    return f"{size} pts (here {len(row.get('stable_families') or [])} fam.)"


SWEEP_HEADERS = ["family", "cases", "stable points", "recommended", "median |rel. err.|"]


def sweep_rows(sweep: dict, unstable_note: str) -> list[list]:
    """One row per family of a sweep's scores: its stable points and recommended config."""
    rows = []
    for fam, f in sweep["families"].items():
        rec = f["recommended"] or {}
        vals = ", ".join(f"{k} = {v:g}" for k, v in (rec.get("values") or {}).items())
        rows.append([fam, f["cases"], f"{f['stable_size']} of {len(sweep['points'])}",
                     (vals or "—") + ("" if rec.get("stable", True) else f" ({unstable_note})"),
                     pct(rec.get("median_abs_rel_error"))])
    return rows


def coverage(b: dict, which: str) -> str:
    """"38 %: error bars too small by ×3.1" / "95 %: holds" of a block or leaderboard row (which: truth, reference)."""
    share, verdict = b[f"coverage_{which}"], b[f"coverage_{which}_verdict"]
    return pct(share, 0) + (f": {verdict}" if share is not None and verdict else "")


LEADER_COLUMNS = [
    ("estimator", lambda r: r["estimator"]),
    ("config", lambda r: r["label"]),
    ("runs", lambda r: str(r["runs"])),
    ("unhealthy", lambda r: str(r["unhealthy_runs"])),
    ("cases", lambda r: str(r["cases"])),
    ("median |rel. err.| (common cases)", lambda r: f"{pct(r['common_median_abs_rel_error'])} ({r['common_cases']})"),
    ("median |rel. err.| (own cases)", lambda r: pct(r["median_abs_rel_error"])),
    ("within 10 %", lambda r: pct(r["within_10pct"], 0)),
    ("Kendall τ", lambda r: num(r["kendall_tau"], "{:.2f}")),
    ("coverage of λ", lambda r: coverage(r, "truth")),
    ("coverage of λ_nβ,γ", lambda r: coverage(r, "reference")),
    ("stable region", stable),
    ("seconds", lambda r: num(r["seconds_total"], "{:.0f}")),
]

FAMILY_COLUMNS = [
    ("family", None),
    ("cases", lambda b: str(b["cases"])),
    ("unhealthy runs", lambda b: str(b["unhealthy_runs"])),
    ("median |rel. err.|", lambda b: pct(b["median_abs_rel_error"])),
    ("within 5 %", lambda b: pct(b["within_5pct"], 0)),
    ("within 10 %", lambda b: pct(b["within_10pct"], 0)),
    ("estimand / sampler (median |·|, cases with a reference)",
     lambda b: f"{pct(b['median_abs_estimand_rel'])} / {pct(b['median_abs_sampler_rel'])} ({b['cases_with_reference']})"),
    ("τ", lambda b: num(b["kendall_tau"], "{:.2f}")),
    ("ρ", lambda b: num(b["spearman_rho"], "{:.2f}")),
    ("pairs in order", lambda b: pct(b["pairwise_accuracy"], 0)),
    ("coverage of λ", lambda b: coverage(b, "truth")),
    ("coverage of λ_nβ,γ", lambda b: coverage(b, "reference")),
    ("seed spread / se", lambda b: num(b["seed_spread_ratio"], "{:.2f}")),
    ("> 30 %: E / S / U", lambda b: "{estimand} / {sampler} / {unattributed}".format(**b["runs_beyond_tolerance"])),
]

EXPLAIN = {
    "apart": "These cases' λ is not a value the engine computed: kind 'asserted' is a truth the case states itself "
             "(from a publication, where the engine cannot certify one), 'theory' an approximate scaling law. They "
             "are kept out of every bias, ordering and coverage score above.",
    "leaderboard": "One row per estimator × config (the same estimator with another config is another row), "
                   "every number over its healthy runs only (unhealthy: runs with a divergent chain, split R-hat "
                   "> 1.1, bulk ESS < 100, an outlier chain, chains still spreading (or contracting) over the draws, no "
                   "finite λ̂ or one above d, or a posterior that is not local, counted and left out). "
                   "Rows are ranked by the median |rel. err.| over the common cases, the cases every row scored "
                   "(how many in brackets), so a config run on one family is compared on that family only; "
                   "'cases' is each row's own case set and the next column its median over it. "
                   "median |rel. err.| is the median over cases of |λ̂ − λ|/λ (seeds averaged); Kendall τ measures "
                   "whether λ̂ orders the cases like λ (1: perfectly); coverage is the share of runs whose "
                   "λ̂ ± 2·se contains λ (resp. the reference λ_nβ,γ of the run's own posterior: the error bars' "
                   "honesty once the estimand's bias is taken out; 95 % is ideal), with a verdict: at least 90 % "
                   "holds, below that the error bars are too small by ×k, k the factor on se that would cover 90 % "
                   "of the runs (the 90th percentile of |λ̂ − ref|/(2·se)); the stable region is the number "
                   "of sweep grid points where every case of every family is within 10 % and healthy; seconds is "
                   "the total wall time of the runs.",
    "families": "Per family: bias (share of cases within 5 % / 10 %), the split of the error into the estimand's "
                "part λ_nβ,γ − λ (what a perfect sampler of the same localised tempered posterior would also "
                "get wrong) and the sampler's part λ̂ − λ_nβ,γ where a reference exists, ordering (Kendall τ, "
                "Spearman ρ, share of case pairs in the right order), coverage, and the ratio of the seed-to-seed "
                "spread of λ̂ to the mean reported se (about 1 when the se is honest, above 1 when it is too "
                "small). The last column counts runs worse than 30 % by attribution: E estimand, S sampler, "
                "U unattributed. Every number is of the healthy runs; 'unhealthy runs' counts the others.",
}

HEALTH = ("A run is unhealthy when a chain diverged, split R-hat > 1.1, bulk ESS < 100, one chain's mean is "
          "beyond the others' by more than their standard errors allow (an outlier chain), the chains are still "
          "spreading (their mean ‖w − w*‖² grows, or shrinks, from the first to the last third of the draws "
          "beyond chance), λ̂ is not finite or "
          "above the parameter count d, its posterior is not local, or its own step blew chains up where the "
          "posterior reaches (an orbit start undone by blow-ups) (llcbench.health; a diagnostic the estimator does not report, such as the R-hat "
          "of the exact estimator, is not held against it). An unhealthy run's λ̂ is no LLC estimate: it is "
          "attributed 'unhealthy', left out of every score and counted beside it. The SG-MCMC samplers run on "
          "while the first four fail (R-hat, ESS, an outlier chain, spreading), doubling their steps up to "
          "max_doublings times: the steps column says how long each run took; a run whose chains were still "
          "spreading from w* after its planned steps started again after an orbit start (deep linear "
          "networks: Metropolis moves along their rescalings) or a tempered start, which the column names too, "
          "with the factor on the step-size rule's step where the start's chains blew up at it and it tried again "
          "at the rule's step for the curvature they had met.")

CASE_HEADERS = ["case", "family", "λ", "λ̂ ± se", "rel. err.", "λ_nβ,γ", "estimand part", "sampler part",
                "attribution", "health"]


def case_cells(r: dict, scored: bool) -> list[str]:
    """One row of the per-case table: the case row of a group (scored, or apart and why)."""
    lam_hat = f"{num(r['lambda_hat'], '{:.4g}')} ± {num(r['se'], '{:.2g}')}"
    if r["unhealthy_runs"] == 0:
        health = "healthy"
    else:
        health = f"{r['unhealthy_runs']} of {r['seeds']} unhealthy: " + "; ".join(r["problems"])
    if not scored:
        health = ("not scored: " + (f"truth kind {r['truth_kind']}" if r["truth_kind"] != "exact"
                                    else "no healthy run") + "; " + health)
    attribution = r["attribution"] or "—"  # an unhealthy-only case's runs are attributed "unhealthy"
    return [r["case"], r["family"] or "—", str(r["lambda"]), lam_hat, pct(r["rel_error"]),
            num(r["lambda_ref"], "{:.4g}"), pct(r["estimand_rel"]), pct(r["sampler_rel"]), attribution, health]


def health_cells(h: dict) -> list[str]:
    """One row of the per-run health table."""
    div = f"{h['divergent_chains']} of {h['chains']}" if h["chains"] else str(h["divergent_chains"])
    local = {True: "local", False: "not local", None: "—"}[h["local"]]
    steps, doublings = h.get("steps"), h.get("doublings")
    notes = ([f"doubled ×{doublings}"] if doublings else []) + (
        [f"after a {h['start_steps']:,}-step {h['start']} start"
         + (f" at {h['start_step_factor']:.2g}× the rule's step" if h.get("start_step_factor") else "")]
        if h.get("start_steps") else [])
    length = "—" if steps is None else f"{steps:,}" + (f" ({'; '.join(notes)})" if notes else "")
    return [h["case"], "—" if h["seed"] is None else str(h["seed"]), num(h["rhat"], "{:.3f}"), num(h["ess"], "{:.0f}"),
            div, length, local, "; ".join(h["problems"]) or "healthy"]


# steps: what the run took, burn-in included (the adaptive length doubles them while the draws have not settled)
HEALTH_HEADERS = ["case", "seed", "R-hat", "bulk ESS", "divergent chains", "steps", "locality", "problems"]


def skipped_rows(scores: dict) -> list[list[str]]:
    return [[s["estimator"], s["case"], s["reason"]] for s in scores.get("skipped") or []]
