"""The seams of the edge agent: sources put items into a sink; the agent owns both.

A source never blocks on the network: it hands each observation to ``Sink.put`` as soon as it is
taken. The sink (the durable buffer in the agent, a list in tests) assigns the gateway ``seq``,
so sources build items with ``seq=0``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import msgspec

import wire

__all__ = ["AlarmListener", "AlarmTap", "CollectingSink", "Sink", "Source", "SourceHealth"]


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
