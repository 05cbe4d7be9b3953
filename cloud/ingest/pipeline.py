"""MQTT ingest: validate, de-duplicate, find gaps, order, archive, update live state, run steps.

:class:`Ingest` handles messages (``handle``/``handle_many``, usable without a broker);
:meth:`Ingest.run` feeds it from an ``aiomqtt.Client`` (several queued messages form one round,
written in batches); :func:`serve` owns the connection and reconnects with capped, jittered
backoff. Several workers split the load with ``share_group`` (an MQTT v5 shared subscription);
de-duplication then goes through a shared ledger (:class:`cloud.live.RedisLiveState`).

Every refusal is counted by reason (``rejected.<reason>``) and kept for inspection (a bounded
ring here and the archive's ``rejected`` table); nothing bad crashes the loop.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

import aiomqtt

import wire
from cloud.alerts import AlertService
from cloud.archive import Store
from cloud.ingest.core import Accepted, Step, candidate_gaps, classify
from cloud.ingest.mqtt import cancel_requests, raise_if_cancelled, topic_filters
from cloud.ingest.spill import Spill
from cloud.ingest.writer import Unwritten, retried, write_round
from cloud.live import BatchLedger, LiveState, SeqLedger
from cloud.models import Gap, LiveEvent, Received, Rejected

__all__ = ["Ingest"]

log = logging.getLogger(__name__)
_KEEP_PAYLOAD_BYTES: Final = 4096


#: A jump of seqs larger than this is a new buffer file, not a gap: 10^10 items is 1,000 a
#: second for 115 days, beyond any gateway's rate and its 30-day buffer. (A new file numbers
#: from its clock in microseconds, so it jumps by the microseconds since the old file began.)
SEQ_RESET_SPAN: Final = 10**10


#: The condition of a gateway whose status says offline (its last will): never an edge code.
GATEWAY_OFFLINE: Final = "gateway_offline"


#: Gateways of a round looked up in the registry at the same time.
_LOOKUP_CONCURRENCY: Final = 8


#: Uncached gateways in a round from which they are looked up in one query.
_BATCH_LOOKUP_MIN: Final = 8


class _Unknown:
    """A high-water mark not raised yet (the gateway's data asks the ledger itself)."""


_UNKNOWN: Final = _Unknown()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Ingest:
    """The cloud's ingest pipeline, independent of how messages arrive.

    Args:
        store: the archive (registry lookups, tracks, readings, gaps, rejected messages).
        live: the live state (latest fixes, gateways, feed).
        ledger: de-duplication ledger and high-water mark of data seqs; defaults to ``live``
            (use the store's in the embedded setup for durability across restarts).
        alerts: turns edge alarms into alerts; ``None`` keeps alarms out of the alert table.
        steps: the pipeline the rules plug in, run in order on each round's :class:`Accepted`.
        future_tolerance_ms: observation times further ahead of receive time are flagged.
        reject_ring: how many rejected messages/items to keep in memory.
        archive_attempts: tries of each archive write before the round's items of that kind
            are given up (counted as ``store_error.<kind>``), and of each ledger call before
            the items are passed on unchecked (counted as ``ledger_error``).
        archive_retry_s: first delay between tries, doubled each time.
        gateway_ttl_s: how long a gateway -> enterprise (and asset -> enterprise) lookup is
            cached at most.
        spill: where archive writes of fixes, readings and vessel data go when the database
            refuses them after their retries, to be written again once it answers (tried at
            most every ``spill_retry_s``); ``None`` gives them up (counted).
        spill_retry_s: pause between attempts to write the spilled records.
        registry_check_s: how often the live state's registry version is read; when another
            worker's API changed a gateway or an asset, the cached owners are dropped, so a
            moved gateway's data goes to its new enterprise within about this long.
        clock: receive time in epoch ms (tests pin it).
    """

    def __init__(
        self,
        *,
        store: Store,
        live: LiveState,
        ledger: SeqLedger | None = None,
        alerts: AlertService | None = None,
        steps: tuple[Step, ...] = (),
        future_tolerance_ms: int = 60_000,
        reject_ring: int = 1000,
        archive_attempts: int = 4,
        archive_retry_s: float = 0.5,
        gateway_ttl_s: float = 60.0,
        spill: Spill | None = None,
        spill_retry_s: float = 10.0,
        registry_check_s: float = 1.0,
        log_interval_s: float = 60.0,
        clock: collections.abc.Callable[[], int] = _now_ms,
    ) -> None:
        self.store = store
        self.live = live
        self.ledger: SeqLedger = ledger if ledger is not None else live
        self.alerts = alerts
        self.steps = steps
        self.future_tolerance_ms = future_tolerance_ms
        self.archive_attempts = max(1, archive_attempts)
        self.archive_retry_s = archive_retry_s
        self.gateway_ttl_s = gateway_ttl_s
        self.registry_check_s = registry_check_s
        self.spill = spill
        self.spill_retry_s = spill_retry_s
        self._spill_tried = -float("inf")
        self._registry_version: int | None = None
        self._registry_checked = -float("inf")
        self.log_interval_s = log_interval_s
        #: longest wait for the broker to take a round's acknowledgements to the gateways
        self.ack_publish_timeout_s = 2.0
        self.clock = clock
        self.counters: collections.Counter[str] = collections.Counter()
        self.rejected: collections.deque[Rejected] = collections.deque(maxlen=reject_ring)
        self._gateways: dict[str, tuple[str, float]] = {}
        # "asset"/"site" -> id -> (its enterprise, or None when not registered; expiry on the
        # monotonic clock)
        self._owner_cache: dict[str, dict[str, tuple[str | None, float]]] = {
            "asset": {},
            "site": {},
        }
        # (enterprise, site, point) -> newest reading time: another tenant's readings of a
        # site with the same id never make this tenant's look late
        self._reading_ms: dict[tuple[str, str, str], int] = {}
        self._logged_at = time.monotonic()
        self._logged: collections.Counter[str] = collections.Counter()
        # Counts of the round in progress, published to ``counters`` once its work is done.
        self._pending: collections.Counter[str] = collections.Counter()

    # -- entry points -----------------------------------------------------------------------

    async def handle(self, topic: str, payload: bytes) -> Accepted:
        """Process one MQTT message; return what was accepted."""
        return await self.handle_many([(topic, payload)])

    async def handle_many(self, messages: Sequence[tuple[str, bytes]]) -> Accepted:
        """Process several messages as one round (one write per table); never raises for input.

        Order of a round: check each message; ask the ledger which seqs are known (reads only);
        archive what is new (idempotently: one row per gateway seq, whoever writes it); only
        then admit to the ledger what the writes made durable, so a failed write or a killed
        worker leaves those seqs unknown and the gateway's resend is taken, not dropped as a
        duplicate. ``Accepted.acked`` says what each gateway may delete.

        Returns:
            The accepted items, de-duplicated, marked and ordered (as the steps saw them).
        """
        recv_ms = self.clock()
        await self._check_registry()
        await self._restore_spilled()
        await self._prefetch_gateways(messages)
        rejects: list[Rejected] = []
        batches: list[tuple[str, str, str, list[wire.Item]]] = []
        for topic, payload in messages:
            batch = await self._open(topic, payload, recv_ms, rejects)
            if batch is not None:
                batches.append(batch)
        # One ledger call per gateway and channel per round, alarms first (they travel ahead).
        merged: dict[tuple[str, str, str], list[wire.Item]] = {}
        for gateway_id, enterprise_id, channel, batch_items in batches:
            merged.setdefault((channel, gateway_id, enterprise_id), []).extend(batch_items)
        items: list[tuple[str, str, wire.Item]] = []
        gaps: list[Gap] = []
        fills: dict[str, list[int]] = {}
        known: dict[str, list[wire.Item]] = {}
        entries = sorted(merged.items())
        # The ledger's reads for every gateway of the round at once (when it can: else, and
        # if that fails, one gateway at a time as below, with retries per gateway).
        seen_all = await self._seen_many([(gw, items) for (_, gw, _), items in entries])
        deduped = []
        for n, ((channel, gateway_id, enterprise_id), batch_items) in enumerate(entries):
            seen = None if seen_all is None else seen_all[n]
            fresh, repeats = await self._dedup(gateway_id, batch_items, seen)
            known.setdefault(gateway_id, []).extend(repeats)
            deduped.append((channel, gateway_id, enterprise_id, fresh))
        highs = await self._high_water_many(
            [
                (gw, max(i.seq for i in fresh))
                for ch, gw, _, fresh in deduped
                if ch == "data" and fresh
            ]
        )
        counted = await self._missing_many(
            [(gw, fresh) for ch, gw, _, fresh in deduped if ch == "data" and fresh], highs
        )
        for channel, gateway_id, enterprise_id, fresh in deduped:
            # First arrivals at or below the high-water mark (a backlog drained after newer
            # data) and alarms may fill gaps recorded earlier: the store counts them off.
            if channel == "data" and fresh:
                found, filled = await self._gaps(
                    gateway_id, enterprise_id, fresh, recv_ms, highs.get(gateway_id, _UNKNOWN),
                    counted,
                )  # fmt: skip
                gaps += found
                if filled:
                    fills.setdefault(gateway_id, []).extend(filled)
            elif fresh:
                fills.setdefault(gateway_id, []).extend(i.seq for i in fresh)
            items += [(gateway_id, enterprise_id, item) for item in fresh]
        refused: list[tuple[str, int]] = []
        items = await self._owned_only(items, recv_ms, rejects, refused)
        refused += await self._conflicts(known, recv_ms, rejects)
        accepted = await self._classify(items, recv_ms)
        accepted.gaps = gaps
        unwritten = await write_round(self, accepted, batches, rejects, recv_ms, fills=fills)
        accepted.acked = await self._admit(accepted, unwritten, known, refused, recv_ms)
        for rej in rejects:
            self._pending["rejected." + rej.reason] += 1
            self.rejected.append(rej)
        await self._run_steps(accepted)
        self._count(accepted)
        self._maybe_log()
        return accepted

    async def run(
        self,
        client: aiomqtt.Client,
        *,
        share_group: str | None = None,
        gateway_ids: Collection[str] | None = None,
        qos: int = 1,
        max_round_messages: int = 200,
        queue_size: int = 10_000,
        ready: asyncio.Event | None = None,
    ) -> None:
        """Subscribe with ``client`` (already connected) and process until cancelled.

        Args:
            client: a connected client (MQTT v5 when ``share_group`` is used).
            share_group: split data and alarm topics with other workers of this group. Status
                topics are always subscribed directly: brokers do not send retained messages
                to shared subscriptions.
            gateway_ids: subscribe only to these gateways (default: every gateway).
            qos: subscription QoS.
            max_round_messages: most queued messages processed together as one round.
            queue_size: messages buffered between the reader and the processor.
            ready: set once the broker has acknowledged every subscription.
        """
        before = cancel_requests()
        for topic in topic_filters(share_group, gateway_ids):
            await client.subscribe(topic, qos=qos)
            raise_if_cancelled(before)
        if ready is not None:
            ready.set()
        queue: asyncio.Queue[_Message] = asyncio.Queue(queue_size)
        processor = asyncio.create_task(
            self._process(client, queue, max_round_messages), name="ingest-process"
        )
        try:
            await self._read(client, queue)
        except aiomqtt.MqttError:
            self.counters["mqtt_lost"] += 1
            log.warning("ingest lost the broker; finishing %d queued messages", queue.qsize())
            raise
        finally:
            # Handle what is queued before returning (on cancel too): archived now, it need not
            # wait for the broker to send it again to this session or another worker.
            await _finish(queue, processor)

    def counts(self) -> dict[str, int]:
        """A copy of the counters (``accepted.<kind>``, ``duplicate``, ``rejected.<reason>``...)."""
        return dict(self.counters)

    async def restore_spilled(self) -> dict[str, int]:
        """Write spilled records to the archive now; return how many of each kind were."""
        spill = self.spill
        if spill is None or not spill.pending:
            return {}
        self._spill_tried = time.monotonic()
        store = self.store

        async def write(what: str, records: list[Any]) -> object:
            if what == "fixes":
                return await store.insert_fixes(records)
            if what == "readings":
                return await store.insert_readings(records)
            return await store.insert_vessels(records)

        written = await spill.drain(write)
        for what, count in spill.quarantined.items():
            self.counters["spill_quarantined." + what] = count
        for what, count in written.items():
            self.counters["spill_restored." + what] += count
            log.info("ingest: %d spilled %s written to the archive", count, what)
        return written

    async def _restore_spilled(self) -> None:
        due = time.monotonic() - self._spill_tried >= self.spill_retry_s
        if due and self.spill is not None and self.spill.pending:
            await self.restore_spilled()

    async def _check_registry(self) -> None:
        """Drop the cached owners when the registry changed (at most every registry_check_s)."""
        now = time.monotonic()
        if now - self._registry_checked < self.registry_check_s:
            return
        self._registry_checked = now
        try:
            version = await self.live.registry_version()
        except Exception:
            self._pending["live_error.registry_version"] += 1
            log.warning("registry version unreadable; cached owners expire by age", exc_info=True)
            return
        if version != self._registry_version:
            if self._registry_version is not None:
                self._gateways.clear()
                for cache in self._owner_cache.values():
                    cache.clear()
            self._registry_version = version

    def forget_gateway(self, gateway_id: str) -> None:
        """Drop the cached enterprise of a gateway (call after moving or deleting it)."""
        self._gateways.pop(gateway_id, None)

    def forget_asset(self, asset_id: str) -> None:
        """Drop the cached enterprise of an asset (call after registering, moving or deleting it)."""
        self._owner_cache["asset"].pop(asset_id, None)

    def forget_site(self, site_id: str) -> None:
        """Drop the cached enterprise of a site (call after registering, moving or deleting it)."""
        self._owner_cache["site"].pop(site_id, None)

    # -- stages -----------------------------------------------------------------------------

    async def _open(
        self, topic: str, payload: bytes, recv_ms: int, rejects: list[Rejected]
    ) -> tuple[str, str, str, list[wire.Item]] | None:
        """Topic, envelope and registry checks; rejected input is recorded in ``rejects``."""
        gateway_id: str | None = None
        try:
            gateway_id, channel = wire.parse_topic(topic)
            if channel == "status":
                if not await self._status(gateway_id, payload, recv_ms):
                    rejects.append(
                        _rejected(
                            recv_ms,
                            "unknown_gateway",
                            "gateway not registered",
                            topic,
                            gateway_id,
                            payload,
                        )
                    )
                return None
            decoded = wire.decode_batch(payload)
            if decoded.gw != gateway_id:
                raise wire.WireError(
                    "gateway_mismatch", f"envelope {decoded.gw!r} on topic of {gateway_id!r}"
                )
            enterprise_id = await self._enterprise(gateway_id)
        except wire.WireError as exc:
            rejects.append(
                _rejected(recv_ms, exc.reason, exc.detail, topic, gateway_id, payload, exc.field)
            )
            return None
        except Exception as exc:
            # The registry is unreachable: keep the message for inspection, go on with the rest.
            log.exception("gateway %s: registry lookup failed", gateway_id)
            rejects.append(
                _rejected(recv_ms, "registry_error", repr(exc), topic, gateway_id, payload)
            )
            return None
        if enterprise_id is None:
            rejects.append(
                _rejected(
                    recv_ms, "unknown_gateway", "gateway not registered", topic, gateway_id, payload
                )
            )
            return None
        for err in decoded.errors:
            # The message is kept with each refused item: its field path points into it.
            rejects.append(
                _rejected(recv_ms, err.reason, err.detail, topic, gateway_id, payload, err.field)
            )
        self.counters["messages." + channel] += 1
        return gateway_id, enterprise_id, channel, decoded.items

    async def _status(self, gateway_id: str, payload: bytes, recv_ms: int) -> bool:
        """Apply a retained status message; ``False`` if the gateway is unknown."""
        if not payload:
            self.counters["status.cleared"] += 1
            return True
        status = wire.decode_status(payload)
        if status.gw != gateway_id:
            raise wire.WireError("gateway_mismatch", f"status of {status.gw!r} on {gateway_id!r}")
        enterprise_id = await self._enterprise(gateway_id)
        if enterprise_id is None:
            return False
        event = LiveEvent(
            kind="gateway",
            enterprise_id=enterprise_id,
            ts_ms=status.ts,
            data={"gateway_id": gateway_id, "state": status.state, "recv_ms": recv_ms},
        )
        try:
            await self.live.set_gateway(
                gateway_id, enterprise_id=enterprise_id, state=status.state, status_ms=status.ts
            )
            await self.live.publish(event)
        except Exception:
            self.counters["live_error.status"] += 1
            log.exception("gateway %s: status not applied to the live state", gateway_id)
            applied = False
        else:
            applied = True
        await self._status_alert(gateway_id, enterprise_id, status, recv_ms)
        if applied:  # (counted once the alert is applied too: tests wait on the counter)
            self.counters["status." + status.state] += 1
        return True

    async def _status_alert(
        self, gateway_id: str, enterprise_id: str, status: wire.Status, recv_ms: int
    ) -> None:
        """An ``offline`` status (the MQTT last will the broker publishes for a gateway that
        vanished, or the agent's own on a clean stop) opens the gateway's ``gateway_offline``
        alert; ``online`` closes it. Applied as an edge alarm of that condition numbered by the
        status's time, so that statuses taken out of order by two workers, or retained ones
        delivered again after a reconnect, never reopen or close it wrongly."""
        if self.alerts is None:
            return
        alarm = wire.Alarm(
            seq=max(status.ts, 0),
            ts=status.ts,
            state="raise" if status.state == "offline" else "clear",
            level="fault",
            code=GATEWAY_OFFLINE,
            message=f"gateway {gateway_id} offline" if status.state == "offline" else "",
        )
        try:
            await self.alerts.on_alarm(
                alarm, enterprise_id=enterprise_id, gateway_id=gateway_id, now_ms=recv_ms
            )
        except Exception:
            self.counters["alert_error.status"] += 1
            log.exception("gateway %s: offline alert not applied", gateway_id)

    async def _prefetch_gateways(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Look up the gateways of a round that are not cached, a few at a time, so that the
        messages do not wait for their lookups one after the other. A failed lookup is left
        to :meth:`_enterprise` (with its retries) when its message is opened."""
        now = time.monotonic()
        wanted: set[str] = set()
        for topic, _ in messages:
            try:
                gateway_id, _ = wire.parse_topic(topic)
            except wire.WireError:
                continue
            cached = self._gateways.get(gateway_id)
            if cached is None or cached[1] <= now:
                wanted.add(gateway_id)
        if len(wanted) < 2:
            return
        store = self.store
        if len(wanted) >= _BATCH_LOOKUP_MIN:
            try:
                owners = await store.gateway_owners(wanted)
            except Exception:
                log.warning("ingest: gateways not looked up at once; one by one", exc_info=True)
            else:
                expiry = time.monotonic() + self.gateway_ttl_s
                for gateway_id, enterprise_id in owners.items():
                    self._gateways[gateway_id] = (enterprise_id, expiry)
                return  # those not found are not registered: each message finds out itself
        gate = asyncio.Semaphore(_LOOKUP_CONCURRENCY)

        async def one(gateway_id: str) -> None:
            async with gate:
                try:
                    gateway = await store.get_gateway(gateway_id)
                except Exception:
                    log.debug("gateway %s: lookup failed; tried again", gateway_id, exc_info=True)
                    return
            if gateway is not None:
                expiry = time.monotonic() + self.gateway_ttl_s
                self._gateways[gateway_id] = (gateway.enterprise_id, expiry)

        await asyncio.gather(*(one(g) for g in sorted(wanted)))

    async def _enterprise(self, gateway_id: str) -> str | None:
        cached = self._gateways.get(gateway_id)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        store = self.store
        gateway = await retried(self, "registry_retry", lambda: store.get_gateway(gateway_id))
        if gateway is None:
            return None
        self._gateways[gateway_id] = (gateway.enterprise_id, time.monotonic() + self.gateway_ttl_s)
        return gateway.enterprise_id

    async def _seen_many(
        self, requests: list[tuple[str, list[wire.Item]]]
    ) -> list[set[int]] | None:
        """The seqs the ledger has seen of each ``(gateway, items)`` in one call, or ``None``
        (one gateway, a ledger without batch calls, or the call failed): ask per gateway."""
        ledger = self.ledger
        if len(requests) < 2 or not isinstance(ledger, BatchLedger):
            return None
        try:
            found = await ledger.seen_seqs_many([(gw, [i.seq for i in it]) for gw, it in requests])
        except Exception:
            self._pending["ledger_retry"] += 1
            log.warning("ingest: the ledger's batch read failed; asking per gateway", exc_info=True)
            return None
        return [set(seqs) for seqs in found]

    async def _high_water_many(self, marks: list[tuple[str, int]]) -> dict[str, int | None]:
        """Raise the high-water mark of each ``(gateway, seq)`` in one call; return the previous
        ones (those not in the result are raised per gateway by :meth:`_find_gaps`)."""
        ledger = self.ledger
        if len(marks) < 2 or not isinstance(ledger, BatchLedger):
            return {}
        try:
            olds = await ledger.high_water_many(marks)
        except Exception:
            # Raising a mark again is harmless (it only moves up): done per gateway now.
            self._pending["ledger_retry"] += 1
            log.warning("ingest: the ledger's batch high-water failed; per gateway", exc_info=True)
            return {}
        return {gw: old for (gw, _), old in zip(marks, olds, strict=True)}

    async def _missing_many(
        self, data: list[tuple[str, list[wire.Item]]], highs: dict[str, int | None]
    ) -> dict[tuple[str, int, int], int]:
        """How many seqs of each candidate gap of this data were never admitted, in one call
        (for the gateways whose high-water mark is known): ``(gateway, first, last) -> count``;
        those not in the result are counted per gap by :meth:`_find_gaps`."""
        ledger = self.ledger
        if not isinstance(ledger, BatchLedger):
            return {}
        ranges = [
            (gw, first, last)
            for gw, fresh in data
            if gw in highs
            for first, last in candidate_gaps(highs[gw], [i.seq for i in fresh])
            if last - first + 1 <= SEQ_RESET_SPAN
        ]
        if len(ranges) < 2:
            return {}
        try:
            counts = await ledger.missing_seqs_many(ranges)
        except Exception:
            self._pending["ledger_retry"] += 1
            log.warning("ingest: the ledger's batch gap count failed; per gap", exc_info=True)
            return {}
        return dict(zip(ranges, counts, strict=True))

    async def _dedup(
        self, gateway_id: str, items: list[wire.Item], seen: set[int] | None = None
    ) -> tuple[list[wire.Item], list[wire.Item]]:
        """Split items into those the ledger has not seen and repeats (reads only; ``seen``:
        the ledger's answer, already asked)."""
        if not items:
            return [], []
        if seen is None:
            seqs = [i.seq for i in items]
            try:
                seen = set(
                    await retried(
                        self, "ledger_retry", lambda: self.ledger.seen_seqs(gateway_id, seqs)
                    )
                )
            except Exception:
                # Dropping the items would lose them for sure; the archive keeps one row per
                # gateway seq, so passing them on unchecked costs at most a repeated alert or
                # step.
                self._pending["ledger_error"] += 1
                log.exception(
                    "gateway %s: de-duplication ledger failed; items passed on", gateway_id
                )
                seen = set()
        fresh: list[wire.Item] = []
        repeats: list[wire.Item] = []
        taken: set[int] = set()
        for item in items:
            if item.seq in seen or item.seq in taken:  # a seq repeated inside one batch too
                repeats.append(item)
                self._pending["duplicate"] += 1
            else:
                taken.add(item.seq)
                fresh.append(item)
        return fresh, repeats

    async def _admit(
        self,
        accepted: Accepted,
        unwritten: Unwritten,
        known: dict[str, list[wire.Item]],
        refused: list[tuple[str, int]],
        recv_ms: int,
    ) -> dict[str, list[int]]:
        """Admit to the ledger what the round made durable; return what to acknowledge.

        Acknowledged: the durable items, repeats of items known from before, and items refused
        and kept for inspection (unless keeping them failed). Not acknowledged: what was
        neither written nor spilled; the gateway sends it again.
        """
        durable: dict[str, list[int]] = {}
        records: tuple[tuple[str, Sequence[Received[Any]]], ...] = (
            ("fixes", accepted.fixes),
            ("readings", accepted.readings),
            ("vessels", accepted.vessels),
            ("health", accepted.health),
        )
        for what, recs in records:
            if what not in unwritten.kinds:
                for rec in recs:
                    durable.setdefault(rec.gateway_id, []).append(rec.item.seq)
        for alarm in accepted.alarms:
            if (alarm.gateway_id, alarm.item.seq) not in unwritten.alarms:
                durable.setdefault(alarm.gateway_id, []).append(alarm.item.seq)
        admit_each = durable
        if len(durable) > 1 and isinstance(self.ledger, BatchLedger):
            try:
                await self.ledger.admit_seqs_many(list(durable.items()), now_ms=recv_ms)
                admit_each = {}
            except Exception:
                # Admitting again is harmless (atomic per seq): done per gateway now.
                self._pending["ledger_retry"] += 1
                log.warning("ingest: the ledger's batch admit failed; per gateway", exc_info=True)
        for gateway_id, seqs in admit_each.items():
            try:
                await retried(
                    self,
                    "ledger_retry",
                    functools.partial(self.ledger.admit_seqs, gateway_id, seqs, now_ms=recv_ms),
                )
            except Exception:
                # Archived all the same (one row per seq): a resend is only archived again.
                self._pending["ledger_error"] += 1
                log.exception(
                    "gateway %s: seqs archived but not admitted to the ledger", gateway_id
                )
        acked = {gw: list(seqs) for gw, seqs in durable.items()}
        for gateway_id, repeats in known.items():
            acked.setdefault(gateway_id, []).extend(item.seq for item in repeats)
        if "rejected" not in unwritten.kinds:
            for gateway_id, seq in refused:
                acked.setdefault(gateway_id, []).append(seq)
        return {gw: sorted(set(seqs)) for gw, seqs in acked.items() if seqs}

    async def _conflicts(
        self, known: dict[str, list[wire.Item]], recv_ms: int, rejects: list[Rejected]
    ) -> list[tuple[str, int]]:
        """Repeats whose content differs from what was archived under their seq.

        A plain resend is harmless; the same seq with another content means a broken or
        forged gateway. Such an item is kept for inspection as ``duplicate_conflict`` (the
        archived version stays) and returned as ``(gateway_id, seq)``.
        """
        conflicts: list[tuple[str, int]] = []
        for gateway_id, repeats in known.items():
            comparable = [i for i in repeats if isinstance(i, wire.Fix | wire.Reading)]
            if not comparable:
                continue
            lookup = functools.partial(
                self.store.archived_items, gateway_id, [i.seq for i in comparable]
            )
            try:
                stored = await retried(self, "store_retry.conflicts", lookup)
            except Exception:
                self._pending["store_error.conflicts"] += 1
                log.exception("gateway %s: repeats not compared with the archive", gateway_id)
                continue
            for item in comparable:
                kept = stored.get(item.seq)
                if kept is None or _same_observation(kept, item):
                    continue
                self._pending["duplicate_conflict"] += 1
                self._pending["duplicate"] -= 1
                conflicts.append((gateway_id, item.seq))
                rejects.append(
                    _rejected(
                        recv_ms,
                        "duplicate_conflict",
                        f"seq {item.seq} was archived with other content",
                        wire.data_topic(gateway_id),
                        gateway_id,
                        wire.encode_item(item, validate=False),
                        "seq",
                    )
                )
        return conflicts

    async def _gaps(
        self,
        gateway_id: str,
        enterprise_id: str,
        items: list[wire.Item],
        recv_ms: int,
        previous: int | _Unknown | None = _UNKNOWN,
        counted: Mapping[tuple[str, int, int], int] | None = None,
    ) -> tuple[list[Gap], list[int]]:
        """New gaps this data opens, and its seqs at or below the high-water mark (fills);
        ``previous``: the mark before this data, if already raised (else ``_UNKNOWN``);
        ``counted``: missing seqs of candidate gaps already counted."""
        seqs = [i.seq for i in items]
        try:
            return await self._find_gaps(
                gateway_id, enterprise_id, seqs, recv_ms, previous, counted or {}
            )
        except Exception:
            # The items are archived all the same; only this round's gap report is missing.
            self._pending["ledger_error"] += 1
            log.exception("gateway %s: gap detection failed", gateway_id)
            return [], []

    async def _find_gaps(
        self,
        gateway_id: str,
        enterprise_id: str,
        seqs: list[int],
        recv_ms: int,
        previous: int | _Unknown | None = _UNKNOWN,
        counted: Mapping[tuple[str, int, int], int] | None = None,
    ) -> tuple[list[Gap], list[int]]:
        ledger = self.ledger
        counted = counted or {}
        if isinstance(previous, _Unknown):
            previous = await retried(
                self, "ledger_retry", lambda: ledger.high_water(gateway_id, max(seqs))
            )
        fills = [] if previous is None else [q for q in seqs if q <= previous]
        gaps = []
        for first, last in candidate_gaps(previous, seqs):
            if last - first + 1 > SEQ_RESET_SPAN:
                # No gateway makes that many items: its buffer file was new (lost, replaced
                # or found corrupt at start), numbering from its clock. Not a gap to report.
                self._pending["seq_reset"] += 1
                log.warning(
                    "gateway %s: seq jumped from %d to %d: a new buffer file (what the old one "
                    "still held is lost; see its buffer_corrupt alarm, if any)",
                    gateway_id,
                    first - 1,
                    last + 1,
                )
                continue
            missing = counted.get((gateway_id, first, last))
            if missing is None:
                count = functools.partial(ledger.missing_seqs, gateway_id, first, last)
                missing = await retried(self, "ledger_retry", count)
            if missing:
                gaps.append(
                    Gap(
                        gateway_id=gateway_id,
                        enterprise_id=enterprise_id,
                        first_seq=first,
                        last_seq=last,
                        missing=missing,
                        detected_ms=recv_ms,
                    )
                )
                self._pending["gap"] += 1
                self._pending["gap.missing"] += missing
                log.warning(
                    "gateway %s: %d seqs missing in %d..%d", gateway_id, missing, first, last
                )
        return gaps, fills

    async def _owned_only(
        self,
        items: list[tuple[str, str, wire.Item]],
        recv_ms: int,
        rejects: list[Rejected],
        refused: list[tuple[str, int]],
    ) -> list[tuple[str, str, wire.Item]]:
        """Refuse items about an asset or a site registered to another enterprise.

        A misconfigured or rogue gateway must not move another tenant's truck on the map, nor
        make a site's real readings look late or raise alarms on it. Unregistered assets and
        sites (vessels a shore station hears) pass. The check fails closed: when the registry
        cannot be read, the items that need it are held back (``held.registry_error``), neither
        accepted nor acknowledged, and the gateway sends them again.
        """
        wanted: dict[str, set[str]] = {"asset": set(), "site": set()}
        for _, _, item in items:
            for kind, object_id in _subjects(item):
                wanted[kind].add(object_id)
        if not wanted["asset"] and not wanted["site"]:
            return items
        try:
            owners = {kind: await self._owners(kind, ids) for kind, ids in wanted.items()}
        except Exception:
            log.exception("registry lookup failed; items that need it are held back")
            kept = [entry for entry in items if not _subjects(entry[2])]
            self._pending["held.registry_error"] += len(items) - len(kept)
            return kept
        kept = []
        for gateway_id, enterprise_id, item in items:
            foreign = [
                (kind, object_id)
                for kind, object_id in _subjects(item)
                if owners[kind].get(object_id) not in (None, enterprise_id)
            ]
            if not foreign:
                kept.append((gateway_id, enterprise_id, item))
                continue
            kind, object_id = foreign[0]
            refused.append((gateway_id, item.seq))
            topic = wire.alarm_topic if isinstance(item, wire.Alarm) else wire.data_topic
            rejects.append(
                _rejected(
                    recv_ms,
                    f"foreign_{kind}",
                    f"{kind} {object_id!r} is registered to another enterprise",
                    topic(gateway_id),
                    gateway_id,
                    wire.encode_item(item, validate=False),
                    kind,
                )
            )
        return kept

    async def _owners(self, kind: str, object_ids: set[str]) -> dict[str, str | None]:
        cache = self._owner_cache[kind]
        now = time.monotonic()
        found: dict[str, str | None] = {}
        missing = []
        for object_id in object_ids:
            cached = cache.get(object_id)
            if cached is not None and cached[1] > now:
                found[object_id] = cached[0]
            else:
                missing.append(object_id)
        if missing:
            store = self.store
            lookup = store.asset_owners if kind == "asset" else store.site_owners
            looked = await retried(self, "registry_retry", lambda: lookup(missing))
            expiry = now + self.gateway_ttl_s
            if len(cache) > 100_000:
                cache.clear()
            for object_id in missing:
                found[object_id] = looked.get(object_id)
                cache[object_id] = (found[object_id], expiry)
        return found

    async def _classify(self, items: list[tuple[str, str, wire.Item]], recv_ms: int) -> Accepted:
        assets = {i.asset for _, _, i in items if isinstance(i, wire.Fix)}
        latest = await self.live.latest_fixes(assets) if assets else {}
        accepted = classify(
            items,
            recv_ms=recv_ms,
            future_tolerance_ms=self.future_tolerance_ms,
            latest_fix_ms={a: f.fix.ts for a, f in latest.items()},
            latest_reading_ms=self._reading_ms,
        )
        for rec in accepted.readings:
            if not rec.late and not rec.future:
                self._reading_ms[(rec.enterprise_id, rec.item.site, rec.item.point)] = rec.item.ts
        return accepted

    def _count(self, accepted: Accepted) -> None:
        """Count a finished round (after archive, live state and steps, so a counter seen
        means the work is done)."""
        for kind, recs in (
            ("fix", accepted.fixes),
            ("reading", accepted.readings),
            ("vessel", accepted.vessels),
            ("alarm", accepted.alarms),
            ("health", accepted.health),
        ):
            self.counters["accepted." + kind] += len(recs)
            self.counters["late"] += sum(1 for r in recs if r.late)
            self.counters["future"] += sum(1 for r in recs if r.future)
        self.counters["rounds"] += 1
        self.counters.update(self._pending)
        self._pending.clear()

    async def _run_steps(self, accepted: Accepted) -> None:
        if not accepted:
            return
        for step in self.steps:
            try:
                await step(accepted)
            except Exception:
                name = getattr(step, "__name__", type(step).__name__)
                self.counters["step_error." + name] += 1
                log.exception("pipeline step %s failed; continuing", name)

    def _maybe_log(self) -> None:
        if time.monotonic() - self._logged_at < self.log_interval_s:
            return
        delta = self.counters - self._logged
        if delta:
            log.info(
                "ingest in the last %.0f s: %s", self.log_interval_s, dict(sorted(delta.items()))
            )
        self._logged = self.counters.copy()
        self._logged_at = time.monotonic()

    # -- MQTT -------------------------------------------------------------------------------

    async def _read(self, client: aiomqtt.Client, queue: asyncio.Queue[_Message]) -> None:
        async for message in client.messages:
            payload: object = message.payload
            raw = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
            await queue.put((message.topic.value, raw, message.mid, message.qos))
            self.counters["received"] += 1

    async def _process(
        self, client: aiomqtt.Client, queue: asyncio.Queue[_Message], max_messages: int
    ) -> None:
        while True:
            round_ = [await queue.get()]
            while len(round_) < max_messages and not queue.empty():
                round_.append(queue.get_nowait())
            try:
                accepted = await self.handle_many([(topic, raw) for topic, raw, _, _ in round_])
                await self._acknowledge(client, accepted.acked)
            except Exception:
                self.counters["round_error"] += 1
                log.exception("ingest round of %d messages failed", len(round_))
            finally:
                # The broker's copy goes only now that the round is archived: a worker killed
                # before this gets its messages again (its session, or another group member).
                # What the round could not make durable is not acknowledged to the gateway,
                # which sends it again.
                for _, _, mid, qos in round_:
                    if qos:
                        client._client.ack(mid, qos)
                    queue.task_done()

    async def _acknowledge(self, client: aiomqtt.Client, acked: dict[str, list[int]]) -> None:
        """Tell each gateway which of its seqs the cloud now answers for (``wire.acks``)."""
        if not acked:
            return
        now_ms = self.clock()
        publishes = [
            client.publish(
                wire.ack_topic(gateway_id),
                wire.encode_ack(wire.Ack(gw=gateway_id, ts=now_ms, seqs=wire.seq_ranges(seqs))),
                qos=1,
                retain=True,
            )
            for gateway_id, seqs in acked.items()
        ]
        try:
            # Not the client's own 10 s timeout: on a dead connection the round must not wait.
            async with asyncio.timeout(self.ack_publish_timeout_s):
                results = await asyncio.gather(*publishes, return_exceptions=True)
        except TimeoutError as exc:
            results = [exc] * len(publishes)
        failed = [r for r in results if isinstance(r, BaseException)]
        self.counters["acks_sent"] += len(results) - len(failed)
        if failed:
            # The gateways send those items again after their timeout; they are known then.
            self.counters["ack_error"] += len(failed)
            log.warning("ingest: %d acknowledgements not published: %s", len(failed), failed[0])


#: A received message: topic, payload, MQTT message id and QoS (acknowledged after its round).
_Message = tuple[str, bytes, int, int]


async def _finish(queue: asyncio.Queue[_Message], processor: asyncio.Task[None]) -> None:
    """Let ``processor`` handle everything queued, then stop it."""
    drained = asyncio.create_task(queue.join(), name="ingest-drain")
    try:
        await asyncio.wait((drained, processor), return_when=asyncio.FIRST_COMPLETED)
    finally:
        drained.cancel()
        processor.cancel()
        await asyncio.gather(drained, processor, return_exceptions=True)


def _rejected(
    recv_ms: int,
    reason: str,
    detail: str,
    topic: str,
    gateway_id: str | None,
    payload: bytes,
    field: str | None = None,
) -> Rejected:
    return Rejected(
        ts_ms=recv_ms,
        reason=reason,
        detail=detail[:1000],
        topic=topic[:512],
        gateway_id=gateway_id,
        field=field,
        payload=payload[:_KEEP_PAYLOAD_BYTES],
    )


def _same_observation(kept: wire.Fix | wire.Reading, item: wire.Fix | wire.Reading) -> bool:
    """Whether a repeat says what the archived item said (stored marks aside)."""
    if isinstance(kept, wire.Fix) and isinstance(item, wire.Fix):
        return (kept.asset, kept.ts, kept.lat, kept.lon, kept.speed_kmh) == (
            item.asset,
            item.ts,
            item.lat,
            item.lon,
            item.speed_kmh,
        )
    if isinstance(kept, wire.Reading) and isinstance(item, wire.Reading):
        return (kept.site, kept.point, kept.ts, kept.value) == (
            item.site,
            item.point,
            item.ts,
            item.value,
        )
    return False


def _subjects(item: wire.Item) -> list[tuple[str, str]]:
    """The registered objects an item speaks about: ``("asset", id)``, ``("site", id)``."""
    if isinstance(item, wire.Fix):
        return [("asset", item.asset)]
    if isinstance(item, wire.Reading):
        return [("site", item.site)]
    if isinstance(item, wire.Alarm):
        subjects = []
        if item.asset is not None:
            subjects.append(("asset", item.asset))
        if item.site is not None:
            subjects.append(("site", item.site))
        return subjects
    return []
