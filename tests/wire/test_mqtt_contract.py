"""The envelope survives a trip through the real Mosquitto unchanged."""

from __future__ import annotations

import asyncio

import aiomqtt

import wire
from tests.conftest import MQTT_HOST, MQTT_PORT


async def test_envelope_through_real_mosquitto(unique_id: str) -> None:
    gw = f"gw-{unique_id}"
    items: list[wire.Item] = [
        wire.Reading(seq=1, ts=1_700_000_000_000, site="tank-farm-1", point="T101.GT01", value=12.5, unit="%LEL"),
        wire.Fix(seq=2, ts=1_700_000_000_500, asset="苏B12345", lat=31.49, lon=120.31, speed_kmh=54.2, source="gnss"),
        wire.Vessel(seq=3, ts=1_700_000_001_000, mmsi=412345678, name="MIN SHI YU 01", ship_type=30),
        wire.Alarm(seq=4, ts=1_700_000_002_000, state="raise", level="H", site="tank-farm-1", point="T101.GT01", value=26.0, limit=25.0),
        wire.Health(seq=5, ts=1_700_000_003_000, buffer_depth=0, devices={"gas-1": "online"}),
    ]  # fmt: skip
    payload = wire.assemble_batch(
        gw, [wire.encode_item(i) for i in items], sent_ms=1_700_000_004_000
    )
    async with aiomqtt.Client(MQTT_HOST, MQTT_PORT, identifier=f"sub-{unique_id}") as sub:
        await sub.subscribe(wire.subscription("data").replace("+", gw), qos=1)
        async with aiomqtt.Client(MQTT_HOST, MQTT_PORT, identifier=f"pub-{unique_id}") as pub:
            await pub.publish(wire.data_topic(gw), payload, qos=1)
        async with asyncio.timeout(10):
            message = await anext(aiter(sub.messages))
    assert wire.parse_topic(str(message.topic)) == (gw, "data")
    assert isinstance(message.payload, bytes)
    decoded = wire.decode_batch(message.payload, strict=True)
    assert (decoded.gw, decoded.items, decoded.sent) == (gw, items, 1_700_000_004_000)
