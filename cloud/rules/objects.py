"""What zones, lots, routes and trips say to the rules: their properties, read and checked.

A geo object (:class:`cloud.models.GeoObject`, what the API stores) carries free-form
``properties``; the rules read the keys below, and :func:`read` checks them, naming the key and
what is wrong (the API answers 422 with that; replay stops). WGS-84 geometry comes already
validated (:func:`cloud.rules.geometry.parse_geometry`).

Zones (Polygon or MultiPolygon; a circle is a Point with ``radius_m``; a corridor is a
LineString with ``width_m``, its total width):

- ``zone_kind``: ``restricted``, ``school``, ``water_source``, ``chemical_park``,
  ``fishing_moratorium``, ``port``, ``custom`` (default), and two kinds that raise nothing
  themselves: ``no_stop_alert`` (toll gates, queues: no parking alert inside), ``expressway``
  (its speed limit applies inside) and ``bend``, ``slope``, ``narrow`` (school buses: 20 km/h);
- ``classes``: the asset classes it applies to (default: all);
- ``trigger``: ``enter``, ``exit``, ``dwell`` (inside longer than ``dwell_s``), ``forbidden``
  (an alert for as long as the asset is inside) or ``none``; default by kind;
- ``windows``: when it applies (:mod:`cloud.rules.windows`); default always;
- ``effective_from_ms``: this version's geometry and settings apply from then on (older
  versions stay for replay);
- ``severity``: ``info``, ``warning`` (default) or ``critical``;
- ``overrides``: thresholds of :class:`cloud.rules.config.Thresholds` for this zone.

Lots (polygons): ``capacity``, ``max_stay_s``, ``overrides``. Routes (LineString):
``corridor_m`` (one total width, or one per section), ``overrides``. Trips: a MultiPoint of the
origin, ordered checkpoints and destination, with ``asset_id``, ``route_id``, ``start_ms``,
``end_ms`` (the approved window), ``checkpoint_radius_m``, ``arrival_radius_m``, ``overrides``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cloud.rules.config import CLASSES, RulesConfigError, Thresholds
from cloud.rules.windows import WindowError, Windows

__all__ = [
    "DEFAULT_TRIGGER",
    "SEVERITIES",
    "TRIGGERS",
    "ZONE_KINDS",
    "LotSpec",
    "ObjectError",
    "RouteSpec",
    "TripSpec",
    "ZoneSpec",
    "read",
]

ZONE_KINDS: Final = (
    "restricted", "school", "water_source", "chemical_park", "fishing_moratorium", "port",
    "custom", "no_stop_alert", "expressway", "bend", "slope", "narrow",
)  # fmt: skip
TRIGGERS: Final = ("enter", "exit", "dwell", "forbidden", "none")
SEVERITIES: Final = ("info", "warning", "critical")
DEFAULT_TRIGGER: Final = {
    "restricted": "forbidden",
    "water_source": "forbidden",
    "fishing_moratorium": "forbidden",
    "school": "enter",
    "chemical_park": "enter",
    "port": "enter",
    "custom": "enter",
    "no_stop_alert": "none",
    "expressway": "none",
    "bend": "none",
    "slope": "none",
    "narrow": "none",
}
MAX_EPOCH_MS: Final = 32_503_680_000_000


class ObjectError(ValueError):
    """A property the rules cannot use.

    Attributes:
        field: the property's path (``properties.windows[0].daily``).
        detail: what is wrong.
    """

    def __init__(self, field: str, detail: str) -> None:
        self.field = field
        self.detail = detail
        super().__init__(f"{field}: {detail}")


@dataclass(frozen=True, slots=True)
class ZoneSpec:
    zone_kind: str
    classes: frozenset[str] | None
    trigger: str
    windows: Windows
    effective_from_ms: int
    severity: str
    overrides: Mapping[str, Any]
    radius_m: float | None = None
    width_m: float | None = None


@dataclass(frozen=True, slots=True)
class LotSpec:
    capacity: int | None
    max_stay_s: float | None
    overrides: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RouteSpec:
    corridor_m: tuple[float, ...] | None
    overrides: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TripSpec:
    asset_id: str
    route_id: str
    start_ms: int
    end_ms: int
    checkpoint_radius_m: float | None
    arrival_radius_m: float | None
    overrides: Mapping[str, Any]


def _choice(props: Mapping[str, Any], key: str, options: Sequence[str], default: str) -> str:
    value = props.get(key, default)
    if value not in options:
        raise ObjectError(f"properties.{key}", f"{value!r}: use one of {', '.join(options)}")
    return str(value)


def _number(props: Mapping[str, Any], key: str, *, integer: bool = False) -> float | None:
    value = props.get(key)
    if value is None:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    if not ok or (integer and value != int(value)) or value != value or value == float("inf"):
        kind = "a whole number" if integer else "a number"
        raise ObjectError(f"properties.{key}", f"{kind} > 0, got {value!r}")
    return float(value)


def _epoch(props: Mapping[str, Any], key: str, *, required: bool) -> int | None:
    value = props.get(key)
    if value is None:
        if required:
            raise ObjectError(f"properties.{key}", "required (UTC epoch ms)")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_EPOCH_MS:
        raise ObjectError(f"properties.{key}", f"UTC epoch ms, an integer, got {value!r}")
    return value


def _overrides(props: Mapping[str, Any]) -> Mapping[str, Any]:
    value = props.get("overrides") or {}
    if not isinstance(value, Mapping):
        raise ObjectError("properties.overrides", "an object of thresholds")
    try:
        Thresholds().merged(value, where="properties.overrides")
    except RulesConfigError as exc:
        field, _, detail = str(exc).partition(": ")
        raise ObjectError(field, detail) from exc
    return dict(value)


def _classes(props: Mapping[str, Any]) -> frozenset[str] | None:
    value = props.get("classes")
    if value is None:
        return None
    if not isinstance(value, list) or not value or any(c not in CLASSES for c in value):
        raise ObjectError("properties.classes", f"a non-empty list of {', '.join(CLASSES)}")
    return frozenset(value)


def _zone(props: Mapping[str, Any], geometry_type: str, default_from_ms: int) -> ZoneSpec:
    zone_kind = _choice(props, "zone_kind", ZONE_KINDS, "custom")
    try:
        windows = Windows.parse(props.get("windows"))
    except WindowError as exc:
        raise ObjectError("properties.windows", str(exc)) from exc
    radius = _number(props, "radius_m")
    width = _number(props, "width_m")
    if geometry_type == "Point" and radius is None:
        raise ObjectError("properties.radius_m", "a circle zone (a Point) needs radius_m")
    if geometry_type in ("LineString", "MultiLineString") and width is None:
        raise ObjectError("properties.width_m", "a corridor zone (a line) needs width_m")
    effective = _epoch(props, "effective_from_ms", required=False)
    return ZoneSpec(
        zone_kind=zone_kind,
        classes=_classes(props),
        trigger=_choice(props, "trigger", TRIGGERS, DEFAULT_TRIGGER[zone_kind]),
        windows=windows,
        effective_from_ms=default_from_ms if effective is None else effective,
        severity=_choice(props, "severity", SEVERITIES, "warning"),
        overrides=_overrides(props),
        radius_m=radius,
        width_m=width,
    )


def _route(props: Mapping[str, Any], sections: int) -> RouteSpec:
    value = props.get("corridor_m")
    widths: tuple[float, ...] | None = None
    if value is not None:
        items = value if isinstance(value, list) else [value]
        ok = bool(items) and all(
            isinstance(w, int | float) and not isinstance(w, bool) and 0 < w < float("inf")
            for w in items
        )
        if not ok:
            raise ObjectError("properties.corridor_m", "widths are metres > 0")
        if isinstance(value, list) and len(items) not in (1, sections):
            detail = f"{len(items)} widths for {sections} sections: give one, or one per section"
            raise ObjectError("properties.corridor_m", detail)
        widths = tuple(float(w) for w in items)
    return RouteSpec(corridor_m=widths, overrides=_overrides(props))


def _trip(props: Mapping[str, Any]) -> TripSpec:
    asset_id, route_id = props.get("asset_id"), props.get("route_id")
    for key, value in (("asset_id", asset_id), ("route_id", route_id)):
        if not isinstance(value, str) or not value:
            raise ObjectError(f"properties.{key}", "required (an id)")
    start = _epoch(props, "start_ms", required=True)
    end = _epoch(props, "end_ms", required=True)
    assert start is not None
    assert end is not None
    if end <= start:
        raise ObjectError("properties.end_ms", "must be after start_ms")
    return TripSpec(
        asset_id=str(asset_id),
        route_id=str(route_id),
        start_ms=start,
        end_ms=end,
        checkpoint_radius_m=_number(props, "checkpoint_radius_m"),
        arrival_radius_m=_number(props, "arrival_radius_m"),
        overrides=_overrides(props),
    )


def _lot(props: Mapping[str, Any]) -> LotSpec:
    capacity = _number(props, "capacity", integer=True)
    return LotSpec(
        capacity=None if capacity is None else int(capacity),
        max_stay_s=_number(props, "max_stay_s"),
        overrides=_overrides(props),
    )


def read(
    kind: str,
    properties: Mapping[str, Any],
    geometry: Mapping[str, Any],
    *,
    default_from_ms: int = 0,
) -> ZoneSpec | LotSpec | RouteSpec | TripSpec:
    """The rules' view of a geo object's properties.

    Args:
        kind: ``zone``, ``lot``, ``route`` or ``trip``.
        properties: the object's properties.
        geometry: its GeoJSON geometry (the type decides circle or corridor zones).
        default_from_ms: when a zone version without ``effective_from_ms`` applies from.

    Raises:
        ObjectError: naming the property and what is wrong.
    """
    geometry_type = str(geometry.get("type", ""))
    if kind == "zone":
        return _zone(properties, geometry_type, default_from_ms)
    if kind == "lot":
        return _lot(properties)
    if kind == "route":
        coords = geometry.get("coordinates") or []
        parts = [coords] if geometry_type == "LineString" else list(coords)
        sections = sum(max(len(part) - 1, 0) for part in parts)
        return _route(properties, max(sections, 1))
    if kind == "trip":
        return _trip(properties)
    raise ObjectError("kind", f"{kind!r} is not a kind of geo object")
