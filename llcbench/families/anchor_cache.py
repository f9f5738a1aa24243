"""On-disk cache of trained anchors: one file per anchor, written atomically, checksummed.

Where: ``$LLCBENCH_CACHE`` if set, else ``$XDG_CACHE_HOME/llcbench``, else
``~/.cache/llcbench``; anchors live in its ``anchors/`` folder, one file per
key (the hash of what determines the anchor). A file is a 64-hex sha256 of
the payload, a newline, then the payload (a JSON header line and the float64
parameter bytes). A file whose checksum, header or length does not match is
never loaded: it is deleted and the caller retrains. Files are written to a
temporary name in the same folder and renamed into place (``os.replace`` is
atomic on POSIX and Windows), so a reader never sees a half-written file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

ENV = "LLCBENCH_CACHE"


def cache_root() -> Path:
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "llcbench"
    return Path.home() / ".cache" / "llcbench"


def anchor_path(key: str) -> Path:
    return cache_root() / "anchors" / f"{key}.anchor"


def key_of(definition: dict) -> str:
    """sha256 of the canonical JSON of ``definition`` (everything that determines the anchor)."""
    text = json.dumps(definition, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def save(key: str, w: np.ndarray, info: dict) -> Path:
    """Write the anchor (w: 1-D float64) and its info; atomic."""
    w = np.ascontiguousarray(w, dtype="<f8")
    header = json.dumps({"key": key, "size": int(w.size), "info": info}, sort_keys=True).encode()
    payload = header + b"\n" + w.tobytes()
    path = anchor_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".anchor")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(key: str) -> Optional[tuple[np.ndarray, dict]]:
    """(w, info) if a valid file for ``key`` exists; None (and the bad file removed) otherwise."""
    path = anchor_path(key)
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    parsed = _parse(raw, key)
    if parsed is None:
        path.unlink(missing_ok=True)
    return parsed


def _parse(raw: bytes, key: str) -> Optional[tuple[np.ndarray, dict]]:
    digest, sep, payload = raw.partition(b"\n")
    if not sep or hashlib.sha256(payload).hexdigest().encode() != digest:
        return None
    header, sep, body = payload.partition(b"\n")
    try:
        meta = json.loads(header)
    except ValueError:
        return None
    if not sep or meta.get("key") != key or len(body) != 8 * int(meta.get("size", -1)):
        return None
    return np.frombuffer(body, dtype="<f8").copy(), meta.get("info") or {}
