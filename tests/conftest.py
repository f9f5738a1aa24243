import contextlib
import io
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


# Variables the CLI reads at each use, so they can be set around an in-process call (others, such as
# the plugin switch, are read once per process).
IN_PROCESS_ENV = {"LLCBENCH_CACHE"}


def run_cli_in_process(*args, cwd=None, env=None, timeout=600):
    """``llcbench ARGS`` through ``llcbench.cli.main`` in this process, its output captured; returns a
    CompletedProcess like :func:`run_cli`. A new interpreter costs 1-3 s (torch's import), and the
    CLI tests make a few hundred calls, so this is most of the suite's time saved; calls that need a
    process of their own — environment variables read once per process, worker pools (they would
    fork the test process) — go to :func:`run_cli`."""
    args = [str(a) for a in args]
    env = dict(env or {})
    if set(env) - IN_PROCESS_ENV or "--jobs" in args or "--executor" in args:
        return run_cli(*args, cwd=cwd, env=env, timeout=timeout)
    from llcbench import limits
    from llcbench.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_cwd, old_env = os.getcwd(), {name: os.environ.get(name) for name in env}
    try:
        os.environ.update(env)
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as exc:  # argparse's --help, --version and usage errors
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        os.chdir(old_cwd)
        for name, value in old_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        limits.lift(False)  # --force-size lifts the limits for the rest of a process
    return subprocess.CompletedProcess([sys.executable, "-m", "llcbench", *args], code, out.getvalue(),
                                       err.getvalue())


@pytest.fixture
def cli():
    return run_cli_in_process


@pytest.fixture
def write_toml(tmp_path):
    def write(text, name="cases.toml"):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture(autouse=True, scope="session")
def _private_anchor_cache(tmp_path_factory):
    """Trained anchors (``llcbench.families.anchor_cache``) go to a cache folder of this test session,
    never the user's (the CLI subprocesses inherit the variable)."""
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


class FakeEntryPoint:
    """What importlib.metadata yields for one entry point: name, value ("module:attr"), dist, load()."""

    def __init__(self, name, value, load, dist="fake-dist"):
        self.name, self.value, self._load = name, value, load
        self.dist = type("Dist", (), {"name": dist})()

    def load(self):
        return self._load()


@pytest.fixture
def entry_points(monkeypatch):
    """install(group=[FakeEntryPoint, ...], ...): the estimator and family registries see these entry
    points instead of the installed ones, from a fresh state; both are reset afterwards. Returns the
    list of groups asked for, one item per scan (to check that loading is lazy and happens once)."""
    import llcbench.plugins as plugins
    from llcbench.estimators import ESTIMATORS
    from llcbench.families import FAMILIES

    scans = []

    def install(**groups):
        def fake(group):
            scans.append(group)
            return list(groups.get(group.replace(".", "_"), []))

        monkeypatch.setattr(plugins, "_entry_points", fake)
        monkeypatch.delenv(plugins.NO_PLUGINS_ENV, raising=False)
        ESTIMATORS.reset()
        FAMILIES.reset()
        return scans

    yield install
    ESTIMATORS.reset()
    FAMILIES.reset()


@pytest.fixture
def one_thread():
    """torch on one thread for the test (bit-identical λ̂ holds for a fixed thread count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
