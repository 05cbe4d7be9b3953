"""Pure choice of what routine data to drop when the buffer is over its disk quota.

The buffer hands over the oldest rows of its data lane; these functions return the ``seq`` of
the rows to drop. Alarms never reach them. Two thinning rules keep the old record useful:

* a long stop of a vehicle (many fixes at the same place) keeps its first and last fix and every
  other one in between;
* the oldest readings of each point lose every other sample, so an old hour keeps half its
  resolution instead of vanishing.

Only when neither frees anything does the buffer fall back to dropping the oldest rows outright.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["StopPoint", "thin_readings", "thin_stops"]

_EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True, slots=True)
class StopPoint:
    """The part of a stored fix that thinning looks at."""

    seq: int
    asset: str
    lat: float
    lon: float
    speed_kmh: float | None


def _distance_m(a: StopPoint, b: StopPoint) -> float:
    """Equirectangular distance: plenty for tens of metres."""
    x = math.radians(b.lon - a.lon) * math.cos(math.radians((a.lat + b.lat) / 2))
    y = math.radians(b.lat - a.lat)
    return _EARTH_RADIUS_M * math.hypot(x, y)


def _is_still(anchor: StopPoint, fix: StopPoint, *, still_kmh: float, radius_m: float) -> bool:
    if fix.speed_kmh is not None and fix.speed_kmh > still_kmh:
        return False
    return _distance_m(anchor, fix) <= radius_m


def _runs(fixes: Sequence[StopPoint], *, still_kmh: float, radius_m: float) -> Iterable[list[int]]:
    """Consecutive fixes of one asset that stay within ``radius_m`` of the first one."""
    run: list[StopPoint] = []
    for fix in fixes:
        if run and _is_still(run[0], fix, still_kmh=still_kmh, radius_m=radius_m):
            run.append(fix)
            continue
        if run:
            yield [p.seq for p in run]
        run = [fix]
    if run:
        yield [p.seq for p in run]


def thin_stops(
    fixes: Sequence[StopPoint],
    *,
    min_run: int = 6,
    still_kmh: float = 2.0,
    radius_m: float = 30.0,
) -> list[int]:
    """Every other fix inside each long stop (first and last fix of the stop are kept).

    Args:
        fixes: stored fixes in ``seq`` order (any mix of assets).
        min_run: fewest consecutive still fixes that make a long stop.
        still_kmh: a fix faster than this is moving.
        radius_m: a fix farther than this from the stop's first fix ends the stop.

    Returns:
        The ``seq`` of the fixes to drop, ascending.
    """
    by_asset: dict[str, list[StopPoint]] = {}
    for fix in fixes:
        by_asset.setdefault(fix.asset, []).append(fix)
    drop: list[int] = []
    for track in by_asset.values():
        for run in _runs(track, still_kmh=still_kmh, radius_m=radius_m):
            if len(run) >= min_run:
                drop.extend(run[1:-1:2])
    return sorted(drop)


def thin_readings(readings: Sequence[tuple[int, str]]) -> list[int]:
    """Every other reading of each point (the oldest of each pair is dropped).

    Args:
        readings: ``(seq, point key)`` of the oldest stored readings, in ``seq`` order.

    Returns:
        The ``seq`` of the readings to drop, ascending. A point with a single reading in the
        window keeps it.
    """
    by_point: dict[str, list[int]] = {}
    for seq, key in readings:
        by_point.setdefault(key, []).append(seq)
    drop: list[int] = []
    for seqs in by_point.values():
        drop.extend(seqs[0 : len(seqs) - 1 : 2])
    return sorted(drop)
