"""In-process live state: the embedded default and tests (one process only)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import msgspec

import wire
from cloud.live._common import Subscription, haversine_m, newest_per_asset
from cloud.models import GatewayLive, LatestFix, LiveEvent, Received

__all__ = ["MemoryLiveState"]

log = logging.getLogger(__name__)


class _MemorySubscription(Subscription):
    def __init__(self, owner: MemoryLiveState, maxsize: int) -> None:
        self._owner = owner
        self.queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue(maxsize)
        self.dropped = 0
        self._started = False

    async def start(self) -> None:
        if not self._started:
            self._started = True
            self._owner._subscribers.add(self)

    async def aclose(self) -> None:
        self._owner._subscribers.discard(self)
        # The end mark goes after any pending events (making room if the queue is full), so
        # a reader always stops instead of waiting for an event that will never come.
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(None)

    def offer(self, event: LiveEvent) -> None:
        if self.queue.full():
            # A slow subscriber loses its oldest events, never blocks ingest.
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def _next(self) -> LiveEvent:
        event = await self.queue.get()
        if event is None:
            raise StopAsyncIteration
        return event


class MemoryLiveState:
    """In-process :class:`LiveState` for the embedded setup and tests (one process only).

    Args:
        queue_size: events buffered per subscriber before its oldest are dropped.
    """

    def __init__(self, *, queue_size: int = 10_000) -> None:
        self._latest: dict[str, LatestFix] = {}
        self._status: dict[str, dict[str, Any]] = {}
        self._rules: dict[str, tuple[int, bytes]] = {}
        self._checkpoints: dict[str, list[tuple[int, bytes]]] = {}
        self._due: dict[str, int] = {}
        self._lots: dict[str, dict[str, int]] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        self._recent: dict[str, dict[str, int]] = {}
        self._gateways: dict[str, GatewayLive] = {}
        self._tickets: dict[str, tuple[str, float]] = {}
        self._seen: dict[str, set[int]] = {}
        self._high: dict[str, int] = {}
        self._subscribers: set[_MemorySubscription] = set()
        self._queue_size = queue_size
        self._registry_version = 0

    async def put_fixes(self, records: Sequence[Received[wire.Fix]]) -> list[str]:
        changed = []
        for asset, rec in newest_per_asset(records).items():
            old = self._latest.get(asset)
            if old is None or rec.item.ts >= old.fix.ts:
                self._latest[asset] = LatestFix(
                    enterprise_id=rec.enterprise_id, fix=rec.item, recv_ms=rec.recv_ms
                )
                changed.append(asset)
        return changed

    async def latest_fixes(self, asset_ids: Collection[str]) -> dict[str, LatestFix]:
        return {a: self._latest[a] for a in asset_ids if a in self._latest}

    async def set_asset_status(self, asset_id: str, status: Mapping[str, Any]) -> None:
        self._status[asset_id] = dict(status)

    async def asset_status(self, asset_ids: Collection[str]) -> dict[str, dict[str, Any]]:
        return {a: dict(self._status[a]) for a in asset_ids if a in self._status}

    async def get_rule_states(self, asset_ids: Collection[str]) -> dict[str, tuple[int, bytes]]:
        return {a: self._rules[a] for a in asset_ids if a in self._rules}

    async def put_rule_states(self, writes: Mapping[str, tuple[int, bytes]]) -> set[str]:
        conflicts = set()
        for asset_id, (expected, state) in writes.items():
            stored = self._rules.get(asset_id, (0, b""))[0]
            if stored != expected:
                conflicts.add(asset_id)
            else:
                self._rules[asset_id] = (expected + 1, state)
        return conflicts

    async def rule_checkpoints(self, asset_id: str) -> list[tuple[int, bytes]]:
        return list(self._checkpoints.get(asset_id, ()))

    async def add_rule_checkpoint(
        self, asset_id: str, clock_ms: int, state: bytes, *, keep_after_ms: int
    ) -> None:
        kept = [c for c in self._checkpoints.get(asset_id, ()) if c[0] >= keep_after_ms]
        self._checkpoints[asset_id] = sorted([*kept, (clock_ms, state)])

    async def add_rule_checkpoints(
        self, checkpoints: Sequence[tuple[str, int, bytes, int]]
    ) -> None:
        for asset_id, clock_ms, state, keep_after_ms in checkpoints:
            await self.add_rule_checkpoint(asset_id, clock_ms, state, keep_after_ms=keep_after_ms)

    async def replace_rule_checkpoints(
        self, asset_id: str, after_ms: int, checkpoints: Sequence[tuple[int, bytes]]
    ) -> None:
        kept = [c for c in self._checkpoints.get(asset_id, ()) if c[0] <= after_ms]
        self._checkpoints[asset_id] = sorted([*kept, *checkpoints])

    async def set_rule_due(self, due: Mapping[str, int | None]) -> None:
        for asset_id, when in due.items():
            if when is None:
                self._due.pop(asset_id, None)
            else:
                self._due[asset_id] = when

    async def due_rule_assets(self, until_ms: int, *, limit: int = 10_000) -> list[str]:
        due = sorted((when, a) for a, when in self._due.items() if when <= until_ms)
        return [a for _, a in due[:limit]]

    async def set_lot_members(self, changes: Sequence[tuple[str, str, int | None]]) -> None:
        for lot_id, asset_id, since in changes:
            members = self._lots.setdefault(lot_id, {})
            if since is None:
                members.pop(asset_id, None)
            else:
                members[asset_id] = since

    async def lot_members(self, lot_ids: Collection[str]) -> dict[str, dict[str, int]]:
        return {lot: dict(self._lots.get(lot, {})) for lot in lot_ids}

    async def try_lock(self, name: str, owner: str, *, ttl_ms: int) -> bool:
        now = time.monotonic()
        holder = self._locks.get(name)
        if holder is not None and holder[0] != owner and holder[1] > now:
            return False
        self._locks[name] = (owner, now + ttl_ms / 1000)
        return True

    async def count_recent(
        self, key: str, *, keep_after_ms: int, add: tuple[str, int] | None = None
    ) -> int:
        members = self._recent.setdefault(key, {})
        if add is not None:
            members[add[0]] = add[1]
        for member in [m for m, ts in members.items() if ts <= keep_after_ms]:
            del members[member]
        if not members:
            del self._recent[key]
        return len(members)

    async def set_gateway(
        self,
        gateway_id: str,
        *,
        enterprise_id: str | None = None,
        state: str | None = None,
        status_ms: int | None = None,
        seen_ms: int | None = None,
        health: wire.Health | None = None,
    ) -> None:
        old = self._gateways.get(gateway_id) or GatewayLive(gateway_id=gateway_id)
        changes = {
            "enterprise_id": enterprise_id,
            "state": state,
            "status_ms": status_ms,
            "last_seen_ms": seen_ms,
            "health": health,
        }
        self._gateways[gateway_id] = msgspec.structs.replace(
            old, **{k: v for k, v in changes.items() if v is not None}
        )

    async def gateways_seen(
        self, seen: Sequence[tuple[str, str, int, wire.Health | None]], /
    ) -> None:
        for gateway_id, enterprise_id, seen_ms, health in seen:
            await self.set_gateway(
                gateway_id, enterprise_id=enterprise_id, seen_ms=seen_ms, health=health
            )

    async def forget_gateway(self, gateway_id: str) -> None:
        self._gateways.pop(gateway_id, None)

    async def gateways(self, gateway_ids: Collection[str]) -> dict[str, GatewayLive]:
        return {g: self._gateways[g] for g in gateway_ids if g in self._gateways}

    async def nearby(
        self,
        lat: float,
        lon: float,
        radius_m: float,
        *,
        enterprise_ids: Collection[str] | None = None,
        limit: int = 1000,
    ) -> list[tuple[str, float]]:
        scope = None if enterprise_ids is None else set(enterprise_ids)
        found = []
        for asset, latest in self._latest.items():
            if scope is not None and latest.enterprise_id not in scope:
                continue
            distance = haversine_m(lat, lon, latest.fix.lat, latest.fix.lon)
            if distance <= radius_m:
                found.append((asset, distance))
        found.sort(key=lambda x: (x[1], x[0]))
        return found[:limit]

    async def high_water(self, gateway_id: str, seq: int) -> int | None:
        old = self._high.get(gateway_id)
        if old is None or seq > old:
            self._high[gateway_id] = seq
        return old

    async def high_water_many(self, marks: Sequence[tuple[str, int]], /) -> list[int | None]:
        return [await self.high_water(gateway_id, seq) for gateway_id, seq in marks]

    async def seen_seqs_many(
        self, requests: Sequence[tuple[str, Sequence[int]]], /
    ) -> list[list[int]]:
        return [await self.seen_seqs(gateway_id, seqs) for gateway_id, seqs in requests]

    async def admit_seqs_many(
        self, requests: Sequence[tuple[str, Sequence[int]]], /, *, now_ms: int
    ) -> list[list[int]]:
        return [
            await self.admit_seqs(gateway_id, seqs, now_ms=now_ms) for gateway_id, seqs in requests
        ]

    async def missing_seqs_many(self, ranges: Sequence[tuple[str, int, int]], /) -> list[int]:
        return [await self.missing_seqs(g, first, last) for g, first, last in ranges]

    async def seen_seqs(self, gateway_id: str, seqs: Sequence[int]) -> list[int]:
        seen = self._seen.get(gateway_id, set())
        return sorted(q for q in set(seqs) if q in seen)

    async def admit_seqs(self, gateway_id: str, seqs: Sequence[int], *, now_ms: int) -> list[int]:
        seen = self._seen.setdefault(gateway_id, set())
        new = sorted(set(seqs) - seen)
        seen.update(new)
        return new

    async def missing_seqs(self, gateway_id: str, first_seq: int, last_seq: int) -> int:
        if last_seq < first_seq:
            return 0
        seen = self._seen.get(gateway_id, set())
        span = last_seq - first_seq + 1
        if span > len(seen):
            return span - sum(1 for q in seen if first_seq <= q <= last_seq)
        return sum(1 for q in range(first_seq, last_seq + 1) if q not in seen)

    async def publish(self, event: LiveEvent) -> None:
        for sub in list(self._subscribers):
            sub.offer(event)

    async def publish_many(self, events: Sequence[LiveEvent]) -> None:
        for event in events:
            await self.publish(event)

    def subscribe(self) -> Subscription:
        return _MemorySubscription(self, self._queue_size)

    async def registry_version(self) -> int:
        return self._registry_version

    async def bump_registry_version(self) -> int:
        self._registry_version += 1
        return self._registry_version

    async def put_ticket(self, ticket_hash: str, key_hash: str, *, ttl_s: float) -> None:
        now = time.monotonic()
        self._tickets = {t: v for t, v in self._tickets.items() if v[1] > now}  # keep it small
        self._tickets[ticket_hash] = (key_hash, now + ttl_s)

    async def take_ticket(self, ticket_hash: str) -> str | None:
        found = self._tickets.pop(ticket_hash, None)
        if found is None or found[1] <= time.monotonic():
            return None
        return found[0]

    async def close(self) -> None:
        for sub in list(self._subscribers):
            await sub.aclose()
