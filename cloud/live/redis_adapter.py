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
  ``ledger_ttl_s``; one script sets the bits of every block of a round and returns the old
  ones, which makes admission atomic across workers.

What a round does for many keys (rule states and their compare-and-set, checkpoints, ledger
bits, high-water marks, gateways seen) is one script call over all of them: one round trip and
one reply instead of one command per key (the ``*_many`` methods, beside the one-key forms of
the port).
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
_LOCK: Final = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# Many keys in one call (one round trip and one reply for a whole ingest round): each script
# does per key what its one-key form does, atomically for all of them.
_GET_RULES: Final = """
local out = {}
for k = 1, #KEYS do
  local r = redis.call('HMGET', KEYS[k], 'v', 's')
  out[2 * k - 1] = r[1]
  out[2 * k] = r[2]
end
return out
"""
_PUT_IF_MANY: Final = """
local out = {}
for k = 1, #KEYS do
  local stored = tonumber(redis.call('HGET', KEYS[k], 'v') or '0')
  if stored ~= tonumber(ARGV[2 * k - 1]) then
    out[k] = 0
  else
    redis.call('HSET', KEYS[k], 'v', stored + 1, 's', ARGV[2 * k])
    out[k] = 1
  end
end
return out
"""
_ADD_CHECKPOINTS: Final = """
for k = 1, #KEYS do
  local i = 4 * (k - 1)
  redis.call('ZADD', KEYS[k], ARGV[i + 2], ARGV[i + 1])
  redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', '(' .. ARGV[i + 3])
  redis.call('PEXPIRE', KEYS[k], ARGV[i + 4])
end
return #KEYS
"""
_RAISE_HIGH_MANY: Final = """
local out = {}
for k = 1, #KEYS do
  local old = redis.call('GET', KEYS[k])
  if (not old) or tonumber(ARGV[k]) > tonumber(old) then redis.call('SET', KEYS[k], ARGV[k]) end
  out[k] = old
end
return out
"""
_SEEN_MANY: Final = """
local out = {}
local pos = 1
for k = 1, #KEYS do
  local n = tonumber(ARGV[pos])
  local bits = {}
  for i = 1, n do bits[i] = redis.call('GETBIT', KEYS[k], ARGV[pos + i]) end
  out[k] = table.concat(bits)
  pos = pos + n + 1
end
return out
"""
_ADMIT_MANY: Final = """
local out = {}
local pos = 2
for k = 1, #KEYS do
  local n = tonumber(ARGV[pos])
  local old = {}
  for i = 1, n do old[i] = redis.call('SETBIT', KEYS[k], ARGV[pos + i], 1) end
  redis.call('EXPIRE', KEYS[k], ARGV[1])
  out[k] = table.concat(old)
  pos = pos + n + 1
end
return out
"""
_HSET_MANY: Final = """
local pos = 1
for k = 1, #KEYS do
  local n = tonumber(ARGV[pos])
  redis.call('HSET', KEYS[k], unpack(ARGV, pos + 1, pos + n))
  pos = pos + n + 1
end
return #KEYS
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
        self._lock = client.register_script(_LOCK)
        self._get_rules = client.register_script(_GET_RULES)
        self._put_if_many = client.register_script(_PUT_IF_MANY)
        self._add_checkpoints = client.register_script(_ADD_CHECKPOINTS)
        self._raise_high_many = client.register_script(_RAISE_HIGH_MANY)
        self._seen_many = client.register_script(_SEEN_MANY)
        self._admit_many = client.register_script(_ADMIT_MANY)
        self._hset_many = client.register_script(_HSET_MANY)
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
        if not changed:
            return changed
        # One GEOADD per set (all, and each tenant's) and one ZREM per tenant left.
        left: dict[str, list[str]] = {}
        places: dict[str, list[Any]] = {self._k("geo"): []}
        for asset, owner in zip(changed, flat[1::2], strict=True):
            rec = newest[asset]
            where = (rec.item.lon, rec.item.lat, asset)
            if owner and owner != rec.enterprise_id:
                # Moved to another enterprise: it leaves the old tenant's geo set.
                left.setdefault(self._k("geo", owner), []).append(asset)
            places[self._k("geo")] += where
            places.setdefault(self._k("geo", rec.enterprise_id), []).extend(where)
        async with self.client.pipeline(transaction=False) as pipe:
            for key, assets in left.items():
                pipe.zrem(key, *assets)
            for key, values in places.items():
                pipe.geoadd(key, values)
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
        flat = await self._get_rules(keys=[self._k("rule", a) for a in ids])
        return {
            a: (int(version), bytes(state))
            for a, version, state in zip(ids, flat[0::2], flat[1::2], strict=True)
            if version is not None and state is not None
        }

    async def put_rule_states(self, writes: Mapping[str, tuple[int, bytes]]) -> set[str]:
        if not writes:
            return set()
        ids = list(writes)
        args: list[Any] = []
        for a in ids:
            args += writes[a]
        results = await self._put_if_many(keys=[self._k("rule", a) for a in ids], args=args)
        return {a for a, ok in zip(ids, results, strict=True) if not int(ok)}

    async def rule_checkpoints(self, asset_id: str) -> list[tuple[int, bytes]]:
        rows: list[Any] = await self.client.zrange(
            self._k("ckpt", asset_id), 0, -1, withscores=True
        )
        return [(int(score), bytes(member)[8:]) for member, score in rows]

    async def add_rule_checkpoint(
        self, asset_id: str, clock_ms: int, state: bytes, *, keep_after_ms: int
    ) -> None:
        await self.add_rule_checkpoints([(asset_id, clock_ms, state, keep_after_ms)])

    async def add_rule_checkpoints(
        self, checkpoints: Sequence[tuple[str, int, bytes, int]]
    ) -> None:
        """:meth:`add_rule_checkpoint` for many ``(asset, clock_ms, state, keep_after_ms)`` at
        once (one round trip)."""
        if not checkpoints:
            return
        keys = []
        args: list[Any] = []
        for asset_id, clock_ms, state, keep_after_ms in checkpoints:
            keys.append(self._k("ckpt", asset_id))
            member = clock_ms.to_bytes(8, "big") + state  # unique per time
            args += [member, clock_ms, keep_after_ms, max(1, clock_ms - keep_after_ms) * 4]
        await self._add_checkpoints(keys=keys, args=args)

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
        gone = [a for a, when in due.items() if when is None]
        timed = {a: when for a, when in due.items() if when is not None}
        if not gone:
            await self.client.zadd(key, timed)
            return
        if not timed:
            await self.client.zrem(key, *gone)
            return
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zrem(key, *gone)
            pipe.zadd(key, timed)
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
        return bool(int(await self._lock(keys=[self._k("lock", name)], args=[owner, ttl_ms])))

    async def count_recent(
        self, key: str, *, keep_after_ms: int, add: tuple[str, int] | None = None
    ) -> int:
        name = self._k("recent", key)
        async with self.client.pipeline(transaction=True) as pipe:
            if add is not None:
                pipe.zadd(name, {add[0]: add[1]})
            pipe.zremrangebyscore(name, "-inf", keep_after_ms)
            pipe.zcard(name)
            pipe.expire(name, 86_400)
            replies = await pipe.execute()
        return int(replies[-2])

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

    async def gateways_seen(
        self, seen: Sequence[tuple[str, str, int, wire.Health | None]], /
    ) -> None:
        """:meth:`set_gateway` with ``enterprise_id``, ``seen_ms`` and ``health`` for many
        ``(gateway, enterprise, seen_ms, health)`` at once (one round trip)."""
        if not seen:
            return
        keys = []
        args: list[Any] = []
        for gateway_id, enterprise_id, seen_ms, health in seen:
            keys.append(self._k("gw", gateway_id))
            if health is None:
                args += [4, "enterprise_id", enterprise_id, "last_seen_ms", seen_ms]
            else:
                args += [6, "enterprise_id", enterprise_id, "last_seen_ms", seen_ms]
                args += ["health", _ENC.encode(health)]
        await self._hset_many(keys=keys, args=args)

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

    async def high_water_many(self, marks: Sequence[tuple[str, int]], /) -> list[int | None]:
        """:meth:`high_water` for many ``(gateway, seq)`` at once (one round trip)."""
        if not marks:
            return []
        keys = [self._k("hw", gateway_id) for gateway_id, _ in marks]
        olds = await self._raise_high_many(keys=keys, args=[seq for _, seq in marks])
        return [None if old is None else int(old) for old in olds]

    async def _bits_many(
        self, requests: Sequence[tuple[str, Sequence[int]]], script: Any, *args: Any
    ) -> list[list[int]]:
        """:meth:`_bits` for many ``(gateway, seqs)`` in one script call."""
        keys: list[str] = []
        flat: list[Any] = list(args)
        spans: list[list[list[int]]] = []
        for gateway_id, seqs in requests:
            blocks: dict[int, list[int]] = {}
            for q in sorted(set(seqs)):
                blocks.setdefault(q >> _BLOCK_BITS, []).append(q)
            spans.append(list(blocks.values()))
            for block, members in blocks.items():
                keys.append(self._k("seq", gateway_id, str(block)))
                flat.append(len(members))
                flat += [q & (_BLOCK - 1) for q in members]
        results = iter(await script(keys=keys, args=flat) if keys else ())
        found: list[list[int]] = []
        for members_of in spans:
            seen: list[int] = []
            for members in members_of:
                bits = next(results)
                raw = bits.encode() if isinstance(bits, str) else bytes(bits)
                seen += [q for q, bit in zip(members, raw, strict=True) if bit == ord("1")]
            found.append(seen)
        return found

    async def seen_seqs_many(
        self, requests: Sequence[tuple[str, Sequence[int]]], /
    ) -> list[list[int]]:
        """:meth:`seen_seqs` for many ``(gateway, seqs)`` at once (one round trip)."""
        return await self._bits_many(requests, self._seen_many)

    async def admit_seqs_many(
        self, requests: Sequence[tuple[str, Sequence[int]]], /, *, now_ms: int
    ) -> list[list[int]]:
        """:meth:`admit_seqs` for many ``(gateway, seqs)`` at once (one round trip)."""
        olds = await self._bits_many(requests, self._admit_many, self.ledger_ttl_s)
        return [
            [q for q in sorted(set(seqs)) if q not in set(old)]
            for (_, seqs), old in zip(requests, olds, strict=True)
        ]

    async def seen_seqs(self, gateway_id: str, seqs: Sequence[int]) -> list[int]:
        return (await self.seen_seqs_many([(gateway_id, seqs)]))[0]

    async def admit_seqs(self, gateway_id: str, seqs: Sequence[int], *, now_ms: int) -> list[int]:
        return (await self.admit_seqs_many([(gateway_id, seqs)], now_ms=now_ms))[0]

    async def missing_seqs(self, gateway_id: str, first_seq: int, last_seq: int) -> int:
        return (await self.missing_seqs_many([(gateway_id, first_seq, last_seq)]))[0]

    async def missing_seqs_many(self, ranges: Sequence[tuple[str, int, int]], /) -> list[int]:
        """:meth:`missing_seqs` for many ``(gateway, first_seq, last_seq)`` at once (one
        round trip)."""
        missing: list[int] = []
        counted: list[tuple[int, int]] = []  # (index in missing, BITCOUNTs to subtract)
        async with self.client.pipeline(transaction=False) as pipe:
            for gateway_id, first_seq, last_seq in ranges:
                span = max(0, last_seq - first_seq + 1)
                missing.append(span)
                if span == 0 or span > _MAX_COUNT_SPAN:
                    continue
                blocks = range(first_seq >> _BLOCK_BITS, (last_seq >> _BLOCK_BITS) + 1)
                for block in blocks:
                    lo = max(first_seq, block << _BLOCK_BITS) & (_BLOCK - 1)
                    hi = min(last_seq, ((block + 1) << _BLOCK_BITS) - 1) & (_BLOCK - 1)
                    pipe.bitcount(self._k("seq", gateway_id, str(block)), lo, hi, mode="BIT")
                counted.append((len(missing) - 1, len(blocks)))
            counts = iter(await pipe.execute() if counted else ())
        for at, blocks_of in counted:
            missing[at] -= sum(int(next(counts)) for _ in range(blocks_of))
        return missing

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
