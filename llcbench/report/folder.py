"""Where a report goes: ``NAME.report/`` beside the store ``NAME.sqlite``, marked with the store it came from.

A report folder holds a file ``.llcbench-report.json`` naming the store (its
absolute path) that made it; a folder made from another store, or a folder
that is not empty and not a report, is never overwritten without ``--force``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ..errors import UserError

MARKER = ".llcbench-report.json"


def default_folder(db: Path) -> Path:
    """``reports/mine.report/`` for ``reports/mine.sqlite``."""
    return db.with_name(db.stem + ".report")


def claim_folder(db: Path, out: Optional[str | Path], force: bool) -> Path:
    """The report folder of the store ``db`` (``out`` or the default), created and marked; refused when
    it holds another store's report or other files, unless ``force``."""
    folder = Path(out) if out else default_folder(db)
    store = str(db.resolve())
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise UserError(f"--out {folder}: {blocker} is a file, not a folder")
    marker = folder / MARKER
    if folder.is_dir() and any(folder.iterdir()) and not force:
        try:
            made_from = json.loads(marker.read_text(encoding="utf-8")).get("store")
        except (OSError, ValueError, AttributeError):
            made_from = None
        if made_from is None:
            raise UserError(f"--out {folder}: the folder is not empty and not an llcbench report; "
                            "give another --out, or --force to write into it")
        if made_from != store:
            raise UserError(f"--out {folder}: holds the report of another store ({made_from}); "
                            "give another --out, or --force to replace it")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"store": store}) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UserError(f"--out {folder}: cannot write the report there: {exc.strerror}") from None
    return folder
