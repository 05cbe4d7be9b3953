"""Archive faults during ingest (injected): retried with backoff, then counted, never a crash."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

import wire
from cloud.ingest import Ingest
from cloud.models import Received
from cloud.state import MemoryLiveState
from cloud.store import Store, StoreError
from tests.cloud_core.conftest import open_store, register
from tests.cloud_core.ingest_support import batch, now_ms


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
