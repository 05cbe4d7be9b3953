"""What the rules say: events about one asset and one zone, lot, trip or stop.

An event is one transition of a condition (``open``, ``update``, ``escalate``, ``close``) or an
instantaneous finding (``open`` only: an entry, a crossing, a skipped checkpoint) at an
observation time. :func:`alert_key` names the condition, so the alert service keeps one open
alert per (asset, rule, zone or lot or trip or stop); a repeat of an instantaneous finding while
its alert is open updates that alert.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

__all__ = ["CONDITIONS", "INSTANT", "Action", "Event", "alert_key"]

Action = Literal["open", "update", "escalate", "close", "withdraw"]

#: Kinds that stay open until their clearing condition (the others are instantaneous).
CONDITIONS: Final = frozenset(
    {
        "zone.forbidden",
        "zone.dwell",
        "parking.outside_lot",
        "parking.max_stay",
        "trip.off_route",
        "speed.over",
        "fatigue.continuous",
        "fatigue.night",
        "fatigue.daily",
        "fatigue.small_hours",
        "offline.silent",
        "vessel.dark",
    }
)
#: Kinds that happen at one moment and are closed by a person.
INSTANT: Final = frozenset(
    {
        "zone.enter",
        "zone.exit",
        "zone.crossed",
        "trip.early_start",
        "trip.wrong_direction",
        "trip.checkpoint_skipped",
        "trip.not_arrived",
        "fatigue.continuous_warning",
        "fatigue.night_warning",
        "fatigue.daily_warning",
        "offline.moved",
    }
)


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One thing the rules found (a JSON line of ``hazwatch rules replay``)."""

    asset: str
    kind: str  # "zone.forbidden", "parking.outside_lot", "trip.off_route", ...
    ref: str  # the zone, lot, trip or stop it is about
    action: Action
    ts: int  # observation time (UTC epoch ms)
    lat: float | None = None
    lon: float | None = None
    flags: tuple[str, ...] = ()
    details: dict[str, Any] = {}

    @property
    def rule(self) -> str:
        """``zone``, ``parking``, ``trip``, ``speed``, ``fatigue`` or ``offline``."""
        return self.kind.partition(".")[0]

    def late(self) -> Event:
        """The same event marked as found from late data."""
        if "late" in self.flags:
            return self
        return msgspec.structs.replace(self, flags=(*self.flags, "late"))


def alert_key(event: Event) -> str:
    """The alert condition of an event: one open alert per key."""
    return f"rule:{event.kind}:{event.asset}:{event.ref}"
