"""A test source: readings (and some alarms and fixes) at a chosen rate.

Also a plugin for the agent config (``[plugins.tick] module = "tests.edge.agent.ticker"``), so a real
agent subprocess can run it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import wire
from edge.pipeline import Sink, SourceHealth

__all__ = ["Ticker", "build_sources"]


class Ticker:
    """Emits ``per_tick`` items every ``tick_s``; every ``alarm_every``-th item is an alarm.

    Stops emitting after ``count`` items when ``count`` is given (then idles until cancelled).
    """

    def __init__(
        self,
        *,
        name: str = "ticker",
        tick_s: float = 0.01,
        per_tick: int = 5,
        alarm_every: int = 0,
        fix_every: int = 0,
        count: int | None = None,
        ts_ms: int | None = None,
    ) -> None:
        self.name = name
        self.tick_s = tick_s
        self.per_tick = per_tick
        self.alarm_every = alarm_every
        self.fix_every = fix_every
        self.count = count
        self.ts_ms = int(time.time() * 1000) if ts_ms is None else ts_ms
        self.emitted = 0
        self.alarms = 0

    def item(self, n: int) -> wire.Item:
        """The ``n``-th item (``seq`` 0: the sink assigns it)."""
        ts = self.ts_ms + n * 10
        if self.alarm_every and n % self.alarm_every == self.alarm_every - 1:
            return wire.Alarm(
                seq=0, ts=ts, state="raise", level="H", site="S1", point=f"P{n % 7}", value=n
            )
        if self.fix_every and n % self.fix_every == self.fix_every - 1:
            return wire.Fix(seq=0, ts=ts, asset="truck-1", lat=30.0, lon=120.0, speed_kmh=0.0)
        return wire.Reading(seq=0, ts=ts, site="S1", point=f"P{n % 7}", value=float(n))

    def emit(self, sink: Sink, n: int) -> None:
        """Put ``n`` more items."""
        for _ in range(n):
            if self.count is not None and self.emitted >= self.count:
                return
            item = self.item(self.emitted)
            self.alarms += isinstance(item, wire.Alarm)
            sink.put(item)
            self.emitted += 1

    async def run(self, sink: Sink) -> None:
        while True:
            self.emit(sink, self.per_tick)
            await asyncio.sleep(self.tick_s)

    def health(self) -> SourceHealth:
        return SourceHealth(devices={self.name: "online"}, counters={"emitted": self.emitted})


def build_sources(table: Mapping[str, Any], *, file: Path, state_dir: Path) -> list[Ticker]:
    """Plugin entry point: the table's keys are :class:`Ticker` options."""
    return [Ticker(**dict(table))]
