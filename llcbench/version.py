"""The llcbench version, in a leaf module: run keys and records carry it, so every stage imports it."""

__version__ = "0.11.0"
