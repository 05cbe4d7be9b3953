"""Pure threshold alarms: LL / L / H / HH with deadband and delay.

Each level is its own alarm condition (ISA-18.2 style): a value rising through H then HH raises
``H`` and then ``HH``; falling back clears ``HH`` and then ``H``. A high level is entered when
``value >= limit`` and left when ``value < limit - deadband``; a low level is entered when
``value <= limit`` and left when ``value > limit + deadband``. A level raises only after its
condition held for ``delay_s`` without interruption (one noisy sample never alarms); clears are
immediate. Readings whose quality is not ``good`` hold the alarm state: bad data neither raises
nor clears.

Nothing here does I/O or reads a clock: :func:`evaluate` takes the previous state, a value and
``now_s`` and returns the new state plus the events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Literal

__all__ = ["LEVELS", "AlarmEvent", "Level", "Limits", "PointAlarms", "evaluate", "restore"]

Level = Literal["LL", "L", "H", "HH"]
#: Every threshold level, low side first.
LEVELS: Final[tuple[Level, ...]] = ("LL", "L", "H", "HH")
_HIGH: Final = frozenset({"H", "HH"})


@dataclass(frozen=True, slots=True)
class Limits:
    """Alarm limits of one point, in engineering units; ``None`` disables a level."""

    LL: float | None = None
    L: float | None = None
    H: float | None = None
    HH: float | None = None
    deadband: float = 0.0
    delay_s: float = 0.0

    def limit(self, level: Level) -> float | None:
        """The limit of ``level`` (``None`` when that level is not configured)."""
        value: float | None = getattr(self, level)
        return value

    def configured(self) -> tuple[Level, ...]:
        """The levels that have a limit."""
        return tuple(level for level in LEVELS if self.limit(level) is not None)

    def merged(self, overrides: Mapping[str, float | None]) -> Limits:
        """These limits with some keys replaced (per-point overrides of a site config)."""
        return replace(self, **dict(overrides))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """A raise or clear of one level of one point."""

    state: Literal["raise", "clear"]
    level: Level
    value: float
    limit: float | None


@dataclass(frozen=True, slots=True)
class PointAlarms:
    """Alarm state of one point: active levels and the start of pending (delayed) conditions."""

    active: frozenset[Level] = frozenset()
    pending_since_s: Mapping[Level, float] = field(default_factory=dict)


def restore(active: frozenset[Level] | set[Level]) -> PointAlarms:
    """The state of a point whose active levels were persisted (pending delays restart)."""
    return PointAlarms(active=frozenset(active))


def _in_condition(
    level: Level, limit: float, value: float, *, active: bool, deadband: float
) -> bool:
    """Whether ``value`` is in the alarm condition of ``level``, with hysteresis when active."""
    if level in _HIGH:
        return value >= limit - deadband if active else value >= limit
    return value <= limit + deadband if active else value <= limit


def evaluate(
    limits: Limits, state: PointAlarms, value: float | None, *, good: bool, now_s: float
) -> tuple[PointAlarms, list[AlarmEvent]]:
    """Feed one sample to a point's alarms.

    Args:
        limits: The point's limits.
        state: The point's previous state.
        value: The sample in engineering units (``None`` when there is none).
        good: Whether the sample's quality is ``good``; other samples hold the state.
        now_s: Observation time in seconds (any monotonic origin, same for every call).

    Returns:
        The new state and the raise/clear events, in level order.
    """
    if value is None or not good:
        return PointAlarms(active=state.active), []
    active = set(state.active)
    pending = dict(state.pending_since_s)
    events: list[AlarmEvent] = []
    for level in LEVELS:
        limit = limits.limit(level)
        if limit is None:
            if level in active:  # the limit was removed by a config change: clear it
                active.discard(level)
                events.append(AlarmEvent("clear", level, value, None))
            pending.pop(level, None)
            continue
        was_active = level in active
        inside = _in_condition(level, limit, value, active=was_active, deadband=limits.deadband)
        if was_active and not inside:
            active.discard(level)
            events.append(AlarmEvent("clear", level, value, limit))
        elif not was_active and inside:
            since = pending.setdefault(level, now_s)
            if now_s - since >= limits.delay_s:
                pending.pop(level)
                active.add(level)
                events.append(AlarmEvent("raise", level, value, limit))
        elif not inside:
            pending.pop(level, None)
    return PointAlarms(active=frozenset(active), pending_since_s=pending), events
