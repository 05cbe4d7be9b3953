"""Geofences: confirmed membership with hysteresis, time windows, triggers, sparse passages.

Pure functions over one asset's :class:`~cloud.rules.state.ZoneTrack` and one zone version
(shared/RULES.md, "Geofences"):

- entry is confirmed after ``confirm_n`` consecutive trusted fixes inside spanning at least
  ``confirm_s``, one of them at least ``hysteresis_m`` inside (a zone narrower than twice that:
  the fixes alone); exit the same way outside. The transition happens at the first fix of the
  confirming run. A truck parked on a boundary with GPS drift never flaps.
- a zone applies only inside its windows: a ``forbidden`` condition is open while the asset is
  confirmed inside and a window is active, opening at the later of entry and window start and
  closing at the earlier of exit and window end; ``dwell`` opens once the asset has been inside
  ``dwell_s`` while a window is active (from the later of entry and window start, within one
  active spell) and closes on exit; ``enter`` and ``exit`` are instantaneous.
- what time does while an exit is pending waits for it: confirmed, the exit (at the first fix
  outside) comes first; undone by a fix inside, the window starts and ends in between are caught
  up at their own times. Entry likewise: a window starting while the entry was being confirmed
  opens the condition at its start.
- a straight segment between two trusted fixes close enough in time, both outside, that passes
  through a zone is a passage: one ``zone.crossed`` event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from cloud.rules.config import Thresholds
from cloud.rules.objects import ZoneSpec
from cloud.rules.state import Pending, ZoneTrack
from cloud.rules.windows import Windows
from cloud.rules.world import ZoneEntry

__all__ = ["Emit", "advance", "dwell_due", "on_fix", "passage"]

#: Emits an event: (kind, ref, action, ts, details)
Emit = Callable[[str, str, str, int, Mapping[str, object]], None]


def _watches(zone: ZoneEntry, trigger: str) -> bool:
    return isinstance(zone.spec, ZoneSpec) and zone.spec.trigger == trigger


def on_fix(
    track: ZoneTrack,
    zone: ZoneEntry,
    ts_ms: int,
    depth_m: float,
    thresholds: Thresholds,
    emit: Emit,
) -> bool:
    """Take one trusted fix at ``depth_m`` (positive inside, metres from the boundary).

    Returns:
        Whether the confirmed side changed (an entry or an exit).
    """
    inside = depth_m > 0
    if inside == track.inside:
        undone = track.pending
        track.pending = None
        if undone is not None and inside:
            # An exit that did not happen: what time did meanwhile happens now.
            _follow(track, zone, undone.first_ms, ts_ms, thresholds, emit)
        return False
    narrow = inside and zone.inscribed_m < thresholds.hysteresis_m
    deep = narrow or abs(depth_m) >= thresholds.hysteresis_m
    pending = track.pending
    if pending is None or pending.inside != inside:
        pending = Pending(inside=inside, count=1, first_ms=ts_ms, deep=deep, last_ms=ts_ms)
    else:
        pending.count += 1
        pending.deep = pending.deep or deep
        pending.last_ms = ts_ms
    track.pending = pending
    confirmed = (
        pending.count >= thresholds.confirm_n
        and pending.last_ms - pending.first_ms >= thresholds.confirm_s * 1000
        and pending.deep
    )
    if not confirmed:
        return False
    track.pending = None
    _transition(track, zone, inside, pending.first_ms, emit)
    if inside:  # windows that began (or ended) while the entry was being confirmed
        _follow(track, zone, pending.first_ms + 1, ts_ms, thresholds, emit)
    return True


def _transition(track: ZoneTrack, zone: ZoneEntry, inside: bool, at_ms: int, emit: Emit) -> None:
    track.inside = inside
    track.since_ms = at_ms
    if zone.kind != "zone":
        return
    assert isinstance(zone.spec, ZoneSpec)
    active = zone.spec.windows.active(at_ms)
    if inside:
        if active and _watches(zone, "enter"):
            emit("zone.enter", zone.id, "open", at_ms, {"version": zone.version})
        if active and _watches(zone, "forbidden"):
            _open(track, zone, "zone.forbidden", at_ms, emit)
        return
    if active and _watches(zone, "exit"):
        emit("zone.exit", zone.id, "open", at_ms, {"version": zone.version})
    for kind in list(track.open):
        _close(track, zone, kind, at_ms, emit)


def _open(track: ZoneTrack, zone: ZoneEntry, kind: str, at_ms: int, emit: Emit) -> None:
    if kind not in track.open:
        track.open = {**track.open, kind: at_ms}
        emit(kind, zone.id, "open", at_ms, {"version": zone.version, "zone_kind": _kind(zone)})


def _close(track: ZoneTrack, zone: ZoneEntry, kind: str, at_ms: int, emit: Emit) -> None:
    if kind in track.open:
        opened = track.open[kind]
        track.open = {k: v for k, v in track.open.items() if k != kind}
        emit(kind, zone.id, "close", at_ms, {"duration_s": (at_ms - opened) / 1000})


def _kind(zone: ZoneEntry) -> str:
    return zone.spec.zone_kind if isinstance(zone.spec, ZoneSpec) else zone.kind


def advance(
    track: ZoneTrack,
    zone: ZoneEntry,
    after_ms: int,
    until_ms: int,
    thresholds: Thresholds,
    emit: Emit,
) -> None:
    """What time alone does up to ``until_ms`` while the asset is confirmed inside: windows
    start and end, dwell time passes.

    The moment ``after_ms`` itself is looked at again (the engine takes a fix at ``after_ms``
    without advancing to it); every transition is idempotent, so nothing happens twice.
    """
    if not track.inside or zone.kind != "zone":
        return
    pending = track.pending
    if pending is not None and not pending.inside:
        until_ms = min(until_ms, pending.first_ms - 1)  # wait: the asset may have left
    _follow(track, zone, max(after_ms, track.since_ms + 1), until_ms, thresholds, emit)


def _follow(
    track: ZoneTrack,
    zone: ZoneEntry,
    from_ms: int,
    until_ms: int,
    thresholds: Thresholds,
    emit: Emit,
) -> None:
    """Window starts and ends in ``[from_ms, until_ms]``, and a dwell due by ``until_ms``."""
    if until_ms < from_ms or zone.kind != "zone":
        return
    assert isinstance(zone.spec, ZoneSpec)
    windows = zone.spec.windows
    if _watches(zone, "forbidden") and not windows.always:
        moment = from_ms - 1
        while (change := windows.next_change(moment)) is not None and change <= until_ms:
            if windows.active(change):
                _open(track, zone, "zone.forbidden", change, emit)
            else:
                _close(track, zone, "zone.forbidden", change, emit)
            moment = change
    if _watches(zone, "dwell") and "zone.dwell" not in track.open:
        due = _dwell_due(windows, track.since_ms, int(thresholds.dwell_s * 1000), until_ms)
        if due is not None:
            _open(track, zone, "zone.dwell", due, emit)


def dwell_due(track: ZoneTrack, zone: ZoneEntry, dwell_s: float, after_ms: int) -> int:
    """When the clock should next look at a dwell (for the scheduler): when it opens if that
    is within two days of ``after_ms``, else two days on (to look again)."""
    assert isinstance(zone.spec, ZoneSpec)
    horizon = after_ms + 2 * 86_400_000
    due = _dwell_due(zone.spec.windows, track.since_ms, int(dwell_s * 1000), horizon)
    return horizon if due is None else due


def _dwell_due(windows: Windows, since_ms: int, dwell_ms: int, until_ms: int) -> int | None:
    """When an asset inside since ``since_ms`` has dwelt ``dwell_ms`` within one active spell
    of the windows, if that is by ``until_ms``."""
    begin = since_ms
    while begin + dwell_ms <= until_ms:
        if not windows.active(begin):
            start = windows.starts_between(begin, until_ms - dwell_ms)
            if not start:
                return None
            begin = start[0]
        due = begin + dwell_ms
        end = windows.ends_between(begin, due)
        if end is None:
            return due
        begin = end
    return None


def passage(zone: ZoneEntry, track: ZoneTrack | None, ts_ms: int, emit: Emit) -> None:
    """A segment between two fixes outside passed through ``zone`` (at ``ts_ms``).

    A segment from a fix inside (confirmed or not) leaves the zone, it does not pass through.
    """
    if zone.kind != "zone" or _inside_or_entering(track):
        return
    assert isinstance(zone.spec, ZoneSpec)
    if zone.spec.trigger in ("enter", "forbidden", "dwell") and zone.spec.windows.active(ts_ms):
        emit("zone.crossed", zone.id, "open", ts_ms, {"version": zone.version, "crossed": True})


def _inside_or_entering(track: ZoneTrack | None) -> bool:
    if track is None:
        return False
    return track.inside or (track.pending is not None and track.pending.inside)
