"""Helpers of the ingest tests: a running ingest on the shared Mosquitto, publishing, polling."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence

import aiomqtt

import wire
from cloud.ingest import Ingest
from tests.conftest import MQTT_HOST, MQTT_PORT


def now_ms() -> int:
    """The wall clock in epoch ms (ingest stamps receive times with it)."""
    return time.time_ns() // 1_000_000


@contextlib.asynccontextmanager
async def running(
    ingest: Ingest,
    gateway_ids: Sequence[str],
    *,
    share_group: str | None = None,
    port: int = MQTT_PORT,
) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``ingest`` on the broker for these gateways until the block ends."""
    protocol = aiomqtt.ProtocolVersion.V5 if share_group else aiomqtt.ProtocolVersion.V311
    async with aiomqtt.Client(MQTT_HOST, port, protocol=protocol) as client:
        ready = asyncio.Event()
        task = asyncio.create_task(
            ingest.run(client, share_group=share_group, gateway_ids=gateway_ids, ready=ready)
        )
        await asyncio.wait_for(ready.wait(), 10.0)
        try:
            yield task
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def batch(gateway_id: str, items: Sequence[wire.Item]) -> bytes:
    """An envelope of these items."""
    return wire.assemble_batch(gateway_id, [wire.encode_item(i) for i in items])


async def publish(messages: Sequence[tuple[str, bytes]], *, retain: bool = False) -> None:
    """Publish with QoS 1 from a fresh client, in order."""
    async with aiomqtt.Client(MQTT_HOST, MQTT_PORT) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1, retain=retain)


async def until(check: Callable[[], bool], *, timeout_s: float = 10.0) -> None:
    """Poll ``check`` every few milliseconds until true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)
