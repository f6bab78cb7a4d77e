"""Many processes reserving at once on one real SQLite file never over-grant and record every grant."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from stalk.embedded.quota import QuotaExhausted, QuotaLedger, QuotaSpec

pytestmark = [pytest.mark.procs, pytest.mark.xdist_group("quota")]

PROCS = 16
CALLS = 1000
# The big runs skip the fsync per commit (durable=False): the locking that prevents over-granting is the
# same, and 16,000 fsyncs would take ~30 s of a shared disk. test_durable_ledger_... runs the default.


def _hammer(path: str, worker: int, calls: int, units: int, priority_every: int, durable: bool, out) -> None:
    """Reserve `calls` times with distinct keys; report the keys that were granted."""
    ledger = QuotaLedger(path, durable=durable)
    granted: list[str] = []
    for i in range(calls):
        key = f"w{worker}-{i}"
        try:
            ledger.reserve("api", units, key, priority=bool(priority_every) and i % priority_every == 0)
        except QuotaExhausted:
            continue
        granted.append(key)
    ledger.close()
    out.put((worker, granted))


def _run(path: Path, units: int = 1, priority_every: int = 0, durable: bool = False,
         procs: int = PROCS, calls: int = CALLS) -> list[str]:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    children = [ctx.Process(target=_hammer, args=(str(path), w, calls, units, priority_every, durable, out))
                for w in range(procs)]
    for p in children:
        p.start()
    results = [out.get(timeout=240) for _ in children]
    for p in children:
        p.join(timeout=30)
        assert p.exitcode == 0
    return [key for _, keys in results for key in keys]


@pytest.mark.fault
@pytest.mark.slow
def test_16_processes_never_exceed_the_limit(tmp_path):
    path = tmp_path / "quota.sqlite3"
    limit = 10_000
    with QuotaLedger(path) as ledger:
        ledger.define(QuotaSpec("api", daily_limit=limit))
    granted = _run(path)
    assert len(granted) == min(PROCS * CALLS, limit)
    assert len(set(granted)) == len(granted)
    with QuotaLedger(path) as ledger:
        status = ledger.status("api")
        assert status.used == limit == len(granted)
        assert status.denied == PROCS * CALLS - limit
        rows = ledger.requests("api", limit=PROCS * CALLS + 10)
    recorded = [r.key for r in rows if r.state != "denied"]
    assert sorted(recorded) == sorted(granted)
    assert sum(r.units for r in rows if r.state != "denied") == status.used


@pytest.mark.fault
@pytest.mark.slow
def test_concurrent_normal_calls_leave_the_priority_reserve(tmp_path):
    """Normal calls stop at limit - reserve; priority calls (every 10th) may take the reserve."""
    path = tmp_path / "quota.sqlite3"
    with QuotaLedger(path) as ledger:
        ledger.define(QuotaSpec("api", daily_limit=3_000, priority_reserve=1_000))
    granted = _run(path, units=3, priority_every=10)
    with QuotaLedger(path) as ledger:
        status = ledger.status("api")
        rows = [r for r in ledger.requests("api", limit=PROCS * CALLS + 10) if r.state != "denied"]
    assert status.used == 3 * len(granted) == sum(r.units for r in rows) <= 3_000
    normal = sum(r.units for r in rows if not r.priority)
    assert normal <= 2_000
    # 1,600 priority calls of 3 units want far more than the reserve: the whole limit is used (to a unit).
    assert status.used > 3_000 - 3


def test_durable_ledger_under_concurrency(tmp_path):
    """The default (fsync per grant) with fewer calls: 4 x 300 reservations for 500 units."""
    path = tmp_path / "quota.sqlite3"
    with QuotaLedger(path) as ledger:
        ledger.define(QuotaSpec("api", daily_limit=500))
    granted = _run(path, durable=True, procs=4, calls=300)
    with QuotaLedger(path) as ledger:
        assert len(granted) == 500 == ledger.status("api").used


def test_threads_sharing_one_ledger(tmp_path):
    """A threads-pool worker: one ledger object, a connection per thread, same guarantees."""
    import threading

    with QuotaLedger(tmp_path / "quota.sqlite3", durable=False) as ledger:
        ledger.define(QuotaSpec("api", daily_limit=1_000))
        granted: list[str] = []
        lock = threading.Lock()

        def hammer(t: int) -> None:
            for i in range(300):
                try:
                    ledger.reserve("api", 1, f"t{t}-{i}")
                except QuotaExhausted:
                    continue
                with lock:
                    granted.append(f"t{t}-{i}")

        threads = [threading.Thread(target=hammer, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(granted) == 1_000 == ledger.status("api").used
