"""De-duplication ledger and gap detection across restarts and store errors (no broker needed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import wire
from cloud.archive import StoreError
from cloud.ingest import Ingest
from cloud.live import MemoryLiveState
from tests.cloud.conftest import open_store, register
from tests.cloud.ingest_support import batch, now_ms


def fix(seq: int, ts: int) -> wire.Fix:
    return wire.Fix(seq=seq, ts=ts, asset="a", lat=31.5, lon=120.3)


async def test_embedded_gaps_are_found_across_a_cloud_restart(tmp_path: Path) -> None:
    """The embedded setup keeps its ledger in the archive; the high-water mark must survive too."""
    gw, t = "g-restart", now_ms()
    async with open_store("sqlite", tmp_path) as store:
        await register(store, "e1", gw)
        before = Ingest(store=store, live=MemoryLiveState(), ledger=store)
        await before.handle(wire.data_topic(gw), batch(gw, [fix(n, t + n) for n in (1, 2, 3)]))
        # The cloud restarts (in-process live state is new); 4..6 were lost meanwhile.
        after = Ingest(store=store, live=MemoryLiveState(), ledger=store)
        accepted = await after.handle(
            wire.data_topic(gw), batch(gw, [fix(n, t + n) for n in (7, 8)])
        )
        assert [(g.first_seq, g.last_seq, g.missing) for g in accepted.gaps] == [(4, 6, 3)]
        assert [(g.first_seq, g.missing) for g in await store.list_gaps(gateway_id=gw)] == [(4, 3)]


class Failing:
    """Wraps a ledger method to raise the first ``failures`` times (an injected store fault)."""

    def __init__(self, real: Callable[..., Awaitable[Any]], failures: int) -> None:
        self.real = real
        self.failures = failures
        self.calls = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise StoreError("database is away")
        return await self.real(*args, **kwargs)


@pytest.mark.parametrize("method", ["admit_seqs", "high_water", "missing_seqs"])
@pytest.mark.parametrize("failures", [1, 99])
async def test_a_ledger_error_never_loses_the_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str, failures: int
) -> None:
    gw, t = "g-ledger", now_ms()
    async with open_store("sqlite", tmp_path) as store:
        await register(store, "e1", gw)
        ingest = Ingest(
            store=store, live=MemoryLiveState(), ledger=store, archive_attempts=3, archive_retry_s=0
        )
        await ingest.handle(wire.data_topic(gw), batch(gw, [fix(1, t + 1)]))
        failing = Failing(getattr(store, method), failures)
        monkeypatch.setattr(store, method, failing)
        # 2 lost, 3 and 4 arrive while the ledger fails
        accepted = await ingest.handle(
            wire.data_topic(gw), batch(gw, [fix(3, t + 3), fix(4, t + 4)])
        )
        assert [r.item.seq for r in accepted.fixes] == [3, 4]
        assert [f.seq for f in await store.track("a", 0, t + 10)] == [1, 3, 4]
        if failures == 1:  # a passing blip: retried, nothing else changes
            assert [(g.first_seq, g.missing) for g in accepted.gaps] == [(2, 1)]
            assert ingest.counters["ledger_retry"] == 1
        else:
            assert ingest.counters["ledger_error"] == 1


@pytest.mark.parametrize("failures", [1, 99])
async def test_a_registry_or_live_state_error_never_loses_the_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failures: int
) -> None:
    """One message whose gateway lookup (or status update) fails must not take the others."""
    gw, other, t = "g-ok", "g-flaky", now_ms()
    async with open_store("sqlite", tmp_path) as store:
        await register(store, "e1", gw)
        await register(store, "e2", other)
        live = MemoryLiveState()
        ingest = Ingest(store=store, live=live, ledger=store, archive_attempts=3, archive_retry_s=0)
        real_lookup = store.get_gateway

        async def lookup(gateway_id: str, **kwargs: Any) -> Any:
            if gateway_id == other:
                return await flaky_lookup(gateway_id, **kwargs)
            return await real_lookup(gateway_id, **kwargs)

        flaky_lookup = Failing(real_lookup, failures)
        monkeypatch.setattr(store, "get_gateway", lookup)
        monkeypatch.setattr(live, "set_gateway", Failing(live.set_gateway, 99))
        status = wire.encode_status(wire.Status(gw=gw, state="online", ts=t, agent="test"))
        accepted = await ingest.handle_many(
            [
                (wire.status_topic(gw), status),
                (wire.data_topic(other), batch(other, [fix(1, t + 1)])),
                (wire.data_topic(gw), batch(gw, [fix(2, t + 2)])),
            ]
        )
        archived = [f.seq for f in await store.track("a", 0, t + 10)]
        if failures == 1:  # a passing blip: retried
            assert [r.item.seq for r in accepted.fixes] == archived == [1, 2]
        else:  # kept for inspection, the rest goes on
            assert [r.item.seq for r in accepted.fixes] == archived == [2]
            kept = await store.list_rejected()
            assert [(r.gateway_id, r.reason) for r in kept] == [(other, "registry_error")]
            assert ingest.counters["rejected.registry_error"] == 1


async def test_a_backlog_drained_after_newer_data_fills_its_gap(tmp_path: Path) -> None:
    """After an outage the edge sends its newest batch first and the backlog beside it: the gap
    the newest batch opens is filled as the backlog arrives, and only what never came stays."""
    gw, t = "g-backlog", now_ms()
    async with open_store("sqlite", tmp_path) as store:
        await register(store, "e1", gw)
        ingest = Ingest(store=store, live=MemoryLiveState(), ledger=store)

        async def send(*seqs: int) -> None:
            await ingest.handle(wire.data_topic(gw), batch(gw, [fix(n, t + n) for n in seqs]))

        await send(1, 2)
        await send(11, 12)  # the newest first: 3..10 are still in the edge's buffer
        assert [(g.first_seq, g.last_seq, g.missing) for g in await store.list_gaps()] == [
            (3, 10, 8)
        ]
        await send(3, 4, 5)
        await send(6, 7)  # 8..10 never come (thinned at the edge)
        assert [(g.first_seq, g.last_seq, g.missing) for g in await store.list_gaps()] == [
            (3, 10, 3)
        ]
        await send(8, 9, 10)  # they came after all
        assert await store.list_gaps() == []


async def test_a_rejected_item_is_kept_with_what_was_sent(tmp_path: Path) -> None:
    gw, t = "g-bad-item", now_ms()
    bad_item = b'{"kind":"fix","seq":2,"ts":1,"asset":"a","lat":95.0,"lon":0}'
    async with open_store("sqlite", tmp_path) as store:
        await register(store, "e1", gw)
        ingest = Ingest(store=store, live=MemoryLiveState(), ledger=store)
        payload = wire.assemble_batch(gw, [wire.encode_item(fix(1, t)), bad_item])
        await ingest.handle(wire.data_topic(gw), payload)
        (kept,) = await store.list_rejected()
        assert (kept.reason, kept.field) == ("out_of_range", "$.items[1].lat")
        assert bad_item in kept.payload  # the value refused can be looked at
