"""Geofences: confirmed membership with hysteresis, time windows, triggers, sparse passages.

Pure functions over one asset's :class:`~cloud.rules.state.ZoneTrack` and one zone version
(shared/RULES.md, "Geofences"):

- entry is confirmed after ``confirm_n`` consecutive trusted fixes inside spanning at least
  ``confirm_s``, one of them at least ``hysteresis_m`` inside (a zone narrower than twice that:
  the fixes alone); exit the same way outside. The transition happens at the first fix of the
  confirming run. A truck parked on a boundary with GPS drift never flaps.
- a zone applies only inside its windows: a ``forbidden`` condition is open while the asset is
  confirmed inside and a window is active, opening at the later of entry and window start and
  closing at the earlier of exit and window end; ``dwell`` opens ``dwell_s`` after entry (inside
  a window) and closes on exit; ``enter`` and ``exit`` are instantaneous.
- a straight segment between two trusted fixes close enough in time, both outside, that passes
  through a zone is a passage: one ``zone.crossed`` event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from cloud.rules.config import Thresholds
from cloud.rules.objects import ZoneSpec
from cloud.rules.state import Pending, ZoneTrack
from cloud.rules.world import ZoneEntry

__all__ = ["Emit", "advance", "on_fix", "passage"]

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
        track.pending = None
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
    """What time alone does between ``after_ms`` (excluded) and ``until_ms`` (included) while
    the asset is confirmed inside: windows start and end, dwell time passes."""
    if not track.inside or zone.kind != "zone" or until_ms <= after_ms:
        return
    assert isinstance(zone.spec, ZoneSpec)
    windows = zone.spec.windows
    if _watches(zone, "forbidden"):
        moment = max(after_ms, track.since_ms)
        while not windows.always:
            change = windows.next_change(moment)
            if change is None or change > until_ms:
                break
            if windows.active(change):
                _open(track, zone, "zone.forbidden", change, emit)
            else:
                _close(track, zone, "zone.forbidden", change, emit)
            moment = change
    if _watches(zone, "dwell") and "zone.dwell" not in track.open:
        due = track.since_ms + int(thresholds.dwell_s * 1000)
        if after_ms < due <= until_ms and windows.active(due):
            _open(track, zone, "zone.dwell", due, emit)


def passage(zone: ZoneEntry, track: ZoneTrack | None, ts_ms: int, emit: Emit) -> None:
    """A segment between two fixes outside passed through ``zone`` (at ``ts_ms``)."""
    if zone.kind != "zone" or (track is not None and track.inside):
        return
    assert isinstance(zone.spec, ZoneSpec)
    if zone.spec.trigger in ("enter", "forbidden", "dwell") and zone.spec.windows.active(ts_ms):
        emit("zone.crossed", zone.id, "open", ts_ms, {"version": zone.version, "crossed": True})
