"""`llcbench store check [--repair]`: find a store's damaged records and, on request, move them aside.

Two kinds of damage: a record whose bytes are not UTF-8 JSON of a run (found
row by row), and damage SQLite's ``PRAGMA quick_check`` reports (a damaged
page or index). ``--repair`` moves damaged records into the table
``damaged_runs`` (their bytes kept, with the reason); a store that fails
quick_check is rebuilt: its readable runs are copied into a fresh store at
the same path, and the damaged file is moved aside, whole, beside it
(``NAME.damaged-TIMESTAMP``), so nothing readable is lost and nothing damaged
is deleted.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError
from .store import Store, _decode

_DAMAGED_TABLE = """
CREATE TABLE IF NOT EXISTS damaged_runs (
    key TEXT, reason TEXT NOT NULL, record BLOB, moved_at TEXT NOT NULL
)
"""


@dataclass
class CheckResult:
    path: Path
    quick_check: list[str]  # ["ok"] when SQLite finds no damage
    runs: int = 0  # rows read
    damaged: list[tuple[int, str, str]] = field(default_factory=list)  # (rowid, key, reason)
    unreachable: str = ""  # why some rows could not be read at all
    repaired: str = ""  # what --repair did

    @property
    def healthy(self) -> bool:
        return self.quick_check == ["ok"] and not self.damaged and not self.unreachable

    def lines(self) -> list[str]:
        out = [f"{self.path}: {self.runs} runs read, {len(self.damaged)} damaged; SQLite quick_check: "
               + ("ok" if self.quick_check == ["ok"] else f"{len(self.quick_check)} problems ({self.quick_check[0]})")]
        out += [f"  damaged: row {rowid} key {key[:16] or '?'}: {why}" for rowid, key, why in self.damaged[:20]]
        if len(self.damaged) > 20:
            out.append(f"  … and {len(self.damaged) - 20} more (--json lists them all)")
        if self.unreachable:
            out.append(f"  unreadable part: {self.unreachable}")
        if self.repaired:
            out.append(self.repaired)
        elif not self.healthy:
            out.append("--repair moves the damaged records aside (their bytes are kept)")
        return out

    def as_json(self) -> dict:
        return {"path": str(self.path), "healthy": self.healthy, "quick_check": self.quick_check, "runs": self.runs,
                "damaged": [{"rowid": r, "key": k, "reason": w} for r, k, w in self.damaged],
                "unreachable": self.unreachable, "repaired": self.repaired}


def _why_damaged(key, blob) -> str:
    """Why a row's record is not a readable run, or ''."""
    if blob is None:
        return "no record"
    try:
        bytes(blob).decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8 (byte {exc.start})"
    rec = _decode(blob)
    if rec is None:
        return "not a JSON object"
    if rec.get("key") != key:
        return "its key column and its record disagree"
    return ""


def _rows(conn: sqlite3.Connection, result: CheckResult) -> list[tuple[int, str, bytes]]:
    """Every row that can be read: in one scan, else (a damaged page) row by row."""
    query = "SELECT rowid, CAST(key AS BLOB), CAST(record AS BLOB) FROM runs"
    try:
        return list(conn.execute(query))
    except sqlite3.DatabaseError as exc:
        first = str(exc)
    rows = []
    try:
        top = conn.execute("SELECT max(rowid) FROM runs").fetchone()[0] or 0
    except sqlite3.DatabaseError as exc:
        result.unreachable = f"the runs table cannot be scanned ({exc})"
        return rows
    lost = 0
    for rowid in range(1, top + 1):
        try:
            rows += conn.execute(query + " WHERE rowid = ?", (rowid,)).fetchall()
        except sqlite3.DatabaseError:
            lost += 1
    if lost:
        result.unreachable = f"{lost} rows cannot be read ({first})"
    return rows


def check_store(path: str | Path, repair: bool = False) -> CheckResult:
    """Check the store at ``path`` (and with ``repair`` move its damaged records aside)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--db {path}: no store there")
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=60.0)
    conn.text_factory = bytes
    try:
        try:
            try:
                damage = [" ".join(row[0].decode("utf-8", "replace").replace("*** in database main ***", "").split())
                          for row in conn.execute("PRAGMA quick_check")]
            except sqlite3.DatabaseError as exc:  # so damaged that quick_check stops
                damage = [str(exc)]
            tables = {row[0].decode() for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{path}: not a readable SQLite database ({exc}); nothing to repair in it") from None
        if "runs" not in tables:
            raise UserError(f"{path}: not an llcbench store (no table runs)")
        result = CheckResult(path, damage)
        rows = _rows(conn, result)
        result.runs = len(rows)
        good = []
        for rowid, key, blob in rows:
            key = bytes(key or b"").decode("utf-8", "replace")
            why = _why_damaged(key, blob)
            if why:
                result.damaged.append((rowid, key, why))
            else:
                good.append(blob)
        if not repair or result.healthy:
            return result
        if damage == ["ok"] and not result.unreachable:
            _move_aside(conn, result, {r[0]: r for r in rows})
            result.repaired = f"repaired: {len(result.damaged)} damaged records moved to the table damaged_runs"
            return result
    finally:
        conn.close()
    result.repaired = _rebuild(path, good, result)
    return result


def _move_aside(conn: sqlite3.Connection, result: CheckResult, rows: dict) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(_DAMAGED_TABLE)
    for rowid, key, why in result.damaged:
        conn.execute("INSERT INTO damaged_runs VALUES (?, ?, ?, ?)", (key, why, rows[rowid][2], now))
        conn.execute("DELETE FROM runs WHERE rowid = ?", (rowid,))
    conn.execute("COMMIT")


def _rebuild(path: Path, good: list, result: CheckResult) -> str:
    """A fresh store with the readable runs at ``path``; the damaged file moved aside whole."""
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
    fresh = path.with_name(f"{path.name}.rebuilding")
    fresh.unlink(missing_ok=True)
    with Store(fresh) as store:
        for blob in good:
            try:
                store.put(_decode(blob))
            except (KeyError, TypeError) as exc:  # JSON of an object, but not a whole run
                result.damaged.append((0, str(_decode(blob).get("key", "")), f"not a whole run (no {exc})"))
        conn = store.conn
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(_DAMAGED_TABLE)
        now = time.strftime("%Y-%m-%dT%H:%M:%S")
        for _, key, why in result.damaged:
            conn.execute("INSERT INTO damaged_runs VALUES (?, ?, NULL, ?)", (key, why, now))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    os.replace(path, aside)
    for suffix in ("-wal", "-shm"):  # the damaged file's journal belongs with it, never with the new store
        old = path.with_name(path.name + suffix)
        if old.exists():
            os.replace(old, aside.with_name(aside.name + suffix))
    os.replace(fresh, path)
    for suffix in ("-wal", "-shm"):
        leftover = fresh.with_name(fresh.name + suffix)
        if leftover.exists():
            os.replace(leftover, path.with_name(path.name + suffix))
    return (f"repaired: {len(good)} readable runs copied into a fresh store at {path}; the damaged file "
            f"moved to {aside.name} (listed in damaged_runs: {len(result.damaged)})")


def run_check(path: str | Path, repair: bool, as_json: bool) -> tuple[str, int]:
    """The command's output and exit status (0 healthy or repaired, 1 damage found)."""
    result = check_store(path, repair)
    text = json.dumps(result.as_json(), indent=1) if as_json else "\n".join(result.lines())
    return text, 0 if result.healthy or result.repaired else 1
