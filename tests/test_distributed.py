"""Runs on a Dask distributed cluster: the same store as a serial run, and a dead worker loses only its runs.

One ``LocalCluster`` for the module (2 worker processes, 1 thread each, as on
this 2-core machine). Its scheduler marks a task lost the first time its
worker dies (``allowed-failures`` 0, where Dask's default would resubmit it
up to 3 times), so that killing a worker mid-sweep shows what is lost: the
runs that worker held (the one it was computing, and any the scheduler had
already queued on it), nothing else.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import threading
import time

import dask
import pytest
from distributed import Client, LocalCluster

from llcbench.catalogue import load_catalogue
from llcbench.cli import main
from llcbench.estimators import get_estimator
from llcbench.estimators.base import make_config
from llcbench.execute import RunsLost, run_specs
from llcbench.runner import RunSpec
from llcbench.store import Store

QUICK = ["--set", "steps=300", "--set", "burn_in=100", "--set", "chains=2"]
CASES = ["poly/w1^2", "rrr/1-1-1/r1", "regular/linear-2x1"]


@pytest.fixture(scope="module")
def scheduler():
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.CRITICAL)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def stored(path) -> dict:
    """key -> (case, seed, λ̂, se) of every run in a store."""
    with sqlite3.connect(path) as con:
        return {k: (c, s, lam, se) for k, c, s, lam, se in
                con.execute("SELECT key, case_id, seed, lambda_hat, se FROM runs")}


def test_a_sweep_on_a_dask_cluster_gives_the_serial_store(tmp_path, scheduler, capsys):
    args = ["sweep", "--estimator", "sgld", *[a for c in CASES for a in ("--case", c)],
            "--grid", "step_scale=0.1,0.2", *QUICK, "--quiet", "--json"]
    assert main([*args, "--db", str(tmp_path / "serial.sqlite")]) == 0
    on_dask = [*args, "--db", str(tmp_path / "dask.sqlite"), "--executor", "dask", "--scheduler", scheduler]
    assert main(on_dask) == 0
    a, b = stored(tmp_path / "serial.sqlite"), stored(tmp_path / "dask.sqlite")
    assert len(a) == 6 and a == b  # the same run keys, bit-identical λ̂ and se
    capsys.readouterr()
    assert main(on_dask) == 0 and stored(tmp_path / "dask.sqlite") == b  # served from the store
    assert all(p["runs"] == 3 for p in json.loads(capsys.readouterr().out))


def kill_a_busy_worker(scheduler: str, held: list) -> None:
    """SIGKILL the first worker seen computing a run, a fifth of a second into it (runs take seconds);
    put the task keys it held just before into ``held``."""
    with Client(scheduler, set_as_default=False) as client:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                time.sleep(0.2)
                pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                held.extend(client.processing()[busy[0]])
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.05)


def test_killing_a_worker_loses_only_its_runs_and_a_rerun_completes_them(tmp_path, scheduler):
    spec = get_estimator("sgld")
    # poly/w1^2 (autograd loss) at 5000 steps: a few seconds per run even on an idle machine, so the
    # kill lands inside a run (at 1000 steps an idle machine finished the sweep before the kill)
    config = make_config(spec.config_cls, ["steps=5000", "burn_in=1000", "chains=2"])
    (case,) = [c for c in load_catalogue() if c.id == "poly/w1^2"]
    specs = [RunSpec(case, spec, config, seed) for seed in range(6)]
    with Store(tmp_path / "serial.sqlite") as store:
        assert len(list(run_specs(specs, store))) == 6

    got, held = [], []
    killer = threading.Thread(target=kill_a_busy_worker, args=(scheduler, held))
    killer.start()
    with Store(tmp_path / "dask.sqlite") as store:
        with pytest.raises(RunsLost, match="lost with their Dask worker") as lost:
            got.extend(run_specs(specs, store, executor="dask", scheduler=scheduler))
    killer.join()
    assert "rerun the same command" in str(lost.value)
    lost_keys = {f"llcbench-run-{s.key('cpu')}" for s in lost.value.runs}
    assert lost_keys and lost_keys <= set(held)  # only runs the killed worker held
    kept = stored(tmp_path / "dask.sqlite")
    assert len(got) == len(kept) == 6 - len(lost_keys)  # every other run reached the store

    with Store(tmp_path / "dask.sqlite") as store:  # the surviving and the restarted worker
        rerun = list(run_specs(specs, store, executor="dask", scheduler=scheduler))
    assert sum(not cached for _, cached in rerun) == len(lost_keys)  # only the lost runs are computed
    assert stored(tmp_path / "dask.sqlite") == stored(tmp_path / "serial.sqlite")


@pytest.mark.parametrize("extra, says", [
    (["--executor", "dask"], "--executor dask needs --scheduler"),
    (["--scheduler", "tcp://127.0.0.1:1"], "only with --executor dask"),
    (["--executor", "dask", "--scheduler", "tcp://127.0.0.1:1", "--jobs", "2"], "--jobs 2: only with --executor local"),
])
@pytest.mark.parametrize("command", ["run", "sweep"])
def test_executor_flags_are_one_line_errors(tmp_path, capsys, command, extra, says):
    assert main([command, "--estimator", "sgld", "--case", "poly/w1^2", "--db", str(tmp_path / "r.sqlite"),
                 "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1


def test_a_sweep_over_a_scale_tier_on_dask_gives_the_local_store(tmp_path, scheduler):
    # two protocol teachers of the 1k tier (n = 10⁵ each, d = 2,436 and 1,437) at two localisations, a few
    # hundred steps: the tier's own sampler settings apply on the workers as locally (same keys, same bits)
    args = ["sweep", "--estimator", "sgld", "--suite", "scale-1k", "--case", "scale-1k/dln/38-28-49/00",
            "--case", "scale-1k/dln/18-12-27/02", "--grid", "gamma=0.5,1", "--set", "steps=200",
            "--set", "burn_in=100", "--set", "chains=2", "--quiet"]
    assert main([*args, "--db", str(tmp_path / "local.sqlite")]) == 0
    assert main([*args, "--db", str(tmp_path / "dask.sqlite"), "--executor", "dask", "--scheduler", scheduler]) == 0
    a, b = stored(tmp_path / "local.sqlite"), stored(tmp_path / "dask.sqlite")
    assert len(a) == 4 and a == b
    with sqlite3.connect(tmp_path / "dask.sqlite") as con:
        configs = [json.loads(c) for (c,) in con.execute("SELECT config FROM runs")]
    assert {c["step_size"] for c in configs} == {5e-07} and {c["batch_size"] for c in configs} == {500}
