"""The outbox in the archive (SQLite and PostgreSQL): alert history -> notifications once,
leased claims, fenced outcomes, nothing lost across a restart."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from cloud.alerts import AlertService
from cloud.archive import SCHEMA_VERSION, Store
from cloud.notify.config import NotifySettings
from cloud.notify.dispatch import Dispatcher, backoff_s
from cloud.notify.records import Attempt
from tests.cloud.alerts.test_alarm_order import second_store
from tests.cloud.notify.support import T0, Clock, seed, site_alert, webhook_recipient

SETTINGS = NotifySettings(lease_s=30, expiry_s=3600)


def dispatcher(store: Store, clock: Clock, worker: str = "w1") -> Dispatcher:
    return Dispatcher(store=store, channels={}, settings=SETTINGS, clock_ms=clock, worker=worker)


async def test_alert_changes_become_notifications_once(store: Store) -> None:
    await seed(store)
    await store.put_recipient(webhook_recipient("disp", "http://h/d", notify_close=True))
    await store.put_recipient(webhook_recipient("boss", "http://h/b", tier="safety_manager"))
    await store.put_recipient(
        webhook_recipient("wuxi", "http://h/w", enterprise=None, tier="regulator", region="320200")
    )
    await store.put_recipient(
        webhook_recipient(
            "suzhou", "http://h/s", enterprise=None, tier="regulator", region="320500"
        )
    )
    clock = Clock()
    worker = dispatcher(store, clock)
    opened = await site_alert(store)
    assert await worker.sweep() == 2  # the dispatcher and Wuxi's regulator, at once
    assert await worker.sweep() == 0  # read again: nothing new
    await site_alert(store, level="HH")  # a higher severity: an escalation, every tier
    await AlertService(store).acknowledge(opened.id, by="d", now_ms=T0 + 1)  # tells no one
    await AlertService(store).clear_condition(enterprise_id="e1", key=opened.key, now_ms=T0 + 2)
    assert await worker.sweep() == 4
    found = await store.list_notifications(opened.id)
    assert sorted((n.event, n.recipient_id) for n in found) == sorted([
        ("open", "disp"), ("open", "wuxi"), ("escalate", "disp"), ("escalate", "boss"),
        ("escalate", "wuxi"), ("close", "disp"),
    ])  # fmt: skip
    assert {n.status for n in found} == {"pending"}
    assert await store.list_notifications("no-such-alert") == []


async def test_claims_are_leased_and_outcomes_fenced(store: Store) -> None:
    await seed(store)
    await store.put_recipient(webhook_recipient("disp", "http://h/d"))
    clock = Clock()
    await site_alert(store)
    await dispatcher(store, clock).sweep()
    first = await store.claim_notifications("w1", now_ms=clock(), lease_ms=30_000, limit=10)
    assert [c.attempt for c in first] == [1]
    assert await store.claim_notifications("w2", now_ms=clock(), lease_ms=30_000, limit=10) == []
    clock.advance(31)  # w1 died holding it: the lease ends, w2 takes it
    second = await store.claim_notifications("w2", now_ms=clock(), lease_ms=30_000, limit=10)
    assert [(c.id, c.attempt) for c in second] == [(first[0].id, 2)]
    late = Attempt(ts_ms=clock(), worker="w1", outcome="sent", code=200)
    assert not await store.finish_notification(
        first[0], late, status="sent", next_ms=clock(), now_ms=clock()
    )
    done = Attempt(ts_ms=clock(), worker="w2", outcome="sent", code=200)
    assert await store.finish_notification(
        second[0], done, status="sent", next_ms=clock(), now_ms=clock()
    )
    [row] = await store.list_notifications(first[0].alert_id)
    assert (row.status, row.attempts, row.done_ms) == ("sent", 2, clock())
    assert [a.worker for a in row.history] == ["w1", "w2"]  # both attempts are visible
    assert await store.notification_counts() == {"sent": 1}


async def test_nothing_pending_is_lost_across_a_restart(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}"
    clock = Clock()
    store = await Store.connect(url)
    await seed(store)
    await store.put_recipient(webhook_recipient("disp", "http://h/d"))
    await site_alert(store)
    await dispatcher(store, clock).sweep()
    await site_alert(store, key="sensor:s1:LT02:H")  # opened, then the cloud stops: not swept
    await store.close()
    again = await Store.connect(url)
    try:
        await dispatcher(again, clock).sweep()
        claimed = await again.claim_notifications("w", now_ms=clock(), lease_ms=1000, limit=10)
        assert len(claimed) == 2
    finally:
        await again.close()


async def test_expired_notifications_are_not_claimed(store: Store) -> None:
    await seed(store)
    await store.put_recipient(webhook_recipient("disp", "http://h/d"))
    clock = Clock()
    opened = await site_alert(store)
    await dispatcher(store, clock).sweep()
    clock.advance(3600)
    assert await store.claim_notifications("w", now_ms=clock(), lease_ms=1000, limit=10) == []
    [row] = await store.list_notifications(opened.id)
    assert row.status == "expired"


def test_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    delays = [backoff_s(n, base_s=2, max_s=60, jitter=1.0) for n in range(1, 8)]
    assert delays == [2, 4, 8, 16, 32, 60, 60]
    assert backoff_s(3, base_s=2, max_s=60, jitter=0.5) == 4
    assert backoff_s(10_000, base_s=2, max_s=60, jitter=0.75) == 45


async def test_retention_removes_finished_notifications_with_their_attempts(store: Store) -> None:
    await seed(store)
    await store.put_recipient(webhook_recipient("disp", "http://h/d"))
    await store.put_recipient(webhook_recipient("desk", "http://h/k"))
    clock = Clock()
    opened = await site_alert(store)
    await dispatcher(store, clock).sweep()
    [first] = await store.claim_notifications("w", now_ms=clock(), lease_ms=1000, limit=1)
    sent = Attempt(ts_ms=clock(), worker="w", outcome="sent", code=200)
    await store.finish_notification(first, sent, status="sent", next_ms=clock(), now_ms=clock())
    done = await store.apply_retention(clock() + 2 * 86_400_000, alerts_days=1)
    assert (done["notifications"], done["notify_attempts"]) == (1, 1)
    assert [n.status for n in await store.list_notifications(opened.id)] == ["pending"]


async def test_a_schema_7_database_does_not_send_its_old_history(store: Store) -> None:
    await seed(store)
    old = await site_alert(store)
    async with store.engine.begin() as conn:
        for table in ("notifications", "notify_attempts", "notify_recipients", "notify_cursor",
                      "alert_escalations", "maintenance_windows", "notify_swept"):  # fmt: skip
            await conn.execute(text(f"DROP TABLE {table}"))
        await conn.execute(text("UPDATE schema_meta SET value = '7' WHERE key = 'version'"))
    upgraded = await second_store(store)
    try:
        assert await upgraded.schema_version() == SCHEMA_VERSION
        await upgraded.put_recipient(webhook_recipient("disp", "http://h/d"))
        clock = Clock()
        assert await dispatcher(upgraded, clock).sweep() == 0  # history from before: not sent
        fresh = await site_alert(upgraded, key="sensor:s1:LT02:H")
        assert await dispatcher(upgraded, clock).sweep() == 1
        assert await upgraded.list_notifications(old.id) == []
        assert len(await upgraded.list_notifications(fresh.id)) == 1
    finally:
        await upgraded.close()


async def test_each_history_entry_is_routed_once_even_when_read_again(store: Store) -> None:
    """A sweep on PostgreSQL looks below its cursor again: what it routed before (to nobody,
    here) is not routed again to a recipient added since."""
    await seed(store)
    clock = Clock()
    worker = dispatcher(store, clock)
    before = await site_alert(store)
    assert await worker.sweep() == 0  # nobody to tell yet
    await store.put_recipient(webhook_recipient("disp", "http://h/d"))
    assert await worker.sweep() == 0
    after = await site_alert(store, key="sensor:s1:LT02:H")
    assert await worker.sweep() == 1
    assert await store.list_notifications(before.id) == []
    assert len(await store.list_notifications(after.id)) == 1
