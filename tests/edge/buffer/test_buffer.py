"""The SQLite outbox: seq, lanes, claims, limits and a corrupt file (no broker needed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from pathlib import Path

import msgspec
import pytest

import edge.buffer.buffer
import wire
from edge.buffer import LANE_ALARM, LANE_DATA, Buffer, Claim, OutboxCorruptError
from edge.pipeline import Sink

NOW_S = 1_790_000_000.0


def reading(n: int, *, point: str = "P1", ts_ms: int | None = None) -> wire.Reading:
    ts = int(NOW_S * 1000) - 1000 + n if ts_ms is None else ts_ms
    return wire.Reading(seq=0, ts=ts, site="S1", point=point, value=float(n))


def alarm(n: int) -> wire.Alarm:
    return wire.Alarm(seq=0, ts=int(NOW_S * 1000), state="raise", level="HH", point=f"A{n}")


def decode(claim: Claim) -> list[wire.Item]:
    return [wire.decode_item(body) for body in claim.bodies]


def make(path: Path, **options: object) -> Buffer:
    return Buffer(path, clock=lambda: NOW_S, **options)  # type: ignore[arg-type]


async def test_is_a_sink_and_seq_survives_restarts_even_when_empty(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    async with make(path) as buffer:
        assert isinstance(buffer, Sink)
        first = buffer.next_seq
        for n in range(3):
            buffer.put(reading(n))
        await buffer.flush()
        claim = await buffer.claim(LANE_DATA)
        assert claim is not None
        assert [i.seq for i in decode(claim)] == [first, first + 1, first + 2]
        await buffer.ack(claim)
        assert buffer.depth == 0
    async with make(path) as buffer:
        assert buffer.next_seq == first + 3
        buffer.put(reading(9))
        await buffer.flush()
        claim = await buffer.claim(LANE_DATA)
        assert claim is not None
        assert decode(claim)[0].seq == first + 3


async def test_new_file_starts_above_the_clock_in_microseconds(tmp_path: Path) -> None:
    async with make(tmp_path / "b.db") as buffer:
        assert buffer.next_seq == int(NOW_S * 1_000_000)


async def test_uncommitted_items_give_their_seq_again(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    buffer = make(path)
    await buffer.open()
    first = buffer.next_seq
    buffer.put(reading(1))
    await buffer.flush()
    buffer.put(reading(2))  # never committed: as if the process were killed now
    assert buffer._executor is not None
    assert buffer._store is not None
    await buffer._call(buffer._store.close)
    buffer._executor.shutdown()
    async with make(path) as again:
        assert again.next_seq == first + 1
        assert again.depth == 1


async def test_alarm_lane_is_separate_and_never_in_a_data_batch(tmp_path: Path) -> None:
    async with make(tmp_path / "b.db") as buffer:
        buffer.put(reading(1))
        buffer.put(alarm(1))
        buffer.put(reading(2))
        await buffer.flush()
        alarms = await buffer.claim(LANE_ALARM)
        data = await buffer.claim(LANE_DATA)
        assert alarms is not None
        assert data is not None
        assert [type(i) for i in decode(alarms)] == [wire.Alarm]
        assert [type(i) for i in decode(data)] == [wire.Reading, wire.Reading]


async def test_claims_never_overlap_and_release_makes_items_claimable(tmp_path: Path) -> None:
    async with make(tmp_path / "b.db") as buffer:
        for n in range(10):
            buffer.put(reading(n))
        await buffer.flush()
        newest = await buffer.claim(LANE_DATA, newest=True, max_items=3)
        oldest = await buffer.claim(LANE_DATA, max_items=3)
        middle = await buffer.claim(LANE_DATA, max_items=10)
        assert newest is not None
        assert oldest is not None
        assert middle is not None
        first = oldest.first_seq
        assert (newest.first_seq, newest.last_seq) == (first + 7, first + 9)
        assert (oldest.first_seq, oldest.last_seq) == (first, first + 2)
        assert (middle.first_seq, middle.last_seq) == (first + 3, first + 6)
        assert await buffer.claim(LANE_DATA) is None
        buffer.release(middle)
        again = await buffer.claim(LANE_DATA)
        assert again is not None
        assert again.first_seq == first + 3
        await buffer.ack(newest)
        assert buffer.depth == 7


async def test_batch_respects_max_bytes_but_takes_at_least_one(tmp_path: Path) -> None:
    async with make(tmp_path / "b.db") as buffer:
        for n in range(10):
            buffer.put(reading(n))
        await buffer.flush()
        claim = await buffer.claim(LANE_DATA, max_bytes=200)
        assert claim is not None
        assert 1 < len(claim.bodies) < 10
        assert claim.nbytes <= 200
        tiny = await buffer.claim(LANE_DATA, max_bytes=1)
        assert tiny is not None
        assert len(tiny.bodies) == 1


async def test_invalid_item_is_counted_and_leaves_no_gap(tmp_path: Path) -> None:
    async with make(tmp_path / "b.db") as buffer:
        first = buffer.next_seq
        buffer.put(wire.Fix(seq=0, ts=1, asset="a", lat=95.0, lon=0.0))  # latitude out of range
        buffer.put(reading(1))
        await buffer.flush()
        assert buffer.drops == {"invalid_out_of_range": 1}
        claim = await buffer.claim(LANE_DATA)
        assert claim is not None
        assert decode(claim)[0].seq == first


async def test_quota_thins_data_and_never_drops_alarms(tmp_path: Path) -> None:
    async with make(tmp_path / "b.db", quota_bytes=60_000, thin_window=400) as buffer:
        for n in range(2000):
            buffer.put(reading(n, point=f"P{n % 4}"))
            if n % 10 == 0:
                buffer.put(alarm(n))
            if n % 3 == 0:
                stop = wire.Fix(
                    seq=0, ts=int(NOW_S * 1000), asset="truck", lat=30.0, lon=120.0, speed_kmh=0.0
                )
                buffer.put(stop)
        await buffer.flush()
        stats = await buffer.stats()
        assert stats.nbytes <= 60_000
        assert set(stats.drops) <= {"stop_thinned", "reading_thinned", "quota_oldest"}
        assert stats.drops.get("stop_thinned", 0) > 0
        assert stats.drops.get("reading_thinned", 0) > 0
        alarms = 0
        while (claim := await buffer.claim(LANE_ALARM)) is not None:
            alarms += len(claim.bodies)
        assert alarms == 200
        data = 0
        while (claim := await buffer.claim(LANE_DATA)) is not None:
            data += len(claim.bodies)
        assert data + sum(stats.drops.values()) == 2000 + 667


async def test_quota_of_alarms_only_keeps_them_all(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with make(tmp_path / "b.db", quota_bytes=2_000) as buffer:
        for n in range(100):
            buffer.put(alarm(n))
        await buffer.flush()
        assert buffer.depth == 100
        assert "alarms are never dropped" in caplog.text


async def test_max_age_drops_old_data_but_not_alarms(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    day_ms = 86_400_000
    async with make(path, max_age_s=86400.0) as buffer:
        buffer.put(reading(1, ts_ms=int(NOW_S * 1000) - 2 * day_ms))
        buffer.put(reading(2))
        old_alarm = msgspec.structs.replace(alarm(1), ts=int(NOW_S * 1000) - 3 * day_ms)
        buffer.put(old_alarm)
        await buffer.flush()
        await buffer.apply_limits()
        assert buffer.drops == {"max_age": 1}
        assert buffer.depth == 2
        assert (await buffer.stats()).oldest_age_s == pytest.approx(3 * 86400)
    async with make(path) as buffer:
        assert buffer.drops == {"max_age": 1}, "drop counters persist"


async def test_corrupt_file_is_moved_aside_with_an_alarm(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "b.db"
    async with make(path) as buffer:
        for n in range(500):
            buffer.put(reading(n))
        last = buffer.next_seq - 1
    with path.open("r+b") as handle:
        handle.seek(0)
        handle.write(b"\x00garbage" * 512)
    with caplog.at_level(logging.ERROR, logger="edge.buffer"):
        async with Buffer(path, clock=lambda: NOW_S + 10) as buffer:
            moved = [p for p in os.listdir(tmp_path) if p.startswith("b.db.corrupt-")]
            assert len(moved) == 1
            assert f"buffer file {path} is corrupt" in caplog.text
            assert moved[0] in caplog.text
            await buffer.flush()
            claim = await buffer.claim(LANE_ALARM)
            assert claim is not None
            (item,) = decode(claim)
            assert isinstance(item, wire.Alarm)
            assert (item.level, item.code, item.state) == ("fault", "buffer_corrupt", "raise")
            assert item.seq > last
            buffer.put(reading(1))
            await buffer.flush()
            assert buffer.depth == 2
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_full_durability_is_applied(tmp_path: Path) -> None:
    async with make(tmp_path / "b.db", durability="full") as buffer:
        assert buffer._store is not None
        store = buffer._store
        level = await buffer._call(lambda: store._db.execute("PRAGMA synchronous").fetchone()[0])
        mode = await buffer._call(lambda: store._db.execute("PRAGMA journal_mode").fetchone()[0])
        assert (level, mode) == (2, "wal")


async def test_failing_commits_keep_items_and_alarms_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make(tmp_path / "b.db") as buffer:
        buffer.max_pending = 50
        assert buffer._store is not None
        store = buffer._store
        real_append = store.append

        def io_error(*args: object, **kwargs: object) -> None:  # a full disk has its own test
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(store, "append", io_error)  # inject the fault
        for n in range(100):
            buffer.put(alarm(n) if n % 10 == 0 else reading(n))
            await buffer.flush()
        assert caplog.text.count("buffer commit failed") == 1
        assert buffer.depth == 50
        assert buffer.drops == {"write_failed": 50}
        monkeypatch.setattr(store, "append", real_append)
        await buffer.flush()
        assert "commits work again" in caplog.text
        alarms = await buffer.claim(LANE_ALARM, max_items=100)
        assert alarms is not None
        assert len(alarms.bodies) == 10, "alarms are kept whatever the backlog"
        data = await buffer.claim(LANE_DATA, max_items=100)
        assert data is not None
        seqs = [i.seq for i in decode(data)]
        assert seqs == sorted(seqs)
        assert len(seqs) == 40, "the newest data is kept"


async def test_failing_limits_keep_the_buffer_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make(tmp_path / "b.db", quota_bytes=2000) as buffer:
        assert buffer._store is not None
        store = buffer._store

        def locked(*args: object, **kwargs: object) -> int:
            raise sqlite3.OperationalError("database is locked")

        monkeypatch.setattr(store, "purge_older", locked)  # inject the fault
        monkeypatch.setattr(store, "thin", locked)
        monkeypatch.setattr(store, "oldest_ts", locked)
        for n in range(50):
            buffer.put(reading(n))
        await buffer.flush()  # over the quota: thinning fails, the commit stands
        await buffer.apply_limits()
        stats = await buffer.stats()
        assert stats.depth == 50
        assert buffer.counters["committed"] == 50
        assert "database is locked" in caplog.text
        monkeypatch.undo()
        await buffer.apply_limits()
        assert buffer.depth < 50, "thinning works again"


async def test_buffer_run_survives_a_failing_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make(tmp_path / "b.db", maintenance_interval_s=0.0) as buffer:
        assert buffer._store is not None

        def io_error(*args: object, **kwargs: object) -> int:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(buffer._store, "purge_older", io_error)  # inject the fault
        task = asyncio.create_task(buffer.run())
        for n in range(3):
            buffer.clear_ready()
            buffer.put(alarm(n))
            committed = asyncio.create_task(buffer.wait_ready())
            async with asyncio.timeout(5):
                await asyncio.wait({task, committed}, return_when=asyncio.FIRST_COMPLETED)
            committed.cancel()
            assert not task.done(), "the commit loop must outlive a failing maintenance step"
        assert buffer.counters["committed"] == 3
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_limits_spare_items_being_sent_so_drops_count_only_lost_items(
    tmp_path: Path,
) -> None:
    day_ms = 86_400_000
    async with make(tmp_path / "b.db", max_age_s=86400.0, thin_window=100) as buffer:
        for n in range(200):
            buffer.put(reading(n, ts_ms=int(NOW_S * 1000) - 2 * day_ms + n))
        await buffer.flush()
        in_flight = await buffer.claim(LANE_DATA, max_items=50)
        assert in_flight is not None
        await buffer.apply_limits()  # every stored item is past the age limit
        assert buffer._store is not None
        buffer.quota_bytes = 1
        buffer.put(reading(999))
        await buffer.flush()  # and the buffer is over its quota
        await buffer.ack(in_flight)  # the broker has the 50 items: they were not dropped
        assert buffer.depth == 0
        assert sum(buffer.drops.values()) == 200 + 1 - 50
        assert buffer._store.nbytes == 0


async def test_a_claim_cancelled_while_selecting_is_released(tmp_path: Path) -> None:
    async with make(tmp_path / "b.db") as buffer:
        for n in range(10):
            buffer.put(reading(n))
        await buffer.flush()
        taking = asyncio.create_task(buffer.claim(LANE_DATA))
        await asyncio.sleep(0)  # the select is under way in the SQLite thread
        taking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await taking
        # at once: the next claim waits for the abandoned take to end and be released
        claim = await buffer.claim(LANE_DATA)
        assert claim is not None, "the rows of a claim nobody received must stay claimable"
        assert len(claim.bodies) == 10


async def test_a_failed_replacement_of_a_corrupt_file_keeps_the_items(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with make(tmp_path / "b.db") as buffer:
        assert buffer._store is not None

        def corrupt(*args: object, **kwargs: object) -> None:
            raise OutboxCorruptError("database disk image is malformed")

        def disk_full(*args: object, **kwargs: object) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(buffer._store, "append", corrupt)  # inject the faults
        monkeypatch.setattr(edge.buffer.buffer, "Outbox", disk_full)
        for n in range(10):
            buffer.put(reading(n))
        await buffer.flush()  # the file is corrupt and no new one can be made
        assert buffer.depth == 10, "the items stay in memory"
        monkeypatch.undo()
        buffer.put(alarm(1))
        await buffer.flush()  # the replacement is tried again, and works
        await buffer.flush()
        data = await buffer.claim(LANE_DATA)
        assert data is not None
        assert [i.value for i in decode(data) if isinstance(i, wire.Reading)] == list(range(10))
        alarms = await buffer.claim(LANE_ALARM)
        assert alarms is not None
        assert {i.code for i in decode(alarms) if isinstance(i, wire.Alarm)} >= {"buffer_corrupt"}
    assert "database or disk is full" in caplog.text


async def test_normal_durability_syncs_before_anything_is_sent(tmp_path: Path) -> None:
    # A power cut may roll back commits that were never fsynced; had they been sent, their seqs
    # would be given again and the cloud would drop the new items as duplicates. So the
    # forwarder sends only up to durable_top(), which fsyncs once per round with new commits.
    async with make(tmp_path / "b.db", durability="normal") as buffer:
        for n in range(10):
            buffer.put(reading(n))
        await buffer.flush()
        assert buffer.durable_seq < buffer.committed_seq
        wal = tmp_path / "b.db-wal"
        before = wal.read_bytes()
        assert await buffer.durable_top() == buffer.committed_seq
        assert wal.read_bytes() == before, "a sync writes nothing: it works on a full disk too"
        assert await buffer.durable_top() == buffer.committed_seq  # nothing new: no sync
        assert buffer.counters["syncs"] == 1
        buffer.put(reading(10))
        await buffer.flush()
        assert await buffer.durable_top() == buffer.committed_seq
        assert buffer.counters["syncs"] == 2
        store = buffer._store
        assert store is not None
        (synchronous,) = await buffer._call(
            lambda: store._db.execute("PRAGMA synchronous").fetchone()
        )
        assert synchronous == 1, "commits stay NORMAL"


async def test_full_durability_needs_no_extra_sync(tmp_path: Path) -> None:
    async with make(tmp_path / "b.db", durability="full") as buffer:
        buffer.put(reading(0))
        await buffer.flush()
        assert await buffer.durable_top() == buffer.committed_seq
        assert "syncs" not in buffer.counters


async def test_rows_found_at_open_are_synced_before_they_are_sent(tmp_path: Path) -> None:
    async with make(tmp_path / "b.db") as buffer:
        buffer.put(reading(0))
        await buffer.flush()
        last = buffer.committed_seq
    async with make(tmp_path / "b.db") as buffer:
        assert buffer.durable_seq < last
        assert await buffer.durable_top() == last
        assert buffer.counters["syncs"] == 1


async def test_acknowledged_seqs_leave_both_lanes_and_nothing_else(tmp_path: Path) -> None:
    async with make(tmp_path / "b.db") as buffer:
        first = buffer.next_seq
        for n in range(10):
            buffer.put(alarm(n) if n in (3, 7) else reading(n))
        await buffer.flush()
        data = await buffer.claim(LANE_DATA)
        assert data is not None
        assert data.seqs == tuple(first + n for n in range(10) if n not in (3, 7))
        # The cloud acknowledges the data batch and the first alarm, not the second one.
        acked = [*data.seqs, first + 3]
        assert await buffer.acknowledge(wire.seq_ranges(acked)) == 9
        buffer.release(data, ready=False)
        assert buffer.depth == 1
        left = await buffer.claim(LANE_ALARM)
        assert left is not None
        assert left.seqs == (first + 7,)


async def test_acknowledged_rows_that_cannot_be_deleted_are_not_sent_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make(tmp_path / "b.db") as buffer:
        for n in range(5):
            buffer.put(reading(n))
        await buffer.flush()
        claim = await buffer.claim(LANE_DATA)
        assert claim is not None
        store = buffer._store
        assert store is not None
        real_delete = store.delete_ranges

        def locked(ranges: object) -> int:  # another program holds the file
            raise sqlite3.OperationalError("database is locked")

        monkeypatch.setattr(store, "delete_ranges", locked)  # inject the fault
        assert await buffer.acknowledge(wire.seq_ranges(claim.seqs)) == 0
        buffer.release(claim)  # the forwarder is done with the claim
        assert await buffer.claim(LANE_DATA) is None, "acknowledged rows are never sent again"
        assert buffer.counters["delete_failures"] == 1
        await buffer.apply_limits()  # thinning and age limits leave them alone too
        monkeypatch.setattr(store, "delete_ranges", real_delete)
        buffer.put(reading(9))
        await buffer.flush()
        assert await buffer.acknowledge([]) == 5, "the delete is tried again"
        assert buffer.depth == 1
