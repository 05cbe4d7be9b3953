"""The MQTT side of ingest: topic filters and :func:`serve`, which owns the connection."""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import ssl
from collections.abc import Collection
from typing import Protocol

import aiomqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import wire

__all__ = ["Consumer", "cancel_requests", "raise_if_cancelled", "serve", "topic_filters"]

log = logging.getLogger("cloud.ingest")


class Consumer(Protocol):
    """What :func:`serve` drives: an ingest that consumes a connected client's messages."""

    counters: collections.Counter[str]

    async def run(self, client: aiomqtt.Client, *, share_group: str | None = None) -> None:
        """Consume ``client``'s messages until the connection ends."""
        ...


def cancel_requests() -> int:
    """Cancellations requested of the current task so far (pass to :func:`raise_if_cancelled`)."""
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


def raise_if_cancelled(before: int) -> None:
    """Raise a cancellation of this task that an awaited call swallowed.

    aiomqtt waits for CONNACK, SUBACK and PUBACK with ``asyncio.wait_for``, which on Python
    3.11 returns the result when a cancellation arrives just as the awaited thing completes,
    and the cancellation is lost (fixed in 3.12): the task goes on as if never cancelled and
    whoever cancelled it waits for ever. Call this after such awaits on a task's main path,
    with what :func:`cancel_requests` said before them. (Not against zero: on 3.11 a task
    group whose child fails while it exits leaves its parent's count raised for good.)
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling() > before:
        raise asyncio.CancelledError


def topic_filters(share_group: str | None, gateway_ids: Collection[str] | None) -> list[str]:
    """Subscriptions of an ingest worker: data and alarm (shared if a group is given), status."""
    shared = f"$share/{share_group}/" if share_group else ""
    if gateway_ids is None:
        return [
            wire.subscription("data", share_group=share_group),
            wire.subscription("alarm", share_group=share_group),
            wire.subscription("status"),
        ]
    topics = []
    for gw in sorted(gateway_ids):
        topics += [
            shared + wire.data_topic(gw),
            shared + wire.alarm_topic(gw),
            wire.status_topic(gw),
        ]
    return topics


async def serve(
    ingest: Consumer,
    *,
    hostname: str = "127.0.0.1",
    port: int = 1883,
    share_group: str | None = None,
    identifier: str | None = None,
    username: str | None = None,
    password: str | None = None,
    tls_context: ssl.SSLContext | None = None,
    keepalive_s: int = 60,
    session_expiry_s: int = 3600,
    receive_maximum: int = 400,
    backoff_max_s: float = 3.0,
) -> None:
    """Run ``ingest`` against a broker until cancelled, reconnecting with jittered backoff.

    A shared subscription (``share_group``) needs MQTT v5; otherwise v3.1.1 is used (the
    embedded amqtt broker speaks only that). With a fixed ``identifier`` the session is kept
    by the broker (``session_expiry_s`` on v5), so QoS 1 messages published while ingest
    restarts are delivered afterwards; de-duplication makes redelivery harmless. Messages are
    acknowledged to the broker only once their round is archived (manual acknowledgement), so
    a worker killed in between gets them again. The backoff stays short (``backoff_max_s``):
    after a broker restart every second without the cloud subscribed is a second of data the
    gateways must send again.
    """
    v5 = share_group is not None
    keep = identifier is not None and session_expiry_s > 0
    properties = None
    if v5 and keep:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = session_expiry_s
    if v5:
        # Messages are acknowledged after their round: the broker must let a whole round (and
        # the next one filling up) be in flight. This overrides its max_inflight_messages.
        properties = properties or Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.ReceiveMaximum = receive_maximum
    delay_s = 0.5
    while True:
        failure: Exception | None = None
        before = cancel_requests()
        try:
            client = aiomqtt.Client(
                hostname,
                port,
                identifier=identifier,
                username=username,
                password=password,
                protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
                clean_session=None if v5 else not keep,
                clean_start=False if v5 and keep else MQTT_CLEAN_START_FIRST_ONLY,
                properties=properties,
                tls_context=tls_context,
                keepalive=keepalive_s,
            )
            # Before connecting: a kept session delivers its queued messages right away.
            client._client.manual_ack_set(True)
            async with client:
                raise_if_cancelled(before)
                log.info("ingest connected to %s:%d", hostname, port)
                delay_s = 0.5
                await ingest.run(client, share_group=share_group)
        except* aiomqtt.MqttError as group:
            failure = group.exceptions[0]
        if failure is not None:
            ingest.counters["mqtt_reconnect"] += 1
            log.warning("ingest lost the broker (%s); retrying in %.1f s", failure, delay_s)
            await asyncio.sleep(delay_s * random.uniform(0.5, 1.0))
            delay_s = min(backoff_max_s, delay_s * 2)
