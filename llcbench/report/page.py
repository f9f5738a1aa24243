"""index.html: one self-contained page (no CDN, no external file), leaderboard first.

A small inline script records, for a browser test and for anyone who opens
the developer console, whether every figure decoded (naturalWidth > 0:
``body[data-images-ok]``), the smallest scale a figure is shown at
(``body[data-images-min-scale]``) and any error the page raised
(``body[data-errors]``, from window.onerror, failed resource loads and
console.error); another sorts the tables of class ``sortable`` when a header
is clicked (numbers by the cell's ``data-v``, else by text). Nothing is
loaded from outside the file.
"""

from __future__ import annotations

import html
import math
from collections import Counter

from .detection import detection_html
from .text import (CASE_HEADERS, EXPLAIN, FAMILY_COLUMNS, HEALTH, HEALTH_HEADERS, LEADER_COLUMNS, case_cells,
                   health_cells, num, pct, skipped_rows, sweep_rows)

_CHECK = """
(function () {
  var errors = [];
  window.addEventListener('error', function (e) {
    errors.push(String(e.message || (e.target && (e.target.src || e.target.href)) || 'error'));
  }, true);
  var original = console.error;
  console.error = function () { errors.push([].join.call(arguments, ' ')); original.apply(console, arguments); };
  window.addEventListener('load', function () {
    var images = [].slice.call(document.images);
    var ok = images.filter(function (im) { return im.complete && im.naturalWidth > 0; }).length;
    document.body.dataset.images = images.length;
    document.body.dataset.imagesLoaded = ok;
    document.body.dataset.imagesOk = String(ok === images.length);
    // the smallest ratio of a figure's width on screen to its own: its 8 pt labels shrink by as much
    var scales = images.map(function (im) { return im.naturalWidth ? im.getBoundingClientRect().width / im.naturalWidth : 0; });
    document.body.dataset.imagesMinScale = String(Math.min.apply(null, scales.concat([1])));
    document.body.dataset.errors = JSON.stringify(errors);
    document.body.dataset.ready = 'true';
  });
})();
"""

_SORT = """
document.addEventListener('click', function (e) {
  var th = e.target.closest && e.target.closest('table.sortable th');
  if (!th) return;
  var table = th.closest('table'), body = table.tBodies[0], col = th.cellIndex;
  var dir = th.dataset.dir === 'asc' ? 'desc' : 'asc';
  [].forEach.call(table.tHead.rows[0].cells, function (c) { delete c.dataset.dir; });
  th.dataset.dir = dir;
  var key = function (row) {
    var cell = row.cells[col], v = cell.dataset.v;
    return v !== undefined && v !== '' ? parseFloat(v) : cell.textContent;
  };
  var rows = [].slice.call(body.rows).sort(function (a, b) {
    var x = key(a), y = key(b);
    var c = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y));
    return dir === 'asc' ? c : -c;
  });
  rows.forEach(function (r) { body.appendChild(r); });
});
"""

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1250px;color:#222;
padding:0 1em;line-height:1.4}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0} th,td{padding:.25em .6em;border-bottom:1px solid #eee;
text-align:right} th{background:#f5f5f5} td:first-child,th:first-child,td:nth-child(2){text-align:left}
tr.headline td{font-weight:600} .note{color:#555;font-size:.9em;max-width:70em}
figure{margin:1em 0} figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9em;color:#333;max-width:70em} code{background:#f3f3f3;padding:0 .2em}
table.sortable th{cursor:pointer} table.sortable th[data-dir=asc]::after{content:" ▲"}
table.sortable th[data-dir=desc]::after{content:" ▼"} td.bad{color:#a00} details{margin:.4em 0}
"""


def _e(x) -> str:
    return html.escape(str(x))


def _table(headers, rows, attrs=None, cls=None, sortable=False, values=None) -> str:
    """A table; ``sortable``: its header sorts it (``values``: per row, the numbers to sort by, or None)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        a = attrs[i] if attrs else ""
        v = values[i] if values else [None] * len(row)
        body.append(f"<tr{a}>" + "".join(f"<td{'' if x is None else f' data-v={_v(x)}'}>{_e(c)}</td>"
                                         for c, x in zip(row, v)) + "</tr>")
    return (f"<table{f' id={cls!r}' if cls else ''}{' class=sortable' if sortable else ''}><thead><tr>{head}</tr>"
            f"</thead><tbody>{''.join(body)}</tbody></table>")


def _v(x) -> str:
    return f'"{x:.6g}"' if isinstance(x, (int, float)) and math.isfinite(x) else '""'


LEADER_SHOWN = 12  # rows shown at once; the rest (sweep points, mostly) fold away under the table


def _leaderboard(scores) -> str:
    def attrs(rows):
        return [f' data-estimator="{_e(r["estimator"])}" data-group="{_e(r["group"])}"'
                + (' class="headline"' if r["headline"] else "") for r in rows]

    rows = scores["leaderboard"]
    head, rest = rows[:LEADER_SHOWN], rows[LEADER_SHOWN:]
    headers = [c[0] for c in LEADER_COLUMNS]
    text = _table(headers, [[f(r) for _, f in LEADER_COLUMNS] for r in head], attrs(head), "leaderboard")
    if rest:
        text += (f"<details><summary>{len(rest)} more estimator × config rows</summary>"
                 + _table(headers, [[f(r) for _, f in LEADER_COLUMNS] for r in rest], attrs(rest), "leaderboard-more")
                 + "</details>")
    return text


def _families(g) -> str:
    rows = [[fam] + [f(b) for _, f in FAMILY_COLUMNS[1:]] for fam, b in g["families"].items()]
    rows.append(["all"] + [f(g["overall"]) for _, f in FAMILY_COLUMNS[1:]])
    return _table([c[0] for c in FAMILY_COLUMNS], rows)


def _family_sections(scores) -> str:
    """Every estimator × config's per-family table: the headline configs open, the others folded."""
    parts = []
    for g in sorted(scores["groups"], key=lambda g: not g["headline"]):
        body = (f"{_families(g)}<p class='note'>Violated pairs (of cases with different λ):</p>{_violations(g)}")
        title = f"{_e(g['estimator'])} · {_e(g['label'])}"
        parts.append(f"<h3>{title}</h3>{body}" if g["headline"] else
                     f"<details><summary>{title}: {g['overall']['cases']} cases, median |rel. err.| "
                     f"{pct(g['overall']['median_abs_rel_error'])}</summary>{body}</details>")
    return "".join(parts)


def _case_table(g) -> str:
    rows = [(r, True) for r in g["cases"]] + [(r, False) for r in g["apart"]]
    cells = [case_cells(r, ok) for r, ok in rows]
    values = [[None, None, r["lambda_float"], r["lambda_hat"], r["rel_error"], r["lambda_ref"], r["estimand_rel"],
               r["sampler_rel"], None, r["unhealthy_runs"]] for r, _ in rows]
    attrs = [' class="bad"' if not ok or r["unhealthy_runs"] else "" for r, ok in rows]
    return _table(CASE_HEADERS, cells, attrs, sortable=True, values=values)


def _cases(scores) -> str:
    parts = []
    for g in sorted(scores["groups"], key=lambda g: not g["headline"]):
        n = len(g["cases"]) + len(g["apart"])
        title = f"{_e(g['estimator'])} · {_e(g['label'])}: {n} cases, {g['unhealthy_runs']} unhealthy runs"
        parts.append(f"<details{' open' if g['headline'] else ''}><summary>{title}</summary>{_case_table(g)}</details>")
    return ("<h2 id='cases'>Per case</h2><p class='note'>Every case of every estimator × config: λ̂ (mean over the "
            "healthy seeds), its relative error, the reference λ_nβ,γ of the run's own posterior and the split of the "
            "error into the estimand's part (λ_nβ,γ − λ)/λ and the sampler's part (λ̂ − λ_nβ,γ)/λ, the attribution "
            "of runs worse than 30 % and the health of the seeds. Click a header to sort.</p>" + "".join(parts))


def _health(scores) -> str:
    groups = scores["groups"]
    sick = [(g, h) for g in groups for h in g["run_health"] if h["problems"]]
    out = [f"<h2 id='health'>Run health</h2><p class='note'>{_e(HEALTH)}</p>",
           f"<p>{scores['unhealthy_runs']} of {scores['runs']} runs unhealthy.</p>"]
    if sick:
        rows = [[g["estimator"], g["label"], *health_cells(h)] for g, h in sick]
        values = [[None, None, None, h["seed"], h["rhat"], h["ess"], h["divergent_chains"], h.get("steps"), None, None]
                  for _, h in sick]
        out.append(_table(["estimator", "config", *HEALTH_HEADERS], rows, sortable=True, values=values))
    for g in sorted(groups, key=lambda g: not g["headline"]):
        rows = [health_cells(h) for h in g["run_health"]]
        values = [[None, h["seed"], h["rhat"], h["ess"], h["divergent_chains"], h.get("steps"), None, None]
                  for h in g["run_health"]]
        out.append(f"<details><summary>Every run of {_e(g['estimator'])} · {_e(g['label'])} ({len(rows)} runs, "
                   f"{g['unhealthy_runs']} unhealthy)</summary>"
                   + _table(HEALTH_HEADERS, rows, sortable=True, values=values) + "</details>")
    skipped = skipped_rows(scores)
    if skipped:
        out.append(f"<h3>Skipped cases</h3><p class='note'>{len(skipped)} cases that a run or sweep left out, with "
                   "why (none has a run of that estimator in the store).</p>"
                   + _table(["estimator", "case", "why skipped"], skipped, sortable=True))
    else:
        out.append("<p class='note'>No case was skipped by the runs of this store (or the store predates the "
                   "record of skipped cases).</p>")
    return "".join(out)


def _violations(g) -> str:
    items = []
    for fam, b in g["families"].items():
        for a, c in b["violated_pairs"][:12]:
            items.append(f"<li>{_e(fam)}: λ({_e(a)}) &lt; λ({_e(c)}) but λ̂ is not</li>")
        if len(b["violated_pairs"]) > 12:
            items.append(f"<li>{_e(fam)}: … and {len(b['violated_pairs']) - 12} more (scores.json)</li>")
    return f"<ul>{''.join(items)}</ul>" if items else "<p class='note'>No violated pair.</p>"


def _sweeps(scores) -> str:
    if not scores["sweeps"]:
        return ("<p class='note'>No sweep in the store: the sensitivity scores need several configs of one "
                "estimator that differ only in step_scale, nbeta_scale or gamma_scale.</p>")
    parts = []
    for s in scores["sweeps"]:
        rows = sweep_rows(s, "not stable: best available")
        spread = ", ".join(f"{c['case']} {pct(c['rel_range'], 0)}" for c in s["case_spread"][:5]
                           if c["rel_range"] is not None)
        axes = " × ".join(k + " ∈ {" + ", ".join(f"{x:g}" for x in v) + "}" for k, v in s["axes"].items())
        parts.append(f"<h3>{_e(s['estimator'])} over {_e(axes)}</h3>"
                     + _table(["family", "cases", "stable grid points", "recommended config", "its median |rel. err.|"], rows)
                     + f"<p class='note'>Stable for every family at once: {len(s['stable_all'])} grid points. "
                       f"Largest spread of λ̂ across healthy grid points ((max − min)/λ): {_e(spread or '—')}.</p>")
    return "".join(parts)


def _scaling(scores) -> str:
    from . import scaling_table

    rows = scaling_table.rows(scores)
    if not rows:
        return ""
    return ("<h2>Modular arithmetic: λ̂ against p</h2><p class='note'>Theory-kind truths (Rimsky &amp; Vaintrob "
            "2023), scored by the log-log slope of λ̂ in p, a line in p (generalising) or p² (memorising) and the "
            "ordering memorising &gt; generalising at equal p, not by bias; one fit per anchor recipe; runs that "
            "did not mix or are not local are not scored (counted).</p>" + _table(scaling_table.HEADERS, rows))


def _apart(scores) -> str:
    rows = [[g["estimator"], g["label"], r["case"], r["truth_kind"], r["lambda"], num(r["lambda_hat"], "{:.4g}")]
            for g in scores["groups"] for r in g["apart"] if r["truth_kind"] != "exact"]
    if not rows:
        return ""
    return ("<h2>Cases scored apart</h2><p class='note'>" + _e(EXPLAIN["apart"]) + "</p>"
            + _table(["estimator", "config", "case", "truth kind", "λ", "λ̂"], rows))


def _figure(f) -> str:
    if f["svg"] is None:
        return f"<h2>{_e(f['title'])}</h2><p class='note'>{_e(f['caption'])}</p>"
    return (f"<h2 id='{_e(f['id'])}'>{_e(f['title'])}</h2><figure><img alt='{_e(f['title'])}' "
            f"src='data:image/svg+xml;base64,{f['svg']}'><figcaption>{_e(f['caption'])}</figcaption></figure>")


def render_html(scores: dict, figs: list[dict]) -> str:
    prov = scores["provenance"]
    others = "".join(f"<li>llcbench {_e(v)}: {o['runs']} runs ({_e(', '.join(o['estimators']))})</li>"
                     for v, o in scores["other_versions"].items())
    attributions = Counter()
    for g in scores["groups"]:
        if g["headline"]:
            for k, v in g["overall"]["runs_beyond_tolerance"].items():
                if k not in ("tolerance", "total"):
                    attributions[k] += v
    fam_sections = _family_sections(scores)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>llcbench report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<script>{_CHECK}</script><script>{_SORT}</script><style>{_CSS}</style></head>
<body>
<h1>llcbench calibration report</h1>
<p class="note">How well estimators of the local learning coefficient λ (LLC; Lau, Murfet &amp; Wei 2023) recover
the <em>known</em> λ of benchmark cases (polynomial potentials, regular models with λ = d/2, deep linear networks,
reduced-rank regression). λ̂ is the estimate, λ_nβ,γ the exact (or reference-sampled) value of the localised
tempered posterior the estimator samples, so λ̂ − λ splits into the estimand's part λ_nβ,γ − λ and the sampler's
part λ̂ − λ_nβ,γ.</p>
<h2>Leaderboard</h2>
{_leaderboard(scores)}
<p class="note">{_e(EXPLAIN['leaderboard'])} Bold rows are each estimator's headline config (its defaults where
the store has them), the series of the figures below.</p>
<p class="note">Store <code>{_e(scores['store'])}</code>; {scores['runs']} runs ({scores['unhealthy_runs']} unhealthy, see
<a href="#health">Run health</a>) of llcbench {_e(scores['llcbench_version'])}
(git {_e(', '.join(c[:12] for c in prov['git_commits']))}; torch {_e(', '.join(prov['torch_versions']))};
devices {_e(', '.join(prov['devices']))}; run {_e(prov['first_run'])} to {_e(prov['last_run'])}); report made by
{_e(scores['generated_by'])} at {_e(scores['generated_at'])}.</p>
{f"<p class='note'>Runs of other llcbench versions in the store, kept apart (not scored here):</p><ul>{others}</ul>" if others else ""}
<h2>Scores per family</h2>
<p class="note">{_e(EXPLAIN['families'])}</p>
{fam_sections}
{_health(scores)}
{_cases(scores)}
<h2>Sweeps: stable region and recommended config</h2>
{_sweeps(scores)}
{detection_html(scores, _table)}
{''.join(_figure(f) for f in figs)}
{_scaling(scores)}
{_apart(scores)}
</body></html>
"""
