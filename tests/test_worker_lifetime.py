"""Pool workers end with their parent: a sweep killed with SIGKILL leaves no worker computing on,
and its store opens for writing (quick_check passes) so the same command resumes it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llcbench.store import Store


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # field 4: the parent pid
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_killed_sweep_leaves_no_worker_and_a_resumable_store(tmp_path):
    workers: list[int] = []
    db = tmp_path / "s.sqlite"
    # long runs (a minute each at one thread), so that both workers are mid-run when the parent dies
    parent = subprocess.Popen(
        [sys.executable, "-m", "llcbench", "sweep", "--estimator", "sgld", "--case", "poly/w1^2", "--independent",
         "--grid", "step_scale=0.1,0.2", "--set", "steps=400000", "--set", "burn_in=1000", "--jobs", "2",
         "--db", str(db), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        deadline = time.monotonic() + 120
        workers = []
        while len(workers) < 2 and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.2)
            workers = _children(parent.pid)
        assert len(workers) == 2, (workers, parent.poll())
        time.sleep(1.0)  # the workers have run their initializer and are computing
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        # the kernel's death signal is immediate; the watchdog thread's poll is 0.5 s: 5 s is ample
        deadline = time.monotonic() + 5
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = [w for w in workers if _alive(w)]
    finally:
        parent.kill()
        for w in [w for w in workers if _alive(w)]:  # without the fix: orphans of init, ended here
            os.kill(w, signal.SIGKILL)
    assert survivors == []
    with Store(db) as store:  # opens for writing: schema and quick_check pass; a rerun completes it
        assert store.count() == 0
