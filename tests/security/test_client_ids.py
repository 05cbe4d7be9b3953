"""No gateway can take over the MQTT client id of the cloud or of another gateway.

An MQTT broker closes the connection already using a client id when another one connects with
it. On the gateways' listener the shipped config replaces every client id with the user name
(the gateway id), and gateway credentials work on that listener only; cloud worker ids contain
':', which no user name may contain. So a gateway that sends the cloud's id, or another
gateway's, only ever replaces its own connection.
"""

from __future__ import annotations

import aiomqtt
import pytest

import wire
from tests.security.conftest import (
    Broker,
    cloud_client,
    gateway_client,
    next_payload,
    watch,
)

ATTEMPTS = 10


async def test_gateway_cannot_take_over_the_cloud_client_id(broker: Broker, unique_id: str) -> None:
    gw_a, gw_b = f"{unique_id}a", f"{unique_id}b"
    cloud_id = f"hazwatch-cloud:{unique_id}"
    topic = wire.data_topic(gw_b)
    async with (
        cloud_client(broker, identifier=cloud_id) as cloud,
        gateway_client(broker, gw_b) as sender,
    ):
        events = watch(cloud)
        await cloud.subscribe(topic, qos=1)
        for attempt in range(ATTEMPTS):
            async with gateway_client(broker, gw_a, identifier=cloud_id):
                payload = f"fix {attempt}".encode()
                await sender.publish(topic, payload, qos=1)
                assert await next_payload(cloud) == (topic, payload)
        assert events.disconnects == []


async def test_gateway_cannot_take_over_another_gateway(broker: Broker, unique_id: str) -> None:
    gw_a, gw_b = f"{unique_id}a", f"{unique_id}b"
    topic = wire.data_topic(gw_b)
    async with (
        cloud_client(broker) as cloud,
        gateway_client(broker, gw_b, identifier=gw_b) as victim,
    ):
        events = watch(victim)
        await cloud.subscribe(topic, qos=1)
        for attempt in range(ATTEMPTS):
            async with gateway_client(broker, gw_a, identifier=gw_b):
                payload = f"fix {attempt}".encode()
                await victim.publish(topic, payload, qos=1)
                assert await next_payload(cloud) == (topic, payload)
        assert events.disconnects == []


@pytest.mark.parametrize("listener", ["plain", "tls"])
async def test_gateway_is_refused_on_the_cloud_listeners(
    broker: Broker, unique_id: str, listener: str
) -> None:
    # There it could choose any client id, the cloud's too.
    if listener == "plain":
        gw_a = f"{unique_id}a"
        client = aiomqtt.Client(
            "127.0.0.1", broker.plain_port, username=gw_a, password=broker.passwords[gw_a],
            identifier=f"hazwatch-cloud:{unique_id}", timeout=10,
        )  # fmt: skip
    else:
        client = gateway_client(
            broker, f"{unique_id}a", identifier=f"hazwatch-cloud:{unique_id}",
            port=broker.cloud_tls_port,
        )  # fmt: skip
    with pytest.raises(aiomqtt.MqttError):
        async with client:
            pass
