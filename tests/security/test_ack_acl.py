"""The cloud's acknowledgements on ``hz/v1/<gateway_id>/ack``: written by the cloud only, read by
that one gateway only.

Mosquitto 2.0 grants every SUBSCRIBE and filters delivery by the ACL's read rules, so a gateway
may subscribe to another gateway's ack topic, or to ``hz/v1/#``, and must still receive nothing
but its own acknowledgements.
"""

from __future__ import annotations

import wire
from tests.security.conftest import (
    NOT_AUTHORIZED,
    Broker,
    cloud_client,
    gateway_client,
    next_payload,
    watch,
)

NOW_MS = 1_780_000_000_000


def _ack(gateway_id: str, last_seq: int) -> bytes:
    return wire.encode_ack(wire.Ack(gw=gateway_id, ts=NOW_MS, seqs=[(1, last_seq)]))


async def test_cloud_writes_every_ack_topic(broker: Broker, unique_id: str) -> None:
    gateway_ids = [f"{unique_id}a", f"{unique_id}b", f"{unique_id}-not-registered"]
    async with cloud_client(broker) as cloud:
        events = watch(cloud)
        for gw in gateway_ids:
            await cloud.publish(wire.ack_topic(gw), _ack(gw, 10), qos=1, retain=True)
    # Success, or "no matching subscribers" (0x10): both below 0x80, accepted and retained.
    assert [code.is_failure for code in events.pubacks] == [False, False, False]


async def test_gateway_reads_its_own_ack_only(broker: Broker, unique_id: str) -> None:
    gw_a, gw_b = f"{unique_id}a", f"{unique_id}b"
    async with cloud_client(broker) as cloud:
        await cloud.publish(wire.ack_topic(gw_a), _ack(gw_a, 10), qos=1, retain=True)
        await cloud.publish(wire.ack_topic(gw_b), _ack(gw_b, 10), qos=1, retain=True)
        async with gateway_client(broker, gw_a) as gateway:
            for topic in (wire.ack_topic(gw_a), wire.ack_topic(gw_b), "hz/v1/+/ack", "hz/v1/#"):
                await gateway.subscribe(topic, qos=1)
            # The retained acks come with the subscriptions; then B's and A's next ack, in this
            # order: everything A may read arrives before A's second ack.
            await cloud.publish(wire.ack_topic(gw_b), _ack(gw_b, 20), qos=1, retain=True)
            await cloud.publish(wire.ack_topic(gw_a), _ack(gw_a, 20), qos=1, retain=True)
            received = [await next_payload(gateway)]
            while received[-1][1] != _ack(gw_a, 20):
                received.append(await next_payload(gateway))
    assert (wire.ack_topic(gw_a), _ack(gw_a, 10)) in received
    assert {topic for topic, _ in received} == {wire.ack_topic(gw_a)}


async def test_gateway_cannot_publish_acks(broker: Broker, unique_id: str) -> None:
    gw_a, gw_b = f"{unique_id}a", f"{unique_id}b"
    async with cloud_client(broker) as cloud:
        await cloud.subscribe("hz/v1/+/ack", qos=1)
        async with gateway_client(broker, gw_a) as forger, gateway_client(broker, gw_b) as victim:
            await forger.subscribe(wire.ack_topic(gw_a), qos=1)
            await victim.subscribe(wire.ack_topic(gw_b), qos=1)
            events = watch(forger)
            for gw in (gw_a, gw_b):
                await forger.publish(wire.ack_topic(gw), _ack(gw, 999), qos=1, retain=True)
            assert [code.value for code in events.pubacks] == [NOT_AUTHORIZED, NOT_AUTHORIZED]
            # The cloud's real acks follow: each subscriber's first message must be a real one.
            await cloud.publish(wire.ack_topic(gw_b), _ack(gw_b, 5), qos=1)
            await cloud.publish(wire.ack_topic(gw_a), _ack(gw_a, 5), qos=1)
            assert await next_payload(victim) == (wire.ack_topic(gw_b), _ack(gw_b, 5))
            assert await next_payload(forger) == (wire.ack_topic(gw_a), _ack(gw_a, 5))
            assert await next_payload(cloud) == (wire.ack_topic(gw_b), _ack(gw_b, 5))
        # Nor did a forged ack stay retained for the next connection of that gateway.
        async with gateway_client(broker, gw_b) as later:
            await later.subscribe(wire.ack_topic(gw_b), qos=1)
            await cloud.publish(wire.ack_topic(gw_b), _ack(gw_b, 6), qos=1)
            assert await next_payload(later) == (wire.ack_topic(gw_b), _ack(gw_b, 6))
