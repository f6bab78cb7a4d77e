"""A corrupt, foreign or locked quota db gives one clear QuotaError and is never changed."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading

import pytest

from stalk.embedded.quota import QuotaError, QuotaLedger, QuotaSpec


def snapshot(path):
    stat = path.stat()
    return path.read_bytes(), stat.st_mtime_ns, stat.st_size


def siblings(path):
    return sorted(p.name for p in path.parent.iterdir())


def test_garbage_file_is_refused_and_untouched(tmp_path):
    path = tmp_path / "quota.sqlite3"
    path.write_bytes(b"this is not a database\n" * 100)
    before, names = snapshot(path), siblings(path)
    with pytest.raises(QuotaError, match="is corrupt .*left untouched"):
        QuotaLedger(path)
    assert snapshot(path) == before and siblings(path) == names


def test_damaged_pages_are_refused_and_untouched(tmp_path):
    path = tmp_path / "quota.sqlite3"
    with QuotaLedger(path) as ledger:
        ledger.define(QuotaSpec("api", daily_limit=10))
        for i in range(200):
            ledger.reserve("api", 0, f"k{i}")
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # keep the header magic, wreck the schema page
    path.write_bytes(bytes(data))
    before = snapshot(path)
    with pytest.raises(QuotaError, match="corrupt"), QuotaLedger(path) as ledger:
        ledger.status("api")
    assert snapshot(path) == before


def test_someone_elses_sqlite_db_is_not_adopted(tmp_path):
    path = tmp_path / "other.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.commit()
    conn.close()
    before = snapshot(path)
    with pytest.raises(QuotaError, match="not a Stalk quota ledger"):
        QuotaLedger(path)
    assert snapshot(path)[0] == before[0]
    tables = [r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")]
    assert tables == ["invoices"]


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "quota.sqlite3"
    QuotaLedger(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(QuotaError, match="newer Stalk"):
        QuotaLedger(path)


def test_missing_db_without_create(tmp_path):
    with pytest.raises(QuotaError, match="no quota db at"):
        QuotaLedger(tmp_path / "none.sqlite3", create=False)
    assert not (tmp_path / "none.sqlite3").exists()


def test_a_lock_held_too_long_is_a_clear_error_and_loses_nothing(tmp_path):
    path = tmp_path / "quota.sqlite3"
    with QuotaLedger(path) as ledger:
        ledger.define(QuotaSpec("api", daily_limit=10))
        ledger.reserve("api", 3, "before")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with QuotaLedger(path, busy_timeout=0.3) as ledger, pytest.raises(QuotaError, match="locked"):
            ledger.reserve("api", 1, "blocked")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with QuotaLedger(path) as ledger:
        assert ledger.status("api").used == 3
        assert ledger.reservation("blocked") is None


def test_a_short_lock_is_waited_for(tmp_path):
    path = tmp_path / "quota.sqlite3"
    with QuotaLedger(path) as ledger:
        ledger.define(QuotaSpec("api", daily_limit=10))
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        with QuotaLedger(path, busy_timeout=10) as ledger:
            assert ledger.reserve("api", 1, "waited").charged
    finally:
        release.join()
        holder.close()


@pytest.mark.fault
def test_stack_start_on_a_corrupt_quota_db_is_a_config_error(config_factory):
    from stalk.embedded import ConfigError, Stack

    config = config_factory(app="tests.apps.quota_app:app", broker={"mode": "eager"}, beat=False)
    config.paths.ensure()
    config.paths.quota_db.write_bytes(b"not sqlite" * 50)
    before = snapshot(config.paths.quota_db)
    stack = Stack(config)
    with pytest.raises(ConfigError, match="quota db .* is corrupt"):
        stack.start()
    assert snapshot(config.paths.quota_db) == before


CHARGE = """
import sys
from stalk.embedded.quota import QuotaLedger
with QuotaLedger(sys.argv[1]) as ledger:
    ledger.reserve("api", 5, "from-another-process")
"""


@pytest.mark.procs  # a second python process charges the ledger
def test_opening_the_ledger_again_keeps_this_processs_view_live(tmp_path):
    """Found in the panel: it keeps a ledger open and opens another at each poll. Reading the file's
    header with a plain open() and close() dropped every POSIX lock this process held on the db, so a
    worker closing its connection thought itself the last one and deleted the WAL and shared-memory
    files: the panel went on reading the deleted ones and showed yesterday's numbers for good."""
    path = tmp_path / "quota.sqlite3"
    kept = QuotaLedger(path)
    kept.define(QuotaSpec("api", daily_limit=100))
    assert kept.status("api").used == 0
    QuotaLedger(path).close()  # what each panel poll does
    subprocess.run([sys.executable, "-c", CHARGE, str(path)], check=True, timeout=60)  # a worker
    assert (tmp_path / "quota.sqlite3-wal").exists()  # this process still uses the db: not cleaned up
    with QuotaLedger(path) as fresh:
        assert fresh.status("api").used == 5
    assert kept.status("api").used == 5
    kept.close()
