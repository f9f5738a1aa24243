"""The results store: one SQLite row per run, keyed by a content hash.

A run is (case definition, estimator, full config, seed, llcbench version,
device, torch thread count).
Its key is the sha256 of those, so a rerun of the same command finds its
results, a sweep resumes where it was killed, and reports are rebuilt from
the store alone. Each run is committed in its own transaction; WAL mode and
a busy timeout let several processes write one store at once.

Faults: a store is checked when opened (its tables and columns named where
they are wrong; a foreign SQLite database is never adopted unless empty;
``PRAGMA quick_check`` before writing: a damaged store is never written);
a record that is not UTF-8 JSON is skipped by reads, counted, with one
warning line (``llcbench store check --repair`` moves it aside); a store
that stays locked keeps a computed run in a side file, merged on the next
open for writing. Reports open the store read-only (SQLite ``mode=ro``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import sqlite3
import sys
import urllib.parse
from pathlib import Path
from typing import Any, Iterator, Optional, TypedDict

from .errors import UserError

DEFAULT_DB = Path("reports") / "llcbench.sqlite"


class RunRecord(TypedDict, total=False):
    """A run's record as the store keeps it (``llcbench.runner.make_record`` writes it; JSON in the
    ``record`` column). The fields every reader may rely on; estimator-specific values are in
    ``extra``, and the reference fields are None until a reference is attached."""

    key: str
    case: str
    case_key: str
    family: str
    n: Optional[int]
    dim: Optional[int]
    truth_kind: str
    estimator: str
    config: dict
    seed: int
    shared_chains: Optional[str]
    nbeta: Optional[float]  # the posterior the run estimates λ_nβ,γ of (None: an estimator of λ)
    gamma: Optional[float]
    lambda_hat: Optional[float]
    lambda_hat_chains: list
    se: Optional[float]
    rhat: Optional[float]
    ess: Optional[float]
    diagnostics: dict
    warnings: list
    extra: dict
    lambda_ref: Optional[float]
    lambda_ref_error: Optional[float]
    lambda_ref_method: Optional[str]
    lambda_ref_source: Optional[str]
    estimand_bias: Optional[float]
    sampler_bias: Optional[float]
    sampler_bias_se: Optional[float]
    loss_fingerprint: Optional[str]
    target_info: dict
    seconds: float
    device: str
    llcbench_version: str


def posterior(record: dict) -> tuple[Optional[float], Optional[float]]:
    """(nβ, γ) of the posterior a record's run estimates, or Nones (records written before these
    were fields of their own keep them in ``extra``)."""
    extra = record.get("extra") or {}
    nbeta = record["nbeta"] if "nbeta" in record else extra.get("nbeta")
    gamma = record["gamma"] if "gamma" in record else extra.get("gamma")
    return nbeta, gamma


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
STORE_TABLES = {"meta", "runs", "damaged_runs"}  # damaged_runs: records `llcbench store check --repair` moved aside
SPOOL_SUFFIX = ".spool.jsonl"  # runs a locked store could not take, merged on the next open for writing


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
    """A SQLite results store. Use as a context manager or call ``close()``.

    ``readonly``: open with the SQLite URI ``mode=ro`` (reports): nothing is created, changed or
    checked-and-repaired, and a store on a read-only disk or folder can be read.
    ``busy_timeout``: seconds a write waits for another process's lock before it is retried once and
    then spooled (see :meth:`put`).
    """

    def __init__(self, path: str | Path = DEFAULT_DB, readonly: bool = False, busy_timeout: float = 60.0):
        self.path = Path(path)
        self.readonly = readonly
        self.busy_timeout = busy_timeout
        self.spool_path = self.path.with_name(self.path.name + SPOOL_SUFFIX)
        self._pending: dict[str, dict] = {}  # records spooled, not yet in the store (served by get)
        self._spooled = 0
        self._warned_unreadable = False
        self.unreadable = 0  # the most unreadable records one read skipped
        # mkdir would say only "File exists" (or "Not a directory") of a path whose parent is a file
        blocker = next((p for p in self.path.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise UserError(f"{self.path}: cannot create the store: {blocker} is a file, not a directory")
        if self.path.is_dir():
            raise UserError(f"{self.path}: cannot open the store: it is a directory (give a file path)")
        if readonly:
            self.conn = self._open_readonly()
        else:
            self.conn = self._open_for_writing()
            self._merge_spool()

    # ------------------------------------------------------------------ opening
    def _open_readonly(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise UserError(f"{self.path}: no store there")
        uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=ro"
        try:
            conn = _connect(uri, self.busy_timeout)
            _check_schema(conn, self.path, readonly=True)
            return conn
        except sqlite3.OperationalError:
            # a WAL store in a folder we cannot write has no -shm file to read through: read the
            # file as it is (no other process can be writing into a folder nobody can write)
            pass
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{self.path}: not a usable llcbench store: {exc}") from None
        try:
            conn = _connect(uri + "&immutable=1", self.busy_timeout)
            _check_schema(conn, self.path, readonly=True)
            return conn
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{self.path}: cannot read the store: {exc}") from None

    def _open_for_writing(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{self.path}: cannot create the folder {self.path.parent}: {exc.strerror}") from None
        unwritable = _unwritable(self.path)
        if unwritable:
            raise UserError(f"{self.path}: cannot write the store: {unwritable}")
        try:
            conn = _connect(str(self.path), self.busy_timeout)
            try:
                damage = [row[0] for row in conn.execute("PRAGMA quick_check")]
            except sqlite3.DatabaseError as exc:
                if "malformed" not in str(exc):
                    raise
                damage = [str(exc)]  # so damaged that quick_check stops
            if damage != ["ok"]:
                more = f" (and {len(damage) - 1} more problems)" if len(damage) > 1 else ""
                first = " ".join(damage[0].replace("*** in database main ***", "").split())
                raise UserError(f"{self.path}: the store is damaged ({first}{more}); not writing into it: "
                                "`llcbench store check --repair` keeps its readable runs")
            if _check_schema(conn, self.path, readonly=False) == "empty":
                conn.execute("BEGIN IMMEDIATE")
                conn.executescript(_SCHEMA)  # executescript commits the transaction
                conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                             (str(SCHEMA_VERSION),))
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            return conn
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{self.path}: not a usable llcbench store: {exc}") from None
        except OSError as exc:
            raise UserError(f"{self.path}: cannot open store: {exc.strerror}") from None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._spooled > 1:
            _warn(f"{self._spooled} runs kept in {self.spool_path} (the store was locked); the next run merges them")
        self.conn.close()

    # ------------------------------------------------------------------ writing
    def put(self, record: dict) -> None:
        """Insert (or replace) one run, atomically: the row is there whole or not at all. A store that
        stays locked past the busy timeout (twice) or fails to write keeps the run in a side file
        (``<store>.spool.jsonl``), merged on the next open for writing: a computed run is never lost."""
        if self.readonly:
            raise UserError(f"{self.path}: opened read-only; cannot store run {record.get('key', '?')[:12]}…")
        rec = _json_safe(record)
        for attempt in range(2):
            try:
                self._insert(rec)
                return
            except sqlite3.OperationalError as exc:
                if attempt == 0 and _is_busy(exc):
                    continue  # the busy timeout passed: wait once more before spooling
                self._spool(rec, exc)
                return
            except sqlite3.DatabaseError as exc:
                self._spool(rec, exc)
                return

    def _insert(self, rec: dict) -> None:
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
            self.conn.execute(f"INSERT OR REPLACE INTO runs ({', '.join(RUN_COLUMNS)}) "
                              f"VALUES ({', '.join('?' * len(row))})", row)
            self.conn.execute("COMMIT")
        except BaseException:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise
        self._pending.pop(rec["key"], None)

    def _spool(self, rec: dict, exc: Exception) -> None:
        line = json.dumps(rec, sort_keys=True) + "\n"
        try:
            with open(self.spool_path, "a", encoding="utf-8") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:
            raise UserError(f"{self.path}: cannot store run {rec['key'][:12]}… ({exc}) nor keep it in "
                            f"{self.spool_path} ({err.strerror})") from None
        self._pending[rec["key"]] = rec
        self._spooled += 1
        if self._spooled == 1:
            _warn(f"{self.path}: {exc}; run {rec['key'][:12]}… kept in {self.spool_path}, merged into the store "
                  "on the next run")

    def _merge_spool(self) -> None:
        """Put the runs a locked store could not take earlier (this store's spool files), then delete them."""
        claimed = []
        if self.spool_path.exists():
            mine = self.spool_path.with_name(f"{self.spool_path.name}.{os.getpid()}.merging")
            try:
                os.replace(self.spool_path, mine)  # atomic: no other process merges the same lines
                claimed.append(mine)
            except FileNotFoundError:
                pass
        # a merge that died half-way (its process is gone) left its claimed file
        claimed += [p for p in self.path.parent.glob(f"{self.spool_path.name}.*.merging")
                    if p not in claimed and not _alive(p.name.split(".")[-2])]
        for part in claimed:
            try:
                lines = part.read_text(encoding="utf-8", errors="replace").splitlines()
            except FileNotFoundError:
                continue
            records = []
            for line in lines:
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue  # a line cut by a crash mid-write: that run was never confirmed
            for rec in records:
                if isinstance(rec, dict) and "key" in rec:
                    try:
                        self._insert(rec)
                    except sqlite3.Error as exc:
                        self._spool(rec, exc)  # still locked: back into the spool, served by get()
            part.unlink(missing_ok=True)

    # ------------------------------------------------------------------ reading
    def get(self, key: str) -> Optional[dict]:
        """The stored run of this key; None if there is none or its record is unreadable (then it is
        recomputed and replaced)."""
        if key in self._pending:
            return self._pending[key]
        row = self.conn.execute("SELECT CAST(record AS BLOB) FROM runs WHERE key = ?", (key,)).fetchone()
        return _decode(row[0]) if row else None

    def _read(self, query: str, args) -> Iterator[dict]:
        """Decode each record of the query; skip (and count, warning once) the unreadable ones."""
        skipped = 0
        for (blob,) in self.conn.execute(query, args):
            rec = _decode(blob)
            if rec is None:
                skipped += 1
                continue
            yield rec
        self.unreadable = max(self.unreadable, skipped)
        if skipped and not self._warned_unreadable:
            self._warned_unreadable = True
            _warn(f"{self.path}: {skipped} unreadable record{'s' if skipped > 1 else ''} skipped "
                  "(bad UTF-8 or JSON); `llcbench store check --repair` moves them aside")

    def records(self, estimator: Optional[str] = None, case_id: Optional[str] = None) -> Iterator[dict]:
        """All stored runs (as the dicts that were put), oldest first."""
        query, args = "SELECT CAST(record AS BLOB) FROM runs", []
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
        yield from self._read(query, args)

    def records_without(self, fields: tuple[str, ...], estimator: Optional[str] = None) -> Iterator[dict]:
        """All stored runs without the named top-level fields (e.g. the loss traces, most of a record's
        bytes): SQLite's json_remove drops them before Python parses the rest, so that scoring a store of
        thousands of runs reads a fraction of its text. (A record that is not valid JSON is passed whole,
        to be counted as unreadable, instead of failing the query.)"""
        paths = ", ".join("?" for _ in fields)
        column = (f"CASE WHEN json_valid(record) THEN json_remove(record, {paths}) ELSE record END"
                  if fields else "record")
        query = f"SELECT CAST({column} AS BLOB) FROM runs"
        args: list = [f"$.{name}" for name in fields]
        if estimator is not None:
            query += " WHERE estimator = ?"
            args.append(estimator)
        query += " ORDER BY created_at, key"
        yield from self._read(query, args)

    def records_with(self, field: str) -> Iterator[dict]:
        """The stored runs that have the top-level field (e.g. ``per_sample``), oldest first: SQLite's
        json_type selects them before Python parses any record."""
        query = ("SELECT CAST(record AS BLOB) FROM runs WHERE json_valid(record) AND json_type(record, ?) IS NOT NULL "
                 "ORDER BY created_at, key")
        yield from self._read(query, (f"$.{field}",))

    def count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    # ------------------------------------------------------------------ skipped cases
    def note_skipped(self, estimator: str, skipped) -> None:
        """Remember the cases a run request left out for ``estimator`` [(case id, why)], so the report
        can list them (the meta row ``skipped``: {estimator: {case id: why}}). Best effort: a store
        that cannot take it now loses only this note, never a run."""
        if self.readonly or not skipped:
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                notes = self.skipped()
                notes.setdefault(estimator, {}).update({str(c): str(why) for c, why in skipped})
                self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('skipped', ?)",
                                  (json.dumps(notes, sort_keys=True),))
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        except sqlite3.Error:
            pass

    def skipped(self) -> dict:
        """{estimator: {case id: why}} of the cases run requests left out (``note_skipped``)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'skipped'").fetchone()
        try:
            notes = json.loads(row[0]) if row else {}
        except (TypeError, ValueError):
            return {}
        return notes if isinstance(notes, dict) else {}


def _connect(target: str, busy_timeout: float) -> sqlite3.Connection:
    # isolation_level=None: we open transactions ourselves, one per run
    conn = sqlite3.connect(target, timeout=busy_timeout, isolation_level=None, uri=target.startswith("file:"))
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    # a damaged text column is shown with U+FFFD, not raised mid-query; records are decoded strictly
    conn.text_factory = lambda b: b.decode("utf-8", "replace")
    return conn


def _expected_columns() -> list[str]:
    conn = sqlite3.connect(":memory:")
    conn.executescript(_SCHEMA)
    return [row[1] for row in conn.execute("PRAGMA table_info(runs)")]


RUN_COLUMNS = _expected_columns()


def _check_schema(conn: sqlite3.Connection, path: Path, readonly: bool) -> str:
    """"empty" (a database without tables: a store is made in it), or "ok"; else a UserError naming
    what is wrong. A database with other tables is never adopted."""
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        if readonly:
            raise UserError(f"{path}: an empty database, not an llcbench store")
        return "empty"
    missing = {"meta", "runs"} - tables
    if missing:
        others = sorted(tables - STORE_TABLES)
        raise UserError(f"{path}: not an llcbench store (no table {', '.join(sorted(missing))}"
                        + (f"; it holds {', '.join(others[:5])}" if others else "")
                        + "); refusing to add llcbench tables to another database")
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        raise UserError(f"{path}: not an llcbench store: table meta has no schema_version")
    try:
        version = int(row[0])
    except (TypeError, ValueError):
        raise UserError(f"{path}: damaged store: schema_version is {row[0]!r}, not a number") from None
    if version != SCHEMA_VERSION:
        raise UserError(f"{path}: store schema version {version}, this llcbench reads {SCHEMA_VERSION}")
    columns = [r[1] for r in conn.execute("PRAGMA table_info(runs)")]
    lacking = [c for c in RUN_COLUMNS if c not in columns]
    if lacking:
        raise UserError(f"{path}: damaged store: table runs lacks column{'s' if len(lacking) > 1 else ''} "
                        f"{', '.join(lacking)}")
    return "ok"


def _decode(blob: Any) -> Optional[dict]:
    """A stored record, or None when its bytes are not UTF-8 JSON of an object."""
    if isinstance(blob, str):
        blob = blob.encode("utf-8", "surrogateescape")
    try:
        rec = json.loads(bytes(blob).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, TypeError):
        return None
    return rec if isinstance(rec, dict) else None


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _unwritable(path: Path) -> str:
    """Why the store cannot be written (a read-only file or folder), or ''."""
    if path.exists() and not os.access(path, os.W_OK):
        return "the file is read-only (llcbench report can read it; run and sweep need to write)"
    if not os.access(path.parent, os.W_OK):
        return f"the folder {path.parent} is read-only (SQLite writes its journal beside the store)"
    return ""


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _warn(message: str) -> None:
    print(f"llcbench: warning: {' '.join(message.split())}", file=sys.stderr)


def open_existing(db) -> Store:
    """The store at ``db`` for reading; a UserError where there is none (opening would create an
    empty one, and a report of nothing would hide the mistake)."""
    db = Path(db)
    if not db.is_file():
        raise UserError(f"--db {db}: no store there (llcbench run --estimator sgld makes one)")
    return Store(db, readonly=True)

