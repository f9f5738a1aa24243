"""The package's modules import each other without circles: a stage reads only the stages before it.

The imports are read from the source (ast), at module level and inside functions alike: an import
moved into a function still ties the two modules together, it only hides the circle until run time.
`from .a import b` is an edge to the module a.b where that is a module, else to a.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "llcbench"

def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package's modules that the module ``name`` (at ``path``) imports, anywhere in its body."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + (node.module.split(".") if node.module else []))
            out |= {f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names}
    return {m for m in out if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imports_of(name, path, set(paths)) for name, path in paths.items()}


def test_the_graph_is_read():
    """The parser sees real edges (a test that found no edge would find no circle either)."""
    graph = import_graph()
    assert "llcbench.catalogue" in graph["llcbench.runner"]  # `from .catalogue import …` at module level
    assert "llcbench.errors" in graph["llcbench.truth.plane"]  # `from ..errors import …`
    assert "llcbench.report.console" in graph["llcbench.cli"]  # an import inside a function


def test_no_import_cycles():
    try:
        graphlib.TopologicalSorter(import_graph()).prepare()
    except graphlib.CycleError as exc:
        raise AssertionError("import cycle: " + " -> ".join(exc.args[1])) from None


def test_registries_are_a_leaf():
    """The registry class (``llcbench.plugins``) imports nothing of the package but its errors, so
    estimators and families can use it without importing each other."""
    assert import_graph()["llcbench.plugins"] <= {"llcbench.errors"}
