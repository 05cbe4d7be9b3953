"""Safety outputs: drive a coil or register (siren, beacon, shut-off relay) from local alarms.

An output is *on* while any action that targets it sees its point in one of the action's
levels, and *off* otherwise. Everything happens inside the edge agent over the local Modbus
links, so an output works with the uplink (MQTT, the cloud, the whole network) gone.

:class:`SafetyOutputs` is the state: it records what each output should hold and whether that was
written. The Modbus source calls :meth:`SafetyOutputs.alarm_levels` after every alarm change and
:meth:`SafetyOutputs.drain` after every poll cycle; a failed write stays pending and is retried
on the next cycle. At start every output is written once (from the persisted alarm state), so a
restart during an alarm keeps the siren on and a clear missed while down releases it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from edge.alarms import Level
from edge.sources.modbus.config import SafetyAction

__all__ = ["OutputState", "SafetyOutputs", "Writer"]

log = logging.getLogger(__name__)

#: Writes ``value`` to ``(device, output point)``; returns whether the device confirmed it.
Writer = Callable[[str, str, float], Awaitable[bool]]


@dataclass(slots=True)
class OutputState:
    """What one output should hold and whether it does."""

    value: float
    written: bool = False
    writes: int = 0
    failures: int = 0


class SafetyOutputs:
    """The desired state of every configured safety output.

    Args:
        actions: The configured actions.
        active: Active alarm levels by tag, as restored at start.
    """

    def __init__(
        self, actions: Iterable[SafetyAction], active: Mapping[str, Iterable[str]] | None = None
    ) -> None:
        self.actions = tuple(actions)
        self._levels: dict[str, frozenset[str]] = {
            tag: frozenset(levels) for tag, levels in (active or {}).items()
        }
        self.outputs: dict[tuple[str, str], OutputState] = {}
        for action in self.actions:
            key = (action.device, action.output)
            if key not in self.outputs:
                self.outputs[key] = OutputState(self._desired(key))

    def _desired(self, key: tuple[str, str]) -> float:
        off: float | None = None
        for action in self.actions:
            if (action.device, action.output) != key:
                continue
            if self._levels.get(action.point, frozenset()) & action.levels:
                return action.on
            off = action.off if off is None else off
        return off if off is not None else 0.0

    def alarm_levels(self, tag: str, active: frozenset[Level]) -> None:
        """Tell the outputs the active levels of ``tag`` (call after every alarm change)."""
        if self._levels.get(tag, frozenset()) == active:
            return
        self._levels[tag] = frozenset(active)
        for action in self.actions:
            if action.point != tag:
                continue
            key = (action.device, action.output)
            state = self.outputs[key]
            desired = self._desired(key)
            if desired != state.value:
                log.info("safety output %s.%s -> %s (%s)", *key, desired, action.name)
                state.value = desired
                state.written = False

    def pending(self) -> list[tuple[str, str, float]]:
        """Outputs whose desired value is not yet confirmed: ``(device, output, value)``."""
        return [(d, o, s.value) for (d, o), s in self.outputs.items() if not s.written]

    async def drain(self, write: Writer) -> None:
        """Write every pending output; failures stay pending for the next call."""
        for device, output, value in self.pending():
            state = self.outputs[(device, output)]
            ok = await write(device, output, value)
            if state.value != value:  # changed while the write was in flight: write again
                continue
            if ok:
                state.written = True
                state.writes += 1
            else:
                state.failures += 1

    def counters(self) -> dict[str, int]:
        """Writes done, failures, and outputs still pending."""
        return {
            "safety_writes": sum(s.writes for s in self.outputs.values()),
            "safety_write_failures": sum(s.failures for s in self.outputs.values()),
            "safety_pending": sum(not s.written for s in self.outputs.values()),
            "safety_outputs_on": sum(self._is_on(key, s.value) for key, s in self.outputs.items()),
        }

    def _is_on(self, key: tuple[str, str], value: float) -> bool:
        return any(
            (a.device, a.output) == key and a.on == value and a.on != a.off for a in self.actions
        )
