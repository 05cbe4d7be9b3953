"""The shipped Mosquitto config: gateways write only under their own id, TLS works with our CA.

The broker is test-owned and built from deploy/mosquitto (mosquitto.conf, acl, add-user.sh,
make-certs.sh) with only paths and ports rewritten. Gateways use their TLS listener, the cloud
its plain one.
"""

from __future__ import annotations

import asyncio
import ssl

import aiomqtt
import pytest

import wire
from tests.security.conftest import (
    CLOUD_USER,
    NOT_AUTHORIZED,
    Broker,
    cloud_client,
    gateway_client,
    next_payload,
    watch,
)


async def test_gateway_cannot_publish_under_another_id(broker: Broker, unique_id: str) -> None:
    gw_a, gw_b = f"{unique_id}a", f"{unique_id}b"
    async with cloud_client(broker) as cloud:
        await cloud.subscribe(wire.subscription(), qos=1)
        async with gateway_client(broker, gw_a) as gateway:
            events = watch(gateway)
            # Forged first: if the broker let it through, the cloud would see it before the real one.
            await gateway.publish(wire.data_topic(gw_b), b"forged", qos=1)
            await gateway.publish(wire.alarm_topic(gw_b), b"forged", qos=1)
            await gateway.publish(wire.status_topic(gw_b), b"forged", qos=1, retain=True)
            await gateway.publish(wire.data_topic(gw_a), b"own", qos=1)
        assert await next_payload(cloud) == (wire.data_topic(gw_a), b"own")
    assert [code.value for code in events.pubacks[:3]] == [NOT_AUTHORIZED] * 3
    assert not events.pubacks[3].is_failure


async def test_cloud_reads_through_shared_subscription(broker: Broker, unique_id: str) -> None:
    gw_b = f"{unique_id}b"
    async with cloud_client(broker) as cloud:
        await cloud.subscribe(wire.subscription("+", share_group="workers"), qos=1)
        async with gateway_client(broker, gw_b) as gateway:
            await gateway.publish(wire.status_topic(gw_b), b"online", qos=1)
        assert await next_payload(cloud) == (wire.status_topic(gw_b), b"online")


async def test_gateway_cannot_read_other_gateways(broker: Broker, unique_id: str) -> None:
    gw_a, gw_b = f"{unique_id}a", f"{unique_id}b"
    async with gateway_client(broker, gw_a) as spy, cloud_client(broker) as cloud:
        await spy.subscribe(wire.subscription(), qos=1)
        await cloud.subscribe(wire.subscription(), qos=1)
        async with gateway_client(broker, gw_b) as gateway:
            await gateway.publish(wire.data_topic(gw_b), b"secret", qos=1)
        assert await next_payload(cloud) == (wire.data_topic(gw_b), b"secret")
        # The spy's own publish arrives at the cloud after gw_b's; the spy itself got nothing.
        await spy.publish(wire.data_topic(gw_a), b"marker", qos=1)
        assert await next_payload(cloud) == (wire.data_topic(gw_a), b"marker")
        assert spy._queue.empty()


@pytest.mark.parametrize(("user", "password"), [(None, None), ("hazwatch-cloud", "wrong")])
async def test_anonymous_and_wrong_password_refused(
    broker: Broker, user: str | None, password: str | None
) -> None:
    client = aiomqtt.Client(
        "127.0.0.1", broker.plain_port, username=user, password=password, timeout=10
    )
    with pytest.raises(aiomqtt.MqttError):
        async with client:
            pass


async def test_tls_listener_with_generated_ca(broker: Broker, unique_id: str) -> None:
    gw_a = f"{unique_id}a"
    async with cloud_client(broker) as cloud:
        await cloud.subscribe(wire.subscription(), qos=1)
        async with gateway_client(broker, gw_a) as gateway:
            await gateway.publish(wire.data_topic(gw_a), b"over tls", qos=1)
        assert await next_payload(cloud) == (wire.data_topic(gw_a), b"over tls")


@pytest.mark.parametrize("listener", ["gateways", "cloud"])
async def test_tls_listener_identity(broker: Broker, listener: str) -> None:
    port = broker.tls_port if listener == "gateways" else broker.cloud_tls_port
    trusted = ssl.create_default_context(cafile=str(broker.certs / "ca.crt"))
    _, writer = await asyncio.open_connection("localhost", port, ssl=trusted)
    writer.close()
    await writer.wait_closed()
    # The system trust store does not know our private CA: the handshake must fail.
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection("localhost", port, ssl=ssl.create_default_context())


async def test_cloud_user_is_refused_on_the_gateways_listener(broker: Broker) -> None:
    # There its client id would become "hazwatch-cloud" for every worker: each one's connection
    # would close the previous worker's. The cloud connects on its own listeners only.
    tls = aiomqtt.TLSParameters(ca_certs=str(broker.certs / "ca.crt"))
    client = aiomqtt.Client(
        "localhost", broker.tls_port, username=CLOUD_USER,
        password=broker.passwords[CLOUD_USER], tls_params=tls, timeout=10,
    )  # fmt: skip
    with pytest.raises(aiomqtt.MqttError):
        async with client:
            pass
