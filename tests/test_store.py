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
    base = dict(case_definition={"id": "a"}, estimator="sgld", config={"x": 1}, seed=0, version="1",
                device="cpu", threads=1)
    k0 = run_key(**base)
    for field, value in [("case_definition", {"id": "b"}), ("estimator", "sgnht"), ("config", {"x": 2}),
                         ("seed", 1), ("version", "2"), ("device", "cuda:0"), ("threads", 2)]:
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


def test_run_spec_key_covers_device_and_threads():
    """A run on another device or at another torch thread count is another run (λ̂ is bit-identical
    only on the same device at the same thread count); "cuda" is the current CUDA device."""
    import torch

    from llcbench.catalogue import load_catalogue
    from llcbench.estimators import get_estimator
    from llcbench.runner import RunSpec, device_key

    case = next(c for c in load_catalogue() if c.id == "poly/w1^2")
    est = get_estimator("sgld")
    spec = RunSpec(case, est, est.config_cls(), 0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        k1 = spec.key("cpu")
        assert spec.key("cuda") != k1 and spec.key("cuda") == spec.key(f"cuda:{device_key('cuda')[5:]}")
        assert device_key("cpu") == "cpu" and device_key("cuda:1") == "cuda:1"
        torch.set_num_threads(2)
        assert spec.key("cpu") != k1
        torch.set_num_threads(1)
        assert spec.key("cpu") == k1
    finally:
        torch.set_num_threads(before)


def test_stored_run_from_another_torch_version_is_served_with_a_warning(tmp_path):
    import torch

    from llcbench.catalogue import load_catalogue
    from llcbench.estimators import get_estimator
    from llcbench.estimators.base import make_config
    from llcbench.runner import RunSpec, run_all

    case = next(c for c in load_catalogue() if c.id == "poly/w1^2")
    est = get_estimator("sgld")
    spec = RunSpec(case, est, make_config(est.config_cls, ["steps=200", "burn_in=50", "chains=2"]), 0)
    with Store(tmp_path / "s.sqlite") as store:
        ((rec, cached),) = list(run_all([spec], store))
        assert not cached and rec["torch_version"] == torch.__version__
        ((again, cached),) = list(run_all([spec], store))
        assert cached and not any("torch" in w for w in again["warnings"])
        store.put(dict(rec, torch_version="0.0.1"))
        ((old, cached),) = list(run_all([spec], store))
        assert cached and old["lambda_hat"] == rec["lambda_hat"]
        assert "torch 0.0.1" in old["warnings"][0] and torch.__version__ in old["warnings"][0]
        assert store.get(rec["key"])["warnings"] == rec["warnings"]  # the stored record is unchanged


def nuts_ref(key, lam_hat, se=0.02, nbeta=100.0, gamma=0.1, rhat=1.0, case_key="ck", div=0, chains=4, ess=1000.0):
    r = fake_record(key, lambda_hat=lam_hat)
    r.update(estimator="nuts", se=se, rhat=rhat, ess=ess, case_key=case_key,
             extra={"nbeta": nbeta, "gamma": gamma, "chains": chains},
             diagnostics={"divergences": [div] + [0] * (chains - 1), "chains_used": chains, "ess_bulk": ess})
    return r


def test_stored_reference_matches_the_same_posterior(tmp_path):
    """A NUTS run in the store is the reference of an SGLD run only at the same case definition and
    the same (nβ, γ), and only if it meets the reference standard; the smallest se wins among those
    that do, and an exact run wins over NUTS."""
    from llcbench.references import stored_reference, with_reference

    sgld = dict(nuts_ref("s", 0.30, se=0.01), estimator="sgld")
    with Store(tmp_path / "s.sqlite") as store:
        assert stored_reference(store, sgld) is None
        for bad in (nuts_ref("n1", 0.4, gamma=0.2), nuts_ref("n2", 0.4, case_key="other")):
            store.put(bad)
        assert stored_reference(store, sgld) is None
        store.put(nuts_ref("n5", 0.40, se=0.05))
        store.put(nuts_ref("n6", 0.42, se=0.03))
        assert stored_reference(store, sgld)["key"] == "n6"  # the smaller standard error
        out = with_reference(sgld, stored_reference(store, sgld))
        assert out["lambda_ref"] == 0.42 and out["lambda_ref_method"].startswith("nuts (stored run n6")
        assert out["lambda_ref_source"] == "nuts:n6"
        assert math.isclose(out["estimand_bias"], 0.42 - 0.5) and math.isclose(out["sampler_bias"], 0.30 - 0.42)
        assert math.isclose(out["sampler_bias_se"], math.hypot(0.01, 0.03))
        store.put(nuts_ref("e1", 0.41, se=0.0) | {"estimator": "exact"})
        assert stored_reference(store, sgld)["key"] == "e1"
        assert with_reference(sgld, stored_reference(store, sgld))["lambda_ref_source"] == "exact:e1"
        assert stored_reference(store, nuts_ref("n7", 0.4)) is None  # references need none


@pytest.mark.parametrize("bad,why", [
    (dict(chains=2), "chains"),  # two chains, even with perfect R-hat
    (dict(rhat=1.03), "R-hat"),  # agreeing to 3 %, not to 1 %
    (dict(ess=150.0), "ESS"),
    (dict(div=1), "divergent"),
    (dict(se=float("nan")), "se"),
])
def test_reference_standard_refuses(tmp_path, bad, why):
    """Runs below the reference standard are never a reference, even with a smaller se than one
    that meets it."""
    from llcbench.references import reference_refusal, stored_reference

    sgld = dict(nuts_ref("s", 0.30, se=0.01), estimator="sgld")
    weak = nuts_ref("weak", 0.45, **dict({"se": 0.001}, **bad))
    assert why in reference_refusal(weak)
    assert reference_refusal(nuts_ref("good", 0.4)) is None
    with Store(tmp_path / "s.sqlite") as store:
        store.put(weak)
        assert stored_reference(store, sgld) is None
        store.put(nuts_ref("good", 0.40, se=0.05))
        assert stored_reference(store, sgld)["key"] == "good"
