"""The repository speaks of itself: no pointers to files outside it, no history of its making,
and no skipped imports of its own modules (a broken import must fail, not skip)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHERE = ["llcbench", "cases", "tests", "docs", "benchmarks", "scripts", "examples"]
# built from parts so that this file does not match itself
OUTSIDE = [r"shared" + "/", r"truth" + r"\.md", r"anchors" + r"\.md", r"\bestimators" + r"\.md"]
HISTORY = [r"\bsession " + r"\d", r"\bissue " + r"#?\d", r"for " + r"issue"]
SKIPPED_OWN_IMPORT = r"importorskip\(\s*[\"']" + "llcbench"


def files():
    yield ROOT / "README.md"
    for top in WHERE:
        for path in (ROOT / top).rglob("*"):
            if path.is_file() and path.suffix in {".py", ".md", ".toml", ".txt"}:
                yield path


def test_no_pointers_outside_the_repository_or_into_its_history():
    hits = []
    for path in files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for pattern in OUTSIDE + HISTORY:
                if re.search(pattern, line, flags=re.IGNORECASE):
                    hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:80]}")
    assert not hits, "\n".join(hits)


def test_own_modules_are_imported_not_skipped():
    hits = [str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("*.py")
            if re.search(SKIPPED_OWN_IMPORT, p.read_text(encoding="utf-8"))]
    assert not hits, hits


def test_every_package_folder_is_listed_in_pyproject():
    """pyproject.toml lists the packages explicitly (cases/ is mapped into llcbench.cases), so a new
    subpackage missing from the list would be left out of wheels: catch it here."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "llcbench").rglob("__init__.py")}
    found.add("llcbench.cases")
    assert listed == found
