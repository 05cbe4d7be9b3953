"""The writing half of an ingest round: rejects, alerts, archive, live state, live feed.

Each sink is guarded on its own: a failure is logged and counted (``store_error.<what>``,
``live_error.<what>``) and the others still get the round. Archive writes are retried a few
times with backoff first (``Ingest.archive_attempts``): the items are already in the
de-duplication ledger, so a write given up is a loss, counted as ``store_error.<what>`` -- unless
the ingest has a :class:`~cloud.ingest.spill.Spill`, which keeps fixes, readings and vessel data on disk
(``spilled.<what>``) until the archive takes them (``spill_restored.<what>``).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import msgspec

import wire
from cloud.alerts import AlertService
from cloud.archive import Store
from cloud.ingest.core import Accepted
from cloud.ingest.spill import Spill, SpillKind
from cloud.live import LiveState
from cloud.models import LiveEvent, Received, Rejected

__all__ = ["Writer", "live_events", "retried", "write_round"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class Writer(Protocol):
    """What a round's writes need of the ingest: its sinks, retry policy and counters."""

    store: Store
    live: LiveState
    alerts: AlertService | None
    spill: Spill | None
    archive_attempts: int
    archive_retry_s: float
    counters: collections.Counter[str]


async def _guard(ingest: Writer, what: str, call: Awaitable[Any]) -> None:
    try:
        await call
    except Exception:
        ingest.counters[what] += 1
        log.exception("ingest: %s", what)


async def retried(ingest: Writer, retry_counter: str, call: Callable[[], Awaitable[T]]) -> T:
    """Run ``call``, retrying ``ingest.archive_attempts`` times in all with exponential backoff.

    Each retry is counted as ``retry_counter``; the last failure is raised.
    """
    delay_s = ingest.archive_retry_s
    for attempt in range(1, ingest.archive_attempts):
        try:
            return await call()
        except Exception:
            ingest.counters[retry_counter] += 1
            log.warning(
                "ingest: %s after failure %d; retrying in %.1f s", retry_counter, attempt, delay_s
            )
            await asyncio.sleep(delay_s)
            delay_s *= 2
    return await call()


async def _archive(
    ingest: Writer,
    what: str,
    write: Callable[[], Awaitable[Any]],
    spilled: tuple[SpillKind, Sequence[Received[Any]]] | None = None,
) -> None:
    """Run an archive write, retrying with exponential backoff; then spill it or give up."""
    try:
        await retried(ingest, "store_retry." + what, write)
    except Exception:
        if spilled is not None and ingest.spill is not None:
            try:
                await ingest.spill.add(*spilled)
            except OSError:
                log.exception("ingest: spilling %s to %s failed", what, ingest.spill.path)
            else:
                ingest.counters["spilled." + what] += len(spilled[1])
                log.error(
                    "ingest: archiving %s failed %d times; %d records kept in %s for later",
                    what,
                    ingest.archive_attempts,
                    len(spilled[1]),
                    ingest.spill.path,
                )
                return
        ingest.counters["store_error." + what] += 1
        log.exception(
            "ingest: archiving %s failed %d times; giving up", what, ingest.archive_attempts
        )


def live_events(accepted: Accepted) -> list[LiveEvent]:
    """Feed events of a round: every fix and reading (late/future marked), vessel data."""
    events = []
    records: Sequence[Received[Any]] = [*accepted.fixes, *accepted.readings, *accepted.vessels]
    for rec in records:
        data = msgspec.to_builtins(rec.item)
        data.update(
            gateway_id=rec.gateway_id, recv_ms=rec.recv_ms, late=rec.late, future=rec.future
        )
        kind = data["kind"]
        events.append(
            LiveEvent(kind=kind, enterprise_id=rec.enterprise_id, ts_ms=rec.item.ts, data=data)
        )
    return events


async def write_round(
    ingest: Writer,
    accepted: Accepted,
    batches: Sequence[tuple[str, str, str, Sequence[wire.Item]]],
    rejects: Sequence[Rejected],
    recv_ms: int,
    *,
    fills: Mapping[str, Sequence[int]] | None = None,
) -> None:
    """Record rejects, apply alarms, archive and update the live state for one round.

    ``fills`` are the seqs admitted for the first time per gateway: counted off the gaps
    recorded by earlier rounds before this round's new gaps are recorded.
    """
    store = ingest.store
    if rejects:
        await _archive(ingest, "rejected", lambda: store.insert_rejected(rejects))
    if ingest.alerts is not None:
        # Alarms first: they travel ahead of data and are what people wait for.
        for alarm in accepted.alarms:
            await _guard(
                ingest,
                "alert_error",
                ingest.alerts.on_alarm(
                    alarm.item,
                    enterprise_id=alarm.enterprise_id,
                    gateway_id=alarm.gateway_id,
                    now_ms=recv_ms,
                ),
            )
    if accepted.fixes:
        fixes = accepted.fixes
        await _archive(ingest, "fixes", lambda: store.insert_fixes(fixes), ("fixes", fixes))
    if accepted.readings:
        readings = accepted.readings
        await _archive(
            ingest, "readings", lambda: store.insert_readings(readings), ("readings", readings)
        )
    if accepted.vessels:
        vessels = accepted.vessels
        await _archive(
            ingest, "vessels", lambda: store.insert_vessels(vessels), ("vessels", vessels)
        )
    for gateway_id, seqs in (fills or {}).items():
        await _archive(ingest, "gaps", functools.partial(store.fill_gaps, gateway_id, seqs))
    if accepted.gaps:
        await _archive(ingest, "gaps", lambda: store.insert_gaps(accepted.gaps))
    live = ingest.live
    await _guard(ingest, "live_error.fixes", live.put_fixes(accepted.fixes))
    health = {h.gateway_id: h.item for h in accepted.health}
    for gateway_id, enterprise_id in {(b[0], b[1]) for b in batches}:
        await _guard(
            ingest,
            "live_error.gateway",
            live.set_gateway(
                gateway_id,
                enterprise_id=enterprise_id,
                seen_ms=recv_ms,
                health=health.get(gateway_id),
            ),
        )
    await _guard(ingest, "live_error.feed", live.publish_many(live_events(accepted)))
