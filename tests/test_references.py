"""The shipped reference table: entries match a run only by case definition, loss and (nβ, γ)."""

from __future__ import annotations

import json

import pytest

from llcbench.catalogue import build_target, load_catalogue
from llcbench.references import ReferenceTable, best_reference, loss_fingerprint, with_reference
from llcbench.references.table import entry_from_record, record_fingerprint
from llcbench.store import Store

CASES = {c.id: c for c in load_catalogue()}


def sgld_record(case_id="dln/2-2-2/r0", lam_hat=1.30, se=0.02, nbeta=8685.889638065036, gamma=8.685889638065036):
    case = CASES[case_id]
    return {"key": "s1", "case": case.id, "case_key": case.key(), "case_definition": case.definition(),
            "family": case.family, "estimator": "sgld", "lambda": "3/2", "lambda_float": 1.5, "lambda_hat": lam_hat,
            "se": se, "extra": {"nbeta": nbeta, "gamma": gamma}, "seed": 0, "config": {}, "multiplicity": 1,
            "truth_kind": "exact", "rel_error": lam_hat / 1.5 - 1, "rhat": 1.0, "ess": 1000.0, "grad_evals": 0,
            "seconds": 1.0, "device": "cpu", "llcbench_version": "0.3.0", "git_commit": None,
            "torch_version": "2.13.0", "created_at": "2026-12-01T00:00:00+00:00"}


def entry(record, lam_ref=1.40, se=0.005, met=True, **changes):
    e = {"case": record["case"], "case_key": record["case_key"], "loss_fingerprint": record_fingerprint(record),
         "family": record["family"], "nbeta": record["extra"]["nbeta"], "gamma": record["extra"]["gamma"],
         "lambda": record["lambda"], "lambda_ref": lam_ref, "se": se, "standard_met": met,
         "standard_failed": [] if met else ["split R-hat 1.03 > 1.01"], "method": "hmc"}
    e.update(changes)
    return e


def test_fingerprint_is_stable_and_sees_a_changed_loss():
    target = build_target(CASES["dln/2-2-2/r0"])
    assert loss_fingerprint(target) == loss_fingerprint(build_target(CASES["dln/2-2-2/r0"]))
    noisier = build_target(type(CASES["dln/2-2-2/r0"])(**{**vars(CASES["dln/2-2-2/r0"]), "seed": 99}))
    assert loss_fingerprint(noisier) != loss_fingerprint(target)  # other data, same widths: another loss
    rec = sgld_record()
    assert record_fingerprint(rec) == loss_fingerprint(target)  # computed from the definition when absent


def test_lookup_matches_definition_loss_and_temperature():
    rec = sgld_record()
    table = ReferenceTable([entry(rec)])
    ref, notes = table.lookup(rec)
    assert ref["lambda_hat"] == 1.40 and not notes
    out = with_reference(rec, ref)
    assert out["lambda_ref_source"] == "shipped:hmc" and out["sampler_bias"] == pytest.approx(1.30 - 1.40)
    assert table.lookup(dict(rec, extra={"nbeta": 100.0, "gamma": 0.1})) == (None, [])  # another posterior


@pytest.mark.parametrize("change, says", [
    ({"case_key": "0" * 64}, "case definition changed"),
    ({"loss_fingerprint": "feedfacefeedface"}, "loss changed"),
    ({"standard_met": False, "standard_failed": ["split R-hat 1.03 > 1.01"]}, "did not meet the standard"),
])
def test_stale_or_failed_entries_are_never_used_and_say_why(change, says):
    rec = sgld_record()
    ref, notes = ReferenceTable([entry(rec, **change)]).lookup(rec)
    assert ref is None and len(notes) == 1 and says in notes[0]


def test_best_reference_prefers_the_smaller_se_and_an_exact_run(tmp_path):
    rec = sgld_record()
    table = ReferenceTable([entry(rec, lam_ref=1.40, se=0.005)])
    nuts = dict(rec, key="n1", estimator="nuts", lambda_hat=1.38, se=0.02, rhat=1.0, ess=2000.0,
                diagnostics={"divergences": [0] * 4, "chains_used": 4}, extra=dict(rec["extra"], chains=4))
    with Store(tmp_path / "r.sqlite") as store:
        store.put(nuts)
        ref, _ = best_reference(store, rec, table)
        assert ref.get("shipped") and ref["lambda_hat"] == 1.40  # 0.005 < 0.02
        ref, _ = best_reference(store, rec, ReferenceTable([entry(rec, se=0.05)]))
        assert ref["key"] == "n1"
        store.put(dict(nuts, key="e1", estimator="exact", lambda_hat=1.41, se=0.0))
        ref, _ = best_reference(store, rec, table)
        assert ref["estimator"] == "exact"


def test_table_round_trip_and_entry_from_a_record(tmp_path):
    rec = dict(sgld_record(), estimator="hmc", key="h1", lambda_hat=1.401, se=0.004, rhat=1.002,
               diagnostics={"rhat": 1.002, "ess_bulk": 5000.0, "ess_tail": 3000.0, "divergences": [0] * 64},
               extra={"nbeta": 8685.889638065036, "gamma": 8.685889638065036, "standard_met": True,
                      "standard_failed": [], "standard": {"max_rhat": 1.01}}, seconds=12.0,
               llcbench_version="0.3.0", torch_version="2.13.0", created_at="2026-12-01T00:00:00+00:00")
    e = entry_from_record(rec)
    assert e["lambda_ref"] == 1.401 and e["standard_met"] and e["loss_fingerprint"] == record_fingerprint(rec)
    path = tmp_path / "refs.json"
    ReferenceTable([e], path).save()
    again = ReferenceTable.load(path)
    assert again.entries == json.loads(path.read_text())["entries"] and again.lookup(sgld_record())[0]
    again.put(dict(e, lambda_ref=1.5))  # same case, definition and temperature: replaced, not added
    assert len(again.entries) == 1 and again.entries[0]["lambda_ref"] == 1.5
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": 99, "entries": []}))
    with pytest.raises(ValueError, match="schema 99"):
        ReferenceTable.load(bad)


HMC_QUICK = ["--set", "chains=16", "--set", "warmup=200", "--set", "block=400", "--set", "max_draws=400",
             "--set", "max_rel_se=0.05"]


def test_references_build_show_check_and_use_through_the_cli(cli, tmp_path):
    """build: an hmc run into the store and an entry into a table file; show: lists it; a later
    sgld run of the same posterior is decomposed against the stored hmc run; check: recomputes it
    with another seed and reports agreement (|z| ≤ 3 is exit status 0). A case that has an exact
    value is not built."""
    db, table = tmp_path / "r.sqlite", tmp_path / "refs.json"
    built = cli("references", "build", "--case", "rrr/1-1-1/r1", *HMC_QUICK, "--db", db, "--write-table", table,
                "--quiet", "--json")
    assert built.returncode == 0, built.stderr
    (entry,) = json.loads(built.stdout)
    assert entry["method"] == "hmc" and entry["case"] == "rrr/1-1-1/r1" and entry["lambda_ref"] > 0
    assert json.loads(table.read_text())["entries"][0]["run_key"] == entry["run_key"]
    shown = cli("references", "show", "--table", table)
    assert shown.returncode == 0 and "rrr/1-1-1/r1" in shown.stdout and "1 entries" in shown.stdout
    assert entry["standard_met"], entry["standard_failed"]  # (met with this budget: R-hat 1.004, ESS 2692)
    (run,) = json.loads(cli("run", "--estimator", "sgld", "--case", "rrr/1-1-1/r1", "--set", "steps=400",
                            "--set", "burn_in=100", "--db", db, "--quiet", "--json").stdout)
    # the better of the stored run and the shipped entry: the smaller se wins
    from llcbench.references import shipped_table

    (shipped,) = [e for e in shipped_table().entries if e["case"] == "rrr/1-1-1/r1"]
    if shipped["se"] < entry["se"]:
        assert run["lambda_ref_source"] == "shipped:hmc" and run["lambda_ref"] == shipped["lambda_ref"]
    else:
        assert run["lambda_ref_source"].startswith("hmc:") and run["lambda_ref"] == entry["lambda_ref"]
    checked = cli("references", "check", "--case", "rrr/1-1-1/r1", *HMC_QUICK, "--table", table, "--db", db,
                  "--quiet")
    assert checked.returncode in (0, 1) and "recomputed with seed 1" in checked.stdout
    exact_case = cli("references", "build", "--case", "poly/w1^4", "--db", db, "--quiet")
    assert exact_case.returncode == 2 and "no case needs a sampled reference" in exact_case.stderr


def test_shipped_table_covers_the_catalogue_where_exact_does_not():
    """Every flat-prior catalogue case without an exact λ_nβ,γ has a shipped entry keyed by its
    current definition and loss; each says whether it met the standard, and why not."""
    from llcbench.references import shipped_table
    from llcbench.references.build import needs_reference

    table = shipped_table()
    need = [c for c in CASES.values() if needs_reference(c) is None]
    assert len(need) >= 25
    for case in need:
        target = build_target(case)
        entries = [e for e in table.entries if e["case"] == case.id]
        assert len(entries) == 1, case.id
        e = entries[0]
        assert e["case_key"] == case.key() and e["loss_fingerprint"] == loss_fingerprint(target), case.id
        assert e["standard_met"] or e["standard_failed"], case.id
        if e["standard_met"]:
            assert e["se"] <= 0.005 * abs(e["lambda_ref"]) + 1e-12, case.id


def test_a_bad_table_file_is_a_one_line_error(cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for args in (["references", "show", "--table", bad],
                 ["references", "build", "--case", "rrr/1-1-1/r1", "--write-table", bad, "--db", tmp_path / "r.sqlite"]):
        proc = cli(*args)
        assert proc.returncode == 2 and "not a reference table" in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    bad.write_text(json.dumps({"schema": 99, "entries": []}))
    proc = cli("references", "show", "--table", bad)
    assert proc.returncode == 2 and "schema 99" in proc.stderr
