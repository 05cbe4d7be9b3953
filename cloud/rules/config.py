"""Rule thresholds: documented defaults, set per asset class, overridden per zone, lot, route or
trip. Never constants in the rules themselves (shared/RULES.md has their meaning).

The cloud config's ``[rules]`` table sets defaults for every class and ``[rules.classes.<class>]``
for one class; an object's ``properties.overrides`` (``{"confirm_n": 3}``) beats both for that
object. :func:`resolve` merges them; unknown keys and wrong types are errors naming the key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "CLASSES",
    "CLASS_DEFAULTS",
    "MAX_SPEED_KMH",
    "RulesConfig",
    "RulesConfigError",
    "Thresholds",
    "resolve",
]

CLASSES: Final = ("hazmat_truck", "school_bus", "coach", "fishing_vessel", "other")
#: Impossible-jump limits (RULES.md: implied speed above the class maximum).
MAX_SPEED_KMH: Final = {
    "hazmat_truck": 150.0,
    "school_bus": 150.0,
    "coach": 180.0,
    "fishing_vessel": 70.0,
    "other": 200.0,
}
_VEHICLE_FATIGUE: Final = {
    "fatigue_continuous_s": 4 * 3600.0,
    "fatigue_night_s": 2 * 3600.0,
    "fatigue_daily_s": 8 * 3600.0,
}
#: What differs per class from the :class:`Thresholds` defaults (DOMAIN.md, "Moving hazards"):
#: speed limits (0 = none), the school-bus limit in bend / slope / narrow zones, the night
#: factor of passenger classes, fatigue (vehicles; the daily limit not for school buses), and a
#: fishing vessel's two hours of allowed silence. A key set in ``[rules]`` itself beats these.
CLASS_DEFAULTS: Final[dict[str, dict[str, float]]] = {
    "hazmat_truck": {"speed_limit_kmh": 60.0, "speed_limit_expressway_kmh": 80.0,
                     **_VEHICLE_FATIGUE},
    "school_bus": {"speed_limit_kmh": 60.0, "speed_limit_expressway_kmh": 80.0,
                   "speed_limit_hazard_kmh": 20.0, "night_speed_factor": 0.8,
                   **_VEHICLE_FATIGUE, "fatigue_daily_s": 0.0},
    "coach": {"speed_limit_kmh": 80.0, "speed_limit_expressway_kmh": 100.0,
              "night_speed_factor": 0.8, **_VEHICLE_FATIGUE},
    "fishing_vessel": {"offline_s": 7200.0, "dark_zone_m": 5000.0},
    "other": {},
}  # fmt: skip


class RulesConfigError(ValueError):
    """A threshold that cannot be used; the message names the key."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Every threshold of the rules, with the defaults of shared/RULES.md."""

    # fix filters
    max_speed_kmh: float = 200.0
    hdop_max: float = 5.0
    min_sats: int = 4
    future_ms: int = 300_000
    # geofences: confirmation and hysteresis, sparse segments, dwell
    confirm_n: int = 2
    confirm_s: float = 0.0
    hysteresis_m: float = 20.0
    segment_max_s: float = 300.0
    dwell_s: float = 600.0
    # parking
    stop_speed_kmh: float = 5.0
    stop_s: float = 600.0
    escalate_s: float = 1800.0
    move_on_s: float = 60.0
    # routes and trips
    corridor_m: float = 100.0
    trip_watch_before_s: float = 3600.0
    arrival_radius_m: float = 200.0
    checkpoint_radius_m: float = 200.0
    wrong_way_m: float = 500.0
    # speed (0 = no limit): the road limit, on an ``expressway`` zone, in a ``bend`` /
    # ``slope`` / ``narrow`` zone; the factor on the road limit at night for passenger classes
    speed_limit_kmh: float = 0.0
    speed_limit_expressway_kmh: float = 0.0
    speed_limit_hazard_kmh: float = 0.0
    night_speed_factor: float = 1.0
    overspeed_s: float = 10.0
    overspeed_margin_kmh: float = 5.0
    #: an open overspeed is updated when its maximum grows this much over the last said
    overspeed_update_kmh: float = 10.0
    #: a reported speed over ``factor`` x implied + ``slack`` over a segment between these
    #: lengths is contradicted by the distance (not alarmed)
    speed_check_min_s: float = 10.0
    speed_check_max_s: float = 120.0
    speed_check_factor: float = 2.0
    speed_check_slack_kmh: float = 20.0
    # the night window (Beijing hours) of the night speed factor and night fatigue
    night_start_h: float = 22.0
    night_end_h: float = 6.0
    # fatigue (0 = not watched): continuous driving, its pre-warning, night, per day; a rest;
    # a data gap after a driving fix counts as driving for at most ``fatigue_gap_s``
    fatigue_continuous_s: float = 0.0
    fatigue_warning_s: float = 900.0
    fatigue_night_s: float = 0.0
    fatigue_daily_s: float = 0.0
    rest_s: float = 1200.0
    fatigue_gap_s: float = 600.0
    #: long-distance coaches (an asset's ``long_distance``) may not move in this window
    small_hours_start_h: float = 2.0
    small_hours_end_h: float = 5.0
    # offline: silent while last seen moving; moved while offline
    offline_s: float = 600.0
    offline_moved_gap_s: float = 600.0
    offline_moved_m: float = 1000.0
    #: a silence that begins within this distance of a restricted or moratorium zone (or
    #: inside one) is also ``vessel.dark`` (0: not watched; fishing vessels 5 km)
    dark_zone_m: float = 0.0
    # late data: checkpoints of the rule state for re-evaluation
    checkpoint_every_s: float = 1800.0
    checkpoint_horizon_s: float = 6 * 3600.0

    def merged(self, overrides: Mapping[str, Any] | None, *, where: str) -> Thresholds:
        """These thresholds with ``overrides`` applied (checked: known key, right type)."""
        if not overrides:
            return self
        known = {f.name: f for f in dataclasses.fields(self)}
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            if key not in known:
                raise RulesConfigError(f"{where}.{key}: unknown threshold")
            changes[key] = _checked(value, type(getattr(self, key)), f"{where}.{key}")
        return dataclasses.replace(self, **changes)


def _checked(value: Any, kind: type, where: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RulesConfigError(f"{where}: a number is required, got {value!r}")
    if value < 0 or value != value or value in (float("inf"), float("-inf")):
        raise RulesConfigError(f"{where}: must be a finite number >= 0")
    if kind is int:
        if value != int(value):
            raise RulesConfigError(f"{where}: a whole number is required")
        return int(value)
    return float(value)


@dataclass(frozen=True, slots=True)
class RulesConfig:
    """Thresholds per asset class (``[rules]`` of the cloud config)."""

    classes: dict[str, Thresholds] = field(default_factory=dict)
    default: Thresholds = field(default_factory=Thresholds)

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any] | None) -> RulesConfig:
        """``{"confirm_n": 3, "classes": {"coach": {"max_speed_kmh": 180}}}`` -> config.

        Raises:
            RulesConfigError: an unknown key, class or a bad value, named.
        """
        table = dict(table or {})
        per_class = table.pop("classes", {}) or {}
        if not isinstance(per_class, Mapping):
            raise RulesConfigError("rules.classes: a table of classes")
        base = Thresholds().merged(table, where="rules")
        classes = {}
        for name in CLASSES:
            own = per_class.get(name, {})
            if not isinstance(own, Mapping):
                raise RulesConfigError(f"rules.classes.{name}: a table of thresholds")
            with_class = _class_base(base, name, set(table))
            classes[name] = with_class.merged(own, where=f"rules.classes.{name}")
        unknown = set(per_class) - set(CLASSES)
        if unknown:
            raise RulesConfigError(f"rules.classes.{sorted(unknown)[0]}: unknown class")
        return cls(classes=classes, default=base)

    def for_class(self, asset_class: str | None) -> Thresholds:
        """The thresholds of a class (the defaults for an unregistered asset)."""
        if asset_class is None:
            return self.default
        found = self.classes.get(asset_class)
        if found is None:
            return _class_base(self.default, asset_class, set())
        return found


def _class_base(base: Thresholds, name: str, given: set[str]) -> Thresholds:
    """``base`` with a class's own defaults, but for the keys ``given`` in ``[rules]``."""
    own: dict[str, Any] = {"max_speed_kmh": MAX_SPEED_KMH.get(name, 200.0)}
    own.update(CLASS_DEFAULTS.get(name, {}))
    return dataclasses.replace(base, **{k: v for k, v in own.items() if k not in given})


def resolve(base: Thresholds, *overrides: Mapping[str, Any] | None, where: str) -> Thresholds:
    """``base`` with each override applied in turn (a zone's, then a trip's...)."""
    result = base
    for override in overrides:
        result = result.merged(override, where=where)
    return result
