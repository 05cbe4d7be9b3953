"""Response bodies of the API as pydantic models, for the OpenAPI document only.

The endpoints answer with :class:`~cloud.api.deps.JsonResponse` objects (msgspec-encoded views of
the records in :mod:`cloud.models` and :mod:`wire`), which FastAPI passes through untouched: these
models are attached with ``response_model=`` / ``responses=`` so that ``/openapi.json`` and
``/docs`` describe the bodies, and the tests validate real bodies against them.

Conventions of the bodies, kept here:

* Records encoded with msgspec's ``omit_defaults`` (wire items such as fixes, alert events, alarm
  limits) leave out a field that has its default value. A field documented as *omitted when
  unset* is then absent, never ``null``; one with a default (``quality: "good"``) is absent when
  it has that value.
* Times are UTC epoch milliseconds (``*_ms``, and ``ts`` of wire items); positions are degrees in
  the ``crs`` the request asked for (WGS-84 by default).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cloud.api.boundary import MAX_BODY_BYTES, MAX_DEPTH, MAX_PARAM_CHARS
from cloud.api.geo_props import LotRules, RouteRules, TripRules, ZoneRules
from cloud.models import AlertAction, AlertState, AssetClass, Role
from wire.items import FixQuality, Quality

__all__ = [
    "GEO_COLLECTIONS",
    "GEO_FEATURES",
    "AlertOut",
    "AssetOut",
    "AssetRulesOut",
    "AssetView",
    "EnterpriseOut",
    "ErrorOut",
    "FixOut",
    "GapOut",
    "GatewayOut",
    "GatewayView",
    "IngestCounters",
    "LotOccupantsOut",
    "MeOut",
    "NearbyCollection",
    "ReadingOut",
    "RejectedOut",
    "SiteDetail",
    "SiteOut",
    "SitePoint",
    "TrackFeature",
    "TripProgressOut",
    "ValidationErrorOut",
    "VesselOut",
    "errors",
]


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _omitted(description: str = "") -> Any:
    """A field the body leaves out when it has no value (it is never ``null``)."""
    text = f"{description} Omitted when unset." if description else "Omitted when unset."
    return Field(default=None, description=text.strip(), json_schema_extra=_drop_default)


class _Out(BaseModel):
    """A response body (documentation only: bodies are encoded by msgspec, not by these)."""


# -- errors ---------------------------------------------------------------------------------


class ErrorOut(_Out):
    """An error: 401 (missing or invalid API key), 403 (not allowed), 404 (missing, or outside
    the caller's scope: another tenant's objects are not revealed), 409 (conflict)."""

    detail: str


class InvalidField(_Out):
    """What is wrong with a field of a GeoJSON body (zones, routes, lots, trips)."""

    field: str = Field(description="where, e.g. `geometry.coordinates[0]`, `properties.name`")
    reason: str = Field(description="e.g. `invalid_value`, `missing_field`, `self_intersection`")
    detail: str


class ValidationIssue(_Out):
    """One problem found while reading the request (the rules every request follows, then the
    route's own model); ``input`` echoes what was refused, cut short and with control
    characters and lone surrogates escaped."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int] = Field(description="where: `body`, `query` or `path`, then the field")
    msg: str
    type: str = Field(description="e.g. `missing`, `int_type`, `string_control`, `too_deep`")


class ValidationErrorOut(_Out):
    __doc__ = f"""A 422: the request is not valid. ``detail`` is the list of validation issues,
    a sentence, or (GeoJSON bodies) the field that is wrong and why.

    Every request follows these rules before its route reads it: a body is JSON
    (``Content-Type: application/json``), UTF-8 without BOM, at most {MAX_BODY_BYTES} bytes,
    nested at most {MAX_DEPTH} deep; no text (body strings and keys, query parameters, the path)
    holds a lone surrogate or a control character, except TAB and LF in free-text fields (such
    as comments); query values are at most {MAX_PARAM_CHARS} characters. Bodies are read
    strictly: no unknown fields, no `false` for 0, no `"12"` for 12, no 12.0 for an integer.
    """

    detail: list[ValidationIssue] | InvalidField | str


_ERRORS: dict[int, tuple[type[BaseModel], str]] = {
    401: (ErrorOut, "Missing or invalid API key"),
    403: (ErrorOut, "Not allowed for this key"),
    404: (ErrorOut, "Not found, or outside the caller's scope"),
    409: (ErrorOut, "Conflict with the stored state"),
    422: (ValidationErrorOut, "Invalid request (body, query or path: see ValidationErrorOut)"),
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: 401 and 422 (every API route may answer them) and
    ``codes``."""
    wanted = sorted({401, 422, *codes})
    return {code: {"model": _ERRORS[code][0], "description": _ERRORS[code][1]} for code in wanted}


# -- GeoJSON geometry -----------------------------------------------------------------------

Position = Annotated[
    list[float], Field(min_length=2, max_length=3, description="[lon, lat] in the answer's crs")
]


class Point(_Out):
    """A GeoJSON Point."""

    type: Literal["Point"]
    coordinates: Position


class MultiPoint(_Out):
    """A GeoJSON MultiPoint."""

    type: Literal["MultiPoint"]
    coordinates: list[Position]


class LineString(_Out):
    """A GeoJSON LineString."""

    type: Literal["LineString"]
    coordinates: Annotated[list[Position], Field(min_length=2)]


class MultiLineString(_Out):
    """A GeoJSON MultiLineString."""

    type: Literal["MultiLineString"]
    coordinates: list[Annotated[list[Position], Field(min_length=2)]]


class Polygon(_Out):
    """A GeoJSON Polygon: closed rings, the first one the shell."""

    type: Literal["Polygon"]
    coordinates: list[Annotated[list[Position], Field(min_length=4)]]


class MultiPolygon(_Out):
    """A GeoJSON MultiPolygon."""

    type: Literal["MultiPolygon"]
    coordinates: list[list[Annotated[list[Position], Field(min_length=4)]]]


Areal = Annotated[Polygon | MultiPolygon, Field(discriminator="type")]
#: A zone: an area, a circle (a Point with ``radius_m``), a corridor (a line with ``width_m``).
ZoneGeometry = Annotated[
    Polygon | MultiPolygon | Point | LineString | MultiLineString, Field(discriminator="type")
]
Linear = Annotated[LineString | MultiLineString, Field(discriminator="type")]
TripGeometry = Annotated[LineString | MultiLineString | MultiPoint, Field(discriminator="type")]
TrackGeometry = Annotated[Point | LineString, Field(discriminator="type")]


# -- wire items as the API shows them -------------------------------------------------------


class FixOut(_Out):
    """A position fix of an asset (a wire ``fix`` item), its position in the answer's crs."""

    kind: Literal["fix"]
    seq: int = Field(description="the gateway's sequence number")
    ts: int = Field(description="observation time (UTC epoch ms)")
    asset: str
    lat: float
    lon: float
    speed_kmh: float = _omitted()
    course: float = _omitted("Degrees from north, 0 .. 360.")
    heading: float = _omitted("Degrees from north, 0 .. 360.")
    alt_m: float = _omitted()
    hdop: float = _omitted()
    pdop: float = _omitted()
    vdop: float = _omitted()
    fix_type: int = _omitted("GSA fix type: 1 no fix, 2 2D, 3 3D.")
    sats: int = _omitted()
    quality: FixQuality = Field(default="good", description="Omitted when `good`.")
    flags: list[str] = Field(default_factory=list, description="Omitted when empty.")
    source: Literal["gnss", "ais", "jt808"] = Field(
        default="gnss", description="Omitted when `gnss`."
    )
    nav_status: int = _omitted("AIS navigational status.")
    recv_ms: int = Field(description="when the cloud received it")


class ReadingOut(_Out):
    """A sensor value of a site's point (a wire ``reading`` item)."""

    kind: Literal["reading"]
    seq: int
    ts: int = Field(description="observation time (UTC epoch ms)")
    site: str
    point: str
    value: float | None
    unit: str = Field(default="", description="Omitted when empty.")
    quality: Quality = Field(default="good", description="Omitted when `good`.")


class HealthOut(_Out):
    """A gateway's last health item: store-and-forward buffer, drops, devices."""

    kind: Literal["health"]
    seq: int
    ts: int
    buffer_depth: int = Field(description="items waiting in the gateway's buffer")
    oldest_age_s: float = Field(default=0.0, description="Omitted when 0.")
    drops: dict[str, int] = Field(default_factory=dict, description="Omitted when empty.")
    devices: dict[str, Literal["online", "offline"]] = Field(
        default_factory=dict, description="Omitted when empty."
    )
    parse_errors: dict[str, int] = Field(default_factory=dict, description="Omitted when empty.")
    counters: dict[str, int] = Field(default_factory=dict, description="Omitted when empty.")


class VesselOut(_Out):
    """The newest static data of a vessel (AIS types 5, 19, 24)."""

    kind: Literal["vessel"]
    seq: int
    ts: int
    mmsi: int
    ais_class: Literal["A", "B"] = _omitted()
    name: str = _omitted()
    callsign: str = _omitted()
    imo: int = _omitted()
    ship_type: int = _omitted()
    to_bow_m: int = _omitted()
    to_stern_m: int = _omitted()
    to_port_m: int = _omitted()
    to_starboard_m: int = _omitted()
    destination: str = _omitted()


# -- registry -------------------------------------------------------------------------------


class EnterpriseOut(_Out):
    """An enterprise (tenant)."""

    id: str
    name: str
    region: str = Field(description="GB/T 2260 code, e.g. 320281")


class GatewayOut(_Out):
    """A registered gateway."""

    id: str
    enterprise_id: str
    name: str


class GatewayView(GatewayOut):
    """A gateway with what the live state knows of it."""

    state: Literal["online", "offline", "unknown"]
    status_ms: int | None = Field(description="when the state last changed")
    last_seen_ms: int | None = Field(description="when the last message arrived")
    health: HealthOut | None = Field(description="the last health item, if any")


class AssetOut(_Out):
    """A registered moving asset (``plate`` for vehicles, ``mmsi`` for vessels)."""

    id: str
    enterprise_id: str
    asset_class: AssetClass
    plate: str | None
    mmsi: int | None
    name: str
    long_distance: bool = Field(
        default=False, description="a long-distance coach (fatigue.small_hours)"
    )


class AssetView(AssetOut):
    """An asset with its latest fix and status."""

    latest: FixOut | None = Field(description="the newest fix, in the answer's crs")
    status: dict[str, Any] | None = Field(description="the live status kept by the rules, if any")


class SiteOut(_Out):
    """A site (tank farm), its position in the answer's crs."""

    id: str
    enterprise_id: str
    name: str
    lat: float
    lon: float


class Limits(_Out):
    """Alarm limits of a point (LL < L < H < HH)."""

    ll: float = _omitted()
    l: float = _omitted()  # noqa: E741 - the standard name of the low limit
    h: float = _omitted()
    hh: float = _omitted()
    deadband: float = _omitted()
    delay_s: float = _omitted()
    kind: str = _omitted()
    poll_s: float = _omitted()
    frozen_s: float = _omitted()
    span_lo: float = _omitted()
    span_hi: float = _omitted()
    rate_pct_per_min: float = _omitted()


class SitePoint(_Out):
    """A monitored point (tag) of a site."""

    site_id: str
    tag: str
    unit: str
    limits: Limits


class SiteDetail(SiteOut):
    """A site with its points."""

    points: list[SitePoint]


# -- tracks and nearby ----------------------------------------------------------------------


class TrackProperties(_Out):
    """What a track covers, with one time and speed per vertex."""

    asset_id: str
    crs: Literal["wgs84", "gcj02", "bd09"]
    start_ms: int
    end_ms: int
    fixes: int = Field(description="fixes found in the range")
    points: int = Field(description="vertices kept (after simplification)")
    simplify_m: float | None
    truncated: bool = Field(description="the limit was reached: the track may go on")
    times_ms: list[int]
    speeds_kmh: list[float | None]


class TrackFeature(_Out):
    """A track as a GeoJSON Feature: a LineString, a Point for one fix, ``null`` for none."""

    type: Literal["Feature"]
    id: str
    geometry: TrackGeometry | None
    properties: TrackProperties


class NearbyProperties(_Out):
    """An asset found near a point."""

    asset_id: str
    distance_m: float
    fix: FixOut
    enterprise_id: str


class NearbyFeature(_Out):
    """An asset's latest position as a GeoJSON Feature."""

    type: Literal["Feature"]
    id: str
    geometry: Point
    properties: NearbyProperties


class NearbyCollection(_Out):
    """Assets near a point, nearest first."""

    type: Literal["FeatureCollection"]
    features: list[NearbyFeature]


# -- zones, routes, lots, trips -------------------------------------------------------------


class _GeoProperties(_Out):
    """Properties of a stored geo object: the fixed ones below, what the rules read of its
    kind (when given), and any others it was given (``region`` of shared objects, ...)."""

    model_config = ConfigDict(extra="allow")

    name: str
    enterprise_id: str | None = Field(description="`null`: shared (regulator-wide)")
    version: int = Field(description="increases on each update")
    valid_from_ms: int | None
    valid_to_ms: int | None
    updated_ms: int | None


class ZoneProperties(_GeoProperties, ZoneRules):
    """Properties of a zone."""

    kind: Literal["zone"]


class LotProperties(_GeoProperties, LotRules):
    """Properties of a lot (designated parking)."""

    kind: Literal["lot"]


class RouteProperties(_GeoProperties, RouteRules):
    """Properties of a route; ``corridor_m`` is one width or one per section."""

    kind: Literal["route"]


class TripProperties(_GeoProperties, TripRules):
    """Properties of a planned trip (``asset_id``: the asset that makes it, if given)."""

    kind: Literal["trip"]


class ZoneFeature(_Out):
    """A zone as a GeoJSON Feature."""

    type: Literal["Feature"]
    id: str
    geometry: ZoneGeometry
    properties: ZoneProperties


class LotFeature(_Out):
    """A lot as a GeoJSON Feature."""

    type: Literal["Feature"]
    id: str
    geometry: Areal
    properties: LotProperties


class RouteFeature(_Out):
    """A route as a GeoJSON Feature."""

    type: Literal["Feature"]
    id: str
    geometry: Linear
    properties: RouteProperties


class TripFeature(_Out):
    """A trip as a GeoJSON Feature."""

    type: Literal["Feature"]
    id: str
    geometry: TripGeometry
    properties: TripProperties


class ZoneCollection(_Out):
    """Zones in scope."""

    type: Literal["FeatureCollection"]
    features: list[ZoneFeature]


class LotCollection(_Out):
    """Lots in scope."""

    type: Literal["FeatureCollection"]
    features: list[LotFeature]


class RouteCollection(_Out):
    """Routes in scope."""

    type: Literal["FeatureCollection"]
    features: list[RouteFeature]


class TripCollection(_Out):
    """Trips in scope."""

    type: Literal["FeatureCollection"]
    features: list[TripFeature]


#: The Feature and FeatureCollection model of each geo kind.
GEO_FEATURES: dict[str, type[BaseModel]] = {
    "zone": ZoneFeature,
    "lot": LotFeature,
    "route": RouteFeature,
    "trip": TripFeature,
}
GEO_COLLECTIONS: dict[str, type[BaseModel]] = {
    "zone": ZoneCollection,
    "lot": LotCollection,
    "route": RouteCollection,
    "trip": TripCollection,
}


# -- rule state -----------------------------------------------------------------------------


class ZoneStayOut(_Out):
    """A zone or lot the asset is confirmed inside."""

    id: str
    kind: Literal["zone", "lot"]
    name: str | None = Field(description="`null`: another enterprise's zone, or one since gone")
    zone_kind: str | None = Field(description="the zone's kind, `lot` for a lot")
    since_ms: int = Field(description="inside since (the first fix of the confirming run)")
    open: dict[str, int] = Field(
        description="open conditions and when each opened", examples=[{"zone.forbidden": 1}]
    )


class PendingChangeOut(_Out):
    """An entry or exit seen but not confirmed yet: trusted fixes on the other side of the
    boundary, not yet enough of them (``confirm_n``, ``confirm_s``) or none of them far enough
    past it (``hysteresis_m``: ``deep``)."""

    id: str
    kind: Literal["zone", "lot"]
    name: str | None = Field(description="`null`: another enterprise's zone, or one since gone")
    change: Literal["entry", "exit"]
    fixes: int
    first_ms: int
    last_ms: int
    deep: bool


class StopTimerOut(_Out):
    """Stopping and moving on (designated parking). A stop is speed under ``stop_speed_kmh``
    for ``stop_s``; outside every lot it opens ``parking.outside_lot``, which escalates
    ``escalate_s`` after it opened."""

    watched: bool = Field(description="the asset's class may stop only in lots (hazmat trucks)")
    slow_since_ms: int | None = Field(description="first fix of the current slow spell")
    confirms_ms: int | None = Field(description="when the slow spell becomes a stop, if it lasts")
    stop_ms: int | None = Field(description="the confirmed stop's start")
    outside_lot: bool = Field(description="the stop is outside every lot: its alert is open")
    escalated: bool
    escalates_ms: int | None = Field(description="when the open alert escalates")
    moving_since_ms: int | None = Field(description="first fast fix after a stop (moving on)")


def _long(description: str = "") -> Any:
    text = f"{description} Left out of the short form.".strip()
    return Field(default=None, description=text, json_schema_extra=_drop_default)


class TripProgressOut(_Out):
    """A trip's progress: the full form while the asset is on it (``not started``: watched,
    not moved yet; ``under way``), or the short form ``{"state": "not started"}`` (not
    watched yet) or ``{"state": "done"}`` (arrived, or its window ended)."""

    state: Literal["not started", "under way", "done"]
    trip_id: str = _long()
    route_id: str | None = _long("its approved route")
    start_ms: int | None = _long("the approved window's start")
    end_ms: int | None = _long("the approved window's end")
    started_ms: int | None = _long("when the asset first moved on it")
    progress_m: float = _long("distance along the route of the last fix on it (metres)")
    route_length_m: float | None = _long("the route's length (metres)")
    remaining_m: float | None = _long("route length minus progress")
    percent: float | None = _long("progress as a share of the route, 0 to 100")
    checkpoints: int = _long("how many checkpoints the trip has")
    passed: list[int] = _long("checkpoints passed (0: the first)")
    skipped: list[int] = _long("checkpoints skipped (a later one was passed first)")
    next_checkpoint: int | None = _long("the next checkpoint due (`null`: none left)")
    off_route: bool = _long("confirmed outside the corridor")
    off_route_since_ms: int | None = _long("off route since")
    speed_kmh: float = _long("speed of the last fix")
    eta_ms: int | None = _long(
        "arrival at the route's end at the current speed from the last fix (`null`: stopped)"
    )
    arrived: bool = _long()
    arrived_ms: int | None = _long()


class AssetRulesOut(_Out):
    """An asset's current rule state (``/assets/{asset_id}/rules``)."""

    asset_id: str
    evaluated_ms: int | None = Field(
        description="the observation time it has been evaluated up to (fixes and clock)"
    )
    last_fix_ms: int | None = Field(description="the newest fix the rules took")
    state_version: int = Field(description="version of the stored state (0: none yet)")
    world: str = Field(description="the world snapshot (registry version) used for names")
    zones: list[ZoneStayOut] = Field(description="zones and lots it is confirmed inside")
    pending: list[PendingChangeOut] = Field(description="entries and exits not confirmed yet")
    stop: StopTimerOut
    trip: TripProgressOut | None = Field(description="the trip it is on, if any")
    trips_done: list[str] = Field(description="trips it finished, newest last")
    dropped: dict[str, int] = Field(
        description="fixes dropped by the filters by reason: `invalid`, `duplicate`, "
        "`future`, `jump`"
    )


class LotOccupantOut(_Out):
    """An asset confirmed inside a lot."""

    asset_id: str
    since_ms: int
    stay_s: float = Field(description="how long it has been inside")
    over_stay: bool = Field(description="inside longer than the lot's `max_stay_s`")


class LotOccupantsOut(_Out):
    """Who is in a lot now. A shared lot is visible to everyone; the occupants of enterprises
    outside the caller's scope are counted (``others``), not named."""

    lot_id: str
    name: str
    capacity: int | None
    max_stay_s: float | None
    count: int = Field(description="occupants of every enterprise")
    over_capacity: bool = Field(description="more occupants than its capacity")
    others: int = Field(description="occupants outside the caller's scope")
    as_of_ms: int
    occupants: list[LotOccupantOut] = Field(description="those in scope, longest inside first")


# -- alerts ---------------------------------------------------------------------------------


class AlertEventOut(_Out):
    """One entry of an alert's history."""

    ts_ms: int
    action: AlertAction
    by: str = Field(default="", description="Omitted when empty.")
    comment: str = Field(default="", description="Omitted when empty.")
    data: dict[str, Any] = Field(default_factory=dict, description="Omitted when empty.")


class AlertOut(_Out):
    """An alert and its handling; ``events`` is empty in lists (get one alert for its history)."""

    id: str
    enterprise_id: str
    kind: str
    key: str = Field(description="the condition, e.g. `sensor:<site>:<point>:<level>`")
    level: str
    state: AlertState
    opened_ms: int
    asset_id: str | None
    site_id: str | None
    point: str | None
    message: str
    value: float | None
    acked_ms: int | None
    acked_by: str | None
    closed_ms: int | None
    closed_by: str | None
    comment: str
    updated_ms: int | None
    data: dict[str, Any]
    events: list[AlertEventOut]


# -- ingest inspection, service -------------------------------------------------------------


class RejectedOut(_Out):
    """A refused message or item; ``payload`` as text (invalid UTF-8 replaced)."""

    ts_ms: int
    reason: str
    detail: str
    topic: str
    gateway_id: str | None
    field: str | None
    payload: str


class GapOut(_Out):
    """A run of gateway sequence numbers not received (``missing``: still not received)."""

    gateway_id: str
    first_seq: int
    last_seq: int
    missing: int
    detected_ms: int
    enterprise_id: str | None


class IngestCounters(_Out):
    """This worker's counters: ingest (``accepted.<kind>``, ``duplicate``,
    ``rejected.<reason>``...; empty without ingest) and API (rejected geometries...)."""

    ingest: dict[str, int]
    api: dict[str, int]


class MeOut(_Out):
    """Who the key is; ``enterprise_ids`` is ``null`` for a key that sees all."""

    name: str
    role: Role
    region: str | None
    enterprise_id: str | None
    enterprise_ids: list[str] | None
