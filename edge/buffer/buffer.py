"""The durable store-and-forward buffer: every item is on disk before it is sent.

:class:`Buffer` is the agent's :class:`edge.pipeline.Sink`. ``put`` (synchronous, a few
microseconds) gives the item the next gateway ``seq``, encodes it with :func:`wire.encode_item`
and queues it; :meth:`Buffer.run` commits the queue every ``commit_interval_s`` (an alarm is
committed at once) into the SQLite outbox of :mod:`edge.buffer.outbox`. The forwarder claims batches of
stored bytes, publishes them and deletes them with :meth:`Buffer.ack` only after the broker's
PUBACK; a failed publish :meth:`Buffer.release` s them for the next attempt.

Two lanes: alarms are never dropped and are always claimed first; routine data is thinned when
the quota is hit and dropped after ``max_age_s`` (both counted per reason in :attr:`drops`).

The disk may fill before the quota does (a small flash card, another program's logs). The buffer
keeps a reserve file beside the database (``<file>.reserve``: an eighth of the file system, at
most ``reserve_bytes``) and keeps at least twice that free, counting free pages inside the
database, which new rows reuse first: below it, routine data is thinned (counted as
``disk_full``) and an ``Alarm(level="fault", code="buffer_disk_full")`` is raised, cleared once
four times the reserve is free again (and a minute has passed). Thinned pages go back to the file
system (new files use incremental auto-vacuum), so the reserve file is taken again at once. A commit or delete that still meets a full disk gives up
the reserve file, so that the WAL can be copied into the database and rows deleted, thins, and
tries once more. Alarms are never thinned; the WAL is checkpointed well before it could outgrow
the reserve.

All SQLite work runs in one dedicated thread, so the event loop never blocks on the disk. A
corrupt file is moved aside with an error log line, the buffer continues on a new file and puts
an ``Alarm(level="fault", code="buffer_corrupt")`` in the alarm lane. A new file starts its
``seq`` at the current time in microseconds, above anything an earlier file gave out (the
counter advances slower than the clock) unless the clock went backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, ParamSpec, Self, TypeVar

import wire
from edge.buffer.outbox import (
    LANE_ALARM,
    LANE_DATA,
    ROW_OVERHEAD_BYTES,
    Durability,
    Outbox,
    OutboxCorruptError,
    Row,
    move_aside,
    to_row,
)

__all__ = ["LANE_ALARM", "LANE_DATA", "Buffer", "BufferStats", "Claim", "Durability"]

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")
_NO_SEQ: Final = 2**63 - 1
#: smallest reserve file, and how often the free space is looked at
_MIN_RESERVE: Final = 64 * 1024
_DISK_CHECK_S: Final = 1.0
#: the disk alarm stays raised at least this long (no flapping while space comes and goes)
_DISK_CLEAR_S: Final = 60.0


def is_disk_full(exc: BaseException) -> bool:
    """A full disk (or quota) as SQLite or the operating system reports it."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code == sqlite3.SQLITE_FULL or "full" in str(exc)
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class _Chain:
    """A live view of several lists of ranges: iterating reads their contents at that moment."""

    def __init__(self, *parts: list[tuple[int, int]]) -> None:
        self._parts = parts

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for part in self._parts:
            yield from list(part)


@dataclass(frozen=True, slots=True)
class Claim:
    """A batch taken from one lane for publishing: ``first_seq .. last_seq`` of that lane."""

    lane: int
    first_seq: int
    last_seq: int
    bodies: list[bytes]
    #: the seq of each body, ascending
    seqs: tuple[int, ...] = ()

    @property
    def nbytes(self) -> int:
        """Bytes of the stored items (the envelope adds a few dozen)."""
        return sum(len(b) for b in self.bodies) + len(self.bodies)


@dataclass(frozen=True, slots=True)
class BufferStats:
    """Figures for the gateway's ``health`` item."""

    depth: int
    nbytes: int
    oldest_age_s: float
    drops: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)


class Buffer:
    """SQLite WAL outbox with group commit; use as ``async with Buffer(...) as buffer``.

    Args:
        path: database file.
        quota_bytes: stored bytes (items plus a fixed per-row overhead) above which routine
            data is thinned.
        max_age_s: routine data older than this (by observation time) is dropped.
        durability: ``normal`` (survives a killed process) or ``full`` (survives a power cut).
        commit_interval_s: longest time a put item waits for its group commit.
        maintenance_interval_s: how often the age limit is applied.
        thin_window: rows looked at per thinning step.
        reserve_bytes: largest reserve file kept beside the database for a full disk (an
            eighth of the file system on a smaller one, at least 64 KiB).
        clock: wall clock in seconds (tests pass their own).
    """

    def __init__(
        self,
        path: Path,
        *,
        quota_bytes: int = 1024 * 1024 * 1024,
        max_age_s: float = 30 * 86400.0,
        durability: Durability = "normal",
        commit_interval_s: float = 0.05,
        maintenance_interval_s: float = 60.0,
        thin_window: int = 2000,
        reserve_bytes: int = 8 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.quota_bytes = quota_bytes
        self.max_age_s = max_age_s
        self.durability: Durability = durability
        self.commit_interval_s = commit_interval_s
        self.maintenance_interval_s = maintenance_interval_s
        self.thin_window = thin_window
        self._clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._store: Outbox | None = None
        self._next_seq = 0
        self._pending: list[Row] = []
        self._pending_bytes = 0
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._committing: asyncio.Future[None] | None = None
        self._failing = False
        #: items held in memory while commits fail, beyond which routine data is dropped
        self.max_pending = 200_000
        self._inflight: dict[int, list[tuple[int, int]]] = {LANE_ALARM: [], LANE_DATA: []}
        # takes whose caller was cancelled while the SQLite thread ran them: their claims are
        # released when they finish, and the next claim waits for that first
        self._abandoned: set[asyncio.Future[Claim | None]] = set()
        self._rejects: dict[str, int] = {}
        #: seq ranges acknowledged upstream whose rows could not be deleted yet
        self._acked: list[tuple[int, int]] = []
        self._delete_failing = False
        # what limits leave alone, read when they run in the SQLite thread (a claim taken there
        # just before them is already in it)
        self._spared = _Chain(self._inflight[LANE_DATA], self._acked)
        #: highest ``seq`` committed so far (every lower one is committed or was dropped)
        self.committed_seq = -1
        #: highest ``seq`` known to survive a power cut (see :meth:`durable_top`)
        self.durable_seq = -1
        self._sync_failing = False
        self.counters: dict[str, int] = {"appended": 0, "acked": 0, "committed": 0}
        self._quota_warned = False
        self._limits_failing = False
        self.reserve_bytes = reserve_bytes
        self._reserve = reserve_bytes  # sized to the file system at open
        self._reserve_path = path.with_name(path.name + ".reserve")
        #: the disk limits the buffer (its fault alarm is raised), since this monotonic time
        self.disk_full = False
        self._disk_full_since = 0.0
        self._disk_checked = -float("inf")

    # -- lifecycle -------------------------------------------------------------------------

    async def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        assert self._executor is not None, "buffer is not open"
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def _new_outbox(self, first_seq: int) -> Outbox:
        return Outbox(
            self.path,
            durability=self.durability,
            first_seq=first_seq,
            wal_autocheckpoint_pages=max(16, self._reserve // 2 // 4096),
        )

    def _open_store(self, first_seq: int) -> tuple[Outbox, Path | None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        total = shutil.disk_usage(self.path.parent).total
        self._reserve = max(_MIN_RESERVE, min(self.reserve_bytes, total // 8))
        try:
            store, moved = self._new_outbox_on_a_full_disk(first_seq), None
        except OutboxCorruptError as exc:
            moved = move_aside(self.path)
            log.error("buffer file %s is corrupt (%s): moved aside to %s", self.path, exc, moved)
            store = self._new_outbox(first_seq)
        self._keep_reserve(store)
        return store, moved

    def _new_outbox_on_a_full_disk(self, first_seq: int) -> Outbox:
        """Open the file; on a full disk (the WAL and shared-memory files need room) give up
        the reserve file and try once more."""
        try:
            return self._new_outbox(first_seq)
        except (sqlite3.OperationalError, OSError) as exc:
            if not self._reserve_path.exists() or not (
                is_disk_full(exc) or "disk I/O error" in str(exc)
            ):
                raise
            log.error("buffer: no room to open %s (%s); giving up the reserve", self.path, exc)
            self._reserve_path.unlink()
            return self._new_outbox(first_seq)

    def _keep_reserve(self, store: Outbox) -> bool:
        """Create the reserve file if it is missing and the disk has room (SQLite thread)."""
        if self._reserve_path.exists():
            return True
        free, _ = store.room()
        if free < 3 * self._reserve:  # and still twice the reserve free once it is made
            return False
        try:
            with self._reserve_path.open("wb") as out:
                os.posix_fallocate(out.fileno(), 0, self._reserve)
                os.fsync(out.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                self._reserve_path.unlink()
            return False
        return True

    def _give_up_reserve(self, store: Outbox) -> None:
        """Free the reserve and copy the WAL into the database (SQLite thread)."""
        with contextlib.suppress(FileNotFoundError):
            self._reserve_path.unlink()
        store.checkpoint(truncate=True)

    async def open(self) -> None:
        """Open (or create, or replace a corrupt) database file.

        Raises:
            OSError, sqlite3.Error: the file cannot be opened or created (the buffer stays
                closed, and ``open`` may be tried again).
        """
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hazwatch-buffer")
        try:
            store, moved = await self._call(self._open_store, self._now_us())
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self._store = store
        self._next_seq = store.next_seq
        self.committed_seq = store.next_seq - 1
        if moved is not None:
            self._put_corrupt_alarm(moved)
        await self.apply_limits()
        if store.depth:
            self._ready.set()

    async def close(self) -> None:
        """Commit what is queued and close the file."""
        if self._executor is None:
            return
        try:
            if self._committing is not None:
                await self._committing
            await self.flush()
        finally:
            if self._store is not None:
                await self._call(self._store.close)  # its figures stay readable
            self._executor.shutdown(wait=True)
            self._executor = None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _now_us(self) -> int:
        return int(self._clock() * 1_000_000)

    # -- the sink --------------------------------------------------------------------------

    def put(self, item: wire.Item) -> None:
        """Give ``item`` the next ``seq`` and queue it for the next group commit.

        An item the contract rejects is counted under ``invalid_<reason>`` and not stored (its
        ``seq`` is given to the next item, so the cloud sees no gap).
        """
        seq = self._next_seq
        try:
            row = to_row(item, seq)
        except (wire.WireError, ValueError) as exc:
            reason = f"invalid_{exc.reason}" if isinstance(exc, wire.WireError) else "invalid"
            if reason not in self._rejects:
                log.warning("rejected %s item: %s", type(item).__name__, exc)
            self._rejects[reason] = self._rejects.get(reason, 0) + 1
            return
        self._next_seq = seq + 1
        self._pending.append(row)
        self._pending_bytes += len(row[5]) + ROW_OVERHEAD_BYTES
        self.counters["appended"] += 1
        if row[1] == LANE_ALARM or len(self._pending) >= 20_000:
            self._wake.set()

    def _put_corrupt_alarm(self, moved: Path) -> None:
        self.put(
            wire.Alarm(
                seq=0,
                ts=int(self._clock() * 1000),
                state="raise",
                level="fault",
                code="buffer_corrupt",
                message=f"buffer file was corrupt; moved to {moved.name}; unsent items in it lost",
            )
        )

    # -- committing ------------------------------------------------------------------------

    async def run(self) -> None:
        """Commit queued items and apply the limits until cancelled (then commit once more)."""
        next_maintenance = time.monotonic() + self.maintenance_interval_s
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.commit_interval_s):
                        await self._wake.wait()
                self._wake.clear()
                await self.flush()
                if time.monotonic() >= next_maintenance:
                    next_maintenance = time.monotonic() + self.maintenance_interval_s
                    await self.apply_limits()
        finally:
            await asyncio.shield(self.flush())

    async def flush(self) -> None:
        """Commit every queued item now (one transaction).

        Cancelling the caller does not cancel the commit: it finishes in the background and
        :meth:`close` waits for it, so no taken item is lost on shutdown.
        """
        async with self._flush_lock:
            if self._committing is not None:
                await asyncio.shield(self._committing)
            if not self._pending or self._store is None:
                return
            rows, self._pending = self._pending, []
            self._pending_bytes = 0
            self._committing = asyncio.ensure_future(self._commit(rows))
            await asyncio.shield(self._committing)
            self._committing = None
            await self._watch_disk()
        if self._store.nbytes > self.quota_bytes:
            await self.apply_limits(age=False)

    async def _commit(self, rows: list[Row]) -> None:
        assert self._store is not None
        try:
            try:
                await self._call(self._store.append, rows, rows[-1][0] + 1)
            except (sqlite3.Error, OSError) as exc:
                if not is_disk_full(exc) or not await self._make_room(self._rows_bytes(rows)):
                    raise
                await self._call(self._store.append, rows, rows[-1][0] + 1)
        except OutboxCorruptError as exc:
            self._pending[:0] = rows
            try:
                await self._replace_store(str(exc))
            except (sqlite3.Error, OSError) as error:  # tried again by the next commit
                self._commit_failed([], error)
            return
        except Exception as exc:
            self._commit_failed(rows, exc)
            return
        if self._failing:
            log.warning("buffer commits work again")
            self._failing = False
        self.counters["committed"] += len(rows)
        self.committed_seq = rows[-1][0]
        self._ready.set()

    @staticmethod
    def _rows_bytes(rows: list[Row]) -> int:
        return sum(len(r[5]) + ROW_OVERHEAD_BYTES for r in rows)

    # -- a full disk -----------------------------------------------------------------------

    async def _make_room(self, needed: int) -> bool:
        """The disk is full: give up the reserve, checkpoint, thin; return whether it worked.

        Runs under the flush lock or from a commit (which holds it), so no commit interleaves.
        """
        store = self._store
        assert store is not None
        self.counters["disk_full"] = self.counters.get("disk_full", 0) + 1
        try:
            await self._call(self._give_up_reserve, store)
            await self._thin_for_disk(store, self._reserve + 2 * needed)
        except (sqlite3.Error, OSError, OutboxCorruptError) as exc:
            log.error("buffer: no room on the full disk (%s); items wait in memory", exc)
            return False
        return True

    async def _thin_for_disk(self, store: Outbox, excess: int) -> None:
        """Thin routine data by ``excess`` bytes, give the pages back to the file system and
        take the reserve again if that made room (SQLite thread for the disk work)."""
        freed = await self._call(
            store.thin,
            excess_bytes=excess,
            window=self.thin_window,
            spared=self._spared,
            reason="disk_full",
        )
        await self._call(store.give_back)
        await self._call(self._keep_reserve, store)
        if not self.disk_full:
            self.disk_full = True
            self._disk_full_since = time.monotonic()
            log.error(
                "buffer: the disk under %s is full; routine data is thinned (alarms never)",
                self.path,
            )
            self._put_disk_alarm("raise")
        if freed < excess and not self._quota_warned:
            log.warning("buffer: the disk is full with alarms only: alarms are never dropped")
            self._quota_warned = True

    def _put_disk_alarm(self, state: Literal["raise", "clear"]) -> None:
        self.put(
            wire.Alarm(
                seq=0,
                ts=int(self._clock() * 1000),
                state=state,
                level="fault",
                code="buffer_disk_full",
                message="the disk under the buffer is full; routine data is thinned"
                if state == "raise"
                else "the disk under the buffer has room again",
            )
        )

    async def _watch_disk(self) -> None:
        """Keep twice the reserve free (free pages inside the database count); raise or clear
        the disk alarm; bring the reserve file back when there is room."""
        now = time.monotonic()
        store = self._store
        if store is None or now - self._disk_checked < _DISK_CHECK_S:
            return
        self._disk_checked = now
        try:
            free, spare = await self._call(store.room)
            if free + spare < 2 * self._reserve:
                await self._thin_for_disk(store, 2 * self._reserve - free - spare)
            elif (
                free >= 4 * self._reserve
                and await self._call(self._keep_reserve, store)
                and self.disk_full
                and now - self._disk_full_since >= _DISK_CLEAR_S
            ):
                self.disk_full = False
                log.warning("buffer: the disk has room again")
                self._put_disk_alarm("clear")
        except (sqlite3.Error, OSError, OutboxCorruptError) as exc:
            if is_disk_full(exc):
                await self._make_room(self._pending_bytes)
            else:
                log.warning("buffer: free space not checked (%s)", exc)

    def _commit_failed(self, rows: list[Row], exc: Exception) -> None:
        """Keep the rows in memory for the next try (a full disk, an I/O error).

        Beyond ``max_pending`` the oldest routine data in memory is dropped (counted as
        ``write_failed``); alarms are always kept.
        """
        if not self._failing:
            log.error("buffer commit failed (%s); %d items kept in memory", exc, len(rows))
            self._failing = True
        self._pending[:0] = rows
        excess = len(self._pending) - self.max_pending
        if excess > 0:
            kept = [r for r in self._pending if r[1] == LANE_ALARM]
            data = [r for r in self._pending if r[1] != LANE_ALARM]
            self._pending = sorted(kept + data[excess:])
            dropped = len(data[:excess])
            self._rejects["write_failed"] = self._rejects.get("write_failed", 0) + dropped

    async def _replace_store(self, reason: str) -> None:
        assert self._store is not None
        old = self._store
        await self._call(old.close)
        moved = await self._call(move_aside, self.path)
        log.error("buffer file %s is corrupt (%s): moved aside to %s", self.path, reason, moved)
        self._store = await self._call(self._new_outbox, self._next_seq)
        for ranges in self._inflight.values():
            ranges.clear()
        self._put_corrupt_alarm(moved)

    async def apply_limits(self, *, age: bool = True) -> None:
        """Drop routine data past ``max_age_s`` (unless ``age`` is false), thin it to the quota.

        A failing step (a lock held by another program, an I/O error) is logged and tried again
        next time: it must never stop the commits. A corrupt file is replaced.
        """
        store = self._store
        assert store is not None
        if self._acked:  # acknowledged rows whose delete failed: try again
            await self.acknowledge(())
        try:
            await self._limits(store, age=age)
        except OutboxCorruptError as exc:
            async with self._flush_lock:
                if self._store is store:
                    await self._replace_store(str(exc))
        except sqlite3.Error as exc:
            if not self._limits_failing:
                log.error("buffer limits not applied (%s); trying again later", exc)
                self._limits_failing = True
        else:
            self._limits_failing = False

    async def _limits(self, store: Outbox, *, age: bool) -> None:
        if age:
            cutoff_ms = int((self._clock() - self.max_age_s) * 1000)
            await self._call(store.purge_older, cutoff_ms, spared=self._spared)
        excess = store.nbytes - self.quota_bytes
        if excess > 0:
            await self._call(
                store.thin,
                excess_bytes=excess,
                window=self.thin_window,
                spared=self._spared,
            )
            if store.nbytes > self.quota_bytes and not self._quota_warned:
                log.warning("buffer over quota with alarms only: alarms are never dropped")
                self._quota_warned = True

    # -- the forwarder's side --------------------------------------------------------------

    def _busy(self, lane: int) -> list[tuple[int, int]]:
        """Ranges of a lane not to take or thin: in flight, or acknowledged but not deleted."""
        return [*self._inflight[lane], *self._acked]

    def _gaps(self, lane: int, *, newest: bool, top: int) -> list[tuple[int, int]]:
        """Open intervals ``(above, below)`` of a lane not covered by a claim, in search order."""
        gaps = []
        above = -1
        for first, last in sorted(self._busy(lane)):  # ranges may overlap
            gaps.append((above, min(first, top)))
            above = max(above, last)
        gaps.append((above, top))
        gaps = [(a, b) for a, b in gaps if a + 1 < b]
        return gaps[::-1] if newest else gaps

    async def claim(
        self,
        lane: int,
        *,
        newest: bool = False,
        max_items: int = 1000,
        max_bytes: int = 262144,
        max_seq: int | None = None,
    ) -> Claim | None:
        """Take the oldest (or newest) unclaimed committed items of a lane, or ``None``.

        Args:
            lane: :data:`LANE_ALARM` or :data:`LANE_DATA`.
            newest: take the newest items instead of the oldest.
            max_items: most items in the claim.
            max_bytes: most stored bytes in the claim (at least one item is taken).
            max_seq: take nothing above this ``seq`` (see :attr:`committed_seq`).
        """
        if self._abandoned:  # their rows must be claimable again before we look
            await asyncio.gather(*self._abandoned, return_exceptions=True)
        store = self._store
        assert store is not None, "buffer is not open"
        top = _NO_SEQ if max_seq is None else min(_NO_SEQ, max_seq + 1)
        gaps = self._gaps(lane, newest=newest, top=top)
        taking = asyncio.ensure_future(
            self._call(self._take, store, lane, gaps, newest, max_items, max_bytes)
        )
        try:
            return await asyncio.shield(taking)
        except asyncio.CancelledError:
            # nobody will send or release what the SQLite thread is taking: release it when
            # the take ends (this callback runs before any waiter's, so before the next claim)
            self._abandoned.add(taking)
            taking.add_done_callback(self._release_untaken)
            raise
        except OutboxCorruptError as exc:
            async with self._flush_lock:
                if self._store is store:
                    await self._replace_store(str(exc))
            return None

    async def durable_top(self) -> int:
        """The highest committed ``seq`` that survives a power cut; syncs first when needed.

        Send nothing above it. With ``full`` durability every commit is already on disk; with
        ``normal`` this costs one fsync when something was committed since the last call. A
        failed sync leaves the mark where it was (sending waits; the next call tries again).
        """
        top = self.committed_seq
        if top <= self.durable_seq:
            return self.durable_seq
        store = self._store
        if self.durability != "full" and store is not None:
            try:
                await self._call(store.sync)
            except (sqlite3.Error, OSError, OutboxCorruptError) as exc:
                if not self._sync_failing:
                    log.error("buffer sync failed (%s); nothing new is sent until it works", exc)
                    self._sync_failing = True
                return self.durable_seq
            self._sync_failing = False
            self.counters["syncs"] = self.counters.get("syncs", 0) + 1
        self.durable_seq = max(self.durable_seq, top)
        return self.durable_seq

    def _release_untaken(self, taking: asyncio.Future[Claim | None]) -> None:
        self._abandoned.discard(taking)
        if not taking.cancelled() and taking.exception() is None:
            claim = taking.result()
            if claim is not None:
                self.release(claim)

    def _take(
        self,
        store: Outbox,
        lane: int,
        gaps: list[tuple[int, int]],
        newest: bool,
        max_items: int,
        max_bytes: int,
    ) -> Claim | None:
        """Select a claim and mark it in flight, both in the SQLite thread.

        The limits run in that thread too, so they never see a claimed row not yet marked.
        """
        for above, below in gaps:
            rows = store.select(lane, above=above, below=below, newest=newest, limit=max_items)
            if rows:
                break
        else:
            return None
        if newest:
            rows.reverse()
        size = 0
        for count, (_, body) in enumerate(rows):
            size += len(body) + 1
            if size > max_bytes and count:
                rows = rows[:count]
                break
        claim = Claim(
            lane, rows[0][0], rows[-1][0], [body for _, body in rows], tuple(s for s, _ in rows)
        )
        self._inflight[lane].append((claim.first_seq, claim.last_seq))
        return claim

    async def ack(self, claim: Claim) -> None:
        """The batch is safe upstream (with ``delete_on = "broker"``: the broker's PUBACK)."""
        try:
            await self.acknowledge(wire.seq_ranges(claim.seqs))
        finally:
            self.release(claim, ready=False)

    async def acknowledge(self, ranges: Sequence[tuple[int, int]]) -> int:
        """The cloud has these seqs (inclusive ranges): delete their rows from both lanes.

        Rows whose delete fails (a full disk, a lock) are remembered as acknowledged: they are
        neither sent again nor thinned, and their delete is tried again at the next
        acknowledgement and at maintenance. After a restart they would be sent once more,
        which the cloud's de-duplication absorbs.

        Returns:
            Rows deleted now (including earlier acknowledgements whose delete had failed).
        """
        if ranges:
            self._acked.extend(ranges)
        if not self._acked or self._store is None:
            return 0
        pending, store = list(self._acked), self._store
        try:
            try:
                deleted = await self._call(store.delete_ranges, pending)
            except (sqlite3.Error, OSError) as exc:
                if not is_disk_full(exc):
                    raise
                async with self._flush_lock:
                    if not await self._make_room(0):
                        raise
                deleted = await self._call(store.delete_ranges, pending)
        except (sqlite3.Error, OSError, OutboxCorruptError) as exc:
            if not self._delete_failing:
                log.error(
                    "buffer: deleting acknowledged rows failed (%s); they are kept as sent and "
                    "deleted later",
                    exc,
                )
                self._delete_failing = True
            self.counters["delete_failures"] = self.counters.get("delete_failures", 0) + 1
            return 0
        self._delete_failing = False
        del self._acked[: len(pending)]
        self.counters["acked"] += deleted
        return deleted

    def release(self, claim: Claim, *, ready: bool = True) -> None:
        """The batch was not acknowledged: make its rows claimable again."""
        with contextlib.suppress(ValueError):
            self._inflight[claim.lane].remove((claim.first_seq, claim.last_seq))
        if ready:
            self._ready.set()

    def release_all(self) -> None:
        """Forget every claim (the connection that carried them is gone)."""
        for ranges in self._inflight.values():
            ranges.clear()
        self._ready.set()

    async def wait_ready(self) -> None:
        """Wait until new items are committed or claims released (call after a miss)."""
        await self._ready.wait()

    def clear_ready(self) -> None:
        """Reset the readiness flag before looking for a batch."""
        self._ready.clear()

    @property
    def cloud_acks_seen(self) -> bool:
        """Whether the cloud has ever acknowledged this buffer's seqs (kept in the file)."""
        return self._store is not None and self._store.cloud_acks

    async def note_cloud_acks(self) -> None:
        """Record that the cloud acknowledges; a failure to record it is tried again next time."""
        store = self._store
        if store is None or store.cloud_acks:
            return
        try:
            await self._call(store.note_cloud_acks)
        except (sqlite3.Error, OutboxCorruptError) as exc:
            log.warning("buffer: could not record that the cloud acknowledges (%s)", exc)

    # -- figures ---------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Items stored or queued and not yet acknowledged."""
        return (self._store.depth if self._store else 0) + len(self._pending)

    @property
    def drops(self) -> dict[str, int]:
        """Items dropped, by reason (thinning, age, invalid items)."""
        stored = dict(self._store.drops) if self._store else {}
        return stored | self._rejects

    @property
    def next_seq(self) -> int:
        """The ``seq`` the next put item will get."""
        return self._next_seq

    async def stats(self) -> BufferStats:
        """Depth, bytes, age of the oldest item and drop counters."""
        store = self._store
        assert store is not None
        try:
            oldest = await self._call(store.oldest_ts)
        except (OutboxCorruptError, sqlite3.Error) as exc:  # found and handled by the next claim
            log.warning("buffer: age of the oldest item unknown (%s)", exc)
            oldest = None
        pending_ts = [r[3] for r in self._pending[:1]]
        candidates = [t for t in [oldest, *pending_ts] if t is not None]
        age_s = max(0.0, self._clock() - min(candidates) / 1000) if candidates else 0.0
        return BufferStats(
            depth=self.depth,
            nbytes=store.nbytes + self._pending_bytes,
            oldest_age_s=age_s,
            drops=self.drops,
            counters=dict(self.counters),
        )
