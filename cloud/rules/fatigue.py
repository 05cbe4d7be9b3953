"""Fatigue: continuous driving, driving at night, driving per day (the asset its reference).

shared/RULES.md, "Fatigue", with these readings where it is silent:

- Driving is a fix over ``stop_speed_kmh``. A driving fix vouches for driving until the next fix,
  for at most ``fatigue_gap_s`` (10 min): a short data gap counts as driving, a longer one as
  driving for its first ``fatigue_gap_s`` and then as neither driving nor rest. The earlier fix
  decides (not both ends) because the clock must decide when a pre-warning or an alert is due
  between fixes, before it knows what the next fix will say.
- A stop runs from its first fix at or under the stop speed to the next driving fix, however
  long the data gap in it (a parked terminal often goes quiet). Lasting ``rest_s`` (20 min) it is
  a rest, confirmed by the clock at its start + ``rest_s``: continuous and night driving start
  again from zero, and ``fatigue.continuous`` and ``fatigue.night`` close, dated at the rest's
  start (the driving over the limit ended there). A shorter stop neither resets nor adds.
- Each limit is warned of ``fatigue_warning_s`` (15 min) before it, by an instantaneous finding:
  ``fatigue.continuous_warning`` once per spell of continuous driving (at 3 h 45 min),
  ``fatigue.night_warning`` once per spell (1 h 45 min at night), ``fatigue.daily_warning``
  once per day (7 h 45 min).
- ``fatigue.continuous`` opens when continuous driving goes over ``fatigue_continuous_s`` (4 h);
  ``fatigue.night`` when the continuous driving inside the night window (``night_start_h`` to
  ``night_end_h``, Beijing) goes over ``fatigue_night_s`` (2 h), driving outside it neither
  adding nor resetting; both dated at the moment the limit was reached, by the clock if need
  be. "Over" is strict: driving that stops exactly at the limit opens nothing.
- ``fatigue.daily`` opens when driving on one Beijing calendar day goes over ``fatigue_daily_s``
  (8 h; coaches and hazmat trucks) and closes at that day's end (midnight, Beijing).

A threshold of 0 turns its rule off (classes other than the vehicle ones). Everything lives in
:class:`~cloud.rules.state.FatigueTrack`, so a restart, another worker or a re-evaluation from a
checkpoint continues the count exactly.
"""

from __future__ import annotations

from typing import Final

from cloud.rules.config import Thresholds
from cloud.rules.geofence import Emit
from cloud.rules.speed import night
from cloud.rules.state import FatigueTrack
from cloud.rules.windows import Window, daily_window, day_start_ms, local_day

__all__ = ["advance", "due", "on_fix", "watched"]


def watched(thresholds: Thresholds) -> bool:
    """Whether any fatigue rule applies (the vehicle classes)."""
    return (
        thresholds.fatigue_continuous_s > 0
        or thresholds.fatigue_night_s > 0
        or thresholds.fatigue_daily_s > 0
    )


def on_fix(
    track: FatigueTrack, asset_id: str, ts_ms: int, speed_kmh: float, th: Thresholds, emit: Emit
) -> None:
    """Take one fix: what the time up to it did, then whether it drives or stops."""
    advance(track, asset_id, ts_ms, th, emit)
    if track.day < 0:
        track.day = local_day(ts_ms)
    if speed_kmh > th.stop_speed_kmh:
        track.stop_ms, track.rested = -1, False
        track.driving_until_ms = ts_ms + int(th.fatigue_gap_s * 1000)
    else:
        if track.stop_ms < 0:
            track.stop_ms, track.rested = ts_ms, False
        track.driving_until_ms = -1
    track.counted_ms = ts_ms


def advance(track: FatigueTrack, asset_id: str, until_ms: int, th: Thresholds, emit: Emit) -> None:
    """What time alone does up to ``until_ms``: driving counted, a rest, a day's end."""
    if track.counted_ms < 0 or until_ms <= track.counted_ms:
        return
    if track.driving_until_ms > track.counted_ms:
        _drive(track, asset_id, track.counted_ms, min(until_ms, track.driving_until_ms), th, emit)
    rest_at = track.stop_ms + int(th.rest_s * 1000)
    if track.stop_ms >= 0 and not track.rested and until_ms >= rest_at:
        _rest(track, asset_id, emit)
    _roll(track, asset_id, until_ms, emit)
    track.counted_ms = until_ms


def due(track: FatigueTrack, th: Thresholds) -> int | None:
    """The next time the clock may change something (early is harmless: it asks again)."""
    times: list[int] = []
    if track.driving_until_ms > track.counted_ms:
        for accumulated, limit_s, done, _ in _limits(track, th):
            if limit_s > 0 and not done:
                # (just past the limit: the piece up to it must run over it)
                at = track.counted_ms + max(0, int(limit_s * 1000) - accumulated) + 1
                if at <= track.driving_until_ms:
                    times.append(at)
    if track.stop_ms >= 0 and not track.rested and (track.drive_ms > 0 or track.night_ms > 0):
        times.append(track.stop_ms + int(th.rest_s * 1000))
    if track.daily_ms >= 0:
        times.append(day_start_ms(track.day + 1))
    return min(times) if times else None


#: The pre-warning of each limit (RULES.md: 15 min before each), and the limit it warns of.
WARNINGS: Final = {
    "fatigue.continuous_warning": "fatigue.continuous",
    "fatigue.night_warning": "fatigue.night",
    "fatigue.daily_warning": "fatigue.daily",
}


def _warn_s(limit_s: float, th: Thresholds) -> float:
    """When the pre-warning of a limit comes (0: none)."""
    warn_s = limit_s - th.fatigue_warning_s
    return warn_s if limit_s > 0 and th.fatigue_warning_s > 0 and warn_s > 0 else 0.0


def _limits(track: FatigueTrack, th: Thresholds) -> list[tuple[int, float, bool, str]]:
    """(driving so far, its limit, whether reached already, what it raises) of each count, in
    the order they are raised at one instant (a warning before its limit)."""
    return [
        (track.drive_ms, _warn_s(th.fatigue_continuous_s, th), track.warned,
         "fatigue.continuous_warning"),
        (track.drive_ms, th.fatigue_continuous_s, track.continuous_ms >= 0, "fatigue.continuous"),
        (track.night_ms, _warn_s(th.fatigue_night_s, th), track.night_warned,
         "fatigue.night_warning"),
        (track.night_ms, th.fatigue_night_s, track.night_open_ms >= 0, "fatigue.night"),
        (track.day_ms, _warn_s(th.fatigue_daily_s, th), track.daily_warned,
         "fatigue.daily_warning"),
        (track.day_ms, th.fatigue_daily_s, track.daily_ms >= 0, "fatigue.daily"),
    ]  # fmt: skip


def _drive(
    track: FatigueTrack, asset_id: str, start_ms: int, end_ms: int, th: Thresholds, emit: Emit
) -> None:
    """Count driving from ``start_ms`` to ``end_ms``, in pieces split at midnight and at the
    night window's edges; the limits reached inside a piece, at their times."""
    window = _night_window(th)
    at = start_ms
    while at < end_ms:
        _roll(track, asset_id, at, emit)
        piece_end = min(end_ms, day_start_ms(track.day + 1))
        if window is not None:
            piece_end = min(piece_end, window.next_change(at))
        _piece(track, asset_id, at, piece_end - at, night(th, at), th, emit)
        at = piece_end


def _piece(
    track: FatigueTrack,
    asset_id: str,
    at: int,
    length: int,
    in_night: bool,
    th: Thresholds,
    emit: Emit,
) -> None:
    found: list[tuple[int, int, str]] = []
    for order, (accumulated, limit_s, done, kind) in enumerate(_limits(track, th)):
        if limit_s <= 0 or done or (kind.startswith("fatigue.night") and not in_night):
            continue
        left = int(limit_s * 1000) - accumulated
        if left < length:  # over the limit inside this piece (not merely reaching it)
            found.append((at + max(0, left), order, kind))
    for ts, _, kind in sorted(found):
        if kind in WARNINGS:
            _warn(track, kind, asset_id, ts, th, emit)
        else:
            _open(track, kind, asset_id, ts, _limit_of(kind, th), emit)
    track.drive_ms += length
    track.day_ms += length
    if in_night:
        track.night_ms += length


def _limit_of(kind: str, th: Thresholds) -> float:
    return {
        "fatigue.continuous": th.fatigue_continuous_s,
        "fatigue.night": th.fatigue_night_s,
        "fatigue.daily": th.fatigue_daily_s,
    }[kind]


def _warn(
    track: FatigueTrack, kind: str, asset_id: str, ts_ms: int, th: Thresholds, emit: Emit
) -> None:
    if kind == "fatigue.continuous_warning":
        track.warned = True
    elif kind == "fatigue.night_warning":
        track.night_warned = True
    else:
        track.daily_warned = True
    limit_s = _limit_of(WARNINGS[kind], th)
    details = {"driving_s": limit_s - th.fatigue_warning_s, "limit_s": limit_s}
    emit(kind, asset_id, "open", ts_ms, details)


def _open(
    track: FatigueTrack, kind: str, asset_id: str, ts_ms: int, limit_s: float, emit: Emit
) -> None:
    if kind == "fatigue.continuous":
        track.continuous_ms = ts_ms
    elif kind == "fatigue.night":
        track.night_open_ms = ts_ms
    else:
        track.daily_ms = ts_ms
    emit(kind, asset_id, "open", ts_ms, {"limit_s": limit_s})


def _rest(track: FatigueTrack, asset_id: str, emit: Emit) -> None:
    """A rest, confirmed: continuous and night driving start again from zero."""
    at = track.stop_ms
    for kind, opened in (
        ("fatigue.continuous", track.continuous_ms),
        ("fatigue.night", track.night_open_ms),
    ):
        if opened >= 0:
            details = {"start_ms": opened, "duration_s": (max(at, opened) - opened) / 1000}
            emit(kind, asset_id, "close", max(at, opened), details)
    track.rested = True
    track.drive_ms = track.night_ms = 0
    track.warned = track.night_warned = False
    track.continuous_ms = track.night_open_ms = -1


def _roll(track: FatigueTrack, asset_id: str, at_ms: int, emit: Emit) -> None:
    """A new Beijing day from ``at_ms``: the day's count starts again, its alert closes."""
    day = local_day(at_ms)
    if track.day < 0 or day <= track.day:
        return
    if track.daily_ms >= 0:
        ended = day_start_ms(track.day + 1)
        details = {"start_ms": track.daily_ms, "driving_s": track.day_ms / 1000}
        emit("fatigue.daily", asset_id, "close", ended, details)
    track.day, track.day_ms, track.daily_ms = day, 0, -1
    track.daily_warned = False


def _night_window(th: Thresholds) -> Window | None:
    return daily_window(th.night_start_h, th.night_end_h)
