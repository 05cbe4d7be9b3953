"""The outbox dispatcher: alert history -> outbox (the sweep), then due rows -> channels.

Any number of workers may run :meth:`Dispatcher.run` on one archive: the sweep is idempotent
and claims are leased (see :mod:`cloud.archive._notify`). A delivery that fails with a 5xx or a
timeout is retried with capped, jittered exponential backoff until the notification expires; a
4xx is recorded as failed at once. A notification whose channel is not configured here fails.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final

from cloud.alerts import AlertService
from cloud.archive import Flood, Store
from cloud.notify.channels import Channel, Message, Outcome
from cloud.notify.config import NotifySettings
from cloud.notify.escalation import Escalator
from cloud.notify.records import (
    Attempt,
    Claimed,
    Finished,
    MaintenanceWindow,
    Outgoing,
    Recipient,
)
from cloud.notify.routing import route

__all__ = ["Dispatcher", "backoff_s"]

log = logging.getLogger(__name__)
_SWEEP_LIMIT: Final = 500
#: Texts of held notifications a digest's text quotes (its ``items`` carry all of them).
_DIGEST_TEXTS: Final = 3


def backoff_s(attempt: int, *, base_s: float, max_s: float, jitter: float) -> float:
    """The delay before retry number ``attempt`` (1, 2...): ``base_s * 2**(attempt - 1)`` capped
    at ``max_s``, scaled by ``jitter`` (drawn from 0.5..1: workers retrying together spread)."""
    delay = min(max_s, base_s * 2.0 ** min(attempt - 1, 62))
    return delay * jitter


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Dispatcher:
    """Moves alert changes into the outbox and sends what is due.

    Args:
        store: the archive holding recipients and the outbox.
        channels: the channels by name (``webhook``, ``sms``, ``email``).
        settings: timing and routing settings.
        clock_ms: the clock (UTC epoch ms).
        worker: this worker's name in leases and attempts (host, pid and a random part).
        rng: the source of backoff jitter.
        alerts: the alert service; given, the dispatcher also escalates alerts nobody
            acknowledged in time (:mod:`cloud.notify.escalation`).
    """

    def __init__(
        self,
        *,
        store: Store,
        channels: Mapping[str, Channel],
        settings: NotifySettings,
        clock_ms: Callable[[], int] = _wall_ms,
        worker: str | None = None,
        rng: random.Random | None = None,
        alerts: AlertService | None = None,
    ) -> None:
        self.store = store
        self.channels = dict(channels)
        self.settings = settings
        self.clock_ms = clock_ms
        self.worker = worker or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self.rng = rng or random.Random()
        self.counters: dict[str, int] = {}
        self.escalator = (
            None
            if alerts is None
            else Escalator(store=store, alerts=alerts, settings=settings, clock_ms=clock_ms)
        )
        self._escalate_at_ms = 0
        window_ms = int(settings.flood_window_s * 1000)
        self._flood = Flood(settings.flood_max, window_ms) if settings.flood_max else None

    def _count(self, what: str, n: int = 1) -> None:
        self.counters[what] = self.counters.get(what, 0) + n

    async def sweep(self) -> int:
        """Enqueue the notifications of alert changes not read yet; return how many were new.

        On PostgreSQL the last ``sweep_overlap`` history ids below the cursor are read again
        (a transaction that took an id earlier may commit after one that took a later id),
        skipping those swept already: each entry is routed once.
        """
        cursor, floor = await self.store.notify_cursor()
        overlap = self.settings.sweep_overlap if self.store.dialect == "postgresql" else 0
        after = max(floor, cursor - overlap)
        added = 0
        while True:
            changes = await self.store.alert_changes(after, limit=_SWEEP_LIMIT)
            if not changes:
                break
            now_ms = self.clock_ms()
            recipients: dict[str, list[Recipient]] = {}
            windows: dict[str, list[MaintenanceWindow]] = {}
            since_ms = min(c.ts_ms for c in changes)
            items: list[Outgoing] = []
            for change in changes:
                enterprise = change.alert.enterprise_id
                if enterprise not in recipients:
                    recipients[enterprise] = await self.store.list_recipients([enterprise])
                    windows[enterprise] = await self.store.windows_since(enterprise, since_ms)
                found = route(
                    change, recipients[enterprise], now_ms=now_ms, settings=self.settings,
                    windows=windows[enterprise],
                )  # fmt: skip
                items.extend(found)
            after = changes[-1].event_id
            added += await self.store.enqueue_notifications(
                items, cursor=after, now_ms=now_ms, expiry_ms=int(self.settings.expiry_s * 1000),
                swept=[c.event_id for c in changes], keep_swept=overlap, flood=self._flood,
            )  # fmt: skip
            if len(changes) < _SWEEP_LIMIT:
                break
        self._count("enqueued", added)
        return added

    async def send_due(self) -> int:
        """Claim due notifications, send them, record each outcome; return how many were
        claimed."""
        settings = self.settings
        claimed = await self.store.claim_notifications(
            self.worker,
            now_ms=self.clock_ms(),
            lease_ms=int(settings.lease_s * 1000),
            limit=settings.batch,
        )
        if not claimed:
            return 0
        gate = asyncio.Semaphore(settings.concurrency)

        async def one(item: Claimed) -> Finished:
            async with gate:
                return await self._deliver(item)

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(i), name=f"notify-{i.id}") for i in claimed]
        results = [t.result() for t in tasks]
        # One transaction records the whole batch (a commit per notification was most of the
        # cost); the leases outlast the slowest send.
        for result, kept in zip(
            results, await self.store.finish_notifications(results), strict=True
        ):
            self._count(result.attempt.outcome)
            if not kept:
                self._count("lease_lost")
                log.warning("notification %d: lease lost before its outcome was recorded",
                            result.claimed.id)  # fmt: skip
        return len(claimed)

    async def _deliver(self, item: Claimed) -> Finished:
        """Send one notification; what to record of it."""
        channel = self.channels.get(item.channel)
        started = time.monotonic()
        payload = item.payload
        settles: tuple[int, ...] = ()
        if item.event == "digest":
            payload, settles = await self._digest(item)
        if channel is None:
            outcome = Outcome("failed", None, f"channel {item.channel} is not configured")
        elif not settles and item.event == "digest":
            outcome = Outcome("sent", None, "nothing held: nothing sent")
        else:
            message = Message(
                id=item.dedupe, address=item.address, payload=payload, secret=item.secret
            )
            try:
                outcome = await channel.send(message)
            except Exception as exc:  # a channel's bug must not stop the others
                log.exception("channel %s failed on notification %d", item.channel, item.id)
                outcome = Outcome("retry", None, f"{type(exc).__name__}: {exc}")
        now_ms = self.clock_ms()
        status, next_ms, word = self._decide(item, outcome, now_ms)
        attempt = Attempt(
            ts_ms=now_ms, worker=self.worker, outcome=word, code=outcome.code,
            error=outcome.error[:2000], duration_ms=int((time.monotonic() - started) * 1000),
        )  # fmt: skip
        return Finished(
            claimed=item, attempt=attempt, status=status, next_ms=next_ms, now_ms=now_ms,
            settles=settles,
        )  # fmt: skip

    async def _digest(self, item: Claimed) -> tuple[dict[str, Any], tuple[int, ...]]:
        """The payload of a digest (what flood control held for its endpoint) and the ids it
        settles."""
        held = await self.store.held_notifications(item)
        texts = [str(p.get("text", "")) for _, p in held]
        shown = "；".join(texts[:_DIGEST_TEXTS])
        more = f"；另有{len(texts) - _DIGEST_TEXTS}条" if len(texts) > _DIGEST_TEXTS else ""
        payload = {
            "event": "digest",
            "count": len(held),
            "items": [p for _, p in held],
            "text": f"【hazwatch】{len(held)}条告警通知合并发送：{shown}{more}",
        }
        return payload, tuple(i for i, _ in held)

    def _decide(self, item: Claimed, outcome: Outcome, now_ms: int) -> tuple[str, int, str]:
        """The row's new status, next due time and the attempt's outcome word."""
        if outcome.status == "sent":
            return "sent", now_ms, "sent"
        if outcome.status == "failed":
            return "failed", now_ms, "failed"
        settings = self.settings
        delay_s = backoff_s(
            item.attempt, base_s=settings.backoff_base_s, max_s=settings.backoff_max_s,
            jitter=0.5 + self.rng.random() / 2,
        )  # fmt: skip
        next_ms = now_ms + int(delay_s * 1000)
        if next_ms >= item.expires_ms:
            return "expired", now_ms, "expired"
        return "pending", next_ms, "retry"

    async def run_once(self) -> int:
        """One round: escalate (every ``escalate_period_s``), sweep, then send what is due;
        return how many were claimed."""
        now_ms = self.clock_ms()
        if self.escalator is not None and now_ms >= self._escalate_at_ms:
            self._escalate_at_ms = now_ms + int(self.settings.escalate_period_s * 1000)
            self._count("escalated", await self.escalator.run_once())
        await self.sweep()
        return await self.send_due()

    async def run(self) -> None:
        """Dispatch until cancelled; a failing round is logged and tried again."""
        while True:
            try:
                busy = await self.run_once()
            except Exception:
                log.exception("notification round failed; trying again")
                busy = 0
            if not busy:
                await asyncio.sleep(self.settings.poll_s)

    async def aclose(self) -> None:
        """Close the channels."""
        for channel in self.channels.values():
            await channel.aclose()
