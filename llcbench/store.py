"""The results store: one SQLite row per run, keyed by a content hash.

A run is (case definition, estimator, full config, seed, llcbench version,
device, torch thread count).
Its key is the sha256 of those, so a rerun of the same command finds its
results, a sweep resumes where it was killed, and reports are rebuilt from
the store alone. Each run is committed in its own transaction; WAL mode and
a busy timeout let several processes write one store at once.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from pathlib import Path
from typing import Any, Iterator, Optional

from .errors import UserError

DEFAULT_DB = Path("reports") / "llcbench.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    case_id TEXT NOT NULL,
    case_key TEXT NOT NULL,
    family TEXT NOT NULL,
    estimator TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config TEXT NOT NULL,
    lambda_true TEXT,
    lambda_true_float REAL,
    multiplicity INTEGER,
    truth_kind TEXT,
    lambda_hat REAL,
    se REAL,
    rel_error REAL,
    rhat REAL,
    ess REAL,
    grad_evals INTEGER,
    seconds REAL,
    device TEXT,
    llcbench_version TEXT,
    git_commit TEXT,
    torch_version TEXT,
    created_at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_case ON runs (case_id, estimator);
"""


def run_key(case_definition: dict, estimator: str, config: dict, seed: int, version: str, device: str,
            threads: int, shared_chains: str = "") -> str:
    """Content hash of everything that determines a run's result: λ̂ is bit-identical only on the
    same device and at the same torch intra-op thread count (floating-point reductions are summed
    in another order), so both are part of the key; ``device`` normalised ("cpu", "cuda:0").
    ``shared_chains``: for a point of a shared-chain grid run, the hash of the whole grid it ran
    with (its noise and batches are the grid's), so it is never served for an independent run."""
    payload = {
        "case": case_definition,
        "estimator": estimator,
        "config": config,
        "seed": seed,
        "version": version,
        "device": device,
        "threads": threads,
    }
    if shared_chains:
        payload["shared_chains"] = shared_chains
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON: store them as null (and say so in the record's warnings)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


class Store:
    """A SQLite results store. Use as a context manager or call ``close()``."""

    def __init__(self, path: str | Path = DEFAULT_DB):
        self.path = Path(path)
        # mkdir would say only "File exists" (or "Not a directory") of a path whose parent is a file
        blocker = next((p for p in self.path.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise UserError(f"{self.path}: cannot create the store: {blocker} is a file, not a directory")
        if self.path.is_dir():
            raise UserError(f"{self.path}: cannot open the store: it is a directory (give a file path)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we open transactions ourselves, one per run.
            self.conn = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None)
            self.conn.execute("PRAGMA busy_timeout = 60000")
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self.conn.executescript(_SCHEMA)
            self.conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{self.path}: not a usable llcbench store: {exc}") from None
        except OSError as exc:
            raise UserError(f"{self.path}: cannot open store: {exc.strerror}") from None
        version = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        if int(version) != SCHEMA_VERSION:
            raise UserError(f"{self.path}: store schema version {version}, this llcbench reads {SCHEMA_VERSION}")

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def get(self, key: str) -> Optional[dict]:
        row = self.conn.execute("SELECT record FROM runs WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, record: dict) -> None:
        """Insert (or replace) one run, atomically: the row is there whole or not at all."""
        rec = _json_safe(record)
        row = (
            rec["key"], rec["case"], rec["case_key"], rec["family"], rec["estimator"], rec["seed"],
            json.dumps(rec["config"], sort_keys=True), rec["lambda"], rec["lambda_float"],
            rec["multiplicity"], rec["truth_kind"], rec["lambda_hat"], rec["se"], rec["rel_error"],
            rec["rhat"], rec["ess"], rec["grad_evals"], rec["seconds"], rec["device"],
            rec["llcbench_version"], rec["git_commit"], rec["torch_version"], rec["created_at"],
            json.dumps(rec, sort_keys=True),
        )
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute(f"INSERT OR REPLACE INTO runs VALUES ({', '.join('?' * len(row))})", row)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def records(self, estimator: Optional[str] = None, case_id: Optional[str] = None) -> Iterator[dict]:
        """All stored runs (as the dicts that were put), oldest first."""
        query, args = "SELECT record FROM runs", []
        conds = []
        if estimator is not None:
            conds.append("estimator = ?")
            args.append(estimator)
        if case_id is not None:
            conds.append("case_id = ?")
            args.append(case_id)
        if conds:
            query += " WHERE " + " AND ".join(conds)
        query += " ORDER BY created_at, key"
        for (text,) in self.conn.execute(query, args):
            yield json.loads(text)

    def records_without(self, fields: tuple[str, ...], estimator: Optional[str] = None) -> Iterator[dict]:
        """All stored runs without the named top-level fields (e.g. the loss traces, most of a record's
        bytes): SQLite's json_remove drops them before Python parses the rest, so that scoring a store of
        thousands of runs reads a fraction of its text."""
        paths = ", ".join("?" for _ in fields)
        query = f"SELECT json_remove(record, {paths}) FROM runs" if fields else "SELECT record FROM runs"
        args: list = [f"$.{name}" for name in fields]
        if estimator is not None:
            query += " WHERE estimator = ?"
            args.append(estimator)
        query += " ORDER BY created_at, key"
        for (text,) in self.conn.execute(query, args):
            yield json.loads(text)

    def records_with(self, field: str) -> Iterator[dict]:
        """The stored runs that have the top-level field (e.g. ``per_sample``), oldest first: SQLite's
        json_type selects them before Python parses any record."""
        query = "SELECT record FROM runs WHERE json_type(record, ?) IS NOT NULL ORDER BY created_at, key"
        for (text,) in self.conn.execute(query, (f"$.{field}",)):
            yield json.loads(text)

    def count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def open_existing(db) -> Store:
    """The store at ``db`` for reading; a UserError where there is none (opening would create an
    empty one, and a report of nothing would hide the mistake)."""
    db = Path(db)
    if not db.is_file():
        raise UserError(f"--db {db}: no store there (llcbench run --estimator sgld makes one)")
    return Store(db)

