"""Typed records of the cloud: registry, alerts, geo objects, API keys, received items.

Records are frozen msgspec structs so the API can encode them directly
(``msgspec.json.encode`` / ``msgspec.to_builtins``) and the store can build them from rows.
Times are UTC epoch milliseconds (``*_ms``); coordinates are WGS-84 degrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final, Generic, Literal, TypeVar

import msgspec
from msgspec import Meta

import wire

__all__ = [
    "ASSET_CLASSES",
    "ROLES",
    "Alert",
    "AlertAction",
    "AlertEvent",
    "AlertState",
    "ApiKey",
    "Asset",
    "AssetClass",
    "Enterprise",
    "Gap",
    "Gateway",
    "GatewayLive",
    "GeoKind",
    "GeoObject",
    "LatestFix",
    "Limits",
    "LiveEvent",
    "Point",
    "Received",
    "Rejected",
    "Role",
    "Site",
    "region_contains",
]

Id = Annotated[str, Meta(min_length=1, max_length=128)]
#: GB/T 2260 administrative division code: 6 digits (``320000`` province, ``320200`` city,
#: ``320281`` county).
RegionCode = Annotated[str, Meta(pattern=r"^[0-9]{6}$")]
Lat = Annotated[float, Meta(ge=-90.0, le=90.0)]
Lon = Annotated[float, Meta(ge=-180.0, le=180.0)]

AssetClass = Literal["hazmat_truck", "school_bus", "coach", "fishing_vessel", "other"]
ASSET_CLASSES: Final[tuple[str, ...]] = (
    "hazmat_truck",
    "school_bus",
    "coach",
    "fishing_vessel",
    "other",
)
Role = Literal["admin", "regulator", "dispatcher"]
ROLES: Final[tuple[str, ...]] = ("admin", "regulator", "dispatcher")
AlertState = Literal["open", "acknowledged", "closed"]
#: What happened to an alert; each becomes one :class:`AlertEvent`. ``revise`` and
#: ``withdraw`` are the rules correcting an alert from late data (a start, an end, an
#: escalation; or: it did not happen).
AlertAction = Literal["open", "update", "acknowledge", "close", "comment", "revise", "withdraw"]
#: Geo object kinds: ``zone`` polygons (bans, water sources, moratoria), ``route`` corridors,
#: ``lot`` designated parking, ``trip`` planned hazmat trips.
GeoKind = Literal["zone", "route", "lot", "trip"]


def region_contains(outer: str, inner: str) -> bool:
    """Whether GB/T 2260 region ``outer`` contains (or equals) region ``inner``.

    ``320000`` (province) contains ``320200`` (city) which contains ``320281`` (county);
    trailing ``00`` pairs of ``outer`` are wildcards.
    """
    prefix = outer
    for _ in range(2):
        if prefix.endswith("00"):
            prefix = prefix[:-2]
    return inner.startswith(prefix)


class Enterprise(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant: a plant, carrier, school-bus operator or fishing cooperative."""

    id: Id
    name: str
    region: RegionCode


class Gateway(msgspec.Struct, frozen=True, kw_only=True):
    """An edge gateway; it belongs to exactly one enterprise (the cloud never trusts payloads)."""

    id: Id
    enterprise_id: Id
    name: str = ""


class Asset(msgspec.Struct, frozen=True, kw_only=True):
    """A moving asset: truck, bus, coach or vessel (``plate`` for vehicles, ``mmsi`` for ships)."""

    id: Id
    enterprise_id: Id
    asset_class: AssetClass
    plate: str | None = None
    mmsi: Annotated[int, Meta(ge=0, le=999_999_999)] | None = None
    name: str = ""
    #: a long-distance coach (may not move between 02:00 and 05:00; ``fatigue.small_hours``)
    long_distance: bool = False


class Site(msgspec.Struct, frozen=True, kw_only=True):
    """A fixed major hazard source (tank farm) with its location."""

    id: Id
    enterprise_id: Id
    name: str
    lat: Lat
    lon: Lon


class Limits(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Alarm limits of a point (LL < L < H < HH) and how the cloud watches it; ``None`` means
    not set (the ``[sites]`` configuration's default applies, see :mod:`cloud.sites`).

    Attributes:
        deadband: hysteresis of the levels, in the point's unit.
        delay_s: a level raises only after holding this long.
        kind: ``gas``, ``toxic``, ``oxygen``, ``level``, ``pressure``, ``temperature``, ``flow``
            or ``other`` (default: told by the unit, then by the tag: ``LT``, ``PT``, ``TT``).
        poll_s: the point's poll period (stale after ``stale_factor`` times it).
        frozen_s: longest the value may stay the same (``0``: never frozen).
        span_lo: low end of the measuring range (rate of rise is a share of the span).
        span_hi: high end of the measuring range.
        rate_pct_per_min: highest rate of rise, % of the span per minute (``0``: not watched).
    """

    ll: float | None = None
    l: float | None = None  # noqa: E741 - the standard name of the low limit
    h: float | None = None
    hh: float | None = None
    deadband: float | None = None
    delay_s: float | None = None
    kind: str | None = None
    poll_s: float | None = None
    frozen_s: float | None = None
    span_lo: float | None = None
    span_hi: float | None = None
    rate_pct_per_min: float | None = None


class Point(msgspec.Struct, frozen=True, kw_only=True):
    """A monitored tag of a site (``T101.LT01``) with its unit and limits."""

    site_id: Id
    tag: Id
    unit: str = ""
    limits: Limits = Limits()


class AlertEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One entry of an alert's history (kept as long as the alert: 3 years by default)."""

    ts_ms: int
    action: AlertAction
    by: str = ""
    comment: str = ""
    data: dict[str, Any] = {}


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """An alert and its handling.

    ``key`` identifies the condition (``sensor:<site>:<point>:<level>``, ``geofence:<asset>:<zone>``
    ...); at most one alert per ``(enterprise_id, key)`` is not closed at any time.
    """

    id: str
    enterprise_id: str
    kind: str
    key: str
    level: str
    state: AlertState
    opened_ms: int
    asset_id: str | None = None
    site_id: str | None = None
    point: str | None = None
    message: str = ""
    value: float | None = None
    acked_ms: int | None = None
    acked_by: str | None = None
    closed_ms: int | None = None
    closed_by: str | None = None
    comment: str = ""
    updated_ms: int | None = None
    data: dict[str, Any] = {}
    events: tuple[AlertEvent, ...] = ()


class GeoObject(msgspec.Struct, frozen=True, kw_only=True):
    """A zone, route, lot or trip: GeoJSON geometry in WGS-84 plus typed-free properties.

    ``enterprise_id`` is ``None`` for regulator-wide objects (city bans, moratorium zones).
    ``properties`` carries kind-specific settings: ``corridor_m`` (per route, or a list per
    section), ``windows`` (time windows), ``max_stay_s`` (lots), ``asset_id`` (trips), ...
    ``version`` increases on each update; ``valid_from_ms``/``valid_to_ms`` bound versioned
    zones such as fishing moratoria.
    """

    id: Id
    kind: GeoKind
    name: str
    geometry: dict[str, Any]
    enterprise_id: str | None = None
    properties: dict[str, Any] = {}
    version: int = 1
    valid_from_ms: int | None = None
    valid_to_ms: int | None = None
    updated_ms: int | None = None


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """An API key, stored by its hash only.

    ``admin`` sees everything; ``regulator`` every enterprise whose region lies within
    ``region``; ``dispatcher`` only ``enterprise_id``.
    """

    hash: str
    name: str
    role: Role
    enterprise_id: str | None = None
    region: str | None = None
    created_ms: int = 0
    revoked_ms: int | None = None


class Gap(msgspec.Struct, frozen=True, kw_only=True):
    """A run of gateway sequence numbers not received, detected at ingest.

    ``missing`` counts those still not received: late arrivals (a backlog drained after newer
    data) are counted off, and a gap left with none missing is removed.
    """

    gateway_id: str
    first_seq: int
    last_seq: int
    missing: int
    detected_ms: int
    enterprise_id: str | None = None


class Rejected(msgspec.Struct, frozen=True, kw_only=True):
    """A message or item refused at ingest, kept for inspection."""

    ts_ms: int
    reason: str
    detail: str
    topic: str = ""
    gateway_id: str | None = None
    field: str | None = None
    payload: bytes = b""


class LatestFix(msgspec.Struct, frozen=True, kw_only=True):
    """The newest fix of an asset in the live state."""

    enterprise_id: str
    fix: wire.Fix
    recv_ms: int


class GatewayLive(msgspec.Struct, frozen=True, kw_only=True):
    """What the live state knows of a gateway: status, last message, last health item."""

    gateway_id: str
    enterprise_id: str | None = None
    state: Literal["online", "offline", "unknown"] = "unknown"
    status_ms: int | None = None
    last_seen_ms: int | None = None
    health: wire.Health | None = None


#: Kinds of live feed events.
LiveKind = Literal["fix", "reading", "alert", "gateway", "vessel", "finding"]


class LiveEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One event of the live feed; ``enterprise_id`` lets the API filter by scope.

    ``data`` is JSON-ready: the item (``msgspec.to_builtins``) or the alert.
    """

    kind: LiveKind
    enterprise_id: str | None
    ts_ms: int
    data: dict[str, Any]


I = TypeVar("I", wire.Fix, wire.Reading, wire.Vessel, wire.Alarm, wire.Health)  # noqa: E741


@dataclass(frozen=True, slots=True)
class Received(Generic[I]):
    """An accepted item with what ingest learned about it.

    Attributes:
        item: the decoded wire item.
        gateway_id: the gateway it came from (from the topic, checked against the envelope).
        enterprise_id: the gateway's enterprise, from the registry.
        recv_ms: when the cloud received it.
        late: older than what was already known for its asset/point (archived, not "latest").
        future: observation time ahead of the receive time beyond the tolerance.
    """

    item: I
    gateway_id: str
    enterprise_id: str
    recv_ms: int
    late: bool = False
    future: bool = False
