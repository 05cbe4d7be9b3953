"""Enterprises, gateways (with live status and buffer health), assets (with latest state),
sites, points and readings.

Ids of gateways, assets and sites are global (devices use them on the wire), so a caller who
could choose one would learn whether another tenant uses it. Only an admin (who sees every
tenant anyway) chooses ids; everyone else gets one made by the server in the answer, and
changes an object with ``PUT`` on its id. Gateways are provisioned by an admin or by the
regulator of the enterprise's region, never by a dispatcher: a gateway's data goes to its
enterprise, so whoever registers it decides whose data that is.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import Field, model_validator

from cloud.api import schemas as out
from cloud.api.deps import (
    MAX_EPOCH_MS,
    AdminScope,
    Body,
    CallerScope,
    CrsParam,
    JsonResponse,
    ServicesDep,
    bad_request,
    not_found,
    owned_by,
)
from cloud.archive import ConflictError
from cloud.auth import Scope
from cloud.coords import Crs, convert
from cloud.models import Asset, Enterprise, Gateway, LatestFix, Limits, Point, Site

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(default_response_class=JsonResponse)
_ID = Field(min_length=1, max_length=128)


class EnterpriseIn(Body):
    """A new enterprise (tenant)."""

    id: str = _ID
    name: str = Field(min_length=1, max_length=256)
    region: str = Field(pattern=r"^[1-9][0-9]{5}$", description="GB/T 2260 code, e.g. 320281")


_ID_CHOSEN = "only an admin chooses an id; leave it out and the server makes one"


class GatewayIn(Body):
    """A new gateway; its id is the MQTT username and topic level (made by the server unless an
    admin gives one)."""

    id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$", description=_ID_CHOSEN
    )
    enterprise_id: str | None = None
    name: str = Field(default="", max_length=256)


class AssetIn(Body):
    """A new moving asset (its id made by the server unless an admin gives one)."""

    id: str | None = Field(default=None, min_length=1, max_length=128, description=_ID_CHOSEN)
    enterprise_id: str | None = None
    asset_class: str = Field(pattern=r"^(hazmat_truck|school_bus|coach|fishing_vessel|other)$")
    plate: str | None = Field(default=None, max_length=64)
    mmsi: int | None = Field(default=None, ge=0, le=999_999_999)
    name: str = ""
    long_distance: bool = Field(
        default=False, description="a long-distance coach: may not move between 02:00 and 05:00"
    )


class SiteIn(Body):
    """A new site (tank farm); its position is given in ``crs`` (its id made by the server
    unless an admin gives one)."""

    id: str | None = Field(default=None, min_length=1, max_length=128, description=_ID_CHOSEN)
    enterprise_id: str | None = None
    name: str = Field(min_length=1)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class PointIn(Body):
    """A point (tag) of a site with its unit and alarm limits."""

    unit: str = Field(default="", max_length=32)
    ll: float | None = None
    l: float | None = None  # noqa: E741 - the standard name of the low limit
    h: float | None = None
    hh: float | None = None
    # how the cloud watches it (cloud.sites; unset: the [sites] configuration's default)
    deadband: float | None = Field(default=None, ge=0)
    delay_s: float | None = Field(default=None, ge=0, le=86_400)
    kind: (
        Literal["gas", "toxic", "oxygen", "level", "pressure", "temperature", "flow", "other"]
        | None
    ) = None
    poll_s: float | None = Field(default=None, gt=0, le=86_400)
    frozen_s: float | None = Field(default=None, ge=0, le=30 * 86_400)
    span_lo: float | None = None
    span_hi: float | None = None
    rate_pct_per_min: float | None = Field(default=None, ge=0, le=10_000)

    @model_validator(mode="after")
    def _span(self) -> PointIn:
        if (
            self.span_lo is not None
            and self.span_hi is not None
            and not self.span_lo < self.span_hi
        ):
            raise ValueError(f"span_lo={self.span_lo} is not below span_hi={self.span_hi}")
        return self

    @model_validator(mode="after")
    def _ordered(self) -> PointIn:
        given = [
            (n, v)
            for n, v in (("ll", self.ll), ("l", self.l), ("h", self.h), ("hh", self.hh))
            if v is not None
        ]
        for (low_name, low), (high_name, high) in itertools.pairwise(given):
            if not low < high:
                raise ValueError(
                    f"limits must increase: {low_name}={low} is not below {high_name}={high}"
                )
        return self


def _object_id(scope: Scope, given: str | None, kind: str) -> str:
    """The id of a new object: the admin's choice, or one made by the server."""
    if given is None:
        return f"{kind}-{secrets.token_hex(6)}"
    if not scope.is_admin:
        bad_request(
            [{"loc": ["body", "id"], "msg": _ID_CHOSEN, "type": "value_error"}],
        )
    return given


def _provisioner(scope: Scope) -> None:
    """Gateways are provisioned by an admin or a regulator (of the enterprise's region)."""
    if scope.role not in ("admin", "regulator"):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="gateways are provisioned by an admin or the regulator of the region",
        )


async def _put(coro: Any) -> None:
    try:
        await coro
    except ConflictError as exc:
        bad_request(str(exc), code=status.HTTP_409_CONFLICT)


# -- enterprises ----------------------------------------------------------------------------


@router.get(
    "/enterprises",
    tags=["registry"],
    response_model=list[out.EnterpriseOut],
    responses=out.errors(),
)
async def list_enterprises(services: ServicesDep, scope: CallerScope) -> JsonResponse:
    """Enterprises in the caller's scope."""
    return JsonResponse(await services.store.list_enterprises(scope.enterprise_ids))


@router.get(
    "/enterprises/{enterprise_id}",
    tags=["registry"],
    response_model=out.EnterpriseOut,
    responses=out.errors(404),
)
async def get_enterprise(
    enterprise_id: str, services: ServicesDep, scope: CallerScope
) -> JsonResponse:
    """One enterprise in scope."""
    found = await services.store.get_enterprise(enterprise_id, enterprise_ids=scope.enterprise_ids)
    if found is None:
        not_found("enterprise", enterprise_id)
    return JsonResponse(found)


@router.post(
    "/enterprises",
    tags=["registry"],
    status_code=status.HTTP_201_CREATED,
    response_model=out.EnterpriseOut,
    responses=out.errors(403, 409),
)
async def create_enterprise(
    body: EnterpriseIn, services: ServicesDep, _: AdminScope
) -> JsonResponse:
    """Create or replace an enterprise (admin)."""
    enterprise = Enterprise(id=body.id, name=body.name, region=body.region)
    await _put(services.store.put_enterprise(enterprise))
    return JsonResponse(enterprise, status_code=status.HTTP_201_CREATED)


# -- gateways -------------------------------------------------------------------------------


async def _gateway_views(services: ServicesDep, gateways: list[Gateway]) -> list[dict[str, Any]]:
    live = await services.live.gateways([g.id for g in gateways])
    views = []
    for gw in gateways:
        view: dict[str, Any] = msgspec.to_builtins(gw)
        known = live.get(gw.id)
        if known is not None and known.enterprise_id != gw.enterprise_id:
            known = None  # what the gateway did for a previous owner is not shown
        view["state"] = known.state if known else "unknown"
        view["status_ms"] = known.status_ms if known else None
        view["last_seen_ms"] = known.last_seen_ms if known else None
        view["health"] = msgspec.to_builtins(known.health) if known and known.health else None
        views.append(view)
    return views


@router.get(
    "/gateways",
    tags=["registry"],
    response_model=list[out.GatewayView],
    responses=out.errors(),
)
async def list_gateways(services: ServicesDep, scope: CallerScope) -> JsonResponse:
    """Gateways in scope with status (online/offline), last seen and buffer health."""
    gateways = await services.store.list_gateways(scope.enterprise_ids)
    return JsonResponse(await _gateway_views(services, gateways))


@router.get(
    "/gateways/{gateway_id}",
    tags=["registry"],
    response_model=out.GatewayView,
    responses=out.errors(404),
)
async def get_gateway(gateway_id: str, services: ServicesDep, scope: CallerScope) -> JsonResponse:
    """One gateway in scope with its live status and health."""
    found = await services.store.get_gateway(gateway_id, enterprise_ids=scope.enterprise_ids)
    if found is None:
        not_found("gateway", gateway_id)
    return JsonResponse((await _gateway_views(services, [found]))[0])


@router.post(
    "/gateways",
    tags=["registry"],
    status_code=status.HTTP_201_CREATED,
    response_model=out.GatewayOut,
    responses=out.errors(403, 404, 409),
)
async def create_gateway(
    body: GatewayIn, services: ServicesDep, scope: CallerScope
) -> JsonResponse:
    """Provision a gateway for an enterprise in scope (admin, or the region's regulator).

    Its id is made by the server unless an admin gives one; give the gateway that id as its
    MQTT user name.
    """
    _provisioner(scope)
    enterprise_id = owned_by(scope, body.enterprise_id, "a gateway")
    gateway_id = _object_id(scope, body.id, "gw")
    previous = await services.store.get_gateway(gateway_id)
    gateway = Gateway(id=gateway_id, enterprise_id=enterprise_id, name=body.name)
    await _put(services.store.put_gateway(gateway))
    if previous is None or previous.enterprise_id != enterprise_id:
        await _gateway_changed_hands(services, gateway_id)
    await _registry_changed(services, gateway_id=gateway.id)
    return JsonResponse(gateway, status_code=status.HTTP_201_CREATED)


@router.delete(
    "/gateways/{gateway_id}", tags=["registry"], status_code=204, responses=out.errors(403, 404)
)
async def delete_gateway(gateway_id: str, services: ServicesDep, scope: CallerScope) -> None:
    """Remove a gateway in scope (admin, or the region's regulator)."""
    if await services.store.get_gateway(gateway_id, enterprise_ids=scope.enterprise_ids) is None:
        not_found("gateway", gateway_id)  # another tenant's: 404 whoever asks
    _provisioner(scope)
    if not await services.store.delete_gateway(gateway_id, enterprise_ids=scope.enterprise_ids):
        not_found("gateway", gateway_id)
    await _gateway_changed_hands(services, gateway_id)
    await _registry_changed(services, gateway_id=gateway_id)


async def _gateway_changed_hands(services: ServicesDep, gateway_id: str) -> None:
    """Forget what the live state knows of a gateway (a reused id starts blank)."""
    try:
        await services.live.forget_gateway(gateway_id)
    except Exception:  # views check the owner too; this only tidies up
        log.warning("live state of gateway %s not cleared", gateway_id, exc_info=True)


async def _registry_changed(
    services: ServicesDep, *, gateway_id: str | None = None, asset_id: str | None = None
) -> None:
    """A gateway or an asset changed owner: this worker's ingest forgets it at once, and the
    registry version tells the other workers' ingest to drop their cached owners."""
    if services.ingest is not None:
        if gateway_id is not None:
            services.ingest.forget_gateway(gateway_id)
        if asset_id is not None:
            services.ingest.forget_asset(asset_id)
    try:
        await services.live.bump_registry_version()
    except Exception:  # the change is saved; other workers' caches expire by age
        log.warning("registry version not increased", exc_info=True)


# -- assets ---------------------------------------------------------------------------------


def fix_view(latest: LatestFix, crs: Crs) -> dict[str, Any]:
    """A latest fix as JSON, its position in ``crs``."""
    fix: dict[str, Any] = msgspec.to_builtins(latest.fix)
    fix["lon"], fix["lat"] = convert(latest.fix.lon, latest.fix.lat, src="wgs84", dst=crs)
    fix["recv_ms"] = latest.recv_ms
    return fix


async def _asset_views(
    services: ServicesDep, assets: list[Asset], crs: Crs
) -> list[dict[str, Any]]:
    ids = [a.id for a in assets]
    latest = await services.live.latest_fixes(ids)
    statuses = await services.live.asset_status(ids)
    views = []
    for asset in assets:
        view: dict[str, Any] = msgspec.to_builtins(asset)
        # A fix archived under another tenant (asset moved) is not shown.
        fix = latest.get(asset.id)
        own = fix is not None and fix.enterprise_id == asset.enterprise_id
        view["latest"] = fix_view(fix, crs) if fix is not None and own else None
        view["status"] = statuses.get(asset.id)
        views.append(view)
    return views


@router.get(
    "/assets",
    tags=["assets"],
    response_model=list[out.AssetView],
    responses=out.errors(),
)
async def list_assets(
    services: ServicesDep,
    scope: CallerScope,
    crs: CrsParam = "wgs84",
    asset_class: Annotated[str | None, Query()] = None,
) -> JsonResponse:
    """Assets in scope with their latest fix and status."""
    assets = await services.store.list_assets(scope.enterprise_ids, asset_class=asset_class)
    return JsonResponse(await _asset_views(services, assets, crs))


@router.get(
    "/assets/{asset_id}",
    tags=["assets"],
    response_model=out.AssetView,
    responses=out.errors(404),
)
async def get_asset(
    asset_id: str, services: ServicesDep, scope: CallerScope, crs: CrsParam = "wgs84"
) -> JsonResponse:
    """One asset in scope with its latest fix and status."""
    found = await services.store.get_asset(asset_id, enterprise_ids=scope.enterprise_ids)
    if found is None:
        not_found("asset", asset_id)
    return JsonResponse((await _asset_views(services, [found], crs))[0])


@router.post(
    "/assets",
    tags=["assets"],
    status_code=status.HTTP_201_CREATED,
    response_model=out.AssetOut,
    responses=out.errors(404, 409),
)
async def create_asset(body: AssetIn, services: ServicesDep, scope: CallerScope) -> JsonResponse:
    """Register an asset of an enterprise in scope (its id made by the server unless an admin
    gives one: an admin's existing id is replaced)."""
    enterprise_id = owned_by(scope, body.enterprise_id, "an asset")
    asset_id = _object_id(scope, body.id, "asset")
    return await _save_asset(services, body, asset_id, enterprise_id, status.HTTP_201_CREATED)


@router.put(
    "/assets/{asset_id}",
    tags=["assets"],
    response_model=out.AssetOut,
    responses=out.errors(404, 409),
)
async def update_asset(
    asset_id: str, body: AssetIn, services: ServicesDep, scope: CallerScope
) -> JsonResponse:
    """Change an asset in scope (class, plate, MMSI, name; an admin may move it)."""
    found = await services.store.get_asset(asset_id, enterprise_ids=scope.enterprise_ids)
    if found is None:
        not_found("asset", asset_id)
    if body.id not in (None, asset_id):
        bad_request(
            [{"loc": ["body", "id"], "msg": "differs from the path", "type": "value_error"}]
        )
    enterprise_id = owned_by(scope, body.enterprise_id or found.enterprise_id, "an asset")
    return await _save_asset(services, body, asset_id, enterprise_id, status.HTTP_200_OK)


async def _save_asset(
    services: ServicesDep, body: AssetIn, asset_id: str, enterprise_id: str, code: int
) -> JsonResponse:
    fields = body.model_dump(exclude_none=True)
    asset = msgspec.convert({**fields, "id": asset_id, "enterprise_id": enterprise_id}, Asset)
    await _put(services.store.put_asset(asset))
    await _registry_changed(services, asset_id=asset.id)  # its fixes: checked for the new owner
    return JsonResponse(asset, status_code=code)


@router.delete("/assets/{asset_id}", tags=["assets"], status_code=204, responses=out.errors(404))
async def delete_asset(asset_id: str, services: ServicesDep, scope: CallerScope) -> None:
    """Remove an asset in scope (its archived track stays until retention)."""
    if not await services.store.delete_asset(asset_id, enterprise_ids=scope.enterprise_ids):
        not_found("asset", asset_id)
    await _registry_changed(services, asset_id=asset_id)


# -- sites, points, readings ----------------------------------------------------------------


def _site_view(site: Site, crs: Crs) -> dict[str, Any]:
    view: dict[str, Any] = msgspec.to_builtins(site)
    view["lon"], view["lat"] = convert(site.lon, site.lat, src="wgs84", dst=crs)
    return view


async def _site(services: ServicesDep, scope: Scope, site_id: str) -> Site:
    found = await services.store.get_site(site_id, enterprise_ids=scope.enterprise_ids)
    if found is None:
        not_found("site", site_id)
    return found


@router.get(
    "/sites",
    tags=["sites"],
    response_model=list[out.SiteOut],
    responses=out.errors(),
)
async def list_sites(
    services: ServicesDep, scope: CallerScope, crs: CrsParam = "wgs84"
) -> JsonResponse:
    """Sites (tank farms) in scope."""
    sites = await services.store.list_sites(scope.enterprise_ids)
    return JsonResponse([_site_view(s, crs) for s in sites])


@router.get(
    "/sites/{site_id}",
    tags=["sites"],
    response_model=out.SiteDetail,
    responses=out.errors(404),
)
async def get_site(
    site_id: str, services: ServicesDep, scope: CallerScope, crs: CrsParam = "wgs84"
) -> JsonResponse:
    """One site in scope with its points."""
    site = await _site(services, scope, site_id)
    view = _site_view(site, crs)
    view["points"] = msgspec.to_builtins(await services.store.list_points(site_id))
    return JsonResponse(view)


@router.post(
    "/sites",
    tags=["sites"],
    status_code=status.HTTP_201_CREATED,
    response_model=out.SiteOut,
    responses=out.errors(404, 409),
)
async def create_site(
    body: SiteIn, services: ServicesDep, scope: CallerScope, crs: CrsParam = "wgs84"
) -> JsonResponse:
    """Register a site of an enterprise in scope (position given in ``crs``; its id made by the
    server unless an admin gives one)."""
    enterprise_id = owned_by(scope, body.enterprise_id, "a site")
    site_id = _object_id(scope, body.id, "site")
    return await _save_site(services, body, site_id, enterprise_id, crs, status.HTTP_201_CREATED)


@router.put(
    "/sites/{site_id}",
    tags=["sites"],
    response_model=out.SiteOut,
    responses=out.errors(404, 409),
)
async def update_site(
    site_id: str,
    body: SiteIn,
    services: ServicesDep,
    scope: CallerScope,
    crs: CrsParam = "wgs84",
) -> JsonResponse:
    """Change a site in scope (name, position in ``crs``; an admin may move it)."""
    found = await _site(services, scope, site_id)
    if body.id not in (None, site_id):
        bad_request(
            [{"loc": ["body", "id"], "msg": "differs from the path", "type": "value_error"}]
        )
    enterprise_id = owned_by(scope, body.enterprise_id or found.enterprise_id, "a site")
    return await _save_site(services, body, site_id, enterprise_id, crs, status.HTTP_200_OK)


async def _save_site(
    services: ServicesDep, body: SiteIn, site_id: str, enterprise_id: str, crs: Crs, code: int
) -> JsonResponse:
    lon, lat = convert(body.lon, body.lat, src=crs, dst="wgs84")
    site = Site(id=site_id, enterprise_id=enterprise_id, name=body.name, lat=lat, lon=lon)
    await _put(services.store.put_site(site))
    if services.ingest is not None:
        services.ingest.forget_site(site_id)
    try:
        await services.live.bump_registry_version()
    except Exception:
        log.warning("registry version not increased", exc_info=True)
    return JsonResponse(_site_view(site, crs), status_code=code)


@router.delete("/sites/{site_id}", tags=["sites"], status_code=204, responses=out.errors(404))
async def delete_site(site_id: str, services: ServicesDep, scope: CallerScope) -> None:
    """Remove a site in scope and its points."""
    if not await services.store.delete_site(site_id, enterprise_ids=scope.enterprise_ids):
        not_found("site", site_id)
    if services.ingest is not None:
        services.ingest.forget_site(site_id)


@router.get(
    "/sites/{site_id}/points",
    tags=["sites"],
    response_model=list[out.SitePoint],
    responses=out.errors(404),
)
async def list_points(site_id: str, services: ServicesDep, scope: CallerScope) -> JsonResponse:
    """Points of a site in scope."""
    await _site(services, scope, site_id)
    return JsonResponse(await services.store.list_points(site_id))


@router.put(
    "/sites/{site_id}/points/{tag}",
    tags=["sites"],
    response_model=out.SitePoint,
    responses=out.errors(404, 409),
)
async def put_point(
    site_id: str,
    tag: Annotated[str, Path(min_length=1, max_length=128)],
    body: PointIn,
    services: ServicesDep,
    scope: CallerScope,
) -> JsonResponse:
    """Create or replace a point of a site in scope."""
    await _site(services, scope, site_id)
    limits = Limits(**body.model_dump(exclude={"unit"}))
    point = Point(site_id=site_id, tag=tag, unit=body.unit, limits=limits)
    await _put(services.store.put_point(point))
    if services.sites is not None:
        services.sites.forget_site(
            site_id
        )  # this worker at once; the others within their cache's TTL
    return JsonResponse(point)


@router.get(
    "/sites/{site_id}/points/{tag}/readings",
    tags=["sites"],
    response_model=list[out.ReadingOut],
    responses=out.errors(404),
)
async def readings(
    site_id: str,
    tag: str,
    services: ServicesDep,
    scope: CallerScope,
    start_ms: Annotated[int, Query(ge=0, le=MAX_EPOCH_MS)],
    end_ms: Annotated[int, Query(ge=0, le=MAX_EPOCH_MS)],
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> JsonResponse:
    """Readings of a point with ``start_ms <= ts < end_ms``, oldest first."""
    await _site(services, scope, site_id)
    if end_ms <= start_ms:
        bad_request("end_ms must be after start_ms")
    found = await services.store.readings(
        site_id, tag, start_ms, end_ms, enterprise_ids=scope.enterprise_ids, limit=limit
    )
    return JsonResponse(found)
