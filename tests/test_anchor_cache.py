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
