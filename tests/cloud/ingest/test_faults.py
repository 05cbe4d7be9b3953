"""Archive faults during ingest (injected): retried with backoff, then counted, never a crash."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import text

import wire
from cloud.archive import Store, StoreError
from cloud.ingest import Ingest, Spill
from cloud.live import MemoryLiveState
from cloud.models import Received
from tests.cloud.conftest import open_store, register
from tests.cloud.ingest_support import batch, now_ms


class Flaky:
    """Wraps ``Store.insert_fixes`` to fail a given number of times first."""

    def __init__(self, store: Store, failures: int) -> None:
        self.real = store.insert_fixes
        self.failures = failures
        self.calls = 0

    async def __call__(self, records: Sequence[Received[wire.Fix]]) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise StoreError("database is away")
        return await self.real(records)


@pytest.mark.parametrize(("failures", "archived"), [(2, True), (5, False)])
async def test_archive_writes_are_retried_then_given_up(
    tmp_path: Path, unique_id: str, monkeypatch: pytest.MonkeyPatch, failures: int, archived: bool
) -> None:
    gw, t = unique_id, now_ms()
    async with open_store("sqlite", tmp_path) as store:
        await register(store, "e1", gw)
        flaky = Flaky(store, failures)
        monkeypatch.setattr(store, "insert_fixes", flaky)
        live = MemoryLiveState()
        ingest = Ingest(
            store=store, live=live, ledger=store, archive_attempts=3, archive_retry_s=0.01
        )
        payload = batch(gw, [wire.Fix(seq=1, ts=t, asset="a", lat=1.0, lon=2.0)])
        accepted = await ingest.handle(wire.data_topic(gw), payload)
        assert len(accepted.fixes) == 1
        assert flaky.calls == min(failures + 1, 3)
        assert ingest.counters["store_retry.fixes"] == min(failures, 2)
        assert ingest.counters["store_error.fixes"] == (0 if archived else 1)
        assert len(await store.track("a", 0, t + 1)) == (1 if archived else 0)
        assert "a" in await live.latest_fixes(["a"])  # the live state still got it


async def test_refused_writes_wait_on_disk_and_reach_the_archive_when_it_answers(
    tmp_path: Path, unique_id: str
) -> None:
    # A real refusal: the fixes table is away (as during a restore or a fail-over).
    gw, t = unique_id, now_ms()
    path = tmp_path / "spill" / "archive.jsonl"
    fixes = [
        wire.Fix(seq=n, ts=t + n, asset="truck", lat=31.0 + n / 1000, lon=120.0) for n in (1, 2, 3)
    ]
    async with open_store("sqlite", tmp_path) as store:
        await register(store, "e1", gw)
        ingest = Ingest(
            store=store,
            live=MemoryLiveState(),
            ledger=store,
            archive_attempts=2,
            archive_retry_s=0.01,
            spill=Spill(path),
            spill_retry_s=0.0,
        )
        async with store.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE fixes RENAME TO fixes_away"))
        await ingest.handle(wire.data_topic(gw), batch(gw, fixes[:2]))
        await ingest.handle(wire.data_topic(gw), batch(gw, fixes[2:]))  # the first still waits
        assert ingest.counters["spilled.fixes"] == 3
        assert ingest.counters["store_error.fixes"] == 0
        assert path.exists()
        async with store.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE fixes_away RENAME TO fixes"))
        # The worker restarted meanwhile: the file is all that is left of those writes.
        again = Ingest(store=store, live=MemoryLiveState(), ledger=store, spill=Spill(path))
        assert again.spill is not None
        assert again.spill.pending == 2
        assert await again.restore_spilled() == {"fixes": 3}
        assert [f.seq for f in await store.track("truck", 0, t + 10)] == [1, 2, 3]
        assert again.counters["spill_restored.fixes"] == 3
        assert not path.exists()
        assert again.spill.pending == 0


async def test_a_torn_last_spill_line_is_dropped_and_the_rest_restored(
    tmp_path: Path, unique_id: str
) -> None:
    gw, t = unique_id, now_ms()
    path = tmp_path / "archive.jsonl"
    async with open_store("sqlite", tmp_path) as store:
        await register(store, "e1", gw)
        spill = Spill(path)
        record = Received(wire.Fix(seq=1, ts=t, asset="bus", lat=31.0, lon=120.0), gw, "e1", t)
        await spill.add("fixes", [record])
        with path.open("ab") as handle:
            handle.write(b'{"what":"fixes","records":[{"item":')  # a crash mid-append
        ingest = Ingest(store=store, live=MemoryLiveState(), ledger=store, spill=Spill(path))
        assert await ingest.restore_spilled() == {"fixes": 1}
        assert len(await store.track("bus", 0, t + 1)) == 1
        assert not path.exists()
