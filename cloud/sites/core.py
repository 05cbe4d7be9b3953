"""Pure site-point watch: thresholds, stale, frozen and rate of rise, as state transitions.

Nothing here does I/O or reads a clock. :func:`on_reading` takes a point's previous state and a
reading and returns the new state and the changes (raise/clear of a condition);
:func:`on_clock` does the same for the clock (stale points). Conditions of a point:

- ``LL``, ``L``, ``H``, ``HH``: each level its own condition, as on the edge
  (edge/alarms/thresholds.py): a high level is entered at ``value >= limit`` and left below
  ``limit - deadband``, a low one at ``value <= limit`` and left above ``limit + deadband``; a
  level raises once it held ``delay`` (clears are immediate). Readings of another quality than
  ``good`` hold the levels.
- ``stale``: no reading for ``stale_factor`` x the poll period (on the clock); any reading
  with a value clears it.
- ``frozen``: good readings kept the same value for longer than allowed; decided on readings
  (so a silent point is stale, not frozen); a changed value clears it.
- ``rate``: the value rose faster than ``rate_pct_per_min`` % of the span per minute over the
  rate window (measured from the oldest reading in the window, once it covers at least half
  of it); clears below ``rate_clear_ratio`` of the limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import msgspec

from cloud.models import Point
from cloud.sites.config import KINDS, SitesConfig

__all__ = [
    "LEVELS",
    "Change",
    "PointState",
    "Profile",
    "decode_state",
    "encode_state",
    "kind_of",
    "on_clock",
    "on_reading",
    "profile",
]

LEVELS: Final = ("LL", "L", "H", "HH")
_HIGH: Final = frozenset({"H", "HH"})
#: Readings kept for the rate of rise at most (per point).
_WINDOW_MAX: Final = 120
_UNIT_KINDS: Final = {
    "%lel": "gas",
    "lel": "gas",
    "ppm": "toxic",
    "mg/m3": "toxic",
    "%vol": "oxygen",
    "m": "level",
    "mm": "level",
    "cm": "level",
    "mpa": "pressure",
    "kpa": "pressure",
    "pa": "pressure",
    "bar": "pressure",
    "psi": "pressure",
    "°c": "temperature",
    "℃": "temperature",
    "degc": "temperature",
    "c": "temperature",
    "k": "temperature",
    "m3/h": "flow",
    "t/h": "flow",
}
#: ISA-5.1 tag letters: L(evel), P(ressure), T(emperature), F(low), A/G (analysis, gas).
_TAG_KINDS: Final = {"L": "level", "P": "pressure", "T": "temperature", "F": "flow"}
_TAG_RE: Final = re.compile(r"([A-Z]+)[-_]?\d*$")


def kind_of(point: Point) -> str:
    """The point's kind: its own ``kind``, else told by its unit, else by its tag's letters
    (``T101.LT01`` is a level), else ``other``."""
    own = point.limits.kind
    if own in KINDS:
        return own
    by_unit = _UNIT_KINDS.get(point.unit.strip().lower().replace(" ", ""))
    if by_unit is not None:
        return by_unit
    match = _TAG_RE.search(point.tag.rsplit(".", 1)[-1].upper())
    if match and len(match.group(1)) >= 2 and match.group(1)[-1] in "TI":
        letters = match.group(1)
        if letters[0] in "AG":
            return "gas"
        return _TAG_KINDS.get(letters[0], "other")
    return "other"


@dataclass(frozen=True, slots=True)
class Profile:
    """A point's settings with the defaults applied (times in ms, ``0`` disables)."""

    kind: str
    limits: dict[str, float]
    deadband: dict[str, float]
    delay_ms: int
    stale_ms: int
    frozen_ms: int
    span: tuple[float, float] | None
    rate_pct_per_min: float
    rate_window_ms: int
    rate_clear_ratio: float


def profile(point: Point, config: SitesConfig) -> Profile:
    """Resolve a point's settings: its own in the registry, else the configured defaults."""
    own = point.limits
    kind = kind_of(point)
    limits = {
        level: value
        for level, value in zip(LEVELS, (own.ll, own.l, own.h, own.hh), strict=True)
        if value is not None
    }
    if not limits and point.unit.strip().upper() == "%LEL":
        limits = {"H": config.gas_first_pct_lel, "HH": config.gas_second_pct_lel}
    span = _span(point, limits)
    deadband = {
        level: own.deadband
        if own.deadband is not None
        else abs((span[1] - span[0]) if span else limit) * config.deadband_pct / 100
        for level, limit in limits.items()
    }
    poll_s = own.poll_s if own.poll_s is not None else config.poll_s
    frozen_s = own.frozen_s
    if frozen_s is None:
        frozen_s = float(getattr(config, f"frozen_{kind}_s", config.frozen_other_s))
    rate = own.rate_pct_per_min
    if rate is None:
        rate = config.rate_pct_per_min if kind in ("level", "pressure") else 0.0
    return Profile(
        kind=kind,
        limits=limits,
        deadband=deadband,
        delay_ms=_ms(own.delay_s if own.delay_s is not None else config.delay_s),
        stale_ms=_ms(poll_s * config.stale_factor),
        frozen_ms=_ms(frozen_s),
        span=span,
        rate_pct_per_min=rate if span is not None else 0.0,
        rate_window_ms=_ms(config.rate_window_s),
        rate_clear_ratio=config.rate_clear_ratio,
    )


def _span(point: Point, limits: dict[str, float]) -> tuple[float, float] | None:
    """The measuring range: ``span_lo..span_hi``, else LL..HH when both are set."""
    lo, hi = point.limits.span_lo, point.limits.span_hi
    if lo is None or hi is None:
        lo, hi = limits.get("LL"), limits.get("HH")
    if lo is None or hi is None or hi <= lo:
        return None
    return (lo, hi)


def _ms(seconds: float) -> int:
    return max(0, int(seconds * 1000))


class PointState(msgspec.Struct, kw_only=True):
    """What the watch keeps of a point in the live state (shared by workers, kept across
    restarts): the newest reading's time and gateway, the newest good value and since when it
    has not changed, the conditions raised, levels pending their delay, the rate window."""

    last_ms: int = -1
    gateway: str | None = None
    value: float | None = None
    changed_ms: int = -1
    active: list[str] = []
    pending: dict[str, int] = {}
    window: list[tuple[int, float]] = []


def encode_state(state: PointState) -> bytes:
    """The state as stored."""
    return msgspec.json.encode(state)


def decode_state(raw: bytes | None) -> PointState:
    """A stored state (a fresh one when nothing is stored)."""
    return PointState() if raw is None else msgspec.json.decode(raw, type=PointState)


Condition = Literal["LL", "L", "H", "HH", "stale", "frozen", "rate"]


@dataclass(frozen=True, slots=True)
class Change:
    """A condition of a point raised or cleared at ``ts_ms`` (observation time, or the clock
    for ``stale``)."""

    action: Literal["raise", "clear"]
    condition: str
    ts_ms: int
    value: float | None = None
    limit: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def on_reading(
    prof: Profile,
    state: PointState,
    *,
    ts_ms: int,
    value: float | None,
    good: bool,
    gateway: str | None = None,
) -> tuple[PointState, list[Change]]:
    """Feed one reading (from ``gateway``); readings not newer than the newest seen change
    nothing (late or repeated: the live state, not this worker, says what is newest)."""
    if value is None or ts_ms <= state.last_ms:
        return state, []
    new = msgspec.structs.replace(
        state,
        last_ms=ts_ms,
        active=list(state.active),
        pending=dict(state.pending),
        gateway=gateway if gateway is not None else state.gateway,
    )
    changes: list[Change] = []
    if "stale" in new.active:
        new.active.remove("stale")
        changes.append(Change("clear", "stale", ts_ms, value, detail={"last_ms": state.last_ms}))
    if not good:
        return new, changes
    changes += _frozen(prof, new, ts_ms, value)
    changes += _levels(prof, new, ts_ms, value)
    changes += _rate(prof, new, ts_ms, value)
    return new, changes


def on_clock(prof: Profile, state: PointState, *, now_ms: int) -> tuple[PointState, list[Change]]:
    """The clock: raise ``stale`` for a point silent longer than its profile allows."""
    silent = now_ms - state.last_ms
    if not prof.stale_ms or state.last_ms < 0 or silent <= prof.stale_ms:
        return state, []
    if "stale" in state.active:
        return state, []
    new = msgspec.structs.replace(state, active=[*state.active, "stale"])
    detail = {"last_ms": state.last_ms, "silent_s": silent / 1000, "stale_s": prof.stale_ms / 1000}
    return new, [Change("raise", "stale", now_ms, state.value, detail=detail)]


def _frozen(prof: Profile, new: PointState, ts_ms: int, value: float) -> list[Change]:
    if new.value is None or value != new.value:
        new.value, new.changed_ms = value, ts_ms
        if "frozen" in new.active:
            new.active.remove("frozen")
            return [Change("clear", "frozen", ts_ms, value)]
        return []
    held = ts_ms - new.changed_ms
    if prof.frozen_ms and held > prof.frozen_ms and "frozen" not in new.active:
        new.active.append("frozen")
        detail = {"since_ms": new.changed_ms, "held_s": held / 1000}
        return [Change("raise", "frozen", ts_ms, value, detail=detail)]
    return []


def _levels(prof: Profile, new: PointState, ts_ms: int, value: float) -> list[Change]:
    changes = []
    for level in LEVELS:
        limit = prof.limits.get(level)
        active = level in new.active
        if limit is None:
            new.pending.pop(level, None)
            if active:  # the limit was removed from the registry: its condition ends
                new.active.remove(level)
                changes.append(Change("clear", level, ts_ms, value))
            continue
        inside = _in_condition(level, limit, value, active=active, deadband=prof.deadband[level])
        if active and not inside:
            new.active.remove(level)
            changes.append(Change("clear", level, ts_ms, value, limit))
        elif not active and inside:
            since = new.pending.setdefault(level, ts_ms)
            if ts_ms - since >= prof.delay_ms:
                new.pending.pop(level)
                new.active.append(level)
                changes.append(Change("raise", level, ts_ms, value, limit, {"since_ms": since}))
        elif not inside:
            new.pending.pop(level, None)
    return changes


def _in_condition(level: str, limit: float, value: float, *, active: bool, deadband: float) -> bool:
    if level in _HIGH:
        return value >= limit - deadband if active else value >= limit
    return value <= limit + deadband if active else value <= limit


def _rate(prof: Profile, new: PointState, ts_ms: int, value: float) -> list[Change]:
    if not prof.rate_pct_per_min or prof.span is None:
        return []
    start = ts_ms - prof.rate_window_ms
    new.window = [s for s in new.window if s[0] >= start][-(_WINDOW_MAX - 1) :]
    new.window.append((ts_ms, value))
    first_ms, first_value = new.window[0]
    covered = ts_ms - first_ms
    if covered * 2 < prof.rate_window_ms or covered <= 0:
        return []
    lo, hi = prof.span
    rate = (value - first_value) / (hi - lo) * 100 / (covered / 60_000)
    limit = prof.rate_pct_per_min
    active = "rate" in new.active
    detail = {"rate_pct_per_min": round(rate, 3), "window_s": covered / 1000}
    if not active and rate >= limit:
        new.active.append("rate")
        return [Change("raise", "rate", ts_ms, value, limit, detail)]
    if active and rate < limit * prof.rate_clear_ratio:
        new.active.remove("rate")
        return [Change("clear", "rate", ts_ms, value, limit, detail)]
    return []
