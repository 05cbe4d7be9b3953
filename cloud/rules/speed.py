"""Speed: over the limit in force for a while (``speed.over``, the asset its reference).

shared/RULES.md, "Speed": over the limit for at least ``overspeed_s`` of observation time across
two or more fixes opens, dated at the first fix of that run; back under the limit minus
``overspeed_margin_kmh`` for ``overspeed_s`` (two or more fixes) closes, dated at the first fix
of that run. One sample never opens: a GPS spike is one fix.

The limit at a fix (:func:`limit_at`) is the lowest of those in force, 0 meaning none:

- the road limit: the class's ``speed_limit_kmh``, or ``speed_limit_expressway_kmh`` while
  confirmed inside a zone of kind ``expressway`` (the zone's overrides may set either); for
  passenger classes (``night_speed_factor`` below 1) times that factor inside the night window
  (``night_start_h``-``night_end_h``, Beijing). The factor applies to the road limit only, not
  to a limit a zone posts;
- ``speed_limit_hazard_kmh`` (school buses: 20) while confirmed inside a ``bend``, ``slope`` or
  ``narrow`` zone;
- a zone's own ``speed_limit_kmh`` override while confirmed inside it (a school zone at 30).

A zone counts only inside its windows. Only trusted fixes with a reported speed are judged; a
reported speed over the limit that the distance from the previous fix contradicts (over
``speed_check_factor`` times the implied speed plus ``speed_check_slack_kmh``, on a segment of
``speed_check_min_s`` to ``speed_check_max_s``) is not judged either, and counted in the state's
``dropped`` (``speed_contradicted``); speeds under the limit are not checked (nothing to alarm).
A fix not judged neither extends nor breaks a run.

Details: ``limit_kmh`` and ``max_kmh`` on open; ``max_kmh``, ``limit_kmh``, ``duration_s`` (and
``start_ms``, the alert's start) on update and close. An open alert is updated when its maximum
grows by ``overspeed_update_kmh`` over the last said. The limit said on open is the one at the
fix that confirms the run; later, the lowest one the speed was over while the alert was open.
A fix is judged by the zone membership known when it comes (an entry or exit confirmed by a
later fix does not judge it again).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from cloud.rules.config import Thresholds
from cloud.rules.geofence import Emit
from cloud.rules.state import SpeedTrack
from cloud.rules.windows import daily_window

__all__ = ["HAZARD_KINDS", "contradicted", "limit_at", "night", "on_fix"]

#: Zone kinds where the hazard limit applies (school buses: 20 km/h).
HAZARD_KINDS: Final = frozenset({"bend", "slope", "narrow"})


def night(thresholds: Thresholds, ts_ms: int) -> bool:
    """Whether ``ts_ms`` lies in the night window (Beijing time)."""
    window = daily_window(thresholds.night_start_h, thresholds.night_end_h)
    return window is not None and window.active(ts_ms)


def limit_at(base: Thresholds, ts_ms: int, zones: Iterable[tuple[str, Thresholds, bool]]) -> float:
    """The limit in force (0: none), from the zones confirmed inside and active at ``ts_ms``:
    (zone kind, its thresholds, whether it posts its own ``speed_limit_kmh``)."""
    road = base.speed_limit_kmh
    posted: list[float] = []
    for zone_kind, thresholds, own in zones:
        if zone_kind == "expressway":
            road = thresholds.speed_limit_expressway_kmh
        if zone_kind in HAZARD_KINDS:
            posted.append(thresholds.speed_limit_hazard_kmh)
        if own:
            posted.append(thresholds.speed_limit_kmh)
    if road > 0 and base.night_speed_factor != 1.0 and night(base, ts_ms):
        road *= base.night_speed_factor
    limits = [limit for limit in (road, *posted) if limit > 0]
    return min(limits) if limits else 0.0


def contradicted(reported_kmh: float, implied_kmh: float, gap_s: float, th: Thresholds) -> bool:
    """Whether the distance covered since the previous fix belies a reported speed."""
    if not th.speed_check_min_s <= gap_s <= th.speed_check_max_s:
        return False
    return reported_kmh > th.speed_check_factor * implied_kmh + th.speed_check_slack_kmh


def on_fix(
    track: SpeedTrack,
    asset_id: str,
    ts_ms: int,
    speed_kmh: float,
    limit_kmh: float,
    thresholds: Thresholds,
    emit: Emit,
) -> None:
    """Take one judged fix: its speed and the limit in force (0: none)."""
    over = limit_kmh > 0 and speed_kmh > limit_kmh
    if track.open_ms < 0:
        _closed(track, asset_id, ts_ms, speed_kmh, limit_kmh, over, thresholds, emit)
    else:
        _opened(track, asset_id, ts_ms, speed_kmh, limit_kmh, over, thresholds, emit)


def _closed(
    track: SpeedTrack,
    asset_id: str,
    ts_ms: int,
    speed_kmh: float,
    limit_kmh: float,
    over: bool,
    thresholds: Thresholds,
    emit: Emit,
) -> None:
    if not over:
        track.over_since_ms, track.over_count = -1, 0
        return
    if track.over_since_ms < 0:
        track.over_since_ms, track.over_count, track.max_kmh = ts_ms, 0, 0.0
        track.over_limit_kmh = limit_kmh
    track.over_count += 1
    track.max_kmh = max(track.max_kmh, speed_kmh)
    track.over_limit_kmh = limit_kmh
    lasted = ts_ms - track.over_since_ms >= thresholds.overspeed_s * 1000
    if track.over_count < 2 or not lasted:
        return
    track.open_ms, track.limit_kmh = track.over_since_ms, track.over_limit_kmh
    track.said_kmh = track.max_kmh
    track.under_since_ms, track.under_count = -1, 0
    track.over_since_ms, track.over_count = -1, 0
    details = {"limit_kmh": track.limit_kmh, "max_kmh": track.max_kmh}
    emit("speed.over", asset_id, "open", track.open_ms, details)


def _opened(
    track: SpeedTrack,
    asset_id: str,
    ts_ms: int,
    speed_kmh: float,
    limit_kmh: float,
    over: bool,
    thresholds: Thresholds,
    emit: Emit,
) -> None:
    if over:
        track.max_kmh = max(track.max_kmh, speed_kmh)
        track.limit_kmh = min(track.limit_kmh, limit_kmh)
    under = limit_kmh <= 0 or speed_kmh < limit_kmh - thresholds.overspeed_margin_kmh
    if not under:
        track.under_since_ms, track.under_count = -1, 0
        if track.max_kmh >= track.said_kmh + thresholds.overspeed_update_kmh:
            track.said_kmh = track.max_kmh
            emit("speed.over", asset_id, "update", ts_ms, _summary(track, ts_ms))
        return
    if track.under_since_ms < 0:
        track.under_since_ms, track.under_count = ts_ms, 0
    track.under_count += 1
    lasted = ts_ms - track.under_since_ms >= thresholds.overspeed_s * 1000
    if track.under_count < 2 or not lasted:
        return
    closed_at = track.under_since_ms
    emit("speed.over", asset_id, "close", closed_at, _summary(track, closed_at))
    track.open_ms, track.under_since_ms, track.under_count = -1, -1, 0
    track.max_kmh = track.said_kmh = track.limit_kmh = 0.0


def _summary(track: SpeedTrack, ts_ms: int) -> dict[str, object]:
    return {
        "start_ms": track.open_ms,
        "max_kmh": track.max_kmh,
        "limit_kmh": track.limit_kmh,
        "duration_s": (ts_ms - track.open_ms) / 1000,
    }
