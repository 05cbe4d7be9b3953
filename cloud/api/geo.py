"""Zones, routes, lots and trips: CRUD as GeoJSON Features, validated, in any of three CRSs.

Geometry is stored in WGS-84. ``?crs=gcj02`` (or ``bd09``) says the body's coordinates were
drawn on such a map, and asks for answers in it. Objects without ``enterprise_id`` are shared
(regulator-wide: city bans, moratorium zones); only admins and regulators write them, a
regulator only those made within its region.

A zone is a polygon (holes allowed), a multipolygon, a circle (a Point with ``radius_m``) or a
corridor (a LineString or MultiLineString with ``width_m``, its total width). What the rules read
of the properties (zone kinds, classes, triggers, windows, versions, overrides, lot capacity,
route widths, trip windows...) is read at the boundary by the rules' own reader
(:mod:`cloud.api.geo_props`): a property they could not use answers a 422 naming it.
"""

from __future__ import annotations

import logging
import uuid
from enum import Enum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, create_model
from shapely.geometry import shape

from cloud.api import schemas as out
from cloud.api.deps import (
    FREE_JSON_MAX_BYTES,
    FREE_JSON_MAX_DEPTH,
    FREE_TEXT,
    MAX_EPOCH_MS,
    Body,
    CallerScope,
    CrsParam,
    IdPath,
    JsonResponse,
    Line,
    ServicesDep,
    bad_request,
    free_json_issue,
    not_found,
)
from cloud.api.geo_props import geometry_schema, properties_schema, read_checked
from cloud.auth import Scope
from cloud.coords import Crs
from cloud.models import GeoKind, GeoObject, region_contains
from cloud.rules.geometry import (
    GeometryError,
    check_corridor_widths,
    check_validity_period,
    parse_geometry,
    to_geojson,
)
from cloud.rules.objects import ObjectError

__all__ = ["KINDS", "router"]

router = APIRouter(default_response_class=JsonResponse)
log = logging.getLogger(__name__)

#: Path segment and allowed geometry types of each kind.
KINDS: dict[GeoKind, tuple[str, tuple[str, ...]]] = {
    "zone": ("zones", ("Polygon", "MultiPolygon", "Point", "LineString", "MultiLineString")),
    "lot": ("lots", ("Polygon", "MultiPolygon")),
    "route": ("routes", ("LineString", "MultiLineString")),
    "trip": ("trips", ("LineString", "MultiLineString", "MultiPoint")),
}
#: Properties the object keeps in fields of its own (or the server sets), not among the others.
_RESERVED = (
    "name", "enterprise_id", "valid_from_ms", "valid_to_ms", "kind", "version", "updated_ms",
)  # fmt: skip
_EpochMs = Annotated[int, Field(ge=0, le=MAX_EPOCH_MS)]
_Metres = Annotated[float, Field(gt=0, allow_inf_nan=False)]


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class FeaturePropertiesIn(BaseModel):
    """What a Feature's ``properties`` say: ``name`` (not blank) is required. Those the rules
    read are documented with each kind and checked by the rules' reader; any others are kept
    as given: free-form JSON with finite numbers, integers within 64 bits, nested at most %d
    deep, at most %d bytes as JSON. ``kind``, ``version`` and ``updated_ms`` of a Feature read
    before are ignored."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="allow")

    name: Annotated[Line, Field(min_length=1, max_length=256, description="not blank")]
    enterprise_id: Annotated[Line, Field(min_length=1, max_length=128)] | None = Field(
        default=None,
        description="left out: the caller's enterprise; `null`: shared (regulator-wide), made "
        "only by admins and regulators",
        json_schema_extra=_no_default,
    )
    valid_from_ms: _EpochMs | None = Field(default=None, description="valid from (UTC epoch ms)")
    valid_to_ms: _EpochMs | None = Field(default=None, description="valid until (UTC epoch ms)")


FeaturePropertiesIn.__doc__ = (FeaturePropertiesIn.__doc__ or "") % (
    FREE_JSON_MAX_DEPTH,
    FREE_JSON_MAX_BYTES,
)


class RoutePropertiesIn(FeaturePropertiesIn):
    """What a route's ``properties`` say (see :class:`FeaturePropertiesIn`)."""

    # Left out when there is none, never null (the answer omits it: RouteFeature says so).
    corridor_m: _Metres | Annotated[list[_Metres], Field(min_length=1)] = Field(
        default_factory=list,
        description="corridor width in metres: one, or one per section of a LineString",
        json_schema_extra=_no_default,
    )


class TripPropertiesIn(FeaturePropertiesIn):
    """What a trip's ``properties`` say (see :class:`FeaturePropertiesIn`)."""

    asset_id: Annotated[Line, Field(min_length=1, max_length=128)] | None = Field(
        default=None,
        description="the asset that makes the trip, in scope",
        json_schema_extra=_no_default,
    )


_PROPERTIES: dict[GeoKind, type[FeaturePropertiesIn]] = {
    "zone": FeaturePropertiesIn,
    "lot": FeaturePropertiesIn,
    "route": RoutePropertiesIn,
    "trip": TripPropertiesIn,
}


class FeatureIn(Body):
    """A GeoJSON Feature; ``properties.name`` is required, ``properties.enterprise_id`` optional.

    Routes may carry ``corridor_m`` (one width, or one per section); trips an ``asset_id``.
    Problems of the geometry and the properties answer a 422 naming the field and why.
    """

    type: Literal["Feature"] = "Feature"
    id: Annotated[Line, Field(min_length=1, max_length=128)] | None = Field(
        default=None, description="left out: the server makes one"
    )
    bbox: list[float] | None = Field(
        default=None, min_length=4, max_length=6, description="ignored (GeoJSON allows it)"
    )
    geometry: dict[str, Any]
    properties: Annotated[dict[str, Any], FREE_TEXT] = Field(default_factory=dict)


def _body_model(kind: GeoKind) -> type[FeatureIn]:
    """The body of a kind's writes: :class:`FeatureIn` whose schema names that kind's
    geometry types and properties (validated in :func:`_build`, which names the field)."""
    return create_model(
        f"{kind.title()}In",
        __base__=FeatureIn,
        __doc__=f"A {kind} as a GeoJSON Feature. " + (FeatureIn.__doc__ or ""),
        geometry=(
            Annotated[dict[str, Any], WithJsonSchema(geometry_schema(kind, KINDS[kind][1]))],
            ...,
        ),
        properties=(
            Annotated[
                dict[str, Any],
                FREE_TEXT,
                WithJsonSchema(properties_schema(kind, _PROPERTIES[kind])),
            ],
            Field(default_factory=dict),
        ),
    )


def feature(obj: GeoObject, crs: Crs) -> dict[str, Any]:
    """A stored geo object as a GeoJSON Feature in ``crs``."""
    geometry = obj.geometry
    if crs != "wgs84":
        # Stored geometry was validated on the way in: convert it without judging it again.
        geometry = to_geojson(shape(obj.geometry), crs=crs)
    properties = dict(obj.properties)
    properties.update(
        kind=obj.kind, name=obj.name, enterprise_id=obj.enterprise_id, version=obj.version,
        valid_from_ms=obj.valid_from_ms, valid_to_ms=obj.valid_to_ms, updated_ms=obj.updated_ms,
    )  # fmt: skip
    return {"type": "Feature", "id": obj.id, "geometry": geometry, "properties": properties}


def _invalid(field: str, reason: str, detail: str) -> dict[str, Any]:
    return {"field": field, "reason": reason, "detail": detail}


def _check_properties(kind: GeoKind, props: dict[str, Any]) -> FeaturePropertiesIn:
    """The typed properties of a kind, or a 422 naming the field (free-form ones too)."""
    name = props.get("name")
    if not isinstance(name, str) or not name.strip():
        bad_request(_invalid("properties.name", "missing_field", "a non-empty name is required"))
    enterprise_id = props.get("enterprise_id")
    if enterprise_id is not None and not isinstance(enterprise_id, str):
        bad_request(_invalid("properties.enterprise_id", "wrong_type", "a string or null"))
    try:
        typed = _PROPERTIES[kind].model_validate(props)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        reason = "missing_field" if first["type"] == "missing" else "invalid_value"
        bad_request(_invalid(f"properties.{first['loc'][0]}", reason, first["msg"]))
    found = free_json_issue(props, "properties")
    if found is not None:
        bad_request(_invalid(found[0], "invalid_value", found[1]))
    return typed


async def _build(
    kind: GeoKind, body: FeatureIn, object_id: str, scope: Scope, services: ServicesDep, crs: Crs
) -> GeoObject:
    """Validate a Feature into a geo object in WGS-84 (422 naming what is wrong)."""
    props = dict(body.properties)
    typed = _check_properties(kind, props)
    try:
        shape = parse_geometry(body.geometry, crs=crs, kinds=KINDS[kind][1])
    except GeometryError as exc:
        services.count(f"geometry_{exc.reason}")
        path = f"geometry.{exc.path}" if exc.path else "geometry"
        bad_request(_invalid(path, exc.reason, exc.detail))
    geometry = to_geojson(shape)
    enterprise_id = props.get("enterprise_id", scope.enterprise_id)
    if not scope.can_write(enterprise_id):
        if enterprise_id is None:
            bad_request("only admins and regulators make shared objects", code=403)
        not_found("enterprise", enterprise_id)
    try:
        if isinstance(typed, RoutePropertiesIn) and "corridor_m" in typed.model_fields_set:
            check_corridor_widths(typed.corridor_m, shape)
        check_validity_period(valid_from_ms=typed.valid_from_ms, valid_to_ms=typed.valid_to_ms)
    except GeometryError as exc:
        bad_request(_invalid(exc.path or "properties", exc.reason, exc.detail))
    try:  # what the rules read of the properties: zone kinds, windows, overrides ...
        read_checked(kind, props, geometry, default_from_ms=services.clock_ms())
    except ObjectError as exc:
        bad_request(_invalid(exc.field, _reason(exc.field, props), exc.detail))
    if isinstance(typed, TripPropertiesIn):
        await _check_trip(typed, props, enterprise_id, scope, services)
    if enterprise_id is None and scope.region is not None:
        props["region"] = scope.region
    return GeoObject(
        id=object_id,
        kind=kind,
        name=typed.name.strip(),
        geometry=geometry,
        enterprise_id=enterprise_id,
        properties={k: v for k, v in props.items() if k not in _RESERVED},
        valid_from_ms=typed.valid_from_ms,
        valid_to_ms=typed.valid_to_ms,
    )


def _reason(field: str, props: dict[str, Any]) -> str:
    """``missing_field`` when the property named is not there at all."""
    key = field.removeprefix("properties.").split(".", 1)[0].split("[", 1)[0]
    return "missing_field" if props.get(key) is None else "invalid_value"


async def _check_trip(
    typed: TripPropertiesIn,
    props: dict[str, Any],
    enterprise_id: str | None,
    scope: Scope,
    services: ServicesDep,
) -> None:
    """A trip's asset and route exist in the caller's scope and the trip's enterprise."""
    if typed.asset_id is not None:
        asset = await services.store.get_asset(typed.asset_id, enterprise_ids=scope.enterprise_ids)
        if asset is None or (enterprise_id is not None and asset.enterprise_id != enterprise_id):
            bad_request(_invalid("properties.asset_id", "invalid_value", "no such asset here"))
    route = await services.store.get_geo(
        str(props["route_id"]), enterprise_ids=scope.enterprise_ids, kind="route"
    )
    # A trip of an enterprise goes on its own route or a shared one.
    foreign = route is not None and route.enterprise_id not in (None, enterprise_id)
    if route is None or (enterprise_id is not None and foreign):
        bad_request(_invalid("properties.route_id", "invalid_value", "no such route here"))


async def _world_changed(services: ServicesDep) -> None:
    """Every worker's rule service rebuilds its world within about a second."""
    try:
        await services.live.bump_registry_version()
    except Exception:  # saved; the rules follow at their next rebuild
        log.warning("registry version not increased", exc_info=True)


async def _writable(
    kind: GeoKind, object_id: str, scope: Scope, services: ServicesDep
) -> GeoObject:
    """The object if the caller may change it; 404 otherwise (403 for a visible shared one)."""
    found = await services.store.get_geo(object_id, enterprise_ids=scope.enterprise_ids, kind=kind)
    if found is None:
        not_found(kind, object_id)
    if not scope.can_write(found.enterprise_id):
        bad_request(
            f"{kind} {object_id!r} is shared: only admins and regulators change it", code=403
        )
    region = found.properties.get("region")
    outside = not isinstance(region, str) or not region_contains(scope.region or "", region)
    if found.enterprise_id is None and scope.region is not None and outside:
        bad_request(f"{kind} {object_id!r} belongs to another region", code=403)
    return found


def _register(kind: GeoKind) -> None:
    plural = KINDS[kind][0]
    tags: list[str | Enum] = [plural]

    async def list_objects(
        services: ServicesDep, scope: CallerScope, crs: CrsParam = "wgs84"
    ) -> JsonResponse:
        found = await services.store.list_geo(kind, scope.enterprise_ids)
        return JsonResponse(
            {"type": "FeatureCollection", "features": [feature(o, crs) for o in found]}
        )

    async def get_object(
        object_id: IdPath, services: ServicesDep, scope: CallerScope, crs: CrsParam = "wgs84"
    ) -> JsonResponse:
        found = await services.store.get_geo(
            object_id, enterprise_ids=scope.enterprise_ids, kind=kind
        )
        if found is None:
            not_found(kind, object_id)
        return JsonResponse(feature(found, crs))

    async def create_object(
        body: FeatureIn, services: ServicesDep, scope: CallerScope, crs: CrsParam = "wgs84"
    ) -> JsonResponse:
        if body.id is not None and not scope.is_admin:
            # Ids are global: a chosen one could tell whether another tenant uses it.
            bad_request(
                _invalid("id", "invalid_value", "only an admin chooses an id; leave it out")
            )
        object_id = body.id or f"{kind}-{uuid.uuid4().hex[:12]}"
        obj = await _build(kind, body, object_id, scope, services, crs)
        if await services.store.get_geo(object_id) is not None:
            bad_request(f"id {object_id!r} is already in use: PUT to change it", code=409)
        stored = await services.store.put_geo(obj, now_ms=services.clock_ms())
        await _world_changed(services)
        return JsonResponse(feature(stored, crs), status_code=status.HTTP_201_CREATED)

    async def replace_object(
        object_id: IdPath, body: FeatureIn, services: ServicesDep, scope: CallerScope,
        crs: CrsParam = "wgs84",
    ) -> JsonResponse:  # fmt: skip
        await _writable(kind, object_id, scope, services)
        obj = await _build(kind, body, object_id, scope, services, crs)
        stored = await services.store.put_geo(obj, now_ms=services.clock_ms())
        await _world_changed(services)
        return JsonResponse(feature(stored, crs))

    async def delete_object(object_id: IdPath, services: ServicesDep, scope: CallerScope) -> None:
        await _writable(kind, object_id, scope, services)
        await services.store.delete_geo(object_id, include_shared=True, now_ms=services.clock_ms())
        await _world_changed(services)

    # The body's schema is the kind's own (its geometry types, its properties).
    create_object.__annotations__["body"] = replace_object.__annotations__["body"] = _body_model(
        kind
    )
    label = kind
    router.add_api_route(f"/{plural}", list_objects, methods=["GET"], tags=tags,
                         summary=f"List {plural} in scope (FeatureCollection)",
                         response_model=out.GEO_COLLECTIONS[kind],
                         responses=out.errors())  # fmt: skip
    router.add_api_route(f"/{plural}", create_object, methods=["POST"], tags=tags, status_code=201,
                         summary=f"Create a {label} from a GeoJSON Feature",
                         response_model=out.GEO_FEATURES[kind],
                         responses=out.errors(403, 404, 409))  # fmt: skip
    router.add_api_route(f"/{plural}/{{object_id}}", get_object, methods=["GET"], tags=tags,
                         summary=f"One {label} as a GeoJSON Feature",
                         response_model=out.GEO_FEATURES[kind],
                         responses=out.errors(404))  # fmt: skip
    router.add_api_route(f"/{plural}/{{object_id}}", replace_object, methods=["PUT"], tags=tags,
                         summary=f"Replace a {label} (its version increases)",
                         response_model=out.GEO_FEATURES[kind],
                         responses=out.errors(403, 404))  # fmt: skip
    router.add_api_route(f"/{plural}/{{object_id}}", delete_object, methods=["DELETE"], tags=tags,
                         status_code=204, summary=f"Delete a {label}",
                         responses=out.errors(403, 404))  # fmt: skip
    for route in router.routes[-5:]:
        route.name = f"{route.name}_{plural}"  # type: ignore[attr-defined]


for _kind in KINDS:
    _register(_kind)
