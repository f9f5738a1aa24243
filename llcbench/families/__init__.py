"""Families: how a case's fields become a truth and a target.

``FAMILIES`` maps each registered name to a family instance; ``get_family``
looks one up and names the known ones when the name is wrong.

Plugins (:mod:`llcbench.plugins`): ``@llcbench.register_family("name")`` on a ``Family``
subclass in process, or the entry-point group ``llcbench.families`` from an installed package (each
entry point loads to a ``Family`` subclass or instance, or a zero-argument callable returning one).
``FAMILIES`` is a :class:`~llcbench.plugins.Registry`: it iterates and indexes like the dict of the
built-ins, and loads the entry points on the first listing or lookup of a name it does not have.
"""

from __future__ import annotations

from typing import Any

from ..case import COMMON_KEYS  # the keys every case has, read before the family's own
from ..errors import UserError
from ..plugins import Registry
from .base import Family, Field
from .dln import DLNFamily
from .memorisation import MemorisationFamily
from .modular_addition import ModularAdditionFamily
from .polynomial import PolynomialFamily
from .regression import RegressionFamily
from .regular import RegularFamily
from .rrr import RRRFamily

FAMILIES: dict[str, Family] = {
    f.name: f for f in (PolynomialFamily(), RegularFamily(), DLNFamily(), RRRFamily(), RegressionFamily(),
                        MemorisationFamily(), ModularAdditionFamily())
}


ENTRY_POINT_GROUP = "llcbench.families"

def _as_family(obj: Any, name: str) -> Family:
    """The family an entry point (or a registration) names: a Family subclass (instantiated without
    arguments), an instance, or a zero-argument callable returning one; its ``name`` set to the
    registered name, which cases give as ``family``."""
    family = obj() if isinstance(obj, type) or (callable(obj) and not isinstance(obj, Family)) else obj
    if not isinstance(family, Family):
        raise TypeError(f"expected a Family subclass or instance (llcbench.families.base.Family), "
                        f"got {type(family).__name__}")
    if not isinstance(family.fields, dict) or not all(isinstance(f, Field) for f in family.fields.values()):
        raise TypeError("its fields must be a dict of llcbench.families.base.Field")
    clash = sorted(set(family.fields) & COMMON_KEYS)
    if clash:
        raise ValueError(f"its field {clash[0]!r} is a common case field (every case has it)")
    if not isinstance(family.default_n, int) or family.default_n < 3:
        raise ValueError(f"its default_n must be an integer >= 3, got {family.default_n!r}")
    if family.name != name:
        family.name = name
    return family


# The built-ins above; plugins join them lazily (the same mapping, iterated and indexed as before).
FAMILIES = Registry("family", ENTRY_POINT_GROUP, FAMILIES, _as_family)


def get_family(name: str) -> Family:
    """The registered family called ``name``; UserError naming the known ones (or the plugin's error)
    otherwise."""
    if isinstance(name, str) and name in FAMILIES:
        return FAMILIES[name]
    raise UserError(FAMILIES.unknown(name))


__all__ = ["FAMILIES", "Family", "Field", "get_family", "DLNFamily", "MemorisationFamily", "ModularAdditionFamily",
           "PolynomialFamily", "RegressionFamily", "RegularFamily", "RRRFamily"]
