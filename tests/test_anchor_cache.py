"""The trained-anchor cache: round trip, and a damaged file is rebuilt, never loaded."""

import pytest
import torch

from llcbench.families import anchor_cache

DEF = {"case": {"id": "x", "seed": 1}, "training": {"steps": 3}}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLCBENCH_CACHE", str(tmp_path / "cache"))


def build_counter():
    calls = []

    def build():
        calls.append(1)
        return {"w": torch.arange(5, dtype=torch.float64)}, {"loss": 0.5}

    return build, calls


def test_round_trip_and_key():
    path = anchor_cache.save("fam", DEF, {"w": torch.ones(3)}, {"a": 1})
    assert path.parent == anchor_cache.cache_dir() / "fam" and path.exists()
    tensors, meta = anchor_cache.load("fam", DEF)
    assert torch.equal(tensors["w"], torch.ones(3)) and meta == {"a": 1}
    assert anchor_cache.load("fam", {**DEF, "training": {"steps": 4}}) is None  # another definition, another key
    assert not list(path.parent.glob("*.tmp"))  # the temporary file was renamed


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "header"])
def test_a_damaged_file_is_rebuilt_never_loaded(damage):
    build, calls = build_counter()
    anchor_cache.load_or_build("fam", DEF, build)
    path = anchor_cache.path_for("fam", DEF)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "empty":
        data = bytearray()
    else:
        data[:4] = b"0000"
    path.write_bytes(bytes(data))
    assert anchor_cache.load("fam", DEF) is None and not path.exists()  # deleted, not loaded
    tensors, meta = anchor_cache.load_or_build("fam", DEF, build)
    assert len(calls) == 2 and torch.equal(tensors["w"], torch.arange(5, dtype=torch.float64))
    anchor_cache.load_or_build("fam", DEF, build)
    assert len(calls) == 2  # the rebuilt entry is served


def test_the_family_trains_once_and_a_corrupt_anchor_is_retrained(monkeypatch):
    from llcbench.case import Case
    from llcbench.families import memorisation

    params = {"inputs": 8, "rule": "threshold", "rule_bits": 3, "memorised": 4, "hidden": [12]}
    case = Case(id="memorisation/c", family="memorisation", params=params, n=64, seed=2)
    calls = []
    train = memorisation._train
    monkeypatch.setattr(memorisation, "_train", lambda *a: calls.append(1) or train(*a))
    first = memorisation.MemorisationFamily().target(case)
    again = memorisation.MemorisationFamily().target(case)
    assert len(calls) == 1 and torch.equal(first.w_star, again.w_star)
    (path,) = (anchor_cache.cache_dir() / "memorisation").glob("*.pt")
    path.write_bytes(path.read_bytes()[:-10])
    third = memorisation.MemorisationFamily().target(case)
    assert len(calls) == 2 and torch.equal(third.w_star, first.w_star)  # retrained deterministically


def test_planning_trains_the_anchors_in_worker_processes(tmp_path, monkeypatch):
    """With jobs > 1 the targets of trained-anchor cases are built in the pool, one per worker at a
    time, which answers planning's support question and trains each anchor once into the cache; the
    same anchors come out as when this process trains them itself."""
    import os

    from llcbench import plan
    from llcbench.case import Case
    from llcbench.catalogue import support_target
    from llcbench.estimators import get_estimator
    from llcbench.execute import supports_in_workers
    from llcbench.families import memorisation

    params = {"inputs": 8, "rule": "threshold", "rule_bits": 3, "memorised": 4, "hidden": [12]}
    cases = [Case(id=f"memorisation/c{s}", family="memorisation", params=params, n=64, seed=s) for s in (1, 2)]
    pids = tmp_path / "pids"
    train = memorisation._train

    def recorded(*a):  # the forked workers inherit this patch and append their own pid
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\n")
        return train(*a)

    monkeypatch.setattr(memorisation, "_train", recorded)
    built_here = []
    monkeypatch.setattr(plan, "support_target", lambda case: built_here.append(case) or support_target(case))
    runnable, skipped = plan.runnable_cases(cases, get_estimator("sgld"), explicit=True, named=True,
                                            answered=lambda kept: supports_in_workers(kept, "sgld", 2))
    trainers = [int(x) for x in pids.read_text().split()]
    assert [c.id for c in runnable] == [c.id for c in cases] and not skipped
    assert len(trainers) == 2 and os.getpid() not in trainers  # trained in the workers, once each
    assert not built_here  # the workers answered whether sgld supports them: no target built twice
    served = [memorisation.MemorisationFamily().target(c).w_star for c in cases]
    monkeypatch.setenv("LLCBENCH_CACHE", str(tmp_path / "fresh"))
    here = [memorisation.MemorisationFamily().target(c).w_star for c in cases]  # trained in this process
    assert all(torch.equal(a, b) for a, b in zip(served, here))
    assert len(pids.read_text().split()) == 4
