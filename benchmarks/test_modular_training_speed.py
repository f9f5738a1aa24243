"""Training time of the largest modular_addition anchors of the catalogue (pytest-benchmark).

Run:  python -m pytest benchmarks/test_modular_training_speed.py -n0 --benchmark-enable -s

Target: at most 60 s per anchor for p ≤ 31 on one core (training always runs on one torch thread).
One round each: an anchor is trained once and then served from the cache.
"""

from __future__ import annotations

import pytest

from llcbench.catalogue import load_catalogue, select
from llcbench.families.modular_addition import ModularAdditionFamily
from llcbench.families.modular_training import train

CASES = ["modular/add/p31", "modular/random/p23"]


@pytest.mark.parametrize("case_id", CASES)
def test_train_anchor(benchmark, case_id):
    (case,) = select(load_catalogue(), [case_id])
    spec = ModularAdditionFamily().train_spec(case)
    w, info = benchmark.pedantic(train, args=(spec,), rounds=1, iterations=1)
    assert info["train_accuracy"] == 1.0
    assert info["train_seconds"] <= 60
