"""Documented size limits, checked before any work (docs/limits.md lists them with their reasons).

Every limit is refused in well under a second with one line naming the field
and the limit. ``--force-size`` lifts the limits that are about size (not
the ones about representation, such as seeds within 64 bits) for someone
who really means it: :func:`lift` switches them off for this process.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from .errors import UserError

# ---- polynomials (`llcbench truth`, the polynomial family's expr): measured on one core, the largest
# inputs within these limits certify in about 10 s ((w1**2+w2**2+w3**2)**40: 861 terms, 8 s;
# a sum of squares in 128 variables: 8 s; (w1+w2)**80: 6 s), while (w1+w2)**160 runs past 30 s
MAX_EXPR_CHARS = 5_000
MAX_VARIABLES = 100
MAX_DEGREE = 100
MAX_TERMS = 1_000  # after expansion, bounded above by multinomial counts before expanding
MAX_COEFFICIENT_BITS = 256  # numerator and denominator of every coefficient, and of constants on the way

# ---- cases
MAX_ID_CHARS = 200
MAX_DIM = 1_000_000  # parameters d of a case
MAX_N = 10_000_000  # sample size n
MAX_LIST = 1_000  # entries of a list field (widths, w_star, ...)
MAX_RATIONAL_CHARS = 64  # expect_lambda / lambda as text
MAX_RATIONAL_EXPONENT = 64  # |e| of a decimal exponent in them ("1e999999999" would be computed)
SEED_LIMIT = 2**63  # seeds are 0 <= seed < 2**63: torch and numpy take them as signed 64-bit integers

# ---- runs: the traces a run keeps (float64, chains × steps, with a copy made when it is summarised) and
# the chains' parameter copies (float32: position, gradient, noise, state), against the memory available
TRACE_BYTES_PER_STEP = 16
PARAM_BYTES_PER_COORD = 4 * 8
MEMORY_FRACTION = 0.5  # of the memory available now: the rest is the process, torch and data no family counts
# a run's check counts its traces, chains and (where the family counts them) every copy of its data — measured
# peaks within 3 % of it (docs/limits.md) — so it may take more of what is available, times the runs at once
RUN_MEMORY_FRACTION = 0.8

_lifted = False


def lift(on: bool = True) -> None:
    """--force-size: the size limits are not enforced in this process (``lift(False)``: enforced again)."""
    global _lifted
    _lifted = on


def enforced() -> bool:
    return not _lifted


def check(value: float, limit: float, what: str) -> None:
    """Refuse ``what`` (a phrase naming the field) when ``value`` exceeds ``limit``, unless lifted."""
    if value > limit and enforced():
        raise UserError(f"{what} is {_big(value)}, above the limit {_big(limit)} (docs/limits.md; --force-size "
                        "if you really mean it)")


def _big(x: float) -> str:
    return f"{x:,}" if isinstance(x, int) and x < 10**15 else f"{float(x):.3g}"


def available_memory() -> Optional[int]:
    """Bytes of memory available now (Linux MemAvailable; else physical pages free), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


_STEP_FIELDS = ("steps", "warmup", "samples", "num_samples", "draws")


def run_size_bytes(config: Any, dim: int) -> int:
    """Bytes of a run's traces and chain copies, from its config's steps × chains and the case's d."""
    chains = _int_field(config, "chains", 1)
    steps = sum(_int_field(config, name, 0) for name in _STEP_FIELDS)
    return chains * (steps * TRACE_BYTES_PER_STEP + dim * PARAM_BYTES_PER_COORD)


def check_run_size(config: Any, dim: int, where: str, data_bytes: int = 0, at_once: int = 1) -> None:
    """Refuse a run whose traces and chain copies (:func:`run_size_bytes`), plus ``data_bytes`` (the
    copies of the case's data the run holds at its peak, where the family counts them), would not
    fit in RUN_MEMORY_FRACTION of the memory available, ``at_once`` such runs side by side (the
    worker processes of this machine), before it allocates anything."""
    if not enforced():
        return
    chains = _int_field(config, "chains", 1)
    steps = sum(_int_field(config, name, 0) for name in _STEP_FIELDS)
    need = (run_size_bytes(config, dim) + data_bytes) * max(1, int(at_once))
    free = available_memory()
    if free is not None and need > RUN_MEMORY_FRACTION * free:
        data = f" with its data (≈ {data_bytes / 2**30:.3g} GiB at the run's peak)" if data_bytes else ""
        jobs = f", {at_once} runs at once," if at_once > 1 else ""
        raise UserError(f"{where}: steps × chains = {steps:,} × {chains:,} on d = {dim:,}{data}{jobs} needs "
                        f"≈ {need / 2**30:.3g} GiB, "
                        f"more than {RUN_MEMORY_FRACTION:.0%} of the memory available ({free / 2**30:.3g} GiB) "
                        "(docs/limits.md; fewer --jobs, or --force-size if you really mean it)")


def _int_field(config: Any, name: str, default: int) -> int:
    value = getattr(config, name, default)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default
