"""Alert lifecycle: pure transitions, and the service over each archive backend."""

from __future__ import annotations

import asyncio
import functools
from typing import Literal

import pytest

import wire
from cloud.alerts import AlertService, InvalidTransitionError, alarm_key, new_alert, transition
from cloud.archive import Store
from cloud.live import MemoryLiveState
from cloud.models import Enterprise

T0 = 1_763_856_000_000


def test_transitions_follow_the_lifecycle() -> None:
    alert = new_alert(
        alert_id="x", enterprise_id="e1", key="k", kind="sensor", level="H", now_ms=T0
    )
    acked, event = transition(alert, "acknowledge", by="amy", comment="on it", now_ms=T0 + 1)
    assert (acked.state, acked.acked_by, acked.acked_ms, acked.comment) == (
        "acknowledged",
        "amy",
        T0 + 1,
        "on it",
    )
    assert (event.action, event.by, event.comment) == ("acknowledge", "amy", "on it")
    closed, _ = transition(acked, "close", by="bob", now_ms=T0 + 2)
    assert (closed.state, closed.closed_by) == ("closed", "bob")
    assert [e.action for e in closed.events] == ["open", "acknowledge", "close"]
    with pytest.raises(InvalidTransitionError):
        transition(acked, "acknowledge", by="amy", now_ms=T0 + 3)
    with pytest.raises(InvalidTransitionError):
        transition(closed, "close", by="amy", now_ms=T0 + 3)
    with pytest.raises(InvalidTransitionError):
        transition(closed, "comment", by="amy", comment="late", now_ms=T0 + 3)
    direct, _ = transition(alert, "close", by="amy", now_ms=T0 + 4)
    assert direct.state == "closed"


def test_alarm_keys_name_one_condition() -> None:
    point = wire.Alarm(seq=1, ts=T0, state="raise", level="HH", site="s1", point="GD01")
    asset = wire.Alarm(seq=1, ts=T0, state="raise", level="fault", asset="a1", code="gnss_lost")
    device = wire.Alarm(seq=1, ts=T0, state="raise", level="fault", code="buffer_corrupt")
    assert alarm_key(point, "g1") == "sensor:s1:GD01:HH"
    assert alarm_key(asset, "g1") == "asset:a1:gnss_lost"
    assert alarm_key(device, "g1") == "gateway:g1:buffer_corrupt"
    gas1, gas2 = (
        wire.Alarm(seq=1, ts=T0, state="raise", level="fault", code="device_offline", device=name)
        for name in ("gas-1", "gas-2")
    )
    assert alarm_key(gas1, "g1") == "gateway:g1:device_offline:gas-1"
    assert alarm_key(gas1, "g1") != alarm_key(gas2, "g1")


async def test_one_alert_per_condition_with_history(store: Store) -> None:
    live = MemoryLiveState()
    service = AlertService(store, live)
    async with live.subscribe() as feed:
        first = await service.raise_condition(
            enterprise_id="e1",
            key="geofence:a1:z1",
            kind="geofence",
            level="warning",
            now_ms=T0,
            asset_id="a1",
        )
        again = await service.raise_condition(
            enterprise_id="e1",
            key="geofence:a1:z1",
            kind="geofence",
            level="warning",
            now_ms=T0 + 1,
            asset_id="a1",
        )
        worse = await service.raise_condition(
            enterprise_id="e1",
            key="geofence:a1:z1",
            kind="geofence",
            level="critical",
            now_ms=T0 + 2,
            asset_id="a1",
        )
        events = [await asyncio.wait_for(anext(feed), 5.0) for _ in range(2)]
    assert again.id == first.id == worse.id
    assert worse.level == "critical"
    assert [e.data["level"] for e in events] == ["warning", "critical"]
    assert {e.enterprise_id for e in events} == {"e1"}
    acked = await service.acknowledge(
        first.id, by="dispatcher-7", comment="driver called", now_ms=T0 + 3, enterprise_ids=["e1"]
    )
    assert acked is not None
    assert acked.state == "acknowledged"
    assert await service.close(first.id, by="x", now_ms=T0 + 4, enterprise_ids=["e2"]) is None
    closed = await service.close(
        first.id, by="dispatcher-7", comment="back on route", now_ms=T0 + 5
    )
    assert closed is not None
    with pytest.raises(InvalidTransitionError):
        await service.close(first.id, by="dispatcher-7", now_ms=T0 + 6)
    history = await store.get_alert(first.id)
    assert history is not None
    assert [(e.action, e.by) for e in history.events] == [
        ("open", "system"),
        ("update", "system"),
        ("acknowledge", "dispatcher-7"),
        ("close", "dispatcher-7"),
    ]
    reopened = await service.raise_condition(
        enterprise_id="e1", key="geofence:a1:z1", kind="geofence", level="warning", now_ms=T0 + 7
    )
    assert reopened.id != first.id
    assert await service.clear_condition(enterprise_id="e1", key="nothing-open", now_ms=T0) is None


async def test_concurrent_raises_open_a_single_alert(store: Store) -> None:
    services = [AlertService(store) for _ in range(4)]
    raised = await asyncio.gather(
        *(
            s.raise_condition(
                enterprise_id="e1", key="speed:a1", kind="speed", level="H", now_ms=T0
            )
            for s in services
        )
    )
    assert len({a.id for a in raised}) == 1
    assert len(await store.list_alerts(["e1"])) == 1


async def test_an_alert_closed_meanwhile_is_not_reopened_by_a_stale_action(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dispatcher acknowledges (or comments) while the edge's clear closes the alert: the
    acknowledgement read the alert before the close and must not write it back as open."""
    clearing, dispatcher = AlertService(store), AlertService(store)
    alert = await clearing.raise_condition(
        enterprise_id="e1", key="sensor:s1:GD01:H", kind="sensor", level="H", now_ms=T0
    )
    real_get = store.get_alert

    async def get_then_close_meanwhile(alert_id: str, **kwargs: object) -> object:
        found = await real_get(alert_id, **kwargs)  # type: ignore[arg-type]
        monkeypatch.setattr(store, "get_alert", real_get)
        await clearing.clear_condition(enterprise_id="e1", key=alert.key, now_ms=T0 + 1)
        return found

    monkeypatch.setattr(store, "get_alert", get_then_close_meanwhile)
    with pytest.raises(InvalidTransitionError):
        await dispatcher.acknowledge(alert.id, by="dispatcher-7", now_ms=T0 + 2)
    final = await store.get_alert(alert.id)
    assert final is not None
    assert final.state == "closed"
    assert [e.action for e in final.events] == ["open", "close"]
    assert await store.open_alert("e1", alert.key) is None


async def test_a_raise_on_an_alert_closed_meanwhile_opens_a_new_one(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules, dispatcher = AlertService(store), AlertService(store)
    first = await rules.raise_condition(
        enterprise_id="e1", key="speed:a1", kind="speed", level="warning", now_ms=T0
    )
    real_open = store.open_alert

    async def open_then_closed_meanwhile(enterprise_id: str, key: str) -> object:
        found = await real_open(enterprise_id, key)
        monkeypatch.setattr(store, "open_alert", real_open)
        await dispatcher.close(first.id, by="dispatcher-7", now_ms=T0 + 1)
        return found

    monkeypatch.setattr(store, "open_alert", open_then_closed_meanwhile)
    worse = await rules.raise_condition(
        enterprise_id="e1", key="speed:a1", kind="speed", level="critical", now_ms=T0 + 2
    )
    assert worse.id != first.id
    assert (worse.state, worse.level) == ("open", "critical")
    closed = await store.get_alert(first.id)
    assert closed is not None
    assert (closed.state, [e.action for e in closed.events]) == ("closed", ["open", "close"])


async def test_each_offline_device_is_its_own_alert(store: Store) -> None:
    service = AlertService(store, MemoryLiveState())
    await store.put_enterprise(Enterprise(id="e-dev", name="E", region="320281"))

    def offline(state: Literal["raise", "clear"], device: str) -> wire.Alarm:
        return wire.Alarm(
            seq=1, ts=T0, state=state, level="fault", code="device_offline", site="s1",
            device=device, message=device,
        )  # fmt: skip

    on_alarm = functools.partial(service.on_alarm, enterprise_id="e-dev", gateway_id="g1")
    gas1 = await on_alarm(offline("raise", "gas-1"), now_ms=T0)
    gas2 = await on_alarm(offline("raise", "gas-2"), now_ms=T0 + 1)
    assert gas1 is not None
    assert gas2 is not None
    assert gas1.id != gas2.id
    closed = await on_alarm(offline("clear", "gas-1"), now_ms=T0 + 2)
    assert closed is not None
    assert (closed.id, closed.state) == (gas1.id, "closed")
    still = await store.get_alert(gas2.id)
    assert still is not None
    assert still.state == "open", "gas-2 is still offline"
