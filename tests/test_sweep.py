"""`llcbench sweep`: a grid of configs over cases into the store, resumable, the same records
whether run serially or in worker processes."""

from __future__ import annotations

import json

import pytest

QUICK = ["--set", "steps=300", "--set", "burn_in=100", "--set", "chains=2"]
CASES = ["--case", "poly/w1^2", "--case", "rrr/1-1-1/r1"]


def sweep(cli, db, *extra):
    return cli("sweep", "--estimator", "sgld", *CASES, "--grid", "step_scale=0.1,0.2", *QUICK, "--db", db,
               "--quiet", "--json", *extra)


def lams(path):
    from llcbench.store import Store

    with Store(path) as store:
        return sorted((r["case"], r["config"]["step_scale"], r["lambda_hat"], r["shared_chains"])
                      for r in store.records())


def test_sweep_runs_the_grid_resumes_and_matches_across_executors(cli, tmp_path):
    first = sweep(cli, tmp_path / "a.sqlite")
    assert first.returncode == 0, first.stderr
    points = json.loads(first.stdout)
    assert [p["step_scale"] for p in points] == ["0.1", "0.2"] and all(p["runs"] == 2 for p in points)
    assert all(r[3] for r in lams(tmp_path / "a.sqlite"))  # sgld's grid points shared one chain tensor per case
    resumed = sweep(cli, tmp_path / "a.sqlite")
    assert resumed.returncode == 0 and json.loads(resumed.stdout) == points  # all read back from the store
    parallel = sweep(cli, tmp_path / "b.sqlite", "--jobs", "2")
    assert parallel.returncode == 0, parallel.stderr
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop(json.loads(parallel.stdout)) == drop(points)
    assert lams(tmp_path / "a.sqlite") == lams(tmp_path / "b.sqlite")  # bit-identical λ̂ in workers


def test_shared_chain_points_are_not_served_for_independent_runs(cli, tmp_path):
    db = tmp_path / "a.sqlite"
    # a sweep runs the plain λ̂(ε) (extrapolate=none, plan.sweep_base): the same config by `run --set`
    run = ["run", "--estimator", "sgld", "--case", "poly/w1^2", *QUICK, "--set", "step_scale=0.1",
           "--set", "extrapolate=none", "--db", db, "--quiet", "--json"]
    assert sweep(cli, db).returncode == 0
    (record,) = json.loads(cli(*run).stdout)
    assert not record["cached"]  # its noise and batches were the grid's: another run, keyed apart
    assert sweep(cli, tmp_path / "b.sqlite", "--independent").returncode == 0
    (record,) = json.loads(cli(*run[:-4], "--db", tmp_path / "b.sqlite", "--quiet", "--json").stdout)
    assert record["cached"]  # an --independent sweep point is the same run as `run --set` of it: same key
    assert not any(r[3] for r in lams(tmp_path / "b.sqlite"))


@pytest.mark.parametrize("grid, says", [
    ("step_scale", "expected FIELD=V1,V2"),
    ("no_such_field=1,2", "unknown config field 'no_such_field'"),
    ("step_scale=abc", "step_scale"),
])
def test_bad_grid_is_a_one_line_error(cli, tmp_path, grid, says):
    proc = cli("sweep", "--estimator", "sgld", *CASES, "--grid", grid, "--db", tmp_path / "r.sqlite", "--quiet")
    assert proc.returncode == 2 and says in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_default_grid_needs_an_sgmcmc_estimator(cli, tmp_path):
    proc = cli("sweep", "--estimator", "hessian", *CASES, "--db", tmp_path / "r.sqlite", "--quiet")
    assert proc.returncode == 2 and "no default grid" in proc.stderr
