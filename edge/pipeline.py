"""The seams of the edge agent: sources put items into a sink; the agent owns both.

A source never blocks on the network: it hands each observation to ``Sink.put`` as soon as it is
taken. The sink (the durable buffer in the agent, a list in tests) assigns the gateway ``seq``,
so sources build items with ``seq=0``.
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import msgspec

import wire

__all__ = [
    "AlarmListener",
    "AlarmTap",
    "CollectingSink",
    "HoldingSink",
    "Sink",
    "Source",
    "SourceHealth",
]

log = logging.getLogger(__name__)


@runtime_checkable
class Sink(Protocol):
    """Where sources put items; ``put`` is synchronous, cheap and never drops an alarm."""

    def put(self, item: wire.Item) -> None:
        """Accept one item (its ``seq`` is replaced by the sink's next sequence number)."""


@dataclass(slots=True)
class SourceHealth:
    """What a source reports into the gateway's ``health`` item."""

    #: device or stream name -> "online" / "offline"
    devices: dict[str, str] = field(default_factory=dict)
    #: counter name -> count (polls, requests, sentences, ...)
    counters: dict[str, int] = field(default_factory=dict)
    #: reason -> count of input rejected (bad checksum, exception code 2, ...)
    parse_errors: dict[str, int] = field(default_factory=dict)


@runtime_checkable
class Source(Protocol):
    """An acquisition source run by the agent inside its task group."""

    name: str

    async def run(self, sink: Sink) -> None:
        """Acquire until cancelled; recover from device and link faults by itself."""

    def health(self) -> SourceHealth:
        """Current counters and device states (cheap, called about once a minute)."""


@runtime_checkable
class AlarmListener(Protocol):
    """A source that reacts to alarms raised on its gateway (a GNSS source reports at once)."""

    def on_alarm(self, alarm: wire.Alarm) -> None:
        """Called synchronously for every alarm ``raise`` put into the agent's sink."""


class AlarmTap:
    """A sink that passes every item on and tells the listeners when an alarm is raised.

    In-vehicle terminals send a position at once when an alarm is raised, whatever the
    reporting interval; the agent puts this tap between its sources and the buffer so that a gas
    or pressure alarm on a truck makes its GNSS source report the next fix immediately.
    """

    def __init__(self, sink: Sink, listeners: Sequence[AlarmListener]) -> None:
        self._sink = sink
        self._listeners = tuple(listeners)

    def put(self, item: wire.Item) -> None:
        self._sink.put(item)
        if isinstance(item, wire.Alarm) and item.state == "raise":
            for listener in self._listeners:
                listener.on_alarm(item)


class HoldingSink:
    """A sink that holds items in memory until its target is attached, then passes them on.

    The agent runs its sources into one from the start, so that a buffer file that cannot be
    opened (a missing, full or read-only disk) never stops the sources, their local alarms or
    their safety outputs. Every alarm is held; of routine data the newest ``max_items`` are, and
    each one dropped to make room is counted in :attr:`dropped`.
    """

    def __init__(self, *, max_items: int = 100_000) -> None:
        self.max_items = max_items
        #: routine items dropped because more than ``max_items`` were held
        self.dropped = 0
        self._target: Sink | None = None
        self._arrivals = 0
        self._alarms: list[tuple[int, wire.Item]] = []
        self._data: deque[tuple[int, wire.Item]] = deque()

    @property
    def held(self) -> int:
        """Items waiting for the target."""
        return len(self._alarms) + len(self._data)

    def put(self, item: wire.Item) -> None:
        if self._target is not None:
            self._target.put(item)
            return
        self._arrivals += 1
        if isinstance(item, wire.Alarm):
            self._alarms.append((self._arrivals, item))
            return
        if len(self._data) >= self.max_items:
            self._data.popleft()
            if not self.dropped:
                log.error("%d items held in memory: dropping the oldest data", self.max_items)
            self.dropped += 1
        self._data.append((self._arrivals, item))

    def attach(self, target: Sink) -> int:
        """Put what is held into ``target`` in arrival order, then every later item.

        Returns:
            How many held items were handed over.
        """
        held = self.held
        for _, item in heapq.merge(self._alarms, self._data, key=lambda pair: pair[0]):
            target.put(item)
        self._alarms.clear()
        self._data.clear()
        self._target = target
        return held


class CollectingSink:
    """An in-memory sink for tests and field tools: assigns seq 1, 2, 3, ... and keeps items."""

    def __init__(self) -> None:
        self.items: list[wire.Item] = []
        self._seq = 0

    def put(self, item: wire.Item) -> None:
        self._seq += 1
        self.items.append(msgspec.structs.replace(item, seq=self._seq))

    def of_kind(self, kind: type[wire.Item]) -> list[wire.Item]:
        """The collected items of one kind, in arrival order."""
        return [item for item in self.items if isinstance(item, kind)]

    def counts(self) -> Mapping[str, int]:
        """Number of collected items by kind."""
        out: dict[str, int] = {}
        for item in self.items:
            name = type(item).__name__.lower()
            out[name] = out.get(name, 0) + 1
        return out
