"""Identical tracks: two vessels whose tracks coincide (shared/RULES.md, "Offline and vessels").

One terminal carried on another boat, or one boat under two MMSIs, shows as two ids moving
together: within ``radius_m`` of each other at matching times (within ``within_s``), fix after
fix. The two may come through different gateways and so through different workers, so the
check runs on what every worker shares, the live state:

- after each ingest round, for each vessel that sent a moving fix, its newest such fix is looked
  up against the newest positions of every asset (the live state's geo index); another vessel
  whose newest fix is moving, within ``within_s`` of it and, brought to its time by dead
  reckoning (speed and course), within ``radius_m`` of it is a match;
- a match counts the fix for that asset in the pair's shared set of matched fixes (one per fix
  time, so a fix delivered twice counts once), forgetting those older than ``window_s``;
- once *each* of the two has at least ``fixes`` matched fixes in the window, one alert
  ``vessel.identical_tracks`` names both: the first id as its asset, the other as ``other`` in
  its details (condition ``twins:<a>|<b>``, the ids in order, so either side's fix finds the same
  alert). Vessels of two enterprises give each enterprise its own alert naming its own vessel;
  the other is named only if it is an AIS target (its MMSI is public), never by another
  enterprise's asset id, not even in the condition's key (the regulator sees both alerts). It stays open until someone closes it (an investigation, not a state
  that ends by itself); tracks still coinciding after a close open it anew.

Vessels: assets registered as ``fishing_vessel`` and unregistered AIS targets (an id of nine
digits, an MMSI); trucks in convoy are not twins. A round with several fixes of one vessel (a
backlog) counts its newest only: a coincidence is never found from fewer fixes than the
thresholds say, at worst later.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import wire
from cloud.alerts import AlertService
from cloud.ingest.core import Accepted
from cloud.live import LiveState
from cloud.rules.world import World

__all__ = ["TwinThresholds", "TwinWatch", "twin_key"]

log = logging.getLogger(__name__)

KIND: Final = "vessel.identical_tracks"
#: vessels of a round compared at the same time (each is a few live-state round trips)
_CONCURRENCY: Final = 16
#: metres per degree of latitude (and of longitude at the equator): enough over tens of metres
_M_PER_DEG_LAT: Final = 111_195.0


@dataclass(frozen=True, slots=True)
class TwinThresholds:
    """When two tracks are one (RULES.md defaults)."""

    radius_m: float = 30.0
    within_s: float = 60.0
    fixes: int = 20
    window_s: float = 3600.0
    #: moving: over this speed (a moored fleet lies close together, fix after fix)
    moving_kmh: float = 5.0
    #: others looked at around each fix (the nearest first)
    candidates: int = 20


def twin_key(a: str, b: str) -> str:
    """The condition of a pair, the same from either side."""
    first, second = sorted((a, b))
    return f"twins:{first}|{second}"


def is_vessel(world: World, asset_id: str) -> bool:
    """A registered fishing vessel, or an unregistered AIS target (its MMSI as id)."""
    info = world.assets.get(asset_id)
    if info is not None:
        return info.asset_class == "fishing_vessel"
    return len(asset_id) == 9 and asset_id.isdigit()


def distance_at(other: wire.Fix, fix: wire.Fix) -> float:
    """Metres between ``fix`` and where ``other`` was at ``fix``'s time: dead reckoning from
    ``other`` by its speed and course (two boats reporting 10 s apart at 8 knots are 40 m
    apart on paper, side by side on the water); without a course, where ``other`` was."""
    north = (fix.lat - other.lat) * _M_PER_DEG_LAT
    east = (fix.lon - other.lon) * _M_PER_DEG_LAT * math.cos(math.radians(fix.lat))
    if other.course is not None and other.speed_kmh is not None:
        moved = other.speed_kmh / 3.6 * (fix.ts - other.ts) / 1000
        north -= moved * math.cos(math.radians(other.course))
        east -= moved * math.sin(math.radians(other.course))
    return math.hypot(north, east)


class TwinWatch:
    """Finds identical tracks after each ingest round (see the module's docstring).

    Args:
        live: the live state shared by the workers (positions, matched fixes).
        alerts: where a pair found becomes an alert.
        world: the current world (which assets are vessels).
        counters: where matches and failures are counted (the rule service's).
    """

    def __init__(
        self,
        live: LiveState,
        alerts: AlertService,
        world: Callable[[], World],
        thresholds: TwinThresholds | None = None,
        counters: collections.Counter[str] | None = None,
    ) -> None:
        self.live = live
        self.alerts = alerts
        self.world = world
        self.thresholds = thresholds or TwinThresholds()
        self.counters = collections.Counter[str]() if counters is None else counters

    def _moving(self, fix: wire.Fix) -> bool:
        return fix.speed_kmh is not None and fix.speed_kmh > self.thresholds.moving_kmh

    async def step(self, accepted: Accepted) -> None:
        """Look at the round's newest moving fix of each vessel; never raises (counted)."""
        world = self.world()
        newest: dict[str, tuple[wire.Fix, str]] = {}
        for rec in accepted.fixes:
            fix = rec.item
            if rec.late or not self._moving(fix) or not is_vessel(world, fix.asset):
                continue
            known = newest.get(fix.asset)
            if known is None or fix.ts > known[0].ts:
                newest[fix.asset] = (fix, rec.enterprise_id)
        if not newest:
            return
        gate = asyncio.Semaphore(_CONCURRENCY)

        async def one(fix: wire.Fix, enterprise_id: str) -> None:
            async with gate:
                try:
                    await self._match(world, fix, enterprise_id)
                except Exception:
                    self.counters["twins_error"] += 1
                    log.exception("twins: %s not compared with its neighbours", fix.asset)

        await asyncio.gather(*(one(fix, enterprise) for fix, enterprise in newest.values()))

    async def _match(self, world: World, fix: wire.Fix, enterprise_id: str) -> None:
        t = self.thresholds
        # Anything that could be within the radius once brought to this fix's time.
        speed_ms = (fix.speed_kmh or 0.0) / 3.6
        search_m = t.radius_m + 1.5 * speed_ms * t.within_s
        near = await self.live.nearby(fix.lat, fix.lon, search_m, limit=t.candidates + 1)
        candidates = [a for a, _ in near if a != fix.asset and is_vessel(world, a)]
        if not candidates:
            return
        latest = await self.live.latest_fixes(candidates)
        keep_after = fix.ts - int(t.window_s * 1000)
        for other, found in latest.items():
            if abs(found.fix.ts - fix.ts) > t.within_s * 1000 or not self._moving(found.fix):
                continue
            apart_m = distance_at(found.fix, fix)
            if apart_m > t.radius_m:
                continue
            key = twin_key(fix.asset, other)
            self.counters["twins_matched"] += 1
            mine = await self.live.count_recent(
                f"{key}:{fix.asset}", keep_after_ms=keep_after, add=(str(fix.ts), fix.ts)
            )
            theirs = await self.live.count_recent(f"{key}:{other}", keep_after_ms=keep_after)
            if min(mine, theirs) < t.fixes:
                continue
            named: str
            seen_with: str | None
            condition = key
            if found.enterprise_id == enterprise_id:
                named, seen_with = sorted((fix.asset, other))  # the same alert from either
            else:
                # Each enterprise's alert names its own vessel; the other by its id only when
                # that is public (an AIS target's MMSI), never another enterprise's asset id,
                # in the text or in the condition's key.
                named = fix.asset
                owner = world.assets.get(other)
                seen_with = other if owner is None or owner.enterprise_id is None else None
                if seen_with is None:
                    hidden = hashlib.sha256(other.encode()).hexdigest()[:12]
                    condition = f"twins:{fix.asset}|~{hidden}"
            await self.alerts.raise_condition(
                enterprise_id=enterprise_id,
                key=condition,
                kind=KIND,
                level="warning",
                now_ms=fix.ts,
                asset_id=named,
                message=f"{named} and {seen_with or 'another vessel'} sail identical tracks",
                data={
                    "other": seen_with,
                    "matched_fixes": min(mine, theirs),
                    "distance_m": round(apart_m, 1),
                    "window_s": t.window_s,
                },
            )
