"""The writing half of an ingest round: rejects, alerts, archive, live state, live feed.

Each sink is guarded on its own: a failure is logged and counted (``store_error.<what>``,
``live_error.<what>``) and the others still get the round. Archive writes are retried a few
times with backoff first (``Ingest.archive_attempts``); a write given up is kept on disk by the
:class:`~cloud.ingest.spill.Spill` when the ingest has one (fixes, readings and vessel data,
``spilled.<what>``, written once the archive takes them, ``spill_restored.<what>``). What is
neither written nor spilled is reported back as :class:`Unwritten`: its seqs are neither admitted
to the de-duplication ledger nor acknowledged to the gateway, which sends them again.

Edge alarms are applied with the same retries; one that still fails is applied once more with
its text cleaned (control characters removed, fields shortened), and only if that fails too is
it left unacknowledged for the gateway to send again. An alarm is never dropped.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, TypeVar

import msgspec

import wire
from cloud.alerts import AlertService
from cloud.archive import Store
from cloud.ingest.core import Accepted
from cloud.ingest.spill import Spill, SpillKind
from cloud.live import BatchLive, LiveState
from cloud.models import LiveEvent, Received, Rejected

__all__ = ["Unwritten", "Writer", "cleaned_alarm", "live_events", "retried", "write_round"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class Unwritten:
    """What a round could not make durable: archive kinds given up (``fixes``, ``readings``,
    ``vessels``, ``rejected``) and edge alarms not applied, as ``(gateway_id, seq)``."""

    kinds: set[str] = field(default_factory=set)
    alarms: set[tuple[str, int]] = field(default_factory=set)


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
) -> bool:
    """Run an archive write, retrying with exponential backoff; then spill it or give up.

    Returns:
        Whether the records are durable (written, or spilled to the fsynced file).
    """
    try:
        await retried(ingest, "store_retry." + what, write)
        return True
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
                return True
        ingest.counters["store_error." + what] += 1
        log.exception(
            "ingest: archiving %s failed %d times; left to the gateway to send again",
            what,
            ingest.archive_attempts,
        )
        return False


_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _clean(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    cleaned = _CONTROL.sub("", text.encode("utf-8", "replace").decode("utf-8"))
    return cleaned[:limit]


def cleaned_alarm(alarm: wire.Alarm) -> wire.Alarm:
    """The alarm with every text field stripped of control characters and shortened (what any
    database takes), its numbers untouched."""
    return msgspec.structs.replace(
        alarm,
        message=_clean(alarm.message, 1000) or "",
        site=_clean(alarm.site, 128),
        point=_clean(alarm.point, 128),
        asset=_clean(alarm.asset, 128),
        code=_clean(alarm.code, 64),
        device=_clean(alarm.device, 128),
    )


async def _apply_alarm(ingest: Writer, alarm: Received[wire.Alarm], recv_ms: int) -> bool:
    """Apply an edge alarm with retries, then once in its cleaned form; return whether it was."""
    alerts = ingest.alerts
    assert alerts is not None

    def apply(item: wire.Alarm) -> Callable[[], Awaitable[object]]:
        return lambda: alerts.on_alarm(
            item,
            enterprise_id=alarm.enterprise_id,
            gateway_id=alarm.gateway_id,
            now_ms=recv_ms,
            again=True,
        )

    try:
        await retried(ingest, "alert_retry", apply(alarm.item))
        return True
    except Exception:
        log.exception("ingest: alarm seq %d of %s failed", alarm.item.seq, alarm.gateway_id)
    try:
        await apply(cleaned_alarm(alarm.item))()
    except Exception:
        ingest.counters["alert_error"] += 1
        log.exception(
            "ingest: alarm seq %d of %s failed cleaned too; left to the gateway to send again",
            alarm.item.seq,
            alarm.gateway_id,
        )
        return False
    ingest.counters["alert_cleaned"] += 1
    return True


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
) -> Unwritten:
    """Record rejects, apply alarms, archive and update the live state for one round.

    ``fills`` are the seqs admitted for the first time per gateway: counted off the gaps
    recorded by earlier rounds before this round's new gaps are recorded.

    Returns:
        What is not durable (see :class:`Unwritten`).
    """
    store = ingest.store
    unwritten = Unwritten()
    if rejects and not await _archive(ingest, "rejected", lambda: store.insert_rejected(rejects)):
        unwritten.kinds.add("rejected")
    if ingest.alerts is not None:
        # Alarms first: they travel ahead of data and are what people wait for.
        for alarm in accepted.alarms:
            if not await _apply_alarm(ingest, alarm, recv_ms):
                unwritten.alarms.add((alarm.gateway_id, alarm.item.seq))
    kinds: tuple[tuple[SpillKind, Sequence[Received[Any]], Callable[..., Awaitable[Any]]], ...] = (
        ("fixes", accepted.fixes, store.insert_fixes),
        ("readings", accepted.readings, store.insert_readings),
        ("vessels", accepted.vessels, store.insert_vessels),
    )
    for what, records, insert in kinds:
        if records and not await _archive(
            ingest, what, functools.partial(insert, records), (what, records)
        ):
            unwritten.kinds.add(what)
    for gateway_id, seqs in (fills or {}).items():
        await _archive(ingest, "gaps", functools.partial(store.fill_gaps, gateway_id, seqs))
    if accepted.gaps:
        await _archive(ingest, "gaps", lambda: store.insert_gaps(accepted.gaps))
    live = ingest.live
    await _guard(ingest, "live_error.fixes", live.put_fixes(accepted.fixes))
    health = {h.gateway_id: h.item for h in accepted.health}
    seen = [(g, e, recv_ms, health.get(g)) for g, e in sorted({(b[0], b[1]) for b in batches})]
    if len(seen) > 1 and isinstance(live, BatchLive):
        try:
            await live.gateways_seen(seen)
            seen = []
        except Exception:
            log.warning("ingest: gateways seen not noted at once; one by one", exc_info=True)
    for gateway_id, enterprise_id, seen_ms, gateway_health in seen:
        await _guard(
            ingest,
            "live_error.gateway",
            live.set_gateway(
                gateway_id, enterprise_id=enterprise_id, seen_ms=seen_ms, health=gateway_health
            ),
        )
    await _guard(ingest, "live_error.feed", live.publish_many(live_events(accepted)))
    return unwritten
