import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=None, env=None, timeout=600):
    """Run ``python -m llcbench ARGS`` in a subprocess; returns CompletedProcess."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "llcbench", *map(str, args)],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def write_toml(tmp_path):
    def write(text, name="cases.toml"):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture(autouse=True, scope="session")
def _private_anchor_cache(tmp_path_factory):
    """Trained anchors (modular_addition) go to a cache folder of this test session, never the user's
    (the CLI subprocesses inherit the variable)."""
    old = os.environ.get("LLCBENCH_CACHE")
    os.environ["LLCBENCH_CACHE"] = str(tmp_path_factory.mktemp("anchor-cache"))
    yield
    if old is None:
        os.environ.pop("LLCBENCH_CACHE", None)
    else:
        os.environ["LLCBENCH_CACHE"] = old


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Every test runs with one torch thread: λ̂ is bit-identical only at a fixed thread count, and
    the targets are tiny (one thread is faster than two on a 2-core machine: no pool overhead, no
    oversubscription when other jobs run; benchmarks/test_speed.py measures both)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
