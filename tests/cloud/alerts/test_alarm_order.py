"""Edge alarms are applied per condition in observation order, whatever order workers take them.

Every test runs on SQLite and PostgreSQL (the ``store`` fixture). Interleavings of two workers
are forced by :class:`Paused`, the real store stopping once before one of its calls.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Sequence
from typing import Literal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import wire
from cloud.alerts import SYSTEM, AlertService, alarm_key
from cloud.archive import SCHEMA_VERSION, AlarmMark, Store
from cloud.ingest import Ingest
from cloud.models import Alert, AlertEvent
from tests.cloud.ingest_support import batch, now_ms

T0 = 1_763_856_000_000  # 2025-11-23 00:00 UTC
E1, GW = "e1", "g1"
State = Literal["raise", "clear"]


def alarm(state: State, ts: int, seq: int, point: str = "GD01") -> wire.Alarm:
    return wire.Alarm(
        seq=seq, ts=ts, state=state, level="HH", site="s1", point=point, value=55.0, limit=50.0
    )


def key_of(point: str) -> str:
    return alarm_key(alarm("raise", T0, 1, point), GW)


async def apply(service: AlertService, item: wire.Alarm, now: int = T0 + 60_000) -> Alert | None:
    return await service.on_alarm(item, enterprise_id=E1, gateway_id=GW, now_ms=now)


async def is_open(store: Store, point: str = "GD01") -> bool:
    return await store.open_alert(E1, key_of(point)) is not None


async def second_store(store: Store) -> Store:
    """Another connection pool on the same database, as another worker process has."""
    schema = None
    if store.dialect == "postgresql":
        async with store.engine.connect() as conn:
            schema = await conn.scalar(text("SELECT current_schema()"))
    return await Store.connect(
        store.engine.url.render_as_string(hide_password=False), schema=schema
    )


class Paused(Store):
    """The real store over ``engine``, stopping once before its first call of ``method``
    (``open_alert``, ``update_alert`` or ``alarm_mark``) until :attr:`release` is set."""

    def __init__(self, engine: AsyncEngine, method: str) -> None:
        super().__init__(engine)
        self.method = method
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    async def _gate(self, method: str) -> None:
        if method == self.method and not self.reached.is_set():
            self.reached.set()
            await self.release.wait()

    async def open_alert(self, enterprise_id: str, key: str) -> Alert | None:
        await self._gate("open_alert")
        return await super().open_alert(enterprise_id, key)

    async def update_alert(
        self,
        alert: Alert,
        event: AlertEvent | None = None,
        *,
        expect_state: str | None = None,
        if_mark: AlarmMark | None = None,
    ) -> bool:
        await self._gate("update_alert")
        return await super().update_alert(alert, event, expect_state=expect_state, if_mark=if_mark)

    async def alarm_mark(self, enterprise_id: str, key: str) -> AlarmMark | None:
        await self._gate("alarm_mark")
        return await super().alarm_mark(enterprise_id, key)


async def paused_until_reached(
    store: Store, method: str, item: wire.Alarm
) -> tuple[Paused, asyncio.Task[Alert | None]]:
    """Start ``item`` on a worker of its own; return once it stopped before ``method``."""
    paused = Paused(store.engine, method)
    task = asyncio.create_task(apply(AlertService(paused), item))
    await asyncio.wait_for(paused.reached.wait(), 10.0)
    return paused, task


async def test_a_clear_processed_before_its_older_raise_leaves_no_open_alert(
    store: Store,
) -> None:
    service = AlertService(store)
    assert await apply(service, alarm("clear", T0 + 2_000, 2)) is None
    assert await apply(service, alarm("raise", T0 + 1_000, 1)) is None
    assert not await is_open(store)
    assert await store.list_alerts([E1]) == []
    assert service.stale_alarms == 1
    assert await store.alarm_mark(E1, key_of("GD01")) == AlarmMark(
        ts_ms=T0 + 2_000, seq=2, state="clear", gateway_id=GW
    )


async def test_a_gateway_whose_clock_went_back_still_has_its_alarms_applied(
    store: Store,
) -> None:
    # Its RTC was reset after a power cut: the gas alarm it raises next carries a time long
    # before the clear it sent earlier, but its seq says it came after: it must open an alert.
    service = AlertService(store)
    await apply(service, alarm("raise", T0, 10))
    await apply(service, alarm("clear", T0 + 1_000, 11))
    reset = T0 - 20 * 365 * 86_400_000
    assert await apply(service, alarm("raise", reset, 12)) is not None
    assert await is_open(store)
    assert service.stale_alarms == 0
    assert await apply(service, alarm("raise", T0 + 500, 9)) is None  # an old one, late
    assert service.stale_alarms == 1


@pytest.mark.parametrize(
    "states", [("raise", "clear", "raise"), ("clear", "raise", "clear")], ids=["r-c-r", "c-r-c"]
)
async def test_shuffled_orders_end_as_the_newest_event_says(
    store: Store, states: tuple[State, State, State]
) -> None:
    service = AlertService(store)
    events = [alarm(state, T0 + n * 1_000, n + 1) for n, state in enumerate(states)]
    for n, order in enumerate(itertools.permutations(events)):
        point = f"P{n}"
        for item in order:
            await apply(service, alarm(item.state, item.ts, item.seq, point))
        assert await is_open(store, point) == (states[-1] == "raise"), [i.seq for i in order]
    # An event after a newer one is ignored: 7 of the 18 (those not newer than all before).
    assert service.stale_alarms == 7


async def test_the_seq_breaks_a_tie_of_equal_times(store: Store) -> None:
    service = AlertService(store)
    assert await apply(service, alarm("clear", T0, 6)) is None
    assert await apply(service, alarm("raise", T0, 5)) is None, "older by seq: ignored"
    assert not await is_open(store)
    opened = await apply(service, alarm("raise", T0, 7))
    assert opened is not None
    assert opened.state == "open"
    assert service.stale_alarms == 1


@pytest.mark.parametrize("clear_first", [False, True])
async def test_a_raise_and_a_clear_with_equal_time_and_seq_end_cleared(
    store: Store, clear_first: bool
) -> None:
    service = AlertService(store)
    items = [alarm("raise", T0, 1), alarm("clear", T0, 1)]
    for item in reversed(items) if clear_first else items:
        await apply(service, item)
    assert not await is_open(store)
    assert service.stale_alarms == int(clear_first)


async def test_a_stale_duplicate_is_ignored(store: Store) -> None:
    service = AlertService(store)
    opened = await apply(service, alarm("raise", T0, 1))
    closed = await apply(service, alarm("clear", T0 + 1_000, 2))
    assert opened is not None
    assert closed is not None
    assert (closed.id, closed.state) == (opened.id, "closed")
    assert await apply(service, alarm("raise", T0, 1)) is None
    assert await apply(service, alarm("clear", T0 + 1_000, 2)) is None, "the same one again"
    assert service.stale_alarms == 2
    assert not await is_open(store)
    assert [a.id for a in await store.list_alerts([E1])] == [opened.id]


async def test_conditions_raised_by_cloud_rules_ignore_edge_marks(store: Store) -> None:
    service = AlertService(store)
    await apply(service, alarm("clear", T0 + 5_000, 9))
    key = key_of("GD01")
    # A rule of the cloud raises and clears the same key directly: no ordering applies.
    raised = await service.raise_condition(
        enterprise_id=E1, key=key, kind="rule", level="HH", now_ms=T0
    )
    assert raised.state == "open"
    cleared = await service.clear_condition(enterprise_id=E1, key=key, now_ms=T0 + 1)
    assert cleared is not None
    assert cleared.state == "closed"
    assert service.stale_alarms == 0


# -- forced interleavings of one raise and one clear on two workers ----------------------------


async def test_newer_clear_acting_before_the_raise_opens(store: Store) -> None:
    """R advances, C advances and finds nothing open, R opens: R closes its own alert."""
    paused, raising = await paused_until_reached(store, "open_alert", alarm("raise", T0, 1))
    assert await apply(AlertService(store), alarm("clear", T0 + 1_000, 2)) is None
    paused.release.set()
    result = await raising
    assert result is not None
    assert result.state == "closed"
    assert not await is_open(store)
    last = result.events[-1]
    assert (last.action, last.by) == ("close", SYSTEM)
    assert "cleared by a later edge event" in last.comment


async def test_newer_clear_acting_after_the_raise_opened(store: Store) -> None:
    """R advances and opens, C advances and closes it, R reads the mark: nothing left to do."""
    paused, raising = await paused_until_reached(store, "alarm_mark", alarm("raise", T0, 1))
    closed = await apply(AlertService(store), alarm("clear", T0 + 1_000, 2))
    assert closed is not None
    assert closed.state == "closed"
    paused.release.set()
    result = await raising
    assert result is not None
    assert (result.id, result.state) == (closed.id, "closed")
    assert not await is_open(store)
    assert [e.action for e in result.events] == ["open", "close"]


@pytest.mark.parametrize("method", ["open_alert", "update_alert"])
async def test_an_older_clear_never_closes_the_alert_a_newer_raise_keeps(
    store: Store, method: str
) -> None:
    """An alert is open (an earlier raise); C advances, R (newer) advances and keeps the alert,
    then C tries to close it: refused, C is no longer the newest."""
    service = AlertService(store)
    opened = await apply(service, alarm("raise", T0, 1))
    assert opened is not None
    paused, clearing = await paused_until_reached(store, method, alarm("clear", T0 + 1_000, 2))
    kept = await apply(service, alarm("raise", T0 + 2_000, 3))
    assert kept is not None
    assert kept.id == opened.id
    paused.release.set()
    assert await clearing is None
    still = await store.get_alert(opened.id)
    assert still is not None
    assert still.state == "open"


async def test_an_older_raise_after_the_clear_advanced_is_ignored(store: Store) -> None:
    """C advances (then stops); R, older, cannot advance past it and does nothing."""
    service = AlertService(store)
    opened = await apply(service, alarm("raise", T0, 1))
    assert opened is not None
    paused, clearing = await paused_until_reached(
        store, "open_alert", alarm("clear", T0 + 2_000, 3)
    )
    assert await apply(service, alarm("raise", T0 + 1_000, 2)) is None
    paused.release.set()
    closed = await clearing
    assert closed is not None
    assert (closed.id, closed.state) == (opened.id, "closed")


async def test_two_workers_racing_always_end_as_the_newest_event(store: Store) -> None:
    """50 rounds of a raise and a clear of one condition processed at once by two workers (their
    own connection pools), in random order, with random newest, an alert open or not before."""
    rng = random.Random(20251123)
    other = await second_store(store)
    try:
        worker_a, worker_b = AlertService(store), AlertService(other)

        async def run(worker: AlertService, item: wire.Alarm, delay_s: float) -> None:
            await asyncio.sleep(delay_s)
            await apply(worker, item)

        for n in range(50):
            point = f"R{n}"
            if rng.random() < 0.5:  # an earlier raise left the alert open
                await apply(worker_a, alarm("raise", T0, 1, point))
            newest: State = rng.choice(["raise", "clear"])
            older: State = "clear" if newest == "raise" else "raise"
            items = [alarm(older, T0 + 1_000, 2, point), alarm(newest, T0 + 2_000, 3, point)]
            rng.shuffle(items)
            await asyncio.gather(
                run(worker_a, items[0], rng.random() * 0.003),
                run(worker_b, items[1], rng.random() * 0.003),
            )
            assert await is_open(store, point) == (newest == "raise"), (n, newest, items)
    finally:
        await other.close()


# -- schema and ingest ------------------------------------------------------------------------


async def test_a_schema_3_database_gets_the_alarm_marks(store: Store) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(text("DROP TABLE alarm_marks"))
        await conn.execute(text("UPDATE schema_meta SET value = '3' WHERE key = 'version'"))
    again = await second_store(store)
    try:
        assert await again.schema_version() == SCHEMA_VERSION
        mark = AlarmMark(ts_ms=T0, seq=1, state="raise")
        assert await again.advance_alarm_mark(E1, "k", mark)
        assert not await again.advance_alarm_mark(E1, "k", mark)
        assert await again.alarm_mark(E1, "k") == mark
    finally:
        await again.close()
    reopened = await second_store(store)  # the step is not run twice; the data stays
    try:
        assert await reopened.alarm_mark(E1, "k") == AlarmMark(ts_ms=T0, seq=1, state="raise")
    finally:
        await reopened.close()


async def test_marks_advance_only_forward(store: Store) -> None:
    def mark(ts: int, seq: int, state: State = "raise", gw: str = "gA") -> AlarmMark:
        return AlarmMark(ts_ms=ts, seq=seq, state=state, gateway_id=gw)

    steps: Sequence[tuple[AlarmMark, bool]] = [
        (mark(T0, 5), True),
        (mark(T0, 4, "clear"), False),  # the same gateway, a lower seq
        (mark(T0 - 60_000, 9, "clear"), True),  # the same gateway, a higher seq: clock went back
        (mark(T0 - 60_000, 9, "clear"), False),  # a duplicate
        (mark(T0 - 60_001, 30, gw="gB"), False),  # another gateway: by time, earlier
        (mark(T0 + 1, 1, gw="gB"), True),  # another gateway, later
        (mark(T0 + 1, 1, "clear", gw="gB"), True),  # equal time and seq: the clear is the later
        (mark(T0 + 1, 1, gw="gB"), False),
        (mark(T0 + 1, 1, "clear", gw="gB"), False),
    ]
    for new, advanced in steps:
        assert await store.advance_alarm_mark(E1, "k", new) == advanced, new
    assert await store.alarm_mark(E1, "k") == mark(T0 + 1, 1, "clear", gw="gB")
    assert await store.alarm_mark(E1, "other") is None
    assert await store.alarm_mark("e2", "k") is None


@pytest.mark.services
async def test_ingest_handling_the_clear_batch_before_the_raise_batch(
    ingest: Ingest, unique_id: str
) -> None:
    """A gateway drains its backlog after an outage; the message with the clear is handled
    before the one with the raise it follows: no alert may stay open."""
    gw, t = unique_id, now_ms() - 30_000
    raised = alarm("raise", t, 1)
    cleared = alarm("clear", t + 5_000, 2)
    await ingest.handle_many([(wire.alarm_topic(gw), batch(gw, [cleared]))])
    await ingest.handle_many([(wire.alarm_topic(gw), batch(gw, [raised]))])
    assert ingest.counters["accepted.alarm"] == 2
    assert ingest.counters["alert_error"] == 0
    assert ingest.alerts is not None
    assert ingest.alerts.stale_alarms == 1
    assert await ingest.store.list_alerts([E1], state=("open", "acknowledged")) == []
    # The condition is raised again later: that opens an alert as usual.
    again = alarm("raise", t + 9_000, 3)
    await ingest.handle_many([(wire.alarm_topic(gw), batch(gw, [again]))])
    opened = await ingest.store.list_alerts([E1], state="open")
    assert [(a.point, a.level, a.data["ts"]) for a in opened] == [("GD01", "HH", t + 9_000)]
