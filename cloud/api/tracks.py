"""Tracks of an asset as GeoJSON (optionally simplified in metres) and nearby assets."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

import wire
from cloud.api import schemas as out
from cloud.api.deps import (
    MAX_EPOCH_MS,
    CallerScope,
    CrsParam,
    IdPath,
    JsonResponse,
    ServicesDep,
    bad_request,
    not_found,
)
from cloud.api.registry import fix_view
from cloud.coords import Crs, convert, convert_array
from cloud.rules.geometry import simplify_indices_m

__all__ = ["router", "track_feature"]

router = APIRouter(default_response_class=JsonResponse, tags=["assets"])
_END_MS = "to (UTC epoch ms, exclusive): must be after start_ms (else a 422)"
#: Largest radius a nearby search accepts (an emergency response area, not a province).
MAX_RADIUS_M = 100_000.0


def track_feature(
    asset_id: str,
    fixes: list[wire.Fix],
    *,
    crs: Crs,
    tolerance_m: float | None,
    start_ms: int,
    end_ms: int,
    truncated: bool,
) -> dict[str, Any]:
    """A GeoJSON Feature of a track: a LineString with one time per vertex (pure)."""
    coords = [(f.lon, f.lat) for f in fixes]
    indices = list(range(len(coords)))
    if tolerance_m:
        indices = simplify_indices_m(
            [c[0] for c in coords], [c[1] for c in coords], tolerance_m=tolerance_m
        )
    lons, lats = convert_array(
        [coords[i][0] for i in indices], [coords[i][1] for i in indices], src="wgs84", dst=crs
    )
    positions = [[round(float(x), 9), round(float(y), 9)] for x, y in zip(lons, lats, strict=True)]
    geometry: dict[str, Any] | None
    if not positions:
        geometry = None
    elif len(positions) == 1:
        geometry = {"type": "Point", "coordinates": positions[0]}
    else:
        geometry = {"type": "LineString", "coordinates": positions}
    properties = {
        "asset_id": asset_id,
        "crs": crs,
        "start_ms": start_ms,
        "end_ms": end_ms,
        "fixes": len(fixes),
        "points": len(positions),
        "simplify_m": tolerance_m,
        "truncated": truncated,
        "times_ms": [fixes[i].ts for i in indices],
        "speeds_kmh": [fixes[i].speed_kmh for i in indices],
    }
    return {"type": "Feature", "id": asset_id, "geometry": geometry, "properties": properties}


@router.get(
    "/assets/{asset_id}/track",
    response_model=out.TrackFeature,
    responses=out.errors(404),
)
async def track(
    asset_id: IdPath,
    services: ServicesDep,
    scope: CallerScope,
    start_ms: Annotated[
        int, Query(ge=0, le=MAX_EPOCH_MS, description="from (UTC epoch ms, inclusive)")
    ],
    end_ms: Annotated[int, Query(ge=0, le=MAX_EPOCH_MS, description=_END_MS)],
    crs: CrsParam = "wgs84",
    simplify: Annotated[
        float | None,
        Query(
            alias="simplify_m", gt=0, le=10_000, allow_inf_nan=False, description="tolerance in m"
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1_000_000)] = 100_000,
) -> JsonResponse:
    """The track of an asset in scope over ``[start_ms, end_ms)`` as a GeoJSON Feature.

    Pass ``simplify_m`` for long ranges: vertices closer than that to the simplified line are
    dropped (Douglas-Peucker in a local metric projection); ``times_ms`` keeps one time per
    remaining vertex.
    """
    if end_ms <= start_ms:
        bad_request("end_ms must be after start_ms")
    if await services.store.get_asset(asset_id, enterprise_ids=scope.enterprise_ids) is None:
        not_found("asset", asset_id)
    fixes = await services.store.track(
        asset_id, start_ms, end_ms, enterprise_ids=scope.enterprise_ids, limit=limit
    )
    feature = track_feature(
        asset_id, fixes, crs=crs, tolerance_m=simplify, start_ms=start_ms, end_ms=end_ms,
        truncated=len(fixes) >= limit,
    )  # fmt: skip
    return JsonResponse(feature)


@router.get(
    "/nearby",
    response_model=out.NearbyCollection,
    responses=out.errors(),
)
async def nearby(
    services: ServicesDep,
    scope: CallerScope,
    lat: Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False)],
    lon: Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False)],
    radius_m: Annotated[float, Query(gt=0, le=MAX_RADIUS_M, allow_inf_nan=False)],
    crs: CrsParam = "wgs84",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> JsonResponse:
    """Assets in scope whose latest position lies within ``radius_m`` of a point, nearest first.

    The point is given in ``crs``; the answer is a GeoJSON FeatureCollection in ``crs``.
    """
    wlon, wlat = convert(lon, lat, src=crs, dst="wgs84")
    found = await services.live.nearby(
        wlat, wlon, radius_m, enterprise_ids=scope.enterprise_ids, limit=limit
    )
    latest = await services.live.latest_fixes([a for a, _ in found])
    features = []
    for asset_id, distance in found:
        fix = latest.get(asset_id)
        if fix is None or not scope.allows(fix.enterprise_id):
            continue
        view = fix_view(fix, crs)
        point = {"type": "Point", "coordinates": [view["lon"], view["lat"]]}
        properties = {"asset_id": asset_id, "distance_m": round(distance, 2), "fix": view}
        properties["enterprise_id"] = fix.enterprise_id
        features.append(
            {"type": "Feature", "id": asset_id, "geometry": point, "properties": properties}
        )
    return JsonResponse({"type": "FeatureCollection", "features": features})
