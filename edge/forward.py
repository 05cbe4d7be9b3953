"""Drain the buffer into the MQTT broker (aiomqtt 2.x, QoS 1); delete what the cloud has.

The forwarder claims batches of stored item bytes from :class:`edge.buffer.Buffer`, wraps them
in an envelope (:func:`wire.assemble_batch`) and publishes them with QoS 1, keeping ``window``
publishes awaiting their PUBACK. The PUBACK only says the broker has a batch, so it only frees
the window: rows are deleted when the cloud acknowledges their seqs on the gateway's retained
``hz/v1/<id>/ack`` topic (:mod:`wire.acks`), after it archived them. At most ``max_unacked``
batches wait for that; one still unacknowledged ``ack_timeout_s`` after its PUBACK is sent again
(the cloud de-duplicates on ``(gateway, seq)`` and acknowledges the repeat). A lost connection
releases every claim: those items are sent again on the next connection. A PUBACK with a
failure reason code keeps the rows too.

``delete_on`` chooses when rows go: ``"cloud"`` (only on the cloud's acknowledgement),
``"broker"`` (on the PUBACK, as before acknowledgements existed: for a cloud that does not send
them), or ``"auto"`` (the default): like ``"cloud"`` once this buffer has ever seen a cloud
acknowledgement (remembered in the file); until then, if the broker keeps acknowledging for
``ack_fallback_s`` and no cloud acknowledgement comes, the cloud is taken to be an older one: the
waiting batches are sent again and rows are deleted on the PUBACK, with a warning, until an
acknowledgement arrives. So an upgraded edge never stalls against an older cloud.

Order of sending: the alarm lane whenever it has anything; otherwise data batches alternate
between the newest and the oldest unsent items, so after an outage current data reaches the
cloud within a batch or two while the backlog drains beside it.

On connect a retained ``online`` :class:`wire.Status` is published; the MQTT last will (and a
clean stop) publish ``offline``. Reconnects back off exponentially with jitter, capped.

MQTT v5 is spoken unless ``protocol = "3.1.1"`` (the embedded amqtt broker): a v5 PUBACK says
whether the broker accepted a message, while a v3.1.1 broker acknowledges a publish its ACL
refused just the same and drops it. A refused publish keeps its rows and ends the connection
with a clear error.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode

import wire
from edge.buffer import LANE_ALARM, LANE_DATA, Buffer, Claim
from edge.pipeline import SourceHealth

__all__ = [
    "DeleteOn",
    "Forwarder",
    "MqttSettings",
    "PublishRefusedError",
    "backoff_s",
    "cancel_requests",
    "raise_if_cancelled",
]

log = logging.getLogger(__name__)
_DEVICE_STATES: Final = frozenset({"online", "offline"})
DeleteOn = Literal["cloud", "broker", "auto"]


class PublishRefusedError(aiomqtt.MqttError):
    """The broker answered a publish with a failure reason code (an ACL, a quota)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttSettings:
    """Broker connection and batching options (``[mqtt]`` of the agent config)."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    #: TLS is used when ``tls`` is true; ``tls_ca`` None means the system's CA store.
    tls: bool = False
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    keepalive_s: int = 30
    #: ``"5"`` (refused publishes are seen in the PUBACK) or ``"3.1.1"`` (brokers without v5)
    protocol: str = "5"
    client_id: str | None = None
    batch_items: int = 1000
    batch_bytes: int = 256 * 1024
    window: int = 8
    publish_timeout_s: float = 15.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    #: when sent rows are deleted: ``"cloud"``, ``"broker"`` or ``"auto"`` (module docstring)
    delete_on: DeleteOn = "auto"
    #: a batch the cloud has not acknowledged this long after its PUBACK is sent again
    ack_timeout_s: float = 60.0
    #: most batches published and waiting for the cloud's acknowledgement
    max_unacked: int = 64
    #: ``"auto"`` before any cloud acknowledgement: PUBACKs for this long without one mean an
    #: older cloud, and rows are then deleted on the PUBACK
    ack_fallback_s: float = 300.0


@dataclass(slots=True)
class _Sent:
    """A published claim waiting for the cloud: the seqs not acknowledged yet."""

    claim: Claim
    remaining: set[int]
    #: monotonic time of its PUBACK (None while the publish is in progress)
    puback_at: float | None = None
    done: bool = False

    def take_acknowledged(self, ranges: Sequence[tuple[int, int]]) -> None:
        """Strike the acknowledged seqs off ``remaining``."""
        seqs = self.claim.seqs
        for first, last in ranges:
            if last < self.claim.first_seq or first > self.claim.last_seq:
                continue
            lo = bisect.bisect_left(seqs, first)
            hi = bisect.bisect_right(seqs, last)
            self.remaining.difference_update(seqs[lo:hi])


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


def backoff_s(attempt: int, *, min_s: float, max_s: float, rand: Callable[[], float]) -> float:
    """Capped exponential backoff with jitter: ``min(max_s, min_s * 2**attempt) * [0.5, 1)``."""
    base: float = min(max_s, min_s * 2.0 ** min(attempt, 30))
    return base * (0.5 + rand() / 2)


class Forwarder:
    """Publishes the buffer's content; run with ``await forwarder.run()`` (until cancelled).

    Args:
        buffer: the open buffer to drain (health items are put into it too).
        gateway_id: this gateway's id (topics and envelopes).
        mqtt: connection and batching options.
        health_interval_s: period of the ``health`` item.
        first_health_s: delay of the first ``health`` item after start (at most the period):
            soon, so the cloud shows the backlog and the devices of a restarted gateway at
            once, but after the sources have had time to reach their devices.
        sources_health: returns the health of every source (merged into the health item).
        clock: wall clock in seconds.
    """

    def __init__(
        self,
        buffer: Buffer,
        *,
        gateway_id: str,
        mqtt: MqttSettings,
        health_interval_s: float = 60.0,
        first_health_s: float = 10.0,
        sources_health: Callable[[], Sequence[tuple[str, SourceHealth]]] = tuple,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.buffer = buffer
        self.gateway_id = wire.check_gateway_id(gateway_id)
        self.mqtt = mqtt
        self.health_interval_s = health_interval_s
        self.first_health_s = min(first_health_s, health_interval_s)
        self._sources_health = sources_health
        self._clock = clock
        self._topics = {
            LANE_ALARM: wire.alarm_topic(gateway_id),
            LANE_DATA: wire.data_topic(gateway_id),
        }
        self.connected = asyncio.Event()
        self.last_error: str | None = None
        #: MQTT version of the connections
        self.protocol = (
            aiomqtt.ProtocolVersion.V311 if mqtt.protocol == "3.1.1" else aiomqtt.ProtocolVersion.V5
        )
        self._refused: str | None = None
        self._ack_topic = wire.ack_topic(gateway_id)
        self._sent: dict[tuple[int, int, int], _Sent] = {}
        self._unacked: asyncio.Semaphore | None = None
        #: ``"auto"`` fell back to deleting on the PUBACK (an older cloud)
        self.fallback = False
        self._first_puback: float | None = None
        self._stopping = False
        self.counters: dict[str, int] = {
            "connects": 0,
            "connect_failures": 0,
            "batches_sent": 0,
            "items_sent": 0,
            "publish_failures": 0,
            "items_acked": 0,
            "acks": 0,
            "ack_invalid": 0,
            "ack_timeouts": 0,
            "items_resent": 0,
            "ack_fallback": 0,
        }

    def stop(self) -> None:
        """Say that the cancellation about to come is a stop (call before cancelling ``run``)."""
        self._stopping = True

    async def run(self) -> None:
        """Keep connected and publishing, and put a health item every interval."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._connection_loop(), name="mqtt-connection")
            group.create_task(self._health_loop(), name="health")

    # -- connection ------------------------------------------------------------------------

    def _status(self, state: str) -> bytes:
        status = wire.Status(
            gw=self.gateway_id,
            state="online" if state == "online" else "offline",
            ts=int(self._clock() * 1000),
            agent="hazwatch-edge",
        )
        return wire.encode_status(status)

    def _client(self) -> aiomqtt.Client:
        mqtt = self.mqtt
        tls = None
        if mqtt.tls:
            tls = aiomqtt.TLSParameters(
                ca_certs=str(mqtt.tls_ca) if mqtt.tls_ca else None,
                certfile=str(mqtt.tls_cert) if mqtt.tls_cert else None,
                keyfile=str(mqtt.tls_key) if mqtt.tls_key else None,
            )
        status_topic = wire.status_topic(self.gateway_id)
        client = aiomqtt.Client(
            mqtt.host,
            mqtt.port,
            username=mqtt.username,
            password=mqtt.password,
            identifier=mqtt.client_id or self.gateway_id,
            keepalive=mqtt.keepalive_s,
            will=aiomqtt.Will(status_topic, self._status("offline"), qos=1, retain=True),
            tls_params=tls,
            protocol=self.protocol,
            max_inflight_messages=mqtt.window + 4,
            timeout=mqtt.publish_timeout_s,
        )
        client.pending_calls_threshold = mqtt.window + 4  # a full window is normal, not a warning
        self._watch_pubacks(client)
        return client

    def _watch_pubacks(self, client: aiomqtt.Client) -> None:
        """Note a PUBACK with a failure reason code (aiomqtt treats every PUBACK as success)."""
        self._refused = None
        paho = client._client
        forward = paho.on_publish

        def on_publish(*args: Any) -> None:
            reason = args[3] if len(args) > 3 else None
            if isinstance(reason, ReasonCode) and reason.is_failure:
                self._refused = str(reason)
            if forward is not None:
                forward(*args)

        paho.on_publish = on_publish

    def _check_accepted(self, topic: str) -> None:
        """Raise if the broker refused a publish of this connection (call after ``publish``).

        PUBACKs come in order, so a publish that returns after a refusal may itself have been
        accepted: sending it again is harmless (the cloud de-duplicates), deleting it is not.
        """
        if self._refused is not None:
            raise PublishRefusedError(f"broker refused a publish to {topic}: {self._refused}")

    async def _connection_loop(self) -> None:
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                await self._session()
            except* (aiomqtt.MqttError, OSError) as group:
                self._note_failure(group.exceptions[0])
            except* Exception as group:
                log.error("forwarder failed; reconnecting", exc_info=group.exceptions[0])
            if self._stopping:
                # On Python 3.11 a stop (a cancellation) that lands while the session's task
                # group is failing is swallowed by the group: do not reconnect, end here.
                raise asyncio.CancelledError
            if self.connected.is_set() or time.monotonic() - started > 30:
                attempt = 0
            self.connected.clear()
            delay = backoff_s(
                attempt,
                min_s=self.mqtt.reconnect_min_s,
                max_s=self.mqtt.reconnect_max_s,
                rand=random.random,
            )
            attempt += 1
            await asyncio.sleep(delay)

    def _note_failure(self, exc: BaseException) -> None:
        where = f"{self.mqtt.host}:{self.mqtt.port}"
        if isinstance(exc, PublishRefusedError):
            message = (
                f"{exc} (check that [gateway] id {self.gateway_id!r} is the broker user the ACL "
                "lets publish under hz/v1/<id>/); items stay in the buffer"
            )
        elif isinstance(exc, MqttConnectError):
            message = (
                f"broker {where} refused the connection: {exc} "
                "(check [mqtt] username, password and tls); items stay in the buffer"
            )
        elif self.connected.is_set():
            message = f"lost the connection to {where}: {exc}; items stay in the buffer"
        else:
            message = f"cannot connect to {where}: {exc}; items stay in the buffer"
        self.counters["connect_failures"] += not self.connected.is_set()
        if message != self.last_error:
            log.error("%s", message)
        self.last_error = message

    async def _session(self) -> None:
        before = cancel_requests()
        async with self._client() as client:
            raise_if_cancelled(before)
            if self.mqtt.delete_on != "broker":
                await client.subscribe(self._ack_topic, qos=1)
                raise_if_cancelled(before)
            status_topic = wire.status_topic(self.gateway_id)
            await client.publish(status_topic, self._status("online"), qos=1, retain=True)
            raise_if_cancelled(before)
            self._check_accepted(status_topic)
            self.counters["connects"] += 1
            self.connected.set()
            self.last_error = None
            log.info("connected to %s:%d", self.mqtt.host, self.mqtt.port)
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._watch(client), name="mqtt-watch")
                    group.create_task(self._pump(client, group), name="mqtt-pump")
                    group.create_task(self._expire(), name="mqtt-ack-timeouts")
            except asyncio.CancelledError:
                await self._say_offline(client)
                raise
            finally:
                self._sent.clear()
                self._first_puback = None
                self.buffer.release_all()

    async def _say_offline(self, client: aiomqtt.Client) -> None:
        """On a clean stop the broker sends no last will: publish offline ourselves."""
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            async with asyncio.timeout(2.0):
                await client.publish(
                    wire.status_topic(self.gateway_id), self._status("offline"), qos=1, retain=True
                )

    async def _watch(self, client: aiomqtt.Client) -> None:
        """Take the cloud's acknowledgements; raise as soon as the connection drops."""
        async for message in client.messages:
            if message.topic.value == self._ack_topic and isinstance(message.payload, bytes):
                await self._on_ack(message.payload)
        raise aiomqtt.MqttError("connection closed")

    # -- acknowledgements ------------------------------------------------------------------

    def _deletes_on_puback(self) -> bool:
        return self.mqtt.delete_on == "broker" or self.fallback

    async def _on_ack(self, payload: bytes) -> None:
        try:
            ack = wire.decode_ack(payload)
            if ack.gw != self.gateway_id:
                raise wire.WireError("gateway_mismatch", f"acknowledgement for {ack.gw!r}")
        except wire.WireError as exc:
            if not self.counters["ack_invalid"]:
                log.warning("ignoring an invalid acknowledgement from the cloud: %s", exc)
            self.counters["ack_invalid"] += 1
            return
        self.counters["acks"] += 1
        if not self.buffer.cloud_acks_seen:
            log.info("the cloud acknowledges archived items: rows are deleted on its word")
            await self.buffer.note_cloud_acks()
        if self.fallback:
            log.warning(
                "the cloud acknowledges again: rows are deleted on its word, not the PUBACK"
            )
            self.fallback = False
        await self.buffer.acknowledge(ack.seqs)
        for sent in list(self._sent.values()):
            sent.take_acknowledged(ack.seqs)
            if not sent.remaining:
                self.counters["items_acked"] += len(sent.claim.seqs)
                self._complete(sent)
                self.buffer.release(sent.claim, ready=False)

    def _complete(self, sent: _Sent) -> None:
        """The claim needs nothing more from this connection: free its slot."""
        if sent.done:
            return
        sent.done = True
        claim = sent.claim
        self._sent.pop((claim.lane, claim.first_seq, claim.last_seq), None)
        if self._unacked is not None:
            self._unacked.release()

    async def _expire(self) -> None:
        """Send again what the cloud leaves unacknowledged; fall back for an older cloud."""
        period = min(1.0, self.mqtt.ack_timeout_s / 4)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for sent in list(self._sent.values()):
                if sent.puback_at is not None and now - sent.puback_at > self.mqtt.ack_timeout_s:
                    self.counters["ack_timeouts"] += 1
                    self.counters["items_resent"] += len(sent.remaining)
                    self._complete(sent)
                    self.buffer.release(sent.claim)
            if self._should_fall_back(now):
                self._fall_back()

    def _should_fall_back(self, now: float) -> bool:
        return (
            self.mqtt.delete_on == "auto"
            and not self.fallback
            and not self.buffer.cloud_acks_seen
            and self._first_puback is not None
            and now - self._first_puback > self.mqtt.ack_fallback_s
        )

    def _fall_back(self) -> None:
        log.warning(
            "no acknowledgement from the cloud in %.0f s of sending: taking it for a cloud older "
            "than acknowledgements; rows are now deleted on the broker's PUBACK (set [mqtt] "
            'delete_on = "cloud" once every cloud worker acknowledges)',
            self.mqtt.ack_fallback_s,
        )
        self.fallback = True
        self.counters["ack_fallback"] += 1
        for sent in list(self._sent.values()):  # sent once more, deleted on their PUBACK
            if sent.puback_at is not None:
                self._complete(sent)
                self.buffer.release(sent.claim)

    # -- publishing ------------------------------------------------------------------------

    async def _next_claim(self, newest: bool) -> Claim | None:
        items, size = self.mqtt.batch_items, self.mqtt.batch_bytes
        # Only what is on disk goes out (a power cut must not roll back a sent seq). Data
        # committed after this point may have been committed together with an alarm that the
        # alarm claim below did not see yet: both wait for the next round.
        top = await self.buffer.durable_top()
        claim = await self.buffer.claim(LANE_ALARM, max_items=items, max_bytes=size, max_seq=top)
        if claim is None:
            claim = await self.buffer.claim(
                LANE_DATA, newest=newest, max_items=items, max_bytes=size, max_seq=top
            )
        return claim

    async def _pump(self, client: aiomqtt.Client, group: asyncio.TaskGroup) -> None:
        window = asyncio.Semaphore(self.mqtt.window)
        self._unacked = unacked = asyncio.Semaphore(self.mqtt.max_unacked)
        newest = True
        while True:
            await unacked.acquire()
            await window.acquire()
            self.buffer.clear_ready()
            claim = await self._next_claim(newest)
            if claim is None:
                window.release()
                unacked.release()
                await self.buffer.wait_ready()
                continue
            if claim.lane == LANE_DATA:
                newest = not newest
            sent = _Sent(claim, set(claim.seqs))
            self._sent[(claim.lane, claim.first_seq, claim.last_seq)] = sent
            group.create_task(self._send(client, sent, window), name="mqtt-publish")

    async def _send(self, client: aiomqtt.Client, sent: _Sent, window: asyncio.Semaphore) -> None:
        claim = sent.claim
        try:
            payload = wire.assemble_batch(
                self.gateway_id, claim.bodies, sent_ms=int(self._clock() * 1000)
            )
            await client.publish(self._topics[claim.lane], payload, qos=1)
            self._check_accepted(self._topics[claim.lane])
        except BaseException:
            self.counters["publish_failures"] += 1
            if not sent.done:
                self._complete(sent)
                self.buffer.release(claim)
            window.release()
            raise
        window.release()
        self.counters["batches_sent"] += 1
        self.counters["items_sent"] += len(claim.bodies)
        if sent.done:  # the cloud's acknowledgement came first
            return
        sent.puback_at = time.monotonic()
        if self._deletes_on_puback():
            self._complete(sent)
            await self.buffer.ack(claim)
        elif self._first_puback is None and not self.buffer.cloud_acks_seen:
            self._first_puback = sent.puback_at

    # -- health ----------------------------------------------------------------------------

    async def _health_loop(self) -> None:
        await asyncio.sleep(self.first_health_s)
        while True:
            await self.put_health()
            await asyncio.sleep(self.health_interval_s)

    async def put_health(self) -> None:
        """Put one ``health`` item (buffer, forwarder and source figures) into the buffer."""
        stats = await self.buffer.stats()
        devices: dict[str, str] = {}
        parse_errors: dict[str, int] = {}
        counters = {f"buffer.{k}": v for k, v in stats.counters.items()}
        counters |= {f"mqtt.{k}": v for k, v in self.counters.items()}
        for name, health in self._sources_health():
            devices |= {d: s for d, s in health.devices.items() if s in _DEVICE_STATES}
            parse_errors |= {f"{name}.{k}": v for k, v in health.parse_errors.items()}
            counters |= {f"{name}.{k}": v for k, v in health.counters.items()}
        self.buffer.put(
            wire.Health(
                seq=0,
                ts=int(self._clock() * 1000),
                buffer_depth=stats.depth,
                oldest_age_s=stats.oldest_age_s,
                drops=stats.drops,
                devices=devices,  # type: ignore[arg-type]  # filtered to the two states above
                parse_errors=parse_errors,
                counters={k: max(0, v) for k, v in counters.items()},
            )
        )
