"""The store under fault: foreign and damaged databases, unreadable records, a lock that stays,
read-only reports, `llcbench store check [--repair]`, and report folders of other stores."""

import json
import os
import sqlite3
import threading

import pytest

from llcbench.cli import main
from llcbench.errors import UserError
from llcbench.report.folder import MARKER, claim_folder, default_folder
from llcbench.store import Store, _unwritable
from llcbench.store_check import check_store
from test_store import fake_record


def _filled(path, count=36, trace=0):
    with Store(path) as store:
        for i in range(count):
            store.put(dict(fake_record(f"k{i:02d}"), trace=list(range(trace))))
    return path


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_foreign_database_is_refused_untouched_and_an_empty_one_adopted(tmp_path):
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(UserError, match="not an llcbench store .*invoices.*refusing"):
        Store(path)
    assert path.read_bytes() == before and not (tmp_path / "other.sqlite-wal").exists()
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    with Store(empty) as store:
        store.put(fake_record("k"))
        assert store.count() == 1


def test_schema_damage_is_named(tmp_path):
    path = _filled(tmp_path / "s.sqlite", 2)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = 'abc' WHERE key = 'schema_version'")
    conn.commit()
    with pytest.raises(UserError, match="schema_version is 'abc'"):
        Store(path)
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.execute("ALTER TABLE runs DROP COLUMN rhat")
    conn.commit()
    conn.close()
    for readonly in (False, True):  # refused before any run is computed, and by reports
        with pytest.raises(UserError, match="table runs lacks column rhat"):
            Store(path, readonly=readonly)


def test_unreadable_records_are_skipped_counted_and_moved_aside(tmp_path, capsys):
    path = _filled(tmp_path / "s.sqlite", 6)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE runs SET record = CAST(x'7b22ff' AS TEXT) WHERE key = 'k01'")  # bad UTF-8
    conn.execute("UPDATE runs SET record = '{\"key\": \"k02\", ' WHERE key = 'k02'")  # malformed JSON
    conn.commit()
    conn.close()
    with Store(path, readonly=True) as store:
        assert [r["key"] for r in store.records()] == ["k00", "k03", "k04", "k05"]
        assert len(list(store.records_without(("trace",)))) == 4
        assert len(list(store.records_with("trace"))) == 4 and store.get("k01") is None
        assert store.unreadable == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 unreadable records skipped" in err  # one warning, however many reads
    result = check_store(path)
    assert not result.healthy and sorted(k for _, k, _ in result.damaged) == ["k01", "k02"]
    assert main(["store", "check", "--db", str(path)]) == 1
    assert main(["store", "check", "--db", str(path), "--repair"]) == 0
    assert check_store(path).healthy
    conn = sqlite3.connect(path)
    moved = conn.execute("SELECT key, reason, CAST(record AS BLOB) FROM damaged_runs ORDER BY key").fetchall()
    assert moved[0][2] == b'{"\xff'  # the bytes are kept
    assert [m[0] for m in moved] == ["k01", "k02"] and "UTF-8" in moved[0][1] and "JSON" in moved[1][1]
    conn.close()
    with Store(path) as store:  # a repaired store is written again
        store.put(fake_record("k01"))
        assert store.count() == 5


def test_a_damaged_page_is_never_written_and_repair_keeps_the_readable_runs(tmp_path, capsys):
    path = _filled(tmp_path / "s.sqlite", 36, trace=300)  # ≈ 2 runs per 4 KiB page
    data = bytearray(path.read_bytes())
    data[9 * 4096:10 * 4096] = bytes(4096)  # one zeroed page of the runs table
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="the store is damaged .*not writing into it"):
        Store(path)
    assert path.read_bytes() == bytes(data)
    err = _one_line_error(capsys, ["run", "--estimator", "sgld", "--case", "poly/w1^2", "--db", str(path)])
    assert "damaged" in err
    result = check_store(path)
    assert result.quick_check != ["ok"] and not result.healthy
    assert main(["store", "check", "--db", str(path), "--repair"]) == 0
    aside = [p for p in tmp_path.iterdir() if ".damaged-" in p.name and not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1 and aside[0].read_bytes() == bytes(data)  # moved aside whole
    assert check_store(path).healthy
    with Store(path) as store:
        kept = store.count()
    assert 30 <= kept < 36  # the zeroed page held a few runs (2 with SQLite 3.x's layout); every other one is kept


def test_a_locked_store_keeps_the_run_in_a_spool_merged_next_time(tmp_path, capsys):
    path = _filled(tmp_path / "s.sqlite", 1)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    with Store(path, busy_timeout=0.1) as store:
        store.put(fake_record("new", lambda_hat=3.0))
        assert store.get("new")["lambda_hat"] == 3.0  # served from the spool meanwhile
    assert "kept in" in capsys.readouterr().err
    spool = tmp_path / "s.sqlite.spool.jsonl"
    assert json.loads(spool.read_text())["key"] == "new"
    with Store(path, busy_timeout=0.1) as store:  # still locked: the run stays spooled
        assert store.get("new")["lambda_hat"] == 3.0
    assert spool.exists()
    holder.execute("ROLLBACK")
    holder.close()
    with Store(path) as store:
        assert store.count() == 2 and store.get("new")["lambda_hat"] == 3.0
    assert not spool.exists() and not list(tmp_path.glob("*.merging"))


def test_a_lock_released_within_the_retry_loses_nothing(tmp_path):
    path = _filled(tmp_path / "s.sqlite", 1)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    timer = threading.Timer(0.3, lambda: holder.execute("ROLLBACK"))
    timer.start()
    with Store(path, busy_timeout=0.2) as store:  # first wait times out, the retry gets the lock
        store.put(fake_record("new"))
        assert store.count() == 2
    timer.join()
    assert not (tmp_path / "s.sqlite.spool.jsonl").exists()


def test_reports_read_the_store_without_changing_it(tmp_path):
    path = _filled(tmp_path / "s.sqlite", 3)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    with Store(path, readonly=True) as store:
        assert store.count() == 3
        with pytest.raises(UserError, match="read-only"):
            store.put(fake_record("x"))
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    with pytest.raises(UserError, match="no store there"):
        Store(tmp_path / "none.sqlite", readonly=True)
    assert not (tmp_path / "none.sqlite").exists()


def test_unwritable_store_or_folder_is_named(tmp_path, monkeypatch):
    """As root (where permissions are not enforced) os.access is what SQLite's failure would be."""
    path = _filled(tmp_path / "s.sqlite", 1)
    monkeypatch.setattr(os, "access", lambda p, mode: str(p) != str(path))
    assert "the file is read-only" in _unwritable(path)
    monkeypatch.setattr(os, "access", lambda p, mode: str(p) != str(tmp_path))
    assert f"the folder {tmp_path} is read-only" in _unwritable(tmp_path / "new.sqlite")
    with pytest.raises(UserError, match="cannot write the store: the folder"):
        Store(tmp_path / "new.sqlite")


def test_report_folder_is_named_after_its_store_and_never_taken_from_another(tmp_path):
    mine, other = tmp_path / "mine.sqlite", tmp_path / "other.sqlite"
    assert default_folder(mine) == tmp_path / "mine.report"
    folder = claim_folder(mine, None, force=False)
    assert json.loads((folder / MARKER).read_text())["store"] == str(mine.resolve())
    (folder / "index.html").write_text("mine")
    assert claim_folder(mine, None, force=False) == folder  # the same store's report is rebuilt
    with pytest.raises(UserError, match="holds the report of another store"):
        claim_folder(other, folder, force=False)
    assert claim_folder(other, folder, force=True) == folder
    stranger = tmp_path / "photos"
    stranger.mkdir()
    (stranger / "cat.jpg").write_text("")
    with pytest.raises(UserError, match="not empty and not an llcbench report"):
        claim_folder(mine, stranger, force=False)


def test_a_read_only_wal_store_is_read_as_immutable(tmp_path, monkeypatch):
    """Where mode=ro cannot open a WAL store (its folder is not writable, so there is no -shm file:
    what root cannot reproduce by permissions), the file is read as it is (immutable=1)."""
    import llcbench.store as store_module

    path = _filled(tmp_path / "s.sqlite", 2)
    real = store_module._connect
    tried = []

    def no_shm(target, timeout):
        tried.append(target)
        if "immutable=1" not in target:
            raise sqlite3.OperationalError("unable to open database file")
        return real(target, timeout)

    monkeypatch.setattr(store_module, "_connect", no_shm)
    with Store(path, readonly=True) as store:
        assert store.count() == 2
    assert len(tried) == 2 and "mode=ro" in tried[0]

