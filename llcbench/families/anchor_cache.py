"""A disk cache of trained anchors: named tensors plus metadata, keyed by the definition they came from.

Families whose anchor w* is trained (not computed in closed form) train it
once, deterministically, and keep it here. The key is the sha256 of the
definition (a JSON-able dict: the case's fields and the training recipe);
the folder is ``$LLCBENCH_CACHE`` if set, else ``$XDG_CACHE_HOME/llcbench``
(``~/.cache/llcbench``), one subfolder per kind.

A file is written atomically (a temporary file in the same folder, fsync,
``os.replace``) and carries the sha256 of its payload: a partial or corrupt
file fails the checksum (or the definition check) and is deleted and
rebuilt, never loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Optional

import torch

from ..errors import UserError

ENV = "LLCBENCH_CACHE"
FORMAT = 1


def cache_dir() -> Path:
    """The cache's root folder (not created here)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llcbench"


def definition_key(definition: dict) -> str:
    """sha256 (hex) of the definition's canonical JSON."""
    text = json.dumps({"format": FORMAT, "definition": definition}, sort_keys=True, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def path_for(kind: str, definition: dict) -> Path:
    return cache_dir() / kind / f"{definition_key(definition)}.pt"


def save(kind: str, definition: dict, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write the entry atomically; returns its path."""
    path = path_for(kind, definition)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save({"tensors": {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                "meta": json.dumps(meta, sort_keys=True), "definition": json.dumps(definition, sort_keys=True,
                                                                                    default=str)}, buf)
    payload = buf.getvalue()
    header = (hashlib.sha256(payload).hexdigest() + "\n").encode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header + payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load(kind: str, definition: dict) -> Optional[tuple[dict[str, torch.Tensor], dict]]:
    """(tensors, meta) of the entry, or None when there is none or it is damaged (then it is deleted)."""
    path = path_for(kind, definition)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        blocker = next((p for p in reversed(path.parents) if p.exists() and not p.is_dir()), path.parent)
        raise UserError(f"anchor cache {cache_dir()} (${ENV}, else $XDG_CACHE_HOME/llcbench): {blocker} is a file, "
                        "not a folder") from None
    except IsADirectoryError:
        raise UserError(f"anchor cache entry {path} is a folder, not a file: remove it (the anchor is retrained)") from None
    except OSError as exc:
        raise UserError(f"anchor cache entry {path}: cannot read it: {exc.strerror}") from None
    head, sep, payload = data.partition(b"\n")
    ok = bool(sep) and head.decode("ascii", "replace") == hashlib.sha256(payload).hexdigest()
    entry = None
    if ok:
        try:
            entry = torch.load(io.BytesIO(payload), weights_only=True)
            ok = json.loads(entry["definition"]) == json.loads(json.dumps(definition, sort_keys=True, default=str))
        except Exception:  # a payload that passed the checksum yet does not parse: treat as damaged
            ok = False
    if not ok:
        path.unlink(missing_ok=True)
        return None
    return entry["tensors"], json.loads(entry["meta"])


def load_or_build(kind: str, definition: dict,
                  build: Callable[[], tuple[dict[str, torch.Tensor], dict]]) -> tuple[dict[str, torch.Tensor], dict]:
    """The cached entry, or ``build()``'s result, saved first (a folder that cannot be written is no
    error: the entry is rebuilt next time)."""
    hit = load(kind, definition)
    if hit is not None:
        return hit
    tensors, meta = build()
    try:
        save(kind, definition, tensors, meta)
    except OSError:
        pass
    return tensors, meta
