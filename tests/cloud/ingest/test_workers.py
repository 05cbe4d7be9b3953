"""Several ingest workers on one shared subscription, and reconnecting after a broker crash."""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path

import pytest
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY

import wire
from cloud.ingest import Accepted, Ingest, serve
from tests.cloud.conftest import open_live, open_store, register
from tests.cloud.ingest_support import batch, now_ms, publish, running, until
from tests.support.procs import Mosquitto

pytestmark = pytest.mark.services


async def test_shared_subscription_splits_load_without_duplicates(
    tmp_path: Path, unique_id: str
) -> None:
    gw, t = unique_id, now_ms()
    async with open_store("postgresql", tmp_path) as store, open_live("redis", unique_id) as live:
        await register(store, "e1", gw)
        workers = [Ingest(store=store, live=live) for _ in range(2)]
        payloads = [
            batch(
                gw,
                [
                    wire.Fix(
                        seq=b * 10 + i, ts=t + b * 10 + i, asset=f"{gw}-{i}", lat=31.0, lon=120.0
                    )
                    for i in range(10)
                ],
            )
            for b in range(20)
        ]
        messages = [(wire.data_topic(gw), p) for p in payloads + payloads[:5]]
        async with (
            running(workers[0], [gw], share_group=gw),
            running(workers[1], [gw], share_group=gw),
        ):
            await publish(messages)
            await until(
                lambda: (
                    sum(w.counters["accepted.fix"] + w.counters["duplicate"] for w in workers)
                    == 250
                )
            )
        assert sum(w.counters["accepted.fix"] for w in workers) == 200
        assert all(w.counters["messages.data"] > 0 for w in workers)
        assert len(await store.track(f"{gw}-3", 0, t + 1000)) == 20


async def test_serve_reconnects_after_the_broker_dies(
    mosquitto: Mosquitto, tmp_path: Path, unique_id: str
) -> None:
    import aiomqtt

    gw, t = unique_id, now_ms()
    async with open_store("sqlite", tmp_path) as store, open_live("memory", unique_id) as live:
        await register(store, "e1", gw)
        ingest = Ingest(store=store, live=live, ledger=store)
        task = asyncio.create_task(serve(ingest, port=mosquitto.port, backoff_max_s=0.2))

        async def send(seq: int) -> None:
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
                payload = batch(gw, [wire.Fix(seq=seq, ts=t + seq, asset="a", lat=1.0, lon=2.0)])
                await client.publish(wire.data_topic(gw), payload, qos=1)

        try:
            for seq in (1, 2):
                # Repeat until the (re)connected ingest has it: the first sends may beat subscribe.
                async def delivered(seq: int = seq) -> None:
                    while ingest.counters["accepted.fix"] < seq:
                        await send(seq)
                        await asyncio.sleep(0.1)

                await asyncio.wait_for(delivered(), 15.0)
                if seq == 1:
                    mosquitto.kill()
                    await until(lambda: ingest.counters["mqtt_reconnect"] > 0)
                    mosquitto.start()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert [f.seq for f in await store.track("a", 0, t + 10)] == [1, 2]


@pytest.mark.parametrize("share_group", [None, "grp"])
async def test_a_named_ingest_gets_what_was_published_while_it_was_down(
    tmp_path: Path, unique_id: str, share_group: str | None
) -> None:
    gw, t = unique_id, now_ms()
    async with open_store("sqlite", tmp_path) as store, open_live("memory", unique_id) as live:
        await register(store, "e1", gw)
        ingest = Ingest(store=store, live=live, ledger=store)
        group = None if share_group is None else share_group + gw

        first = asyncio.create_task(serve(ingest, identifier=gw + "-ingest", share_group=group))
        payload = batch(gw, [wire.Fix(seq=1, ts=t, asset="a", lat=1.0, lon=2.0)])
        while ingest.counters["accepted.fix"] < 1:  # until the first session is subscribed
            await publish([(wire.data_topic(gw), payload)])
            await asyncio.sleep(0.05)
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        missed = batch(gw, [wire.Fix(seq=2, ts=t + 1, asset="a", lat=1.0, lon=2.0)])
        await publish([(wire.data_topic(gw), missed)])
        second = asyncio.create_task(serve(ingest, identifier=gw + "-ingest", share_group=group))
        try:
            await until(lambda: ingest.counters["accepted.fix"] == 2)
        finally:
            second.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await second
            # Drop the broker's stored session of this test.
            await _clear_session(gw + "-ingest", share_group is not None)


async def _clear_session(identifier: str, v5: bool) -> None:
    import aiomqtt

    protocol = aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311
    async with aiomqtt.Client(
        "127.0.0.1",
        1883,
        identifier=identifier,
        protocol=protocol,
        clean_session=None if v5 else True,
        clean_start=True if v5 else MQTT_CLEAN_START_FIRST_ONLY,
    ):
        pass


async def test_messages_received_before_the_broker_dies_are_still_archived(
    mosquitto: Mosquitto, tmp_path: Path, unique_id: str
) -> None:
    """The client acknowledges a QoS 1 message when it receives it: what sits in ingest's
    queue when the connection drops will never be sent again, so it must still be handled."""
    import aiomqtt

    gw, t = unique_id, now_ms()
    release = asyncio.Event()

    async def slow_rules(accepted: Accepted) -> None:
        await release.wait()  # the rules are busy while more messages arrive

    async with open_store("sqlite", tmp_path) as store, open_live("memory", unique_id) as live:
        await register(store, "e1", gw)
        ingest = Ingest(store=store, live=live, ledger=store, steps=(slow_rules,))
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            ready = asyncio.Event()
            task = asyncio.create_task(
                ingest.run(client, gateway_ids=[gw], max_round_messages=1, ready=ready)
            )
            await asyncio.wait_for(ready.wait(), 10.0)
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as sender:
                for seq in (1, 2, 3):
                    payload = batch(
                        gw, [wire.Fix(seq=seq, ts=t + seq, asset="a", lat=1.0, lon=2.0)]
                    )
                    await sender.publish(wire.data_topic(gw), payload, qos=1)
            await until(lambda: ingest.counters["received"] == 3)
            mosquitto.kill()
            await until(lambda: task.done() or ingest.counters["mqtt_lost"] == 1)
            release.set()
            with contextlib.suppress(aiomqtt.MqttError, ExceptionGroup):
                await asyncio.wait_for(task, 20.0)
        assert [f.seq for f in await store.track("a", 0, t + 10)] == [1, 2, 3]


async def test_a_cancel_at_any_moment_of_connecting_ends_serve(
    mosquitto: Mosquitto, tmp_path: Path, unique_id: str
) -> None:
    # Cancels land on CONNACK and SUBACK too: aiomqtt's wait_for swallowed them on Python 3.11
    # and the ingest went on reading for ever (the window is narrow, hence random delays).
    async with open_store("sqlite", tmp_path) as store, open_live("memory", unique_id) as live:
        ingest = Ingest(store=store, live=live, ledger=store)
        for _ in range(100):
            task = asyncio.create_task(serve(ingest, port=mosquitto.port))
            delay_s = random.uniform(0.0, 0.03)
            await asyncio.sleep(delay_s)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=10)
            assert done, f"serve did not end when cancelled {delay_s * 1000:.1f} ms after start"
            assert task.cancelled()
