"""Families: how a case's fields become a truth and a target.

``FAMILIES`` maps each registered name to a family instance; ``get_family``
looks one up and names the known ones when the name is wrong.
"""

from __future__ import annotations

from ..errors import UserError
from .base import Family, Field
from .dln import DLNFamily
from .modular_addition import ModularAdditionFamily
from .polynomial import PolynomialFamily
from .regular import RegularFamily
from .rrr import RRRFamily

FAMILIES: dict[str, Family] = {
    f.name: f for f in (PolynomialFamily(), RegularFamily(), DLNFamily(), RRRFamily(), ModularAdditionFamily())
}


def get_family(name: str) -> Family:
    """The registered family called ``name``; UserError naming the known ones otherwise."""
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(FAMILIES))
        raise UserError(f"unknown family {name!r}; known families: {known}") from None


__all__ = ["FAMILIES", "Family", "Field", "get_family", "DLNFamily", "PolynomialFamily",
           "RegularFamily", "RRRFamily", "ModularAdditionFamily"]
