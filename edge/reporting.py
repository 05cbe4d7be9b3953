"""Pure reporting strategy for positions, as in-vehicle terminals do it.

A receiver gives a fix every second; a truck on 4G needs far fewer. :class:`Reporter` decides per
asset whether a fix is sent: the first fix, then when ``interval_s`` has passed since the last
sent one, when the asset moved ``distance_m`` from it, when the course turned more than
``heading_change_deg`` (so corners keep their shape; ignored below ``turn_min_speed_kmh``, where
the course is noise), when the fix quality changed, and at once when an alarm asks for it.
A rule set to 0 is off. Time comes from the fixes themselves (``ts``), never from a clock.

Configuration (a ``report`` table, in the agent TOML under ``[gnss.report]``, ``[ais.report]``
or per receiver)::

    interval_s = 30            # at least one fix every 30 s while fixes arrive (0: off)
    distance_m = 200           # or after moving 200 m (0: off)
    heading_change_deg = 30    # or after turning 30 degrees (0: off)
    turn_min_speed_kmh = 5     # the heading rule needs this speed
    min_interval_s = 0         # never more often than this (alarms excepted)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Final

import wire
from edge.errors import ConfigError

__all__ = ["ReportPolicy", "Reporter", "haversine_m"]

_EARTH_RADIUS_M: Final = 6_371_008.8


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (accurate to ~0.5 %, plenty for reporting)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportPolicy:
    """When to send a fix; see the module docstring."""

    interval_s: float = 30.0
    distance_m: float = 200.0
    heading_change_deg: float = 30.0
    turn_min_speed_kmh: float = 5.0
    min_interval_s: float = 0.0

    @classmethod
    def from_table(
        cls,
        table: Mapping[str, Any],
        *,
        file: str | Path | None,
        key: str,
        base: ReportPolicy | None = None,
    ) -> ReportPolicy:
        """Build a policy from a TOML table, starting from ``base`` (defaults if ``None``).

        Raises:
            ConfigError: an unknown key, or a value that is not a non-negative number.
        """
        known = {f.name for f in fields(cls)}
        values: dict[str, float] = {}
        for name, value in table.items():
            if name not in known:
                raise ConfigError(file, f"{key}.{name}", f"unknown key (known: {sorted(known)})")
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(file, f"{key}.{name}", "must be a number >= 0")
            values[name] = float(value)
        return replace(base or cls(), **values)


class _Last:
    __slots__ = ("course", "lat", "lon", "quality", "ts")

    def __init__(self, fix: wire.Fix) -> None:
        self.ts = fix.ts
        self.lat = fix.lat
        self.lon = fix.lon
        self.course = fix.course if fix.course is not None else fix.heading
        self.quality = fix.quality


class Reporter:
    """Per-asset decision whether a fix is reported.

    Args:
        policy: the rules.
        max_assets: assets remembered at most (a shore AIS station hears thousands).
    """

    def __init__(self, policy: ReportPolicy, *, max_assets: int = 50_000) -> None:
        self.policy = policy
        self.max_assets = max_assets
        self._last: dict[str, _Last] = {}
        self._forced: set[str] = set()
        #: reason -> fixes sent for it (first, interval, distance, heading, quality, alarm).
        self.sent: dict[str, int] = {}
        self.suppressed = 0

    def force(self, asset: str) -> None:
        """Send the next fix of ``asset`` whatever the rules say (an alarm was raised)."""
        self._forced.add(asset)

    def decide(self, fix: wire.Fix, *, alarm: bool = False) -> str | None:
        """Return why ``fix`` is sent, or ``None`` to suppress it; remember it if sent."""
        asset = fix.asset
        if alarm or asset in self._forced:
            self._forced.discard(asset)
            return self._send(fix, "alarm")
        last = self._last.get(asset)
        reason = "first" if last is None else self._reason(last, fix)
        if reason is None:
            self.suppressed += 1
            return None
        return self._send(fix, reason)

    def _send(self, fix: wire.Fix, reason: str) -> str:
        last = self._last.pop(fix.asset, None)
        self._last[fix.asset] = _Last(fix)
        if last is None and len(self._last) > self.max_assets:
            del self._last[next(iter(self._last))]
        self.sent[reason] = self.sent.get(reason, 0) + 1
        return reason

    def _reason(self, last: _Last, fix: wire.Fix) -> str | None:
        policy = self.policy
        elapsed_s = (fix.ts - last.ts) / 1000.0
        if elapsed_s < 0:
            return "interval"  # clock went back (receiver reset, replay): resynchronise
        if elapsed_s < policy.min_interval_s:
            return None
        if fix.quality != last.quality:
            return "quality"
        if policy.interval_s and elapsed_s >= policy.interval_s:
            return "interval"
        if policy.heading_change_deg and self._turned(last, fix):
            return "heading"
        if policy.distance_m and (
            haversine_m(last.lat, last.lon, fix.lat, fix.lon) >= policy.distance_m
        ):
            return "distance"
        return None

    def _turned(self, last: _Last, fix: wire.Fix) -> bool:
        course = fix.course if fix.course is not None else fix.heading
        if course is None or last.course is None:
            return False
        if fix.speed_kmh is not None and fix.speed_kmh < self.policy.turn_min_speed_kmh:
            return False
        change = abs(course - last.course) % 360.0
        return min(change, 360.0 - change) > self.policy.heading_change_deg
