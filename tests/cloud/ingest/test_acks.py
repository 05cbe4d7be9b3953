"""What a round answers for: durable items are admitted and acknowledged, nothing else.

The ledger admits a seq only once its write is durable, and ``Accepted.acked`` (what the gateway
may delete) holds exactly the durable items, the repeats of items known from before, and the
items refused and kept for inspection.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import wire
from cloud.archive import StoreError
from cloud.ingest import Ingest
from cloud.models import Asset, Enterprise
from tests.cloud.ingest_support import batch, now_ms


def fix(gw: str, seq: int, t: int, *, lat: float = 31.0, asset: str | None = None) -> wire.Fix:
    return wire.Fix(seq=seq, ts=t + seq, asset=asset or f"{gw}-a", lat=lat, lon=120.0)


class FailFirst:
    """Wraps an async method to raise ``StoreError`` for its first ``failures`` calls."""

    def __init__(self, real: Callable[..., Awaitable[Any]], failures: int) -> None:
        self.real, self.failures, self.calls = real, failures, 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise StoreError("database is away")
        return await self.real(*args, **kwargs)


async def test_durable_items_are_admitted_and_acknowledged(ingest: Ingest, unique_id: str) -> None:
    gw, t = unique_id, now_ms()
    accepted = await ingest.handle(wire.data_topic(gw), batch(gw, [fix(gw, s, t) for s in (1, 2)]))
    assert accepted.acked == {gw: [1, 2]}
    assert await ingest.ledger.seen_seqs(gw, [1, 2, 3]) == [1, 2]
    again = await ingest.handle(wire.data_topic(gw), batch(gw, [fix(gw, s, t) for s in (2, 3)]))
    assert sorted(again.acked[gw]) == [2, 3], "a repeat is acknowledged again"
    assert [r.item.seq for r in again.fixes] == [3]
    assert ingest.counters["duplicate"] == 1


async def test_a_write_given_up_is_neither_admitted_nor_acknowledged(
    ingest: Ingest, unique_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw, t = unique_id, now_ms()
    ingest.archive_attempts, ingest.archive_retry_s = 2, 0.01
    failing = FailFirst(ingest.store.insert_fixes, 2)
    monkeypatch.setattr(ingest.store, "insert_fixes", failing)
    payload = batch(gw, [fix(gw, 1, t)])
    lost = await ingest.handle(wire.data_topic(gw), payload)
    assert lost.acked == {}
    assert await ingest.ledger.seen_seqs(gw, [1]) == []
    # The gateway sends it again after its timeout: taken, not dropped as a duplicate.
    resent = await ingest.handle(wire.data_topic(gw), payload)
    assert resent.acked == {gw: [1]}
    assert [f.seq for f in await ingest.store.track(f"{gw}-a", 0, t + 10)] == [1]


async def test_a_repeat_with_other_content_is_kept_as_a_conflict(
    ingest: Ingest, unique_id: str
) -> None:
    gw, t = unique_id, now_ms()
    await ingest.handle(wire.data_topic(gw), batch(gw, [fix(gw, 1, t)]))
    forged = await ingest.handle(wire.data_topic(gw), batch(gw, [fix(gw, 1, t, lat=32.0)]))
    assert forged.acked == {gw: [1]}
    assert ingest.counters["rejected.duplicate_conflict"] == 1
    assert ingest.counters["duplicate"] == 0
    kept = [r for r in ingest.rejected if r.reason == "duplicate_conflict"]
    assert len(kept) == 1
    assert b"32.0" in kept[0].payload
    track = await ingest.store.track(f"{gw}-a", 0, t + 10)
    assert [f.lat for f in track] == [31.0], "the archived version stays"


async def test_a_foreign_asset_is_refused_kept_and_acknowledged(
    ingest: Ingest, unique_id: str
) -> None:
    gw, t = unique_id, now_ms()
    await ingest.store.put_enterprise(Enterprise(id="e2", name="other", region="320281"))
    await ingest.store.put_asset(Asset(id=f"{gw}-theirs", enterprise_id="e2", asset_class="coach"))
    accepted = await ingest.handle(
        wire.data_topic(gw), batch(gw, [fix(gw, 1, t), fix(gw, 2, t, asset=f"{gw}-theirs")])
    )
    assert sorted(accepted.acked[gw]) == [1, 2]
    assert ingest.counters["rejected.foreign_asset"] == 1
    assert await ingest.ledger.seen_seqs(gw, [1, 2]) == [1]


async def test_an_alarm_that_fails_is_retried_and_never_vanishes(
    ingest: Ingest, unique_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw, t = unique_id, now_ms()
    ingest.archive_attempts, ingest.archive_retry_s = 2, 0.01
    store = ingest.store
    alarm = wire.Alarm(seq=5, ts=t, state="raise", level="HH", site="s1", point="GD101", value=60)
    payload = batch(gw, [alarm])
    # Every attempt fails, the cleaned one too: the alarm is not acknowledged.
    insert_alert = store.insert_alert
    monkeypatch.setattr(store, "insert_alert", FailFirst(insert_alert, 10))
    first = await ingest.handle(wire.alarm_topic(gw), payload)
    assert first.acked == {}
    assert ingest.counters["alert_error"] == 1
    assert await store.list_alerts(["e1"]) == []
    # The gateway sends it again once the database takes it: the alert opens now, although
    # the alarm's mark was recorded by the failed attempts.
    monkeypatch.setattr(store, "insert_alert", FailFirst(insert_alert, 1))
    second = await ingest.handle(wire.alarm_topic(gw), payload)
    assert second.acked == {gw: [5]}
    (opened,) = await store.list_alerts(["e1"])
    assert (opened.point, opened.state) == ("GD101", "open")


async def test_a_payload_nested_5000_deep_is_malformed_input_not_a_registry_error(
    ingest: Ingest, unique_id: str
) -> None:
    gw = unique_id
    deep = b'{"v":1,"gw":"' + gw.encode() + b'","items":[' + b"[" * 5000 + b"]" * 5000 + b"]}"
    accepted = await ingest.handle(wire.data_topic(gw), deep)
    assert accepted.acked == {}
    assert ingest.counters["rejected.too_deep"] == 1
    assert ingest.counters["rejected.registry_error"] == 0


async def test_applying_again_never_brings_back_an_older_alarm(
    ingest: Ingest, unique_id: str
) -> None:
    """``again`` re-applies exactly the newest recorded alarm, never an older one."""
    gw, t = unique_id, now_ms()
    alerts = ingest.alerts
    assert alerts is not None
    on_alarm = functools.partial(alerts.on_alarm, enterprise_id="e1", gateway_id=gw, now_ms=t)
    raised = wire.Alarm(seq=1, ts=t, state="raise", level="HH", site="s1", point="P")
    cleared = wire.Alarm(seq=2, ts=t + 1, state="clear", level="HH", site="s1", point="P")
    assert await on_alarm(raised) is not None
    assert await on_alarm(cleared) is not None
    assert await on_alarm(raised, again=True) is None
    assert alerts.stale_alarms == 1
    assert [a.state for a in await ingest.store.list_alerts(["e1"])] == ["closed"]
