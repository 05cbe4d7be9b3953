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

__all__ = ["CLASSES", "MAX_SPEED_KMH", "RulesConfig", "RulesConfigError", "Thresholds", "resolve"]

CLASSES: Final = ("hazmat_truck", "school_bus", "coach", "fishing_vessel", "other")
#: Impossible-jump limits (RULES.md: implied speed above the class maximum).
MAX_SPEED_KMH: Final = {
    "hazmat_truck": 150.0,
    "school_bus": 150.0,
    "coach": 180.0,
    "fishing_vessel": 70.0,
    "other": 200.0,
}


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
            with_speed = dataclasses.replace(base, max_speed_kmh=MAX_SPEED_KMH[name])
            if "max_speed_kmh" in table:
                with_speed = base
            classes[name] = with_speed.merged(own, where=f"rules.classes.{name}")
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
            return dataclasses.replace(
                self.default, max_speed_kmh=MAX_SPEED_KMH.get(asset_class, 200.0)
            )
        return found


def resolve(base: Thresholds, *overrides: Mapping[str, Any] | None, where: str) -> Thresholds:
    """``base`` with each override applied in turn (a zone's, then a trip's...)."""
    result = base
    for override in overrides:
        result = result.merged(override, where=where)
    return result
