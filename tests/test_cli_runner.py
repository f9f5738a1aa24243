"""The in-process CLI runner the tests use (conftest.run_cli_in_process) answers as the subprocess one does:
same exit status, output and error line for a good call, a usage error and a bad input; and it leaves the
test process as it found it (working directory, environment, size limits)."""

import os

from conftest import IN_PROCESS_ENV, run_cli, run_cli_in_process

from llcbench import limits


def _same(args, **kw):
    a, b = run_cli_in_process(*args, **kw), run_cli(*args, **kw)
    assert (a.returncode, a.stdout, a.stderr.strip().splitlines()[-1:]) == \
        (b.returncode, b.stdout, b.stderr.strip().splitlines()[-1:]), (a, b)
    return a


def test_it_answers_as_a_subprocess_does(tmp_path):
    assert _same(["truth", "w1**2*w2**4"]).returncode == 0
    assert _same(["truth", "w1**"]).returncode == 2  # bad input: one line, exit 2
    assert _same(["run", "--estimator", "no-such-estimator"]).returncode == 2  # argparse's usage error
    assert _same(["--version"]).returncode == 0


def test_it_restores_the_process(tmp_path, monkeypatch):
    monkeypatch.delenv("LLCBENCH_CACHE", raising=False)
    cwd = os.getcwd()
    (name,) = IN_PROCESS_ENV
    res = run_cli_in_process("truth", "w1**2", "--force-size", cwd=tmp_path, env={name: str(tmp_path / "c")})
    assert res.returncode == 0
    assert os.getcwd() == cwd and name not in os.environ and limits.enforced()
