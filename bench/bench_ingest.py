"""Fixes per second from MQTT into Redis (live state, ledger) and PostgreSQL (archive).

For each batch size (fixes per MQTT message) the same pre-encoded messages are published to
the shared Mosquitto (127.0.0.1:1883) and consumed by:

- baseline: a bare aiomqtt subscriber that only decodes each batch with ``wire.decode_batch``;
- ingest: :class:`cloud.ingest.Ingest` on PostgreSQL + Redis (dedup, gaps, ordering, archive,
  latest fixes, geo index, live feed);
- embedded: the same on SQLite + in-process state (the store as ledger), for comparison.

Prints the median of several runs in fixes/s and the ratio ingest / baseline.

    python bench/bench_ingest.py
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiomqtt
import redis.asyncio as aioredis
from sqlalchemy import text

import wire
from cloud.archive import Store
from cloud.ingest import Ingest
from cloud.live import MemoryLiveState, RedisLiveState
from cloud.models import Enterprise, Gateway

HOST, PORT = "127.0.0.1", 1883
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
SIZES = ((1, 1_000), (10, 5_000), (100, 20_000), (1000, 20_000))  # (batch size, fixes per run)
RUNS = 3
ASSETS = 200


class Feeder:
    """Builds messages with fresh seqs (the ledger would drop repeats) and publishes them."""

    def __init__(self, gateway_id: str) -> None:
        self.gateway_id = gateway_id
        self.seq = 0
        self.t0 = time.time_ns() // 1_000_000 - 3_600_000

    def messages(self, batch_size: int, count: int) -> list[bytes]:
        payloads = []
        for _ in range(count // batch_size):
            items = []
            for _ in range(batch_size):
                self.seq += 1
                fix = wire.Fix(
                    seq=self.seq,
                    ts=self.t0 + self.seq,
                    asset=f"bench-{self.seq % ASSETS}",
                    lat=31.0 + (self.seq % 1000) * 1e-5,
                    lon=120.0,
                    speed_kmh=50.0,
                )
                items.append(wire.encode_item(fix, validate=False))
            payloads.append(wire.assemble_batch(self.gateway_id, items))
        return payloads

    async def publish(self, payloads: list[bytes]) -> None:
        topic = wire.data_topic(self.gateway_id)
        quiet = logging.getLogger("bench.mqtt")
        quiet.setLevel(logging.ERROR)  # aiomqtt warns about many pending publishes
        async with aiomqtt.Client(HOST, PORT, max_inflight_messages=200, logger=quiet) as client:
            for start in range(0, len(payloads), 200):
                chunk = payloads[start : start + 200]
                await asyncio.gather(*(client.publish(topic, p, qos=1) for p in chunk))


async def wait_for(check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("consumer did not keep up")
        await asyncio.sleep(0.002)


@contextlib.asynccontextmanager
async def consuming(
    gateway_id: str, consume: Callable[[aiomqtt.Client, asyncio.Event], Coroutine[Any, Any, None]]
) -> AsyncIterator[None]:
    async with aiomqtt.Client(HOST, PORT) as client:
        ready = asyncio.Event()
        task = asyncio.create_task(consume(client, ready))
        await asyncio.wait_for(ready.wait(), 10)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def rate(feeder: Feeder, batch_size: int, count: int, done: Callable[[], int]) -> float:
    payloads = feeder.messages(batch_size, count)
    target = done() + len(payloads) * batch_size
    started = time.perf_counter()
    await feeder.publish(payloads)
    await wait_for(lambda: done() >= target)
    return len(payloads) * batch_size / (time.perf_counter() - started)


async def baseline_rates(gateway_id: str) -> dict[int, float]:
    decoded = [0]

    async def consume(client: aiomqtt.Client, ready: asyncio.Event) -> None:
        await client.subscribe(wire.data_topic(gateway_id), qos=1)
        ready.set()
        async for message in client.messages:
            decoded[0] += len(wire.decode_batch(message.payload).items)

    feeder = Feeder(gateway_id)
    async with consuming(gateway_id, consume):
        return {
            size: statistics.median(
                [await rate(feeder, size, n, lambda: decoded[0]) for _ in range(RUNS)]
            )
            for size, n in SIZES
        }


async def ingest_rates(ingest: Ingest, gateway_id: str) -> dict[int, float]:
    async def consume(client: aiomqtt.Client, ready: asyncio.Event) -> None:
        await ingest.run(client, gateway_ids=[gateway_id], ready=ready)

    feeder = Feeder(gateway_id)
    async with consuming(gateway_id, consume):
        return {
            size: statistics.median(
                [
                    await rate(feeder, size, n, lambda: ingest.counters["accepted.fix"])
                    for _ in range(RUNS)
                ]
            )
            for size, n in SIZES
        }


async def register(store: Store, gateway_id: str) -> None:
    await store.put_enterprise(Enterprise(id="bench", name="bench", region="320281"))
    await store.put_gateway(Gateway(id=gateway_id, enterprise_id="bench"))


async def main() -> int:
    run_id = "bench" + uuid.uuid4().hex[:8]
    print(f"batch sizes {[s for s, _ in SIZES]}, median of {RUNS} runs, fixes/s")
    base = await baseline_rates(run_id + "b")

    schema = run_id
    store = await Store.connect(PG_URL, schema=schema)
    client = aioredis.Redis.from_url(REDIS_URL)
    live = RedisLiveState(client, f"{run_id}:")
    try:
        await register(store, run_id + "p")
        production = await ingest_rates(Ingest(store=store, live=live), run_id + "p")
    finally:
        keys = [k async for k in client.scan_iter(match=f"{run_id}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        async with store.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await store.close()

    with tempfile.TemporaryDirectory() as folder:
        lite = await Store.connect(f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}")
        try:
            await register(lite, run_id + "e")
            ingest = Ingest(store=lite, live=MemoryLiveState(), ledger=lite)
            embedded = await ingest_rates(ingest, run_id + "e")
        finally:
            await lite.close()

    print(
        f"{'batch':>6} {'baseline':>10} {'PG+Redis':>10} {'ratio':>6} {'SQLite+mem':>11} {'ratio':>6}"
    )
    for size, _ in SIZES:
        b, p, e = base[size], production[size], embedded[size]
        print(f"{size:>6} {b:>10.0f} {p:>10.0f} {p / b:>6.2f} {e:>11.0f} {e / b:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
