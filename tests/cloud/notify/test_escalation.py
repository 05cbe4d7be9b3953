"""Escalation of alerts nobody acknowledged in time (safety managers, then regulators; one
worker applies each step) and suppression by maintenance windows."""

from __future__ import annotations

import asyncio

from cloud.alerts import AlertService, new_alert
from cloud.archive import Store
from cloud.notify.config import NotifySettings
from cloud.notify.dispatch import Dispatcher
from cloud.notify.escalation import Escalator, due_step
from cloud.notify.records import MaintenanceWindow
from tests.cloud.notify.support import T0, Clock, seed, site_alert, webhook_recipient

SETTINGS = NotifySettings(escalate_warning_s=1800, escalate_critical_s=300, escalate_period_s=1)
MIN = 60_000


def test_steps_fall_due_one_at_a_time_per_severity() -> None:
    warning = new_alert(alert_id="a", enterprise_id="e", key="k", kind="x", level="H", now_ms=T0)
    assert due_step(warning, T0 + 29 * MIN, SETTINGS) == 0
    assert due_step(warning, T0 + 30 * MIN, SETTINGS) == 1
    assert due_step(warning, T0 + 600 * MIN, SETTINGS) == 1  # one step at a time
    step1 = warning.__class__(**{**{f: getattr(warning, f) for f in warning.__struct_fields__},
                                 "data": {"escalation": 1}})  # fmt: skip
    assert due_step(step1, T0 + 59 * MIN, SETTINGS) == 0
    assert due_step(step1, T0 + 60 * MIN, SETTINGS) == 2
    critical = new_alert(alert_id="c", enterprise_id="e", key="k", kind="x", level="HH", now_ms=T0)
    assert due_step(critical, T0 + 5 * MIN, SETTINGS) == 1
    info = new_alert(alert_id="i", enterprise_id="e", key="k", kind="x", level="info", now_ms=T0)
    assert due_step(info, T0 + 6000 * MIN, SETTINGS) == 0  # info never escalates by default


async def _people(store: Store) -> None:
    await seed(store)
    await store.put_recipient(webhook_recipient("desk", "http://h/desk", notify_close=True))
    await store.put_recipient(webhook_recipient("boss", "http://h/boss", tier="safety_manager"))
    await store.put_recipient(
        webhook_recipient("wuxi", "http://h/wx", enterprise=None, tier="regulator", region="320200")
    )


async def test_unacknowledged_alerts_escalate_to_safety_managers_then_regulators(
    store: Store,
) -> None:
    await _people(store)
    clock = Clock()
    alerts = AlertService(store)
    worker = Dispatcher(
        store=store, channels={}, settings=SETTINGS, clock_ms=clock, worker="w", alerts=alerts
    )
    truck = await alerts.raise_condition(
        enterprise_id="e1", key="asset:t1:speed", kind="speed", level="warning", now_ms=T0,
        asset_id="t1",
    )  # fmt: skip
    handled = await alerts.raise_condition(
        enterprise_id="e1", key="asset:t2:speed", kind="speed", level="warning", now_ms=T0,
        asset_id="t2",
    )  # fmt: skip
    await alerts.acknowledge(handled.id, by="desk", now_ms=T0 + MIN)
    await worker.run_once()
    clock.advance(30 * 60)
    await worker.run_once()
    clock.advance(30 * 60)
    await worker.run_once()
    clock.advance(300 * 60)
    await worker.run_once()  # nothing beyond step 2
    told = [(n.event, n.recipient_id) for n in await store.list_notifications(truck.id)]
    assert told == [("open", "desk"), ("escalate", "boss"), ("escalate", "wuxi")]
    escalated = await store.get_alert(truck.id)
    assert escalated is not None
    assert (escalated.state, escalated.data["escalation"]) == ("open", 2)
    assert [(n.event, n.recipient_id) for n in await store.list_notifications(handled.id)] == [
        ("open", "desk")
    ]
    await alerts.close(truck.id, by="desk", now_ms=clock())
    await worker.run_once()
    closes = [
        n.recipient_id for n in await store.list_notifications(truck.id) if n.event == "close"
    ]
    assert closes == ["desk"]  # only the desk asked for closes


async def test_two_workers_escalate_a_step_once(store: Store) -> None:
    await _people(store)
    clock = Clock()
    opened = await site_alert(store, level="HH")
    clock.advance(5 * 60)
    escalators = [
        Escalator(store=store, alerts=AlertService(store), settings=SETTINGS, clock_ms=clock)
        for _ in range(4)
    ]
    done = await asyncio.gather(*(e.run_once() for e in escalators))
    assert sum(done) == 1
    alert = await store.get_alert(opened.id)
    assert alert is not None
    steps = [e.data for e in alert.events if e.action == "update"]
    assert len(steps) == 1
    assert steps[0]["data"]["escalation"] == 1


async def test_maintenance_windows_suppress_notifications_and_escalation(store: Store) -> None:
    await _people(store)
    clock = Clock()
    window = MaintenanceWindow(
        id="mw1", enterprise_id="e1", site_id="s1", point="LT01", start_ms=T0 - MIN,
        end_ms=T0 + 600 * MIN, reason="calibration",
    )  # fmt: skip
    await store.put_window(window)
    await store.put_window(
        MaintenanceWindow(id="mw2", enterprise_id="e1", asset_id="t9", start_ms=0, end_ms=1)
    )
    assert [w.id for w in await store.list_windows(["e1"], active_at_ms=T0)] == ["mw1"]
    worker = Dispatcher(
        store=store, channels={}, settings=SETTINGS, clock_ms=clock, worker="w",
        alerts=AlertService(store),
    )  # fmt: skip
    quiet = await site_alert(store)
    loud = await site_alert(store, key="sensor:s1:LT02:H")
    await worker.run_once()
    clock.advance(60 * 60)
    await worker.run_once()
    suppressed = await store.list_notifications(quiet.id)
    assert {(n.status, n.last_error) for n in suppressed} == {
        ("suppressed", "maintenance window mw1")
    }
    assert {n.event for n in suppressed} == {"open"}  # and it did not escalate
    assert {n.event for n in await store.list_notifications(loud.id)} == {"open", "escalate"}
    assert await store.delete_window("mw1", enterprise_ids=["e2"]) is False
    assert await store.delete_window("mw1", enterprise_ids=["e1"]) is True
