"""The SQLite results store: round trips, atomic rows, concurrent writers."""

import json
import math
import multiprocessing as mp
import re
import sqlite3

import pytest

from llcbench.errors import UserError
from llcbench.store import Store, run_key


def fake_record(key, case="c", lambda_hat=1.0):
    return {
        "key": key, "case": case, "case_key": "ck", "family": "polynomial", "estimator": "sgld", "seed": 0,
        "config": {"step_size": 1e-3}, "lambda": "1/2", "lambda_float": 0.5, "multiplicity": 1,
        "truth_kind": "exact", "lambda_hat": lambda_hat, "se": 0.1, "rel_error": lambda_hat / 0.5 - 1,
        "rhat": 1.0, "ess": 100.0, "grad_evals": 10, "seconds": 0.1, "device": "cpu",
        "llcbench_version": "0", "git_commit": None, "torch_version": "x", "created_at": "2026-01-01T00:00:00",
        "warnings": [],
    }


def test_round_trip_and_replace(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        assert store.get("k1") is None
        store.put(fake_record("k1"))
        assert store.get("k1")["lambda_hat"] == 1.0
        store.put(fake_record("k1", lambda_hat=2.0))  # --force path: replaced, not duplicated
        assert store.count() == 1 and store.get("k1")["lambda_hat"] == 2.0
        store.put(fake_record("k2", case="d"))
        assert [r["key"] for r in store.records(case_id="d")] == ["k2"]


def test_nan_is_stored_as_null(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        store.put(fake_record("k", lambda_hat=float("nan")))
        assert store.get("k")["lambda_hat"] is None
        (value,) = store.conn.execute("SELECT lambda_hat FROM runs").fetchone()
        assert value is None


def test_run_key_depends_on_every_part():
    base = dict(case_definition={"id": "a"}, estimator="sgld", config={"x": 1}, seed=0, version="1")
    k0 = run_key(**base)
    for field, value in [("case_definition", {"id": "b"}), ("estimator", "sgnht"), ("config", {"x": 2}),
                         ("seed", 1), ("version", "2")]:
        assert run_key(**dict(base, **{field: value})) != k0
    assert run_key(**base) == k0


def test_not_a_database_is_one_line_error(tmp_path):
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(UserError, match="not a usable llcbench store"):
        Store(path)


def test_store_under_a_file_is_one_line_error_naming_both(tmp_path, cli):
    blocker = tmp_path / "afile"
    blocker.write_text("")
    for db in (blocker / "r.sqlite", blocker / "deeper" / "r.sqlite"):
        with pytest.raises(UserError, match=re.escape(f"{db}: cannot create the store: {blocker} is a file")):
            Store(db)
    with pytest.raises(UserError, match="is a directory"):
        Store(tmp_path)
    proc = cli("run", "--estimator", "sgld", "--case", "poly/w1^2", "--db", blocker / "r.sqlite", "--quiet")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr == (f"llcbench: error: {blocker / 'r.sqlite'}: cannot create the store: "
                           f"{blocker} is a file, not a directory\n"), proc.stderr


def _writer(path, prefix, count):
    with Store(path) as store:
        for i in range(count):
            store.put(fake_record(f"{prefix}-{i}"))


def test_two_processes_write_one_store(tmp_path):
    path = tmp_path / "s.sqlite"
    Store(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, p, 100)) for p in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    with Store(path) as store:
        assert store.count() == 200
        assert all(json.loads(json.dumps(r))["key"] for r in store.records())


def test_stored_reference_matches_the_same_posterior(tmp_path):
    """A NUTS run in the store is the reference of an SGLD run only at the same case definition and
    the same (nβ, γ), with agreeing chains and no divergences; an exact run wins over NUTS."""
    from llcbench.runner import stored_reference, with_reference

    def rec(key, estimator, lam_hat, se=0.02, nbeta=100.0, gamma=0.1, rhat=1.0, case_key="ck", div=0):
        r = fake_record(key, lambda_hat=lam_hat)
        r.update(estimator=estimator, se=se, rhat=rhat, case_key=case_key,
                 extra={"nbeta": nbeta, "gamma": gamma}, diagnostics={"divergences": [div, 0]})
        return r

    sgld = rec("s", "sgld", 0.30, se=0.01)
    with Store(tmp_path / "s.sqlite") as store:
        assert stored_reference(store, sgld) is None
        for bad in (rec("n1", "nuts", 0.4, gamma=0.2), rec("n2", "nuts", 0.4, case_key="other"),
                    rec("n3", "nuts", 0.4, rhat=1.2), rec("n4", "nuts", 0.4, div=3)):
            store.put(bad)
        assert stored_reference(store, sgld) is None
        store.put(rec("n5", "nuts", 0.40, se=0.05))
        store.put(rec("n6", "nuts", 0.42, se=0.03))
        assert stored_reference(store, sgld)["key"] == "n6"  # the smaller standard error
        out = with_reference(sgld, stored_reference(store, sgld))
        assert out["lambda_ref"] == 0.42 and out["lambda_ref_method"].startswith("nuts (stored run n6")
        assert math.isclose(out["estimand_bias"], 0.42 - 0.5) and math.isclose(out["sampler_bias"], 0.30 - 0.42)
        assert math.isclose(out["sampler_bias_se"], math.hypot(0.01, 0.03))
        store.put(rec("e1", "exact", 0.41, se=0.0))
        assert stored_reference(store, sgld)["key"] == "e1"
        assert stored_reference(store, rec("n7", "nuts", 0.4)) is None  # references need none
