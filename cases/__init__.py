"""The shipped case catalogue: data only (one TOML file per family, suites/ beside it).

It sits at the top of the repository so the catalogue is the first thing a reader sees, and is
installed as the package data ``llcbench.cases`` (see pyproject.toml).
"""
