"""What the rules read of a zone's, lot's, route's and trip's properties: documented, and checked
at the boundary by the rules' own reader.

Every incoming Feature goes through :func:`cloud.rules.objects.read`, the very function that
builds the rules' world, so whatever the API accepts the rules can use, and a property they
cannot use answers a 422 naming it. :func:`read_checked` adds what only the boundary knows:
upper bounds on sizes and thresholds that the rules would take but nobody means (a circle of
10,000 km, a stop of a century), and ``radius_m`` / ``width_m`` only on the shapes they shape.

The mixins below only document: their fields tell the OpenAPI document what the reader reads,
for the request bodies (:mod:`cloud.api.geo`) and the answers (:mod:`cloud.api.schemas`). Their
types are lenient on purpose (the reader, not pydantic, judges a request).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Annotated, Any, Final

from pydantic import BaseModel, Field, WithJsonSchema, create_model

from cloud.rules.config import CLASSES, Thresholds
from cloud.rules.objects import (
    DEFAULT_TRIGGER,
    SEVERITIES,
    TRIGGERS,
    ZONE_KINDS,
    LotSpec,
    ObjectError,
    RouteSpec,
    TripSpec,
    ZoneSpec,
    read,
)

__all__ = [
    "MAX_CAPACITY",
    "MAX_RADIUS_M",
    "MAX_STAY_S",
    "MAX_STOP_RADIUS_M",
    "MAX_WIDTH_M",
    "REQUIRED_OF_KIND",
    "RULES_OF_KIND",
    "THRESHOLD_DOCS",
    "LotRules",
    "RouteRules",
    "TripRules",
    "ZoneRules",
    "geometry_schema",
    "override_limit",
    "properties_schema",
    "read_checked",
]

#: A circle zone's largest radius (a city, not a province).
MAX_RADIUS_M: Final = 100_000.0
#: The widest corridor, of a zone or a route section (total width).
MAX_WIDTH_M: Final = 10_000.0
#: The largest checkpoint or arrival radius of a trip.
MAX_STOP_RADIUS_M: Final = 10_000.0
#: The most vehicles a lot holds.
MAX_CAPACITY: Final = 100_000
#: The longest stay a lot allows (30 days).
MAX_STAY_S: Final = 30 * 86_400.0
#: Upper bound of a threshold override by the unit its name ends with (STYLE: units in names).
_OVERRIDE_LIMITS: Final = (
    ("_kmh", 1_000.0),
    ("_ms", 86_400_000.0),
    ("_s", 30 * 86_400.0),
    ("_m", 100_000.0),
    ("_h", 24.0),
)
_OTHER_LIMIT: Final = 1_000.0

#: What each threshold means (``overrides`` of a zone, lot, route or trip).
THRESHOLD_DOCS: Final = {
    "max_speed_kmh": "impossible jump: a fix implying a faster speed from the last one is dropped",
    "hdop_max": "a fix with a larger HDOP is low quality (moves the map, decides nothing)",
    "min_sats": "a fix with fewer satellites is low quality",
    "future_ms": "a fix this far ahead of its receive time is dropped",
    "confirm_n": "consecutive trusted fixes that confirm an entry, exit, off route, arrival",
    "confirm_s": "time the confirming fixes must span at least",
    "hysteresis_m": "one confirming fix must lie this far past the boundary",
    "segment_max_s": "two fixes at most this far apart test the segment between them (crossed)",
    "dwell_s": "inside longer than this: a `dwell` zone's alert",
    "stop_speed_kmh": "under this speed the asset is stopped (over it, moving)",
    "stop_s": "stopped this long is a stop",
    "escalate_s": "a stop outside the lots escalates this much later",
    "move_on_s": "moving this long ends a stop",
    "corridor_m": "a route's corridor width (total) where it gives none",
    "trip_watch_before_s": "a trip is watched from this long before its window starts",
    "arrival_radius_m": "arrival: confirmed within this distance of the destination",
    "checkpoint_radius_m": "a checkpoint is passed within this distance",
    "wrong_way_m": "progress falling back more than this is driving the wrong way",
    "speed_limit_kmh": "the speed limit off expressways (0: none); a zone's own limit inside it",
    "speed_limit_expressway_kmh": "the speed limit inside an `expressway` zone (0: none)",
    "speed_limit_hazard_kmh": "a school bus's limit in `bend`, `slope` and `narrow` zones",
    "night_speed_factor": "the road limit at night is multiplied by this (passenger classes)",
    "overspeed_s": "over the limit at least this long (two fixes or more) opens an overspeed",
    "overspeed_margin_kmh": "an overspeed closes under the limit minus this, for `overspeed_s`",
    "overspeed_update_kmh": "an open overspeed is updated when its maximum grows this much",
    "speed_check_min_s": "a reported speed is checked against the distance over at least this",
    "speed_check_max_s": "... and at most this (longer segments say nothing of the speed)",
    "speed_check_factor": "a reported speed over this times the implied one (plus the slack) is "
    "contradicted: counted, not alarmed",
    "speed_check_slack_kmh": "the slack of that check",
    "night_start_h": "the night window starts at this hour (Beijing)",
    "night_end_h": "the night window ends at this hour (Beijing)",
    "fatigue_continuous_s": "continuous driving longer than this without a rest (0: not watched)",
    "fatigue_warning_s": "the fatigue pre-warning comes this long before the limit",
    "fatigue_night_s": "continuous driving within the night window longer than this",
    "fatigue_daily_s": "driving per Beijing calendar day longer than this (0: not watched)",
    "rest_s": "stopped at least this long is a rest (it resets continuous driving)",
    "fatigue_gap_s": "a driving fix counts as driving until the next fix, for at most this",
    "small_hours_start_h": "a long-distance coach moving from this hour (Beijing)...",
    "small_hours_end_h": "... to this hour: fatigue.small_hours",
    "offline_s": "silent longer than this while last seen moving, outside lots: offline",
    "offline_moved_gap_s": "after a silence of at least this, the first fix is checked for a move",
    "offline_moved_m": "... farther than this from the last fix: moved while offline",
    "dark_zone_m": "a silence beginning this near a restricted or moratorium zone is also a "
    "vessel gone dark there (0: not watched)",
    "checkpoint_every_s": "the rule state is checkpointed this often (for late data)",
    "checkpoint_horizon_s": "checkpoints are kept this long (older late data is judged from "
    "the oldest)",
}


def override_limit(name: str) -> float:
    """The largest value the API takes for the threshold ``name``."""
    for suffix, limit in _OVERRIDE_LIMITS:
        if name.endswith(suffix):
            return limit
    return _OTHER_LIMIT


# -- reading ------------------------------------------------------------------------------------


def read_checked(
    kind: str, props: Mapping[str, Any], geometry: Mapping[str, Any], *, default_from_ms: int
) -> ZoneSpec | LotSpec | RouteSpec | TripSpec:
    """The rules' view of an incoming Feature's properties, within the API's bounds.

    Raises:
        ObjectError: naming the property (``properties.radius_m``) and what is wrong.
    """
    spec = read(kind, props, geometry, default_from_ms=default_from_ms)
    shape = str(geometry.get("type", ""))
    if isinstance(spec, ZoneSpec):
        _zone_shape(spec, shape)
    for key, value, limit in _sizes(spec):
        if value is not None and value > limit:
            raise ObjectError(f"properties.{key}", f"at most {limit:g}, got {value:g}")
    for key, value in spec.overrides.items():
        limit = override_limit(key)
        if value > limit:
            raise ObjectError(f"properties.overrides.{key}", f"at most {limit:g}, got {value:g}")
    return spec


def _zone_shape(spec: ZoneSpec, shape: str) -> None:
    if spec.radius_m is not None and shape != "Point":
        raise ObjectError("properties.radius_m", f"is for a circle zone (a Point), not a {shape}")
    if spec.width_m is not None and shape not in ("LineString", "MultiLineString"):
        raise ObjectError("properties.width_m", f"is for a corridor zone (a line), not a {shape}")


def _sizes(
    spec: ZoneSpec | LotSpec | RouteSpec | TripSpec,
) -> list[tuple[str, float | None, float]]:
    if isinstance(spec, ZoneSpec):
        return [("radius_m", spec.radius_m, MAX_RADIUS_M), ("width_m", spec.width_m, MAX_WIDTH_M)]
    if isinstance(spec, LotSpec):
        capacity = None if spec.capacity is None else float(spec.capacity)
        return [("capacity", capacity, MAX_CAPACITY), ("max_stay_s", spec.max_stay_s, MAX_STAY_S)]
    if isinstance(spec, RouteSpec):
        widest = max(spec.corridor_m) if spec.corridor_m else None
        return [("corridor_m", widest, MAX_WIDTH_M)]
    return [
        ("checkpoint_radius_m", spec.checkpoint_radius_m, MAX_STOP_RADIUS_M),
        ("arrival_radius_m", spec.arrival_radius_m, MAX_STOP_RADIUS_M),
    ]


# -- documentation ------------------------------------------------------------------------------


def _extra(more: dict[str, Any], schema: dict[str, Any]) -> None:
    schema.pop("default", None)
    schema.update(more)


def _prop(description: str, *, examples: list[Any], **schema: Any) -> Any:
    """A documented property, left out when not given (never ``null``)."""
    return Field(
        default=None,
        description=description,
        examples=examples,
        json_schema_extra=functools.partial(_extra, schema),
    )


def _overrides_schema() -> dict[str, Any]:
    defaults = Thresholds()
    properties = {}
    for field in dataclasses.fields(defaults):
        value = getattr(defaults, field.name)
        properties[field.name] = {
            "type": "integer" if isinstance(value, int) else "number",
            "minimum": 0,
            "maximum": override_limit(field.name),
            "description": f"{THRESHOLD_DOCS.get(field.name, field.name)}; default {value:g}",
        }
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "description": "Thresholds of the rules for this object, over those of the cloud "
        "config (which sets defaults per asset class; the defaults named are the global ones).",
        "examples": [{"confirm_n": 3, "hysteresis_m": 30}],
    }


_WINDOW: Final = {
    "type": "object",
    "description": "Daily, in Beijing time (across midnight when the end is not after the "
    'start): `{"daily": "22:00-06:00"}` or `{"from": "22:00", "to": "06:00"}`. Or a season '
    'each year: `{"from": "05-01 12:00", "to": "09-16 12:00"}` (MM-DD or MM-DD HH:MM, across '
    "new year when the end comes first). Start included, end excluded.",
    "anyOf": [
        {
            "type": "object",
            "required": ["daily"],
            "properties": {"daily": {"type": "string", "examples": ["22:00-06:00"]}},
        },
        {
            "type": "object",
            "required": ["from", "to"],
            "properties": {
                "from": {"type": "string", "examples": ["22:00", "05-01 12:00"]},
                "to": {"type": "string", "examples": ["06:00", "09-16 12:00"]},
            },
        },
    ],
}
_WINDOWS: Final = {
    "type": "array",
    "items": _WINDOW,
    "description": "When the zone applies (any of these windows; none or left out: always). "
    "A window that begins while an asset is inside opens the condition at its start.",
    "examples": [[{"daily": "22:00-06:00"}], [{"from": "05-01 12:00", "to": "09-16 12:00"}]],
}
Overrides = Annotated[dict[str, float], WithJsonSchema(_overrides_schema())]
_TRIGGER_DEFAULTS = ", ".join(f"{k}: {v}" for k, v in DEFAULT_TRIGGER.items())


class ZoneRules(BaseModel):
    """What the rules read of a zone."""

    zone_kind: str = _prop(
        "what the zone is: `no_stop_alert` (toll gates, queues: no parking alert inside) and "
        "`expressway` raise nothing themselves. Default `custom`.",
        examples=["restricted"],
        enum=list(ZONE_KINDS),
    )
    classes: list[str] = _prop(
        "the asset classes it applies to; left out: every class",
        examples=[["hazmat_truck"]],
        minItems=1,
        items={"type": "string", "enum": list(CLASSES)},
    )
    trigger: str = _prop(
        "`enter`, `exit` (instantaneous), `dwell` (inside longer than `overrides.dwell_s`), "
        "`forbidden` (an alert for as long as the asset is inside), `none`. Default by "
        f"zone_kind: {_TRIGGER_DEFAULTS}.",
        examples=["forbidden"],
        enum=list(TRIGGERS),
    )
    windows: Annotated[list[dict[str, Any]], WithJsonSchema(_WINDOWS)] = _prop(
        "when the zone applies", examples=[[{"daily": "22:00-06:00"}]]
    )
    effective_from_ms: int = _prop(
        "this version (geometry and settings) applies from then on (UTC epoch ms); earlier "
        "versions stay for replays of the past. Default: when it is stored.",
        examples=[1_782_871_200_000],
        minimum=0,
    )
    severity: str = _prop(
        "the level of its alerts. Default `warning`.", examples=["critical"], enum=list(SEVERITIES)
    )
    radius_m: float = _prop(
        "a circle zone (a Point): its radius in metres. Required there, refused elsewhere.",
        examples=[500],
        exclusiveMinimum=0,
        maximum=MAX_RADIUS_M,
    )
    width_m: float = _prop(
        "a corridor zone (a LineString or MultiLineString): its total width in metres, centred "
        "on the line. Required there, refused elsewhere.",
        examples=[60],
        exclusiveMinimum=0,
        maximum=MAX_WIDTH_M,
    )
    overrides: Overrides = _prop("thresholds for this zone", examples=[{"dwell_s": 900}])


class LotRules(BaseModel):
    """What the rules read of a lot (designated parking)."""

    capacity: int = _prop(
        "vehicles it holds (its occupants show whether it is over)",
        examples=[40],
        minimum=1,
        maximum=MAX_CAPACITY,
    )
    max_stay_s: float = _prop(
        "longest stay from confirmed entry to exit (seconds); left out: no limit",
        examples=[21_600],
        exclusiveMinimum=0,
        maximum=MAX_STAY_S,
    )
    overrides: Overrides = _prop("thresholds for this lot", examples=[{"confirm_n": 3}])


class RouteRules(BaseModel):
    """What the rules read of a route."""

    corridor_m: float | list[float] = _prop(
        "corridor width in metres (total, centred on the line): one for the whole route, or one "
        "per section (a line of n positions has n - 1; a MultiLineString those of its lines in "
        "order), as JT/T 808 message 0x8606 carries. Left out: `overrides.corridor_m`.",
        examples=[100, [60, 120]],
        anyOf=[
            {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_WIDTH_M},
            {
                "type": "array",
                "minItems": 1,
                "items": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_WIDTH_M},
            },
        ],
    )
    overrides: Overrides = _prop("thresholds for trips on it", examples=[{"wrong_way_m": 800}])


class TripRules(BaseModel):
    """What the rules read of a trip (its geometry: a MultiPoint of the origin, the ordered
    checkpoints and the destination; a line: its ends)."""

    asset_id: str = _prop(
        "the asset that makes the trip (of the trip's enterprise). Required.",
        examples=["truck-01"],
    )
    route_id: str = _prop(
        "its approved route (in scope, of the trip's enterprise or shared). Required.",
        examples=["route-3f2a9c"],
    )
    start_ms: int = _prop(
        "the approved window's start (UTC epoch ms); starting before it is an early start. "
        "Required.",
        examples=[1_782_871_200_000],
        minimum=0,
    )
    end_ms: int = _prop(
        "the window's end (after start_ms): not arrived by then is `trip.not_arrived`. Required.",
        examples=[1_782_892_800_000],
        minimum=0,
    )
    checkpoint_radius_m: float = _prop(
        "a checkpoint is passed within this distance (default `overrides.checkpoint_radius_m`)",
        examples=[200],
        exclusiveMinimum=0,
        maximum=MAX_STOP_RADIUS_M,
    )
    arrival_radius_m: float = _prop(
        "arrival is confirmed within this distance of the destination (default "
        "`overrides.arrival_radius_m`)",
        examples=[200],
        exclusiveMinimum=0,
        maximum=MAX_STOP_RADIUS_M,
    )
    overrides: Overrides = _prop("thresholds for this trip", examples=[{"confirm_n": 3}])


#: The documented properties of each kind.
RULES_OF_KIND: Final[dict[str, type[BaseModel]]] = {
    "zone": ZoneRules,
    "lot": LotRules,
    "route": RouteRules,
    "trip": TripRules,
}
#: Properties each kind needs besides ``name`` (the reader requires them).
REQUIRED_OF_KIND: Final[dict[str, tuple[str, ...]]] = {
    "zone": (),
    "lot": (),
    "route": (),
    "trip": ("asset_id", "route_id", "start_ms", "end_ms"),
}


def properties_schema(kind: str, base: type[BaseModel]) -> dict[str, Any]:
    """The documented ``properties`` of a kind: those of ``base`` (the API's own: ``name``,
    ``enterprise_id``, validity) and what the rules read."""
    documented = create_model(
        f"{kind.title()}PropertiesIn",
        __base__=(RULES_OF_KIND[kind], base),
        __doc__=f"What a {kind}'s `properties` say. " + (base.__doc__ or ""),
    )
    schema = documented.model_json_schema()
    schema["required"] = [*schema.get("required", ()), *REQUIRED_OF_KIND[kind]]
    return schema


_SHAPES: Final = {
    "zone": " A Point is a circle zone (`properties.radius_m`), a LineString or MultiLineString "
    "a corridor zone (`properties.width_m`).",
    "trip": " A MultiPoint is the origin, the ordered checkpoints and the destination.",
}


def geometry_schema(kind: str, types: tuple[str, ...]) -> dict[str, Any]:
    """The documented geometry of a kind's Feature."""
    return {
        "type": "object",
        "description": f"GeoJSON {' or '.join(types)}, positions [lon, lat] in the request's "
        "crs. Checked: longitude and latitude in range (and not swapped), enough positions, "
        "closed rings, no self-intersection." + _SHAPES.get(kind, ""),
        "required": ["type", "coordinates"],
        "properties": {"type": {"enum": list(types)}, "coordinates": {"type": "array"}},
    }
