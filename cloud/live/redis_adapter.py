"""Redis adapter of the live state (pipelined; shared by every cloud worker).

Keys, all under ``prefix``:

- ``latest`` / ``latest_ts``: hashes asset -> encoded :class:`~cloud.models.LatestFix` / its ts;
  a Lua script replaces an entry only with a newer fix, so workers can race safely, and names
  the enterprise of the entry it replaced (an asset moved to another tenant leaves its set).
- ``geo`` and ``geo:<enterprise>``: GEO sets of latest positions (all, and per tenant for
  scoped ``nearby``).
- ``status``: hash asset -> JSON status; ``rule:<asset>``: hash of the rule state (``s``) and
  its version (``v``), written by a compare-and-set script; ``ckpt:<asset>``: sorted set of
  checkpoints of it by time; ``due``: sorted set of assets by when their rules need the clock;
  ``lot:<lot>``: hash of the assets in a lot and since when; ``lock:<name>``: expiring locks.
- ``gw:<gateway>``: hash of the gateway's live fields.
- ``seq:<gateway>:<block>``: de-duplication bitmaps, 65536 seqs per key, expiring after
  ``ledger_ttl_s``; one script per block sets the bits and returns the old ones, which
  makes admission atomic across workers.
- ``hw:<gateway>``: highest data seq; ``feed``: the pub/sub channel of live events (each
  message is a JSON array of events: one PUBLISH per ingest round).
- ``registry_version``: a counter the API increases when a gateway or an asset changes owner.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

import wire
from cloud.live._common import Subscription, newest_per_asset
from cloud.models import GatewayLive, LatestFix, LiveEvent, Received

__all__ = ["RedisLiveState"]

log = logging.getLogger(__name__)
_BLOCK_BITS: Final = 16
_BLOCK: Final = 1 << _BLOCK_BITS
#: Ranges wider than this are reported as wholly missing instead of counted bit by bit.
_MAX_COUNT_SPAN: Final = 64 * _BLOCK

_SET_NEWER: Final = """
local changed = {}
for i = 1, #ARGV, 3 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if (not cur) or tonumber(ARGV[i + 1]) >= tonumber(cur) then
    local previous = redis.call('HGET', KEYS[2], ARGV[i])
    local owner = ''
    if previous then owner = cjson.decode(previous)['enterprise_id'] or '' end
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2])
    table.insert(changed, ARGV[i])
    table.insert(changed, owner)
  end
end
return changed
"""
_RAISE_HIGH: Final = """
local old = redis.call('GET', KEYS[1])
if (not old) or tonumber(ARGV[1]) > tonumber(old) then redis.call('SET', KEYS[1], ARGV[1]) end
return old
"""

_ADMIT: Final = """
local old = {}
for i = 2, #ARGV do old[i - 1] = redis.call('SETBIT', KEYS[1], ARGV[i], 1) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return table.concat(old)
"""

_PUT_IF: Final = """
local stored = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if stored ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', stored + 1, 's', ARGV[2])
return 1
"""
_LOCK: Final = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_SEEN: Final = """
local bits = {}
for i = 1, #ARGV do bits[i] = redis.call('GETBIT', KEYS[1], ARGV[i]) end
return table.concat(bits)
"""

_LATEST = msgspec.json.Decoder(LatestFix)
_EVENTS = msgspec.json.Decoder(list[LiveEvent])
_HEALTH = msgspec.json.Decoder(wire.Health)
_ENC = msgspec.json.Encoder()


class _RedisSubscription(Subscription):
    def __init__(self, client: aioredis.Redis, channel: str) -> None:
        self._client = client
        self._channel = channel
        self._pubsub: PubSub | None = None
        self._closed = False
        self._ready: collections.deque[LiveEvent] = collections.deque()

    async def start(self) -> None:
        if self._pubsub is None and not self._closed:
            self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            await self._pubsub.subscribe(self._channel)

    async def aclose(self) -> None:
        self._closed = True
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            await pubsub.unsubscribe()
            await pubsub.aclose()

    async def _next(self) -> LiveEvent:
        while not self._ready:
            if self._pubsub is None:
                raise StopAsyncIteration
            message = await self._pubsub.get_message(timeout=1.0)
            if message is None or message.get("type") != "message":
                continue
            try:
                self._ready.extend(_EVENTS.decode(message["data"]))
            except msgspec.DecodeError:
                log.warning("undecodable live events on %s", self._channel)
        return self._ready.popleft()


class RedisLiveState:
    """:class:`~cloud.live.LiveState` on Redis (``redis.asyncio``), pipelined.

    Args:
        client: a ``redis.asyncio.Redis`` with ``decode_responses=False``; the caller owns it.
        prefix: key prefix (``hz:``; tests use a unique one).
        ledger_ttl_s: how long de-duplication bitmaps are kept after their last write.
    """

    def __init__(
        self, client: aioredis.Redis, prefix: str = "hz:", *, ledger_ttl_s: int = 183 * 86400
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ledger_ttl_s = ledger_ttl_s
        self._set_newer = client.register_script(_SET_NEWER)
        self._raise_high = client.register_script(_RAISE_HIGH)
        self._subs: set[_RedisSubscription] = set()

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def put_fixes(self, records: Sequence[Received[wire.Fix]]) -> list[str]:
        newest = newest_per_asset(records)
        if not newest:
            return []
        args: list[Any] = []
        for asset, rec in newest.items():
            latest = LatestFix(enterprise_id=rec.enterprise_id, fix=rec.item, recv_ms=rec.recv_ms)
            args += [asset, rec.item.ts, _ENC.encode(latest)]
        raw = await self._set_newer(keys=[self._k("latest_ts"), self._k("latest")], args=args)
        # Pairs of (asset, enterprise of its previous latest fix or "").
        flat = [a.decode() if isinstance(a, bytes) else str(a) for a in raw]
        changed = flat[0::2]
        async with self.client.pipeline(transaction=False) as pipe:
            for asset, owner in zip(changed, flat[1::2], strict=True):
                rec = newest[asset]
                where = (rec.item.lon, rec.item.lat, asset)
                if owner and owner != rec.enterprise_id:
                    # Moved to another enterprise: it leaves the old tenant's geo set.
                    pipe.zrem(self._k("geo", owner), asset)
                pipe.geoadd(self._k("geo"), where)
                pipe.geoadd(self._k("geo", rec.enterprise_id), where)
            await pipe.execute()
        return changed

    async def latest_fixes(self, asset_ids: Collection[str]) -> dict[str, LatestFix]:
        ids = list(asset_ids)
        if not ids:
            return {}
        values = await self.client.hmget(self._k("latest"), ids)
        return {a: _LATEST.decode(v) for a, v in zip(ids, values, strict=True) if v is not None}

    async def set_asset_status(self, asset_id: str, status: Mapping[str, Any]) -> None:
        await self.client.hset(self._k("status"), asset_id, _ENC.encode(dict(status)))

    async def asset_status(self, asset_ids: Collection[str]) -> dict[str, dict[str, Any]]:
        ids = list(asset_ids)
        if not ids:
            return {}
        values = await self.client.hmget(self._k("status"), ids)
        return {
            a: msgspec.json.decode(v) for a, v in zip(ids, values, strict=True) if v is not None
        }

    async def get_rule_states(self, asset_ids: Collection[str]) -> dict[str, tuple[int, bytes]]:
        ids = list(asset_ids)
        if not ids:
            return {}
        async with self.client.pipeline(transaction=False) as pipe:
            for a in ids:
                pipe.hmget(self._k("rule", a), "v", "s")
            rows = await pipe.execute()
        return {
            a: (int(version), bytes(state))
            for a, (version, state) in zip(ids, rows, strict=True)
            if version is not None and state is not None
        }

    async def put_rule_states(self, writes: Mapping[str, tuple[int, bytes]]) -> set[str]:
        if not writes:
            return set()
        ids = list(writes)
        async with self.client.pipeline(transaction=False) as pipe:
            for a in ids:
                expected, state = writes[a]
                pipe.eval(_PUT_IF, 1, self._k("rule", a), expected, state)
            results = await pipe.execute()
        return {a for a, ok in zip(ids, results, strict=True) if not int(ok)}

    async def rule_checkpoints(self, asset_id: str) -> list[tuple[int, bytes]]:
        rows: list[Any] = await self.client.zrange(
            self._k("ckpt", asset_id), 0, -1, withscores=True
        )
        return [(int(score), bytes(member)[8:]) for member, score in rows]

    async def add_rule_checkpoint(
        self, asset_id: str, clock_ms: int, state: bytes, *, keep_after_ms: int
    ) -> None:
        key = self._k("ckpt", asset_id)
        member = clock_ms.to_bytes(8, "big") + state  # unique per time
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {member: clock_ms})
            pipe.zremrangebyscore(key, "-inf", f"({keep_after_ms}")
            pipe.pexpire(key, max(1, clock_ms - keep_after_ms) * 4)
            await pipe.execute()

    async def replace_rule_checkpoints(
        self, asset_id: str, after_ms: int, checkpoints: Sequence[tuple[int, bytes]]
    ) -> None:
        key = self._k("ckpt", asset_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, f"({after_ms}", "+inf")
            if checkpoints:
                pipe.zadd(key, {ms.to_bytes(8, "big") + state: ms for ms, state in checkpoints})
            await pipe.execute()

    async def set_rule_due(self, due: Mapping[str, int | None]) -> None:
        if not due:
            return
        key = self._k("due")
        async with self.client.pipeline(transaction=False) as pipe:
            for asset_id, when in due.items():
                if when is None:
                    pipe.zrem(key, asset_id)
                else:
                    pipe.zadd(key, {asset_id: when})
            await pipe.execute()

    async def due_rule_assets(self, until_ms: int, *, limit: int = 10_000) -> list[str]:
        found = await self.client.zrangebyscore(
            self._k("due"), "-inf", until_ms, start=0, num=limit
        )
        return [a.decode() if isinstance(a, bytes) else str(a) for a in found]

    async def set_lot_members(self, changes: Sequence[tuple[str, str, int | None]]) -> None:
        if not changes:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for lot_id, asset_id, since in changes:
                if since is None:
                    pipe.hdel(self._k("lot", lot_id), asset_id)
                else:
                    pipe.hset(self._k("lot", lot_id), asset_id, since)
            await pipe.execute()

    async def lot_members(self, lot_ids: Collection[str]) -> dict[str, dict[str, int]]:
        ids = list(lot_ids)
        async with self.client.pipeline(transaction=False) as pipe:
            for lot in ids:
                pipe.hgetall(self._k("lot", lot))
            rows = await pipe.execute()
        return {
            lot: {(a.decode() if isinstance(a, bytes) else a): int(t) for a, t in row.items()}
            for lot, row in zip(ids, rows, strict=True)
        }

    async def try_lock(self, name: str, owner: str, *, ttl_ms: int) -> bool:
        return bool(int(await self.client.eval(_LOCK, 1, self._k("lock", name), owner, ttl_ms)))

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
        fields: dict[str, Any] = {
            "enterprise_id": enterprise_id,
            "state": state,
            "status_ms": status_ms,
            "last_seen_ms": seen_ms,
            "health": None if health is None else _ENC.encode(health),
        }
        mapping: dict[str | bytes, Any] = {k: v for k, v in fields.items() if v is not None}
        if mapping:
            await self.client.hset(self._k("gw", gateway_id), mapping=mapping)  # type: ignore[arg-type]

    async def forget_gateway(self, gateway_id: str) -> None:
        await self.client.delete(self._k("gw", gateway_id))

    async def gateways(self, gateway_ids: Collection[str]) -> dict[str, GatewayLive]:
        ids = list(gateway_ids)
        async with self.client.pipeline(transaction=False) as pipe:
            for g in ids:
                pipe.hgetall(self._k("gw", g))
            rows = await pipe.execute()
        return {g: _gateway(g, row) for g, row in zip(ids, rows, strict=True) if row}

    async def nearby(
        self,
        lat: float,
        lon: float,
        radius_m: float,
        *,
        enterprise_ids: Collection[str] | None = None,
        limit: int = 1000,
    ) -> list[tuple[str, float]]:
        keys = (
            [self._k("geo")]
            if enterprise_ids is None
            else [self._k("geo", e) for e in sorted(set(enterprise_ids))]
        )
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.geosearch(
                    key,
                    longitude=lon,
                    latitude=lat,
                    radius=radius_m,
                    unit="m",
                    withdist=True,
                    sort="ASC",
                    count=limit,
                )
            results = await pipe.execute()
        found = {(m.decode(), float(d)) for result in results for m, d in result}
        return sorted(found, key=lambda x: (x[1], x[0]))[:limit]

    async def high_water(self, gateway_id: str, seq: int) -> int | None:
        old = await self._raise_high(keys=[self._k("hw", gateway_id)], args=[seq])
        return None if old is None else int(old)

    async def _bits(
        self, gateway_id: str, seqs: Sequence[int], script: str, *args: Any
    ) -> list[int]:
        """Run ``script`` on each bitmap block of ``seqs``; return those whose bit was 1."""
        unique = sorted(set(seqs))
        if not unique:
            return []
        blocks: dict[int, list[int]] = {}
        for q in unique:
            blocks.setdefault(q >> _BLOCK_BITS, []).append(q)
        async with self.client.pipeline(transaction=False) as pipe:
            for block, members in blocks.items():
                key = self._k("seq", gateway_id, str(block))
                offsets = [q & (_BLOCK - 1) for q in members]
                pipe.eval(script, 1, key, *args, *offsets)
            results = await pipe.execute()
        seen: list[int] = []
        for members, bits in zip(blocks.values(), results, strict=True):
            raw = bits.encode() if isinstance(bits, str) else bytes(bits)
            seen += [q for q, bit in zip(members, raw, strict=True) if bit == ord("1")]
        return seen

    async def seen_seqs(self, gateway_id: str, seqs: Sequence[int]) -> list[int]:
        return await self._bits(gateway_id, seqs, _SEEN)

    async def admit_seqs(self, gateway_id: str, seqs: Sequence[int], *, now_ms: int) -> list[int]:
        old = set(await self._bits(gateway_id, seqs, _ADMIT, self.ledger_ttl_s))
        return [q for q in sorted(set(seqs)) if q not in old]

    async def missing_seqs(self, gateway_id: str, first_seq: int, last_seq: int) -> int:
        if last_seq < first_seq:
            return 0
        span = last_seq - first_seq + 1
        if span > _MAX_COUNT_SPAN:
            return span
        async with self.client.pipeline(transaction=False) as pipe:
            for block in range(first_seq >> _BLOCK_BITS, (last_seq >> _BLOCK_BITS) + 1):
                lo = max(first_seq, block << _BLOCK_BITS) & (_BLOCK - 1)
                hi = min(last_seq, ((block + 1) << _BLOCK_BITS) - 1) & (_BLOCK - 1)
                pipe.bitcount(self._k("seq", gateway_id, str(block)), lo, hi, mode="BIT")
            counts = await pipe.execute()
        return span - sum(int(c) for c in counts)

    async def publish(self, event: LiveEvent) -> None:
        await self.publish_many([event])

    async def publish_many(self, events: Sequence[LiveEvent]) -> None:
        # One message carries the whole list: a round of 1000 fixes is one PUBLISH.
        if events:
            await self.client.publish(self._k("feed"), _ENC.encode(list(events)))

    def subscribe(self) -> Subscription:
        sub = _RedisSubscription(self.client, self._k("feed"))
        self._subs.add(sub)
        return sub

    async def registry_version(self) -> int:
        raw = await self.client.get(self._k("registry_version"))
        return int(raw) if raw is not None else 0

    async def bump_registry_version(self) -> int:
        return int(await self.client.incr(self._k("registry_version")))

    async def put_ticket(self, ticket_hash: str, key_hash: str, *, ttl_s: float) -> None:
        await self.client.set(self._k("ticket", ticket_hash), key_hash, px=int(ttl_s * 1000))

    async def take_ticket(self, ticket_hash: str) -> str | None:
        found = await self.client.getdel(self._k("ticket", ticket_hash))
        if found is None:
            return None
        return found.decode() if isinstance(found, bytes) else str(found)

    async def close(self) -> None:
        subs, self._subs = list(self._subs), set()
        await asyncio.gather(*(s.aclose() for s in subs), return_exceptions=True)


def _gateway(gateway_id: str, row: Mapping[bytes, bytes]) -> GatewayLive:
    fields = {k.decode(): v for k, v in row.items()}
    return GatewayLive(
        gateway_id=gateway_id,
        enterprise_id=fields["enterprise_id"].decode() if "enterprise_id" in fields else None,
        state=fields["state"].decode() if "state" in fields else "unknown",  # type: ignore[arg-type]
        status_ms=int(fields["status_ms"]) if "status_ms" in fields else None,
        last_seen_ms=int(fields["last_seen_ms"]) if "last_seen_ms" in fields else None,
        health=_HEALTH.decode(fields["health"]) if "health" in fields else None,
    )
