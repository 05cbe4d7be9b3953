"""Rows leave the buffer on the cloud's acknowledgement, not on the broker's PUBACK.

A :class:`Collector` plays the cloud on the real Mosquitto: it acknowledges what it received on
``hz/v1/<gw>/ack`` (or, with ``acknowledge=False``, is a cloud older than acknowledgements).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import pytest

import wire
from edge.buffer import Buffer
from tests.edge.agent.collector import Collector
from tests.edge.agent.helpers import running, settings
from tests.edge.agent.ticker import Ticker

pytestmark = pytest.mark.services


async def _depth_reaches(buffer: Buffer, depth: int, *, timeout_s: float = 15.0) -> None:
    async with asyncio.timeout(timeout_s):
        while buffer.depth != depth:  # noqa: ASYNC110  # a plain attribute
            await asyncio.sleep(0.02)


async def test_rows_stay_until_the_cloud_acknowledges(tmp_path: Path, unique_id: str) -> None:
    ticker = Ticker(per_tick=50, tick_s=0.01, count=500, alarm_every=0)
    config = settings(tmp_path, unique_id, delete_on="cloud", ack_timeout_s=3600.0)
    async with (
        Collector(unique_id, acknowledge=False) as broker_only,
        running(config, [ticker]) as agent,
    ):
        assert agent.buffer is not None
        await broker_only.wait(lambda: len(broker_only.seqs()) >= 500)
        await asyncio.sleep(0.3)
        # Every batch was PUBACKed by the broker and delivered, and still nothing is deleted.
        assert agent.buffer.depth >= 500
        first, last = min(broker_only.seqs()), max(broker_only.seqs())
        before = agent.buffer.depth
        async with aiomqtt.Client("127.0.0.1", 1883) as cloud:
            ack = wire.Ack(gw=unique_id, ts=0, seqs=[(first, last)])
            await cloud.publish(wire.ack_topic(unique_id), wire.encode_ack(ack), qos=1)
        await _depth_reaches(agent.buffer, before - 500)
        assert agent.forwarder is not None
        assert agent.forwarder.counters["items_acked"] >= 500
        assert agent.buffer.cloud_acks_seen


async def test_unacknowledged_batches_are_sent_again(tmp_path: Path, unique_id: str) -> None:
    ticker = Ticker(per_tick=20, tick_s=0.01, count=100, alarm_every=0)
    config = settings(tmp_path, unique_id, delete_on="cloud", ack_timeout_s=0.5)
    async with (
        Collector(unique_id, acknowledge=False) as lossy_cloud,
        running(config, [ticker]) as agent,
    ):
        assert agent.buffer is not None
        assert agent.forwarder is not None
        await lossy_cloud.wait(lambda: len(lossy_cloud.seqs()) >= 100)
        # No acknowledgement: the same seqs come again after the timeout.
        await lossy_cloud.wait(lambda: len(lossy_cloud.items()) >= 200)
        assert agent.forwarder.counters["ack_timeouts"] >= 1
        async with Collector(unique_id) as cloud:
            await _depth_reaches(agent.buffer, 0)
            assert cloud.acks >= 1
        assert lossy_cloud.missing(min(lossy_cloud.seqs()), max(lossy_cloud.seqs())) == []


async def test_auto_falls_back_to_the_puback_for_an_older_cloud(
    tmp_path: Path, unique_id: str
) -> None:
    ticker = Ticker(per_tick=20, tick_s=0.01, count=200, alarm_every=0)
    config = settings(tmp_path, unique_id, delete_on="auto", ack_fallback_s=1.0)
    async with (
        Collector(unique_id, acknowledge=False) as old_cloud,
        running(config, [ticker]) as agent,
    ):
        assert agent.buffer is not None
        assert agent.forwarder is not None
        await _depth_reaches(agent.buffer, 0)  # not stalled: deleted on the PUBACK after 1 s
        assert agent.forwarder.fallback
        assert agent.forwarder.counters["ack_fallback"] == 1
        assert old_cloud.missing(min(old_cloud.seqs()), max(old_cloud.seqs())) == []
        assert len(old_cloud.seqs()) == 200


async def test_auto_never_falls_back_once_the_cloud_has_acknowledged(
    tmp_path: Path, unique_id: str
) -> None:
    config = settings(tmp_path, unique_id, delete_on="auto", ack_fallback_s=0.5)
    first_run = [Ticker(per_tick=10, tick_s=0.01, count=10)]
    async with Collector(unique_id) as cloud, running(config, first_run) as agent:
        assert agent.buffer is not None
        await _depth_reaches(agent.buffer, 0)
        assert cloud.acks >= 1
    # Restarted on the same file, against a cloud that has stopped acknowledging: it waits.
    ticker = Ticker(per_tick=10, tick_s=0.01, count=50, alarm_every=0)
    async with (
        Collector(unique_id, acknowledge=False) as silent,
        running(config, [ticker]) as agent,
    ):
        assert agent.buffer is not None
        assert agent.forwarder is not None
        assert agent.buffer.cloud_acks_seen
        await silent.wait(lambda: len(silent.seqs()) >= 50)
        await asyncio.sleep(1.5)
        assert not agent.forwarder.fallback
        assert agent.buffer.depth >= 50


async def test_an_invalid_acknowledgement_is_counted_and_ignored(
    tmp_path: Path, unique_id: str
) -> None:
    ticker = Ticker(per_tick=10, tick_s=0.01, count=20, alarm_every=0)
    config = settings(tmp_path, unique_id, delete_on="cloud", ack_timeout_s=3600.0)
    async with (
        Collector(unique_id, acknowledge=False) as broker_only,
        running(config, [ticker]) as agent,
    ):
        assert agent.buffer is not None
        assert agent.forwarder is not None
        await broker_only.wait(lambda: len(broker_only.seqs()) >= 20)
        async with aiomqtt.Client("127.0.0.1", 1883) as cloud:
            for bad in (b"{", b'{"gw":"other","ts":0,"seqs":[[0,99999999999999]]}'):
                await cloud.publish(wire.ack_topic(unique_id), bad, qos=1)
        async with asyncio.timeout(10):
            while agent.forwarder.counters["ack_invalid"] < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert agent.buffer.depth >= 20
