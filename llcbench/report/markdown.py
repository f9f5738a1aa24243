"""report.md: the leaderboard, per-family scores and sweep recommendations as Markdown tables."""

from __future__ import annotations

from . import scaling_table
from .detection import detection_markdown
from .text import (CASE_HEADERS, EXPLAIN, FAMILY_COLUMNS, HEALTH, HEALTH_HEADERS, LEADER_COLUMNS, SWEEP_HEADERS,
                   case_cells, health_cells, num, skipped_rows, sweep_rows)


def _table(headers, rows) -> str:
    esc = lambda c: str(c).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(scores: dict) -> str:
    prov = scores["provenance"]
    out = ["# llcbench calibration report", "",
           f"Store `{scores['store']}`, {scores['runs']} runs ({scores['unhealthy_runs']} unhealthy) of llcbench {scores['llcbench_version']} "
           f"(git {', '.join(c[:12] for c in prov['git_commits'])}; torch {', '.join(prov['torch_versions'])}). "
           "Figures: index.html beside this file.", "", "## Leaderboard", "",
           _table([c[0] for c in LEADER_COLUMNS], [[f(r) for _, f in LEADER_COLUMNS] for r in scores["leaderboard"]]),
           "", EXPLAIN["leaderboard"], ""]
    if scores["other_versions"]:
        out += ["Other llcbench versions in the store (not scored): "
                + "; ".join(f"{v}: {o['runs']} runs" for v, o in scores["other_versions"].items()), ""]
    out += ["## Scores per family", "", EXPLAIN["families"], ""]
    for g in sorted(scores["groups"], key=lambda g: not g["headline"]):  # every estimator × config
        rows = [[fam] + [f(b) for _, f in FAMILY_COLUMNS[1:]] for fam, b in g["families"].items()]
        rows.append(["all"] + [f(g["overall"]) for _, f in FAMILY_COLUMNS[1:]])
        out += [f"### {g['estimator']} · {g['label']}", "", _table([c[0] for c in FAMILY_COLUMNS], rows), ""]
        viol = [f"{fam}: {a} < {b}" for fam, bl in g["families"].items() for a, b in bl["violated_pairs"]]
        if viol:
            out += ["Violated pairs (λ of the first is smaller, λ̂ is not): " + "; ".join(viol[:20])
                    + (" …" if len(viol) > 20 else ""), ""]
    out += ["## Run health", "", HEALTH, "", f"{scores['unhealthy_runs']} of {scores['runs']} runs unhealthy.", ""]
    sick = [[g["estimator"], g["label"], *health_cells(h)] for g in scores["groups"] for h in g["run_health"]
            if h["problems"]]
    if sick:
        out += [_table(["estimator", "config", *HEALTH_HEADERS], sick), ""]
    skipped = skipped_rows(scores)
    if skipped:
        out += [f"Skipped cases ({len(skipped)}):", "", _table(["estimator", "case", "why skipped"], skipped), ""]
    out += ["## Per case", ""]
    for g in sorted(scores["groups"], key=lambda g: not g["headline"]):
        rows = [case_cells(r, True) for r in g["cases"]] + [case_cells(r, False) for r in g["apart"]]
        out += [f"### {g['estimator']} · {g['label']}", "", _table(CASE_HEADERS, rows), ""]
    apart = [[g["estimator"], g["label"], r["case"], r["truth_kind"], r["lambda"], num(r["lambda_hat"], "{:.4g}")]
             for g in scores["groups"] for r in g["apart"] if r["truth_kind"] != "exact"]
    if apart:
        out += ["## Cases scored apart", "", EXPLAIN["apart"], "",
                _table(["estimator", "config", "case", "truth kind", "λ", "λ̂"], apart), ""]
    scaling = scaling_table.rows(scores)
    if scaling:
        out += ["## Modular arithmetic: λ̂ against p", "",
                "Theory-kind truths (Rimsky & Vaintrob 2023), scored by the log-log slope of λ̂ in p, a line in p "
                "(generalising) or p² (memorising) and the ordering memorising > generalising at equal p, not by "
                "bias; one fit per anchor recipe; runs that did not mix or are not local are not scored.", "",
                _table(scaling_table.HEADERS, scaling), ""]
    out += ["## Sweeps", ""]
    if not scores["sweeps"]:
        out += ["No sweep in the store.", ""]
    for s in scores["sweeps"]:
        rows = sweep_rows(s, "not stable")
        out += [f"### {s['estimator']} over {' × '.join(s['axes'])}", "",
                _table(SWEEP_HEADERS, rows), "",
                f"Stable for every family: {len(s['stable_all'])} grid points.", ""]
    out += detection_markdown(scores, _table)
    return "\n".join(out) + "\n"
