"""Zones, routes, lots and trips: CRUD as GeoJSON Features, validated, in any of three CRSs.

Geometry is stored in WGS-84. ``?crs=gcj02`` (or ``bd09``) says the body's coordinates were
drawn on such a map, and asks for answers in it. Objects without ``enterprise_id`` are shared
(regulator-wide: city bans, moratorium zones); only admins and regulators write them, a
regulator only those made within its region.
"""

from __future__ import annotations

import math
import uuid
from enum import Enum
from typing import Any, Literal

from fastapi import APIRouter, status
from pydantic import Field
from shapely.geometry import shape

from cloud.api import schemas as out
from cloud.api.deps import (
    MAX_EPOCH_MS,
    Body,
    CallerScope,
    CrsParam,
    JsonResponse,
    ServicesDep,
    bad_request,
    non_finite_at,
    not_found,
)
from cloud.auth import Scope
from cloud.coords import Crs
from cloud.models import GeoKind, GeoObject, region_contains
from cloud.rules.geometry import GeometryError, parse_geometry, to_geojson

__all__ = ["KINDS", "router"]

router = APIRouter(default_response_class=JsonResponse)

#: Path segment and allowed geometry types of each kind.
KINDS: dict[GeoKind, tuple[str, tuple[str, ...]]] = {
    "zone": ("zones", ("Polygon", "MultiPolygon")),
    "lot": ("lots", ("Polygon", "MultiPolygon")),
    "route": ("routes", ("LineString", "MultiLineString")),
    "trip": ("trips", ("LineString", "MultiLineString", "MultiPoint")),
}
_RESERVED = ("name", "enterprise_id", "valid_from_ms", "valid_to_ms", "kind", "version")


class FeatureIn(Body):
    """A GeoJSON Feature; ``properties.name`` is required, ``properties.enterprise_id`` optional.

    Routes may carry ``corridor_m`` (one width, or one per section); trips an ``asset_id``.
    """

    type: Literal["Feature"] = "Feature"
    id: str | None = Field(default=None, min_length=1, max_length=128)
    geometry: dict[str, Any]
    properties: dict[str, Any] = Field(default_factory=dict)


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


def _check_corridor(value: Any, geometry: dict[str, Any]) -> None:
    widths = value if isinstance(value, list) else [value]
    ok = widths and all(
        isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w > 0
        for w in widths
    )
    if not ok:
        bad_request(_invalid("properties.corridor_m", "invalid_value", "widths are metres > 0"))
    if isinstance(value, list) and geometry["type"] == "LineString":
        sections = len(geometry["coordinates"]) - 1
        if len(widths) != sections:
            detail = f"{len(widths)} widths for {sections} sections: give one per section"
            bad_request(_invalid("properties.corridor_m", "invalid_value", detail))


def _optional_ms(props: dict[str, Any], key: str) -> int | None:
    value = props.get(key)
    if value is not None and (
        not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_EPOCH_MS
    ):
        bad_request(_invalid(f"properties.{key}", "invalid_value", "UTC epoch ms, an integer"))
    return value


async def _build(
    kind: GeoKind, body: FeatureIn, object_id: str, scope: Scope, services: ServicesDep, crs: Crs
) -> GeoObject:
    """Validate a Feature into a geo object in WGS-84 (422 naming what is wrong)."""
    props = dict(body.properties)
    where = non_finite_at(props, "properties")
    if where is not None:
        bad_request(_invalid(where, "invalid_value", "numbers must be finite (no NaN, Infinity)"))
    name = props.get("name")
    if not isinstance(name, str) or not name.strip():
        bad_request(_invalid("properties.name", "missing_field", "a non-empty name is required"))
    try:
        shape = parse_geometry(body.geometry, crs=crs, kinds=KINDS[kind][1])
    except GeometryError as exc:
        services.count(f"geometry_{exc.reason}")
        path = f"geometry.{exc.path}" if exc.path else "geometry"
        bad_request(_invalid(path, exc.reason, exc.detail))
    geometry = to_geojson(shape)
    enterprise_id = props.get("enterprise_id", scope.enterprise_id)
    if enterprise_id is not None and not isinstance(enterprise_id, str):
        bad_request(_invalid("properties.enterprise_id", "wrong_type", "a string or null"))
    if not scope.can_write(enterprise_id):
        if enterprise_id is None:
            bad_request("only admins and regulators make shared objects", code=403)
        not_found("enterprise", enterprise_id)
    if kind == "route" and "corridor_m" in props:
        _check_corridor(props["corridor_m"], geometry)
    if kind == "trip" and props.get("asset_id") is not None:
        asset = await services.store.get_asset(
            str(props["asset_id"]), enterprise_ids=scope.enterprise_ids
        )
        if asset is None or (enterprise_id is not None and asset.enterprise_id != enterprise_id):
            bad_request(_invalid("properties.asset_id", "invalid_value", "no such asset here"))
    if enterprise_id is None and scope.region is not None:
        props["region"] = scope.region
    return GeoObject(
        id=object_id,
        kind=kind,
        name=name.strip(),
        geometry=geometry,
        enterprise_id=enterprise_id,
        properties={k: v for k, v in props.items() if k not in _RESERVED},
        valid_from_ms=_optional_ms(props, "valid_from_ms"),
        valid_to_ms=_optional_ms(props, "valid_to_ms"),
    )


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
        object_id: str, services: ServicesDep, scope: CallerScope, crs: CrsParam = "wgs84"
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
        object_id = body.id or uuid.uuid4().hex
        obj = await _build(kind, body, object_id, scope, services, crs)
        if await services.store.get_geo(object_id) is not None:
            bad_request(f"id {object_id!r} is already in use: PUT to change it", code=409)
        stored = await services.store.put_geo(obj, now_ms=services.clock_ms())
        return JsonResponse(feature(stored, crs), status_code=status.HTTP_201_CREATED)

    async def replace_object(
        object_id: str, body: FeatureIn, services: ServicesDep, scope: CallerScope,
        crs: CrsParam = "wgs84",
    ) -> JsonResponse:  # fmt: skip
        await _writable(kind, object_id, scope, services)
        obj = await _build(kind, body, object_id, scope, services, crs)
        stored = await services.store.put_geo(obj, now_ms=services.clock_ms())
        return JsonResponse(feature(stored, crs))

    async def delete_object(object_id: str, services: ServicesDep, scope: CallerScope) -> None:
        await _writable(kind, object_id, scope, services)
        await services.store.delete_geo(object_id, include_shared=True)

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
