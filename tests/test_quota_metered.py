"""The metered decorator and MeteredTask base, run in-process (Celery's apply) on a real ledger file."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from celery import Celery

from stalk.embedded.quota import (
    MeteredTask,
    QuotaExhausted,
    QuotaLedger,
    charge_key,
    forget_ledgers,
    ledger_for_app,
    metered,
)


@pytest.fixture
def app(tmp_path):
    app = Celery("metered_test", set_as_current=False)
    app.conf.stalk_quota_db = str(tmp_path / "quota.sqlite3")
    app.conf.stalk_quotas = {"api": {"daily_limit": 20, "priority_reserve": 5, "costs": {"search": 4},
                                     "refund_failed": True}}
    yield app
    forget_ledgers()


def used(app) -> int:
    return ledger_for_app(app).status("api").used


def test_decorated_task_is_charged_per_run_and_defines_the_apps_quotas(app):
    @app.task(bind=True, name="t.search")
    @metered("api", units="search")
    def search(self, q, priority=False):
        return q.upper()

    assert search.apply(("a",), task_id="id-1").get() == "A"
    assert search.apply(("a",), task_id="id-1").get() == "A"  # same id: not charged again
    assert search.apply(("b",), task_id="id-2").get() == "B"
    assert used(app) == 8
    assert ledger_for_app(app).reservation("id-1").state == "ok"


def test_units_from_the_arguments_and_priority_by_position(app):
    @app.task(bind=True, name="t.batch")
    @metered("api", units=lambda items, urgent=False: len(items), priority_arg="urgent")
    def batch(self, items, urgent=False):
        return len(items)

    batch.apply((list(range(15)),), task_id="n").get()
    with pytest.raises(QuotaExhausted):
        batch.apply((list(range(3)),), task_id="n2").get()  # 15 + 3 > 20 - 5
    assert batch.apply((list(range(5)), True), task_id="p").get() == 5  # priority, positionally
    assert used(app) == 20


def test_failed_run_is_settled_failed_and_refunded_per_spec(app):
    @app.task(bind=True, name="t.boom")
    @metered("api", units=3)
    def boom(self):
        raise RuntimeError("API said no")

    with pytest.raises(RuntimeError):
        boom.apply(task_id="b1").get()
    assert ledger_for_app(app).reservation("b1").state == "refunded"
    assert used(app) == 0


def test_non_priority_falls_back_when_exhausted(app):
    calls = []

    def from_cache(task, exc, q, priority=False):
        calls.append((task.name, exc.name, exc.priority, exc.resets_at.tzinfo is not None))
        return f"cached:{q}"

    @app.task(bind=True, name="t.fetch")
    @metered("api", units=15, on_exhausted=from_cache)
    def fetch(self, q, priority=False):
        return f"api:{q}"

    assert fetch.apply(("x",), task_id="f1").get() == "api:x"
    assert fetch.apply(("y",), task_id="f2").get() == "cached:y"
    assert calls == [("t.fetch", "api", False, True)]


def test_metered_task_base_class_and_charges_inside_the_body(app):
    @app.task(bind=True, base=MeteredTask, name="t.lookup", quota="api", units=2)
    def lookup(self, item):
        return item

    @app.task(bind=True, base=MeteredTask, name="t.two_calls")
    def two_calls(self):
        with self.charge("api", "search") as first:
            pass
        with self.charge("api", 1) as second:
            pass
        return [first.key, second.key]

    @app.task(base=MeteredTask, name="t.unbound", quota="api", units=1)
    def unbound(item):
        return item

    assert lookup.apply(("z",), task_id="L").get() == "z"
    assert two_calls.apply(task_id="T").get() == ["T", "T#2"]
    assert two_calls.apply(task_id="T").get() == ["T", "T#2"]  # a redelivery replays the same keys
    assert unbound.apply(("u",), task_id="U").get() == "u"
    assert used(app) == 2 + 4 + 1 + 1


def test_exhausted_hook_on_the_base_class(app):
    class Fallback(MeteredTask):
        abstract = True

        def on_exhausted(self, exc, *args, **kwargs):
            return "fallback"

    @app.task(bind=True, base=Fallback, name="t.big", quota="api", units=15)
    def big(self):
        return "api"

    assert big.apply(task_id="b1").get() == "api"
    assert big.apply(task_id="b2").get() == "fallback"


def test_charge_keys():
    assert charge_key(SimpleNamespace(id="abc", retries=0)) == "abc"
    assert charge_key(SimpleNamespace(id="abc", retries=2)) == "abc#retry2"
    request = SimpleNamespace(id="abc", retries=0)
    assert [charge_key(request) for _ in range(3)] == ["abc", "abc#2", "abc#3"]
    assert charge_key(SimpleNamespace(id=None)).startswith("direct-")


@pytest.mark.procs
def test_eager_stack_charges_its_own_ledger(config_factory):
    from stalk.embedded import Stack

    app = Celery("eager_quota_test", set_as_current=False)  # its own app: eager settings stay here
    app.conf.stalk_quotas = {"api": {"daily_limit": 3}}

    @app.task(bind=True, name="t.eager")
    @metered("api", units=2)
    def eager(self, x):
        return x

    stack = Stack(config_factory(broker={"mode": "eager"}, beat=False), app=app)
    try:
        stack.start(wait=True, timeout=60)
        assert eager.apply(("x",), task_id="eager-1").get() == "x"
        with pytest.raises(QuotaExhausted):
            eager.apply(("y",), task_id="eager-2").get()
        with QuotaLedger(stack.paths.quota_db, create=False) as ledger:
            assert ledger.reservation("eager-1").units == 2
            assert ledger.status("api").used == 2
    finally:
        stack.stop()
        forget_ledgers()
