"""The command line's tables: text built from what the library returns (records, sweep points,
listings, reference entries, truths), and its progress bar. Nothing here computes a result or
prints to stdout; ``llcbench.cli`` prints."""

from __future__ import annotations

import math
import re
from typing import Iterable, Optional

from ..attribution import ATTRIBUTIONS, TOLERANCE, Z, reference_label


def fmt_table(headers: list[str], rows: list[list[str]], right: Iterable[int] = frozenset()) -> str:
    right = set(right)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def short(text: str, width: int) -> str:
    """Shorten for a table cell (the whole text is in --json)."""
    return text if len(text) <= width else text[: width - 1] + "…"


def num(x: Optional[float], fmt: str = "{:.3g}") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return fmt.format(x)


# ----------------------------------------------------------------------------------- listings
def cases_table(rows: list[dict]) -> str:
    headers = ["id", "family", "dim", "n", "λ", "λ (float)", "m", "kind", "source"]
    table = [[r["id"], r["family"], str(r["dim"]), str(r["n"]), r["lambda"], f"{r['lambda_float']:.4g}",
              str(r["multiplicity"]), r["kind"], short(r["source"], 60)] for r in rows]
    return fmt_table(headers, table, right={2, 3, 4, 5, 6}) + f"\n\n{len(rows)} cases"


def families_listing(rows: list[dict], common_fields: dict, note: Optional[str]) -> str:
    """The common fields, the table of families, then every family's own fields."""
    out = ["common fields (every case, whatever its family)"]
    for fname, (ftype, default, meaning) in common_fields.items():
        default = default if default in ("required", "none") or default.startswith("the ") else f"default {default}"
        out.append(f"  {fname:<19} {ftype:<10} {default:<22} {meaning}")
    loaded = [r for r in rows if r["loaded"]]
    failed = [r for r in rows if not r["loaded"]]
    table = [[r["name"], r["origin"], str(r["default_n"]),
              "—" if r["default_noise_std"] is None else f"{r['default_noise_std']:g}", short(r["summary"], 70)]
             for r in loaded]
    table += [[r["name"], r["origin"], "—", "—", short(f"not loaded: {r['error']}", 70)] for r in failed]
    out += ["", fmt_table(["family", "origin", "default n", "noise_std", "summary"], table, right={2, 3})]
    if note:
        out.append(f"({note})")
    for r in loaded:
        noise = ("no noise_std" if r["default_noise_std"] is None
                 else f"default noise_std = {r['default_noise_std']:g}")
        out.append(f"\n{r['name']}  (default n = {r['default_n']}, {noise})  [{r['origin']}]")
        for f in r["fields"]:
            default = "required" if f["required"] else f"default {f['default']!r}"
            out.append(f"  {f['name']:<19} {f['type']:<10} {default:<22} {f['doc']}")
    for r in failed:
        out.append(f"\n{r['name']}  not loaded: {r['error']} ({r['source']})  [{r['origin']}]")
    return "\n".join(out)


def estimators_listing(rows: list[dict], note: Optional[str]) -> str:
    """The table of estimators, then every estimator's config fields with their defaults."""
    loaded = [r for r in rows if r["loaded"]]
    failed = [r for r in rows if not r["loaded"]]
    table = [[r["name"], r["origin"], short(r["summary"], 80)] for r in loaded]
    table += [[r["name"], r["origin"], short(f"not loaded: {r['error']}", 80)] for r in failed]
    out = [fmt_table(["estimator", "origin", "summary"], table)]
    if note:
        out.append(f"({note})")
    for r in loaded:
        out.append(f"\n{r['name']}  [{r['origin']}]: {r['summary']}")
        width = max((len(f["name"]) for f in r["fields"]), default=0)
        for f in r["fields"]:
            out.append(f"  {f['name']:<{width}} = {f['default']!r:<12} {f['doc']}")
    for r in failed:
        out.append(f"\n{r['name']}  [{r['origin']}]: not loaded: {r['error']} ({r['source']})")
    return "\n".join(out)


# ----------------------------------------------------------------------------------- runs
TABLE_WIDTH = 160  # the run table's width by default; --wide lifts it
CUT_NOTE = "cells cut to fit {width} columns (…): --wide shows every column in full, `--json --full` has the rest"


def run_table(records: list[dict], seeds: int, wide: bool = False, width: int = TABLE_WIDTH) -> str:
    """One row per run: truth, λ̂ ± se, relative error, the reference λ_nβ,γ and the two parts of the
    error where one exists, R-hat, ESS, seconds, and the attribution or first warning (the note).

    By default the reference and its source share a column, the two biases share one, and the case and
    the note are cut so that the table fits ``width`` columns, with a line under it saying so; ``wide``
    gives every column in full."""
    with_ref = any(r.get("lambda_ref") is not None for r in records)
    headers = ["case", "λ", "λ̂ ± se", "rel.err", "R-hat", "ESS", "seconds" if wide else "s"]
    if with_ref:
        headers[4:4] = (["λ_nβ,γ", "ref", "estimand bias", "sampler bias"] if wide
                        else ["λ_nβ,γ (ref)", "bias: estimand / sampler"])
    headers.append("note")
    rows = []
    for r in records:
        row = [
            r["case"] + (f" #{r['seed']}" if seeds > 1 else ""),
            r["lambda"] + (f" ({r['truth_kind']})" if r.get("truth_kind") not in (None, "exact") else ""),
            f"{num(r['lambda_hat'], '{:.4g}')} ± {num(r['se'], '{:.2g}')}",
            num(r["rel_error"], "{:+.1%}"),
            num(r["rhat"], "{:.3f}"),
            num(r["ess"], "{:.0f}"),
            num(r["seconds"], "{:.1f}"),
        ]
        if with_ref:
            ref, label = num(r.get("lambda_ref"), "{:.4g}"), reference_label(r) or "—"
            estimand = num(r.get("estimand_bias"), "{:+.3g}")
            sampler = ((num(r.get("sampler_bias"), "{:+.3g}") + " ± " + num(r.get("sampler_bias_se"), "{:.2g}"))
                       if r.get("sampler_bias") is not None else "—")
            row[4:4] = ([ref, label, estimand, sampler] if wide
                        else [ref if label == "—" else f"{ref} {label}", f"{estimand} / {sampler}"])
        row.append(("stored " if r["cached"] else "") + note(r))
        rows.append(row)
    right = set(range(2, len(headers) - 1))
    cut = False
    if not wide:
        rows, cut = _fit(headers, rows, width)
    text = fmt_table(headers, rows, right=right)
    return text + ("\n" + CUT_NOTE.format(width=width) if cut else "")


def _fit(headers: list[str], rows: list[list[str]], width: int) -> tuple[list[list[str]], bool]:
    """Cut the first (case) and last (note) columns so that the table is at most ``width`` wide."""
    def widths(rs):
        return [max([len(h)] + [len(r[i]) for r in rs]) for i, h in enumerate(headers)]

    cut = False
    if sum(widths(rows)) + 2 * (len(headers) - 1) > width and widths(rows)[0] > 32:  # long ids: keep their head
        rows = [[short(r[0], 32)] + r[1:] for r in rows]
        cut = True
    fixed = sum(widths(rows)[:-1]) + 2 * (len(headers) - 1)
    room = max(width - fixed, len(headers[-1]), 12)
    if any(len(r[-1]) > room for r in rows):
        rows = [r[:-1] + [short(r[-1], room)] for r in rows]
        cut = True
    return rows, cut


def run_summary(records: list[dict], db, skipped: list, torch_version: str) -> str:
    """The lines under the run table: counts, the median error over computed truths, sampler biases
    beyond Z se, runs worse than the tolerance by attribution, detection, stale torch, skipped cases."""
    # runs against a truth that is not computed (asserted by the case) are counted apart
    # an unhealthy run (llcbench.health) is no LLC estimate: counted below, never in the median
    errs = sorted(abs(r["rel_error"]) for r in records if r["rel_error"] is not None and math.isfinite(r["rel_error"])
                  and r.get("truth_kind") in (None, "exact") and r.get("attribution") != "unhealthy")
    fresh = sum(not r["cached"] for r in records)
    summary = f"\n{len(records)} runs ({fresh} computed, {len(records) - fresh} from {db})"
    if errs:
        median = errs[len(errs) // 2] if len(errs) % 2 else 0.5 * (errs[len(errs) // 2 - 1] + errs[len(errs) // 2])
        summary += f"; median |rel.err| {median:.1%}, worst {errs[-1]:.1%}"
    apart = [r for r in records if r.get("truth_kind") not in (None, "exact")]
    if apart:
        summary += (f"\n{len(apart)} against a truth that is not computed ({', '.join(sorted({r['truth_kind'] for r in apart}))}; "
                    f"not in the median): {', '.join(r['case'] for r in apart[:4])}{', …' if len(apart) > 4 else ''}")
    # only healthy runs: an unhealthy run's distance to the reference is no sampler bias
    refd = [r for r in records if r.get("sampler_bias") is not None and r.get("sampler_bias_se")
            and r.get("attribution") != "unhealthy"]
    if refd:
        sig = [r for r in refd if abs(r["sampler_bias"]) > Z * r["sampler_bias_se"]]
        covered = sum(abs(r["sampler_bias"]) <= 2 * r["sampler_bias_se"] for r in refd)
        summary += (f"\n{len(refd)} healthy with a reference λ_nβ,γ: ±2·se covers it in {covered / len(refd):.0%}; "
                    f"{len(sig)} with a sampler bias beyond {Z:g} se"
                    + (f" ({', '.join(r['case'] for r in sig[:4])}{', …' if len(sig) > 4 else ''})" if sig else ""))
    sick = [r for r in records if r.get("attribution") == "unhealthy"]
    if sick:
        summary += (f"\n{len(sick)} unhealthy (no LLC estimate, not in the median; the note column says why): "
                    f"{', '.join(r['case'] for r in sick[:4])}{', …' if len(sick) > 4 else ''}")
    off = [r for r in records if r.get("attribution") not in (None, "unhealthy")]
    if off:
        counts = ", ".join(f"{sum(r['attribution'] == a for r in off)} {a}" for a in ATTRIBUTIONS if a != "unhealthy")
        summary += f"\n{len(off)} worse than {TOLERANCE:.0%}: {counts} (see the note column)"
    lines = [summary]
    detected = detection_summary(records)
    if detected:
        lines.append(detected)
    stale = sorted({r.get("torch_version") or "?" for r in records
                    if r["cached"] and r.get("torch_version") != torch_version})
    if stale:
        n_stale = sum(r["cached"] and r.get("torch_version") != torch_version for r in records)
        lines.append(f"⚠ {n_stale} stored run{'s' if n_stale > 1 else ''} made with torch {', '.join(stale)}, this is "
                     f"torch {torch_version}: a rerun may give another λ̂ (--force recomputes)")
    by_reason: dict[str, list[str]] = {}
    for cid, why in skipped:
        # Group reasons that differ only by the case named in them.
        generic = re.sub(r"\s*\(d = \d+\)", "", why.replace(cid, "…"))
        by_reason.setdefault(generic, []).append(cid)
    for why, ids in by_reason.items():
        lines.append(f"skipped {len(ids)} case{'s' if len(ids) > 1 else ''} ({', '.join(ids[:3])}"
                     f"{', …' if len(ids) > 3 else ''}): {why}")
    return "\n".join(lines)


def detection_summary(records: list) -> str:
    """One line for runs whose targets know their memorised samples: the mean AUROC of λ̂_i at finding
    them, beside the baselines (at w*, and under the localisation's noise where recorded), over the
    healthy runs (``llcbench.health``); the others are counted, the non-local among them named
    (``llcbench report`` has the intervals, curves and the runs apart)."""
    from ..health import healthy
    from ..locality import is_local
    from ..score.detection import auroc

    known = [r for r in records if (r.get("per_sample") or {}).get("memorised")]
    if not known:
        return ""
    rows = [r["per_sample"] for r in known if healthy(r)]
    apart = len(known) - len(rows)
    far = sum(is_local(r) is False for r in known)
    why = f" ({far} not local)" if far else ""
    tail = f"; {apart} unhealthy run{'s' if apart > 1 else ''}{why} not scored" if apart else ""
    if not rows:
        return (f"per-sample LLC: {apart} run{'s' if apart > 1 else ''} with known memorised samples, none healthy"
                f"{why}: not scored")

    def mean(col):
        have = [ps for ps in rows if ps.get(col) is not None]
        return sum(auroc([math.nan if v is None else v for v in ps[col]], ps["memorised"]) for ps in have) / len(have)

    noise = (f", under noise {mean('loss_under_noise'):.3f}"
             if any(ps.get("loss_under_noise") is not None for ps in rows) else "")
    return (f"per-sample LLC of {len(rows)} run{'s' if len(rows) > 1 else ''} with known memorised samples: mean AUROC "
            f"{mean('lambda'):.3f} (baselines at w*: loss {mean('loss_star'):.3f}, gradient norm "
            f"{mean('grad_norm_star'):.3f}{noise}{tail}; llcbench report shows the intervals)")


def note(record: dict) -> str:
    """The last column: for a run worse than the tolerance, its attribution with the numbers behind
    it and the hints; else its first warning. A non-local run says so first: its λ̂ is no LLC estimate."""
    from ..locality import note as locality_note

    if record.get("attribution") == "unhealthy":  # no LLC estimate: why, before anything else
        return "unhealthy: " + (record.get("attribution_reason") or "").removeprefix("unhealthy: ")
    far = locality_note(record)
    if record.get("attribution") is None:
        return "; ".join(x for x in (far, warning_note(record["warnings"])) if x)
    if far:
        return far + "; " + record["attribution"]
    texts = record.get("findings_short") or []
    text = record["attribution"] + (": " + "; ".join(texts) if texts else "")
    if record["attribution"] == "unattributed" and record["warnings"]:
        text += "; " + warning_note(record["warnings"])
    return text


def warning_note(warnings: list) -> str:
    """The first warning, shortened, and how many more (all are in the record: --json --full)."""
    if not warnings:
        return ""
    first = warnings[0] if len(warnings[0]) <= 70 else warnings[0][:69] + "…"
    return f"⚠ {first}" + (f" (+{len(warnings) - 1})" if len(warnings) > 1 else "")


def sweep_table(points: list[dict], axes: list[str], seeds: int, cases: int, runs: int, db) -> str:
    rows = [[*(str(p[a]) for a in axes), str(p["runs"]), num(p["median_abs_rel_error"], "{:.1%}"),
             num(p["worst_abs_rel_error"], "{:.1%}"), str(p["unhealthy"]), num(p["seconds"], "{:.0f}")]
            for p in points]
    return (fmt_table([*axes, "runs", "median |rel.err|", "worst", "unhealthy", "seconds"], rows,
                      right=set(range(len(axes) + 5)))
            + f"\n\n{len(points)} grid points × {cases} cases × {seeds} seed(s) = {runs} runs in {db}; unhealthy = "
              "a divergent chain, split R-hat > 1.1, bulk ESS < 100, an outlier chain, λ̂ not finite or above d, "
              "or not local; "
              "`llcbench report` scores the sweep")


def trajectory_table(records: list[dict]) -> str:
    rows = []
    for r in records:
        info = r.get("target_info") or {}
        rows.append([str(r["case_definition"]["params"]["train_steps"]), str(r["seed"]),
                     num(info.get("train_accuracy"), "{:.1%}"), num(info.get("test_accuracy"), "{:.1%}"),
                     num(info.get("train_loss"), "{:.3g}"),
                     f"{num(r['lambda_hat'], '{:.4g}')} ± {num(r['se'], '{:.2g}')}", num(r["rhat"], "{:.3f}")])
    return fmt_table(["step", "seed", "train acc", "test acc", "train loss", "λ̂ ± se", "R-hat"], rows,
                     right={2, 3, 4, 5, 6})


# ----------------------------------------------------------------------------------- references
ENTRY_HEADERS = ["case", "λ", "nβ", "γ", "λ_nβ,γ ± se", "se/λ_ref", "R-hat", "ESS bulk", "ESS tail", "div.",
                 "seconds", "standard"]


def entry_row(e: dict, status: str = "") -> list[str]:
    d = e.get("diagnostics") or {}
    rel = e["se"] / abs(float(e["lambda_ref"])) if e.get("lambda_ref") and e.get("se") is not None else None
    return [e["case"], str(e.get("lambda", "")), num(e.get("nbeta"), "{:.4g}"), num(e.get("gamma"), "{:.3g}"),
            f"{num(e.get('lambda_ref'), '{:.4g}')} ± {num(e.get('se'), '{:.2g}')}", num(rel, "{:.2%}"),
            num(d.get("rhat"), "{:.3f}"), num(d.get("ess_bulk"), "{:.0f}"), num(d.get("ess_tail"), "{:.0f}"),
            str(sum(d.get("divergences") or [])), num(e.get("seconds"), "{:.1f}"),
            status or ("met" if e.get("standard_met") else "NOT MET: " + "; ".join(e.get("standard_failed") or []))]


def entries_table(entries: list[dict]) -> str:
    return fmt_table(ENTRY_HEADERS, [entry_row(e) for e in entries], right={2, 3, 4, 5, 6, 7, 8, 9, 10})


def check_table(entries: list[dict], shipped: dict, seed: int) -> tuple[str, float]:
    """(the table of recomputed entries against the shipped ones with their z-scores, the largest |z|)."""
    rows, worst = [], 0.0
    for e in entries:
        old = shipped[e["case"]]
        z = (e["lambda_ref"] - old["lambda_ref"]) / math.hypot(e["se"], old["se"])
        worst = max(worst, abs(z))
        rows.append([e["case"], f"{old['lambda_ref']:.5g} ± {old['se']:.2g}",
                     f"{e['lambda_ref']:.5g} ± {e['se']:.2g}", f"{z:+.2f}", "ok" if abs(z) <= 3 else "DISAGREE"])
    return (fmt_table(["case", "shipped", f"seed {seed}", "z", ""], rows, right={1, 2, 3})
            + f"\n\n{len(rows)} entries recomputed with seed {seed}; largest |z| {worst:.2f} "
              "(|z| > 3: the two runs disagree beyond their standard errors)"), worst


def truth_text(found: dict) -> str:
    """``llcbench truth EXPR``: the certified truth, or why not and the Newton bound."""
    if not found["certified"]:
        text = f"cannot certify: {found['reason']}"
        if found.get("newton_bound") is not None:
            text += (f"\nNewton-polyhedron value 1/t* = {found['newton_bound']} (m = {found['newton_m']}) is only an "
                     "upper bound on λ")
        return text
    return (f"λ = {found['lambda']} ({found['lambda_float']:.6g}), m = {found['multiplicity']}  certified by: "
            f"{found['method']}\n  [{found['source']}]")


def cases_truth_text(rows: list[dict]) -> str:
    """``llcbench truth --case ID``: one line per case."""
    return "\n".join(f"{r['case']}: λ = {r['lambda']} ({r['lambda_float']:.6g}), m = {r['multiplicity']}, "
                     f"kind {r['kind']}  [{r['source']}]" for r in rows)


def report_summary(html, scores: dict) -> str:
    """What ``llcbench report`` wrote and scored."""
    text = (f"{html} ({scores['runs']} runs of llcbench {scores['llcbench_version']}, "
            f"{len(scores['leaderboard'])} estimator × config rows); also report.md, scores.json")
    if scores["other_versions"]:
        text += ("\nnot scored (other llcbench versions): "
                 + "; ".join(f"{v}: {o['runs']} runs" for v, o in scores["other_versions"].items()))
    return text


def entries_summary(entries: list[dict], where: str, after: str = "") -> str:
    """The reference entries' table and how many meet the standard."""
    met = sum(bool(e.get("standard_met")) for e in entries)
    return entries_table(entries) + f"\n\n{len(entries)} entries{where} ({met} meet the standard){after}"


class Progress:
    """A tqdm bar on stderr, started once the library has checked the request (none when ``quiet``)."""

    def __init__(self, quiet: bool):
        self.quiet, self.bar = quiet, None

    def start(self, total: int):
        if not self.quiet:
            import sys

            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="run", file=sys.stderr, dynamic_ncols=True, leave=False)

    def describe(self, text: str):
        self.bar is not None and self.bar.set_description(text)

    def postfix(self, text: str):
        self.bar is not None and self.bar.set_postfix_str(text, refresh=False)

    def update(self, n: int):
        self.bar is not None and self.bar.update(n)

    def close(self):
        self.bar is not None and self.bar.close()
