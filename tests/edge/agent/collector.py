"""A real MQTT subscriber that records what one gateway delivered, and the checks on it."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Self

import aiomqtt

import wire
from edge.forward import cancel_requests, raise_if_cancelled

__all__ = ["Collector"]


class Collector:
    """Subscribes to a gateway's data, alarm and status topics and records every item in
    arrival order; acknowledges each batch on the gateway's ack topic as the cloud does once it
    has archived it (``acknowledge=False``: a cloud older than acknowledgements).

    Reconnects by itself (a broker restart); with ``persistent`` it keeps a QoS 1 session so
    that the broker queues what arrives while it is away.
    """

    def __init__(
        self,
        gateway_id: str,
        *,
        port: int = 1883,
        host: str = "127.0.0.1",
        persistent: bool = False,
        username: str | None = None,
        password: str | None = None,
        acknowledge: bool = True,
    ) -> None:
        self.username, self.password = username, password
        self.acknowledge = acknowledge
        #: acknowledgements published
        self.acks = 0
        self.gateway_id = gateway_id
        self.host, self.port = host, port
        self.persistent = persistent
        self.client_id = f"collector-{uuid.uuid4().hex[:10]}"
        #: (channel, items) per message, in arrival order
        self.arrivals: list[tuple[str, list[wire.Item]]] = []
        self.statuses: list[str] = []
        self.bad: list[str] = []
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="collector")
        async with asyncio.timeout(10):
            await self._subscribed.wait()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            before = cancel_requests()
            try:
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    identifier=self.client_id,
                    clean_session=not self.persistent,
                    username=self.username,
                    password=self.password,
                ) as client:
                    for topic in ("data", "alarm", "status"):
                        await client.subscribe(
                            f"hz/v1/{self.gateway_id}/{topic}", qos=1 if self.persistent else 0
                        )
                    raise_if_cancelled(before)  # a SUBACK may have swallowed __aexit__'s cancel
                    self._subscribed.set()
                    async for message in client.messages:
                        seqs = self._record(str(message.topic), bytes(message.payload))
                        if seqs and self.acknowledge:
                            await self._ack(client, seqs)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.05)

    def _record(self, topic: str, payload: bytes) -> list[int]:
        _, channel = wire.parse_topic(topic)
        if channel == "status":
            if payload:
                self.statuses.append(wire.decode_status(payload).state)
            return []
        batch = wire.decode_batch(payload)
        self.bad.extend(str(e) for e in batch.errors)
        self.arrivals.append((channel, batch.items))
        return [item.seq for item in batch.items]

    async def _ack(self, client: aiomqtt.Client, seqs: list[int]) -> None:
        ack = wire.Ack(gw=self.gateway_id, ts=0, seqs=wire.seq_ranges(seqs))
        await client.publish(
            wire.ack_topic(self.gateway_id), wire.encode_ack(ack), qos=1, retain=True
        )
        self.acks += 1

    # -- views -----------------------------------------------------------------------------

    def items(self) -> list[wire.Item]:
        return [item for _, items in self.arrivals for item in items]

    def seqs(self) -> set[int]:
        return {item.seq for item in self.items()}

    def of_kind(self, kind: type[wire.Item]) -> list[wire.Item]:
        return [item for item in self.items() if isinstance(item, kind)]

    async def wait(self, predicate: Callable[[], bool], *, timeout_s: float = 30.0) -> None:
        """Poll ``predicate`` until it holds (fails the test after ``timeout_s``)."""
        async with asyncio.timeout(timeout_s):
            while not predicate():  # noqa: ASYNC110  # the predicate reads plain lists
                await asyncio.sleep(0.02)

    # -- checks ----------------------------------------------------------------------------

    def new_after(self, mark: int) -> list[tuple[str, list[int]]]:
        """Messages after arrival ``mark`` carrying items unseen before it: (channel, seqs)."""
        seen = {item.seq for _, items in self.arrivals[:mark] for item in items}
        return [
            (channel, [item.seq for item in items])
            for channel, items in self.arrivals[mark:]
            if any(item.seq not in seen for item in items)
        ]

    def first_new_channel(self, mark: int) -> str:
        """Channel of the first message after arrival ``mark`` that carries unseen items."""
        new = self.new_after(mark)
        return new[0][0] if new else ""

    def missing(self, first: int, last: int) -> list[int]:
        """Seqs of ``first .. last`` that never arrived."""
        seen = self.seqs()
        return [seq for seq in range(first, last + 1) if seq not in seen]

    def alarm_order_violations(self) -> list[tuple[int, int]]:
        """(alarm seq, data seq) pairs where data taken after an alarm arrived before it.

        An alarm is committed no later than any item taken after it and the alarm lane is
        always claimed first, so its first arrival must precede that of every later data item.
        """
        first_arrival: dict[int, int] = {}
        alarm_seqs: list[int] = []
        for index, (channel, items) in enumerate(self.arrivals):
            for item in items:
                if item.seq not in first_arrival:
                    first_arrival[item.seq] = index
                    if channel == "alarm":
                        alarm_seqs.append(item.seq)
        alarms = set(alarm_seqs)
        data = sorted((s, i) for s, i in first_arrival.items() if s not in alarms)
        # earliest[k]: the earliest arrival among data items data[k:]
        earliest = [index for _, index in data] + [len(self.arrivals)]
        for k in range(len(data) - 1, -1, -1):
            earliest[k] = min(earliest[k], earliest[k + 1])
        violations = []
        for alarm in alarm_seqs:
            k = bisect.bisect_right(data, (alarm, len(self.arrivals)))
            if earliest[k] < first_arrival[alarm]:
                violations.append((alarm, data[k][0]))
        return violations
