"""Cases and runs shared by the asv benchmarks (catalogue cases, looked up by id)."""

from __future__ import annotations

from functools import lru_cache

from llcbench.catalogue import build_target, load_catalogue
from llcbench.estimators import get_estimator
from llcbench.estimators.base import make_config

SGMCMC = ["sgld", "rmsprop_sgld", "sgnht"]

# deep linear networks of growing d, from the catalogue: 75, 800 and 10,000 parameters
DLN = {"small": "dln/5-5-5-5/r2", "medium": "dln/10-20-20-10/r0", "large": "dln/50-50-50-50-50/r10"}

# a full default run per estimator (≈ 0.5 s for sgld on this one)
SMALL = "dln/3-2-3/r1"


@lru_cache(maxsize=None)
def case(case_id: str):
    (found,) = [c for c in load_catalogue() if c.id == case_id]
    return found


@lru_cache(maxsize=None)
def target(case_id: str):
    return build_target(case(case_id))


def config(estimator: str, overrides: tuple[str, ...] = ()):
    spec = get_estimator(estimator)
    return spec, make_config(spec.config_cls, list(overrides))
