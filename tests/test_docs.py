"""The README is a front door and the rest is the MkDocs site: the README stays short, its links
reach files that exist, and every page under docs/ is in the site's navigation (`mkdocs build
--strict` in .ci/run checks the links inside the site)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_is_short_and_its_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 300
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in t]
    assert "docs/guide.md" in targets  # the links are found at all
    missing = [t for t in targets if not (ROOT / t).is_file()]
    assert not missing, missing


def test_every_docs_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r":\s*([\w./-]+\.md)\s*$", nav, flags=re.M))
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert "index.md" in listed and pages == listed, sorted(pages ^ listed)
