"""Long-distance coaches moving in the small hours (``fatigue.small_hours``, the asset its
reference).

DOMAIN.md: long-distance passenger coaches may not run between 02:00 and 05:00 (Beijing); the
asset says whether it is one (``long_distance``). Readings where RULES.md is silent:

- the condition opens at the first fix over ``stop_speed_kmh`` inside the window
  (``small_hours_start_h`` to ``small_hours_end_h``), dated at that fix: a coach already
  driving at 02:00 is caught by its first fix after it, one reporting interval later at most;
- it closes at the window's end (05:00, by the clock), whether the coach stopped earlier or not:
  the finding is that it ran in the small hours, and one alert per night says so (a coach that
  stops and drives on within the window does not open a second one).
"""

from __future__ import annotations

from cloud.rules.config import Thresholds
from cloud.rules.geofence import Emit
from cloud.rules.state import SmallHoursTrack
from cloud.rules.windows import daily_window

__all__ = ["advance", "due", "on_fix"]

KIND = "fatigue.small_hours"


def on_fix(
    track: SmallHoursTrack, asset_id: str, ts_ms: int, speed_kmh: float, th: Thresholds, emit: Emit
) -> None:
    """A driving fix inside the window opens the condition (once per night)."""
    window = daily_window(th.small_hours_start_h, th.small_hours_end_h)
    if track.open_ms >= 0 or window is None or speed_kmh <= th.stop_speed_kmh:
        return
    if not window.active(ts_ms):
        return
    track.open_ms = ts_ms
    details = {"from_h": th.small_hours_start_h, "to_h": th.small_hours_end_h}
    emit(KIND, asset_id, "open", ts_ms, details)


def due(track: SmallHoursTrack, th: Thresholds) -> int | None:
    """The end of the window the open condition began in (``None``: nothing open)."""
    window = daily_window(th.small_hours_start_h, th.small_hours_end_h)
    if track.open_ms < 0 or window is None:
        return None
    return window.next_change(track.open_ms)


def advance(
    track: SmallHoursTrack, asset_id: str, until_ms: int, th: Thresholds, emit: Emit
) -> None:
    """Close the condition at its window's end, once the clock is there."""
    end = due(track, th)
    if end is None or until_ms < end:
        return
    emit(KIND, asset_id, "close", end, {"start_ms": track.open_ms})
    track.open_ms = -1
