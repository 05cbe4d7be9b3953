"""Maintenance windows: while one is open, alerts of its site (or one point) or vehicle are
recorded but nobody is told (their notifications are ``suppressed``) and they do not escalate.
Scoped by enterprise like the site or vehicle itself."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator

from cloud.api import schemas as out
from cloud.api.deps import (
    MAX_EPOCH_MS,
    Body,
    CallerScope,
    IdPath,
    JsonResponse,
    Line,
    ServicesDep,
    Text,
    not_found,
)
from cloud.notify.records import MaintenanceWindow

__all__ = ["router"]

router = APIRouter(default_response_class=JsonResponse, tags=["notifications"])

_Id = Annotated[Line, Field(min_length=1, max_length=128)]
_Ms = Annotated[int, Field(ge=0, le=MAX_EPOCH_MS)]


class WindowIn(Body):
    """A maintenance window of a site (all its points, or one ``point``) or of a vehicle."""

    site_id: _Id | None = None
    point: _Id | None = None
    asset_id: _Id | None = None
    start_ms: _Ms
    end_ms: _Ms
    reason: Annotated[Text, Field(max_length=1000)] = ""

    @model_validator(mode="after")
    def _target(self) -> WindowIn:
        if (self.site_id is None) == (self.asset_id is None):
            raise ValueError("name either a site_id (and maybe a point) or an asset_id")
        if self.point is not None and self.site_id is None:
            raise ValueError("a point needs its site_id")
        if self.end_ms <= self.start_ms:
            raise ValueError("end_ms must be after start_ms")
        return self


class WindowOut(BaseModel):
    """A maintenance window as stored."""

    id: str
    enterprise_id: str
    site_id: str | None
    point: str | None
    asset_id: str | None
    start_ms: int
    end_ms: int
    reason: str
    created_ms: int


@router.get("/notify/maintenance", response_model=list[WindowOut], responses=out.errors())
async def list_windows(services: ServicesDep, scope: CallerScope) -> JsonResponse:
    """Maintenance windows in scope, by id."""
    return JsonResponse(await services.store.list_windows(scope.enterprise_ids))


@router.put("/notify/maintenance/{window_id}", response_model=WindowOut, responses=out.errors(404))
async def put_window(
    window_id: IdPath, body: WindowIn, services: ServicesDep, scope: CallerScope
) -> JsonResponse:
    """Create or replace a maintenance window of a site or vehicle in scope."""
    store = services.store
    existing = [w for w in await store.list_windows() if w.id == window_id]
    if existing and not scope.allows(existing[0].enterprise_id):
        not_found("maintenance window", window_id)
    owner: str | None = None
    if body.site_id is not None:
        site = await store.get_site(body.site_id, enterprise_ids=scope.enterprise_ids)
        owner = None if site is None else site.enterprise_id
        if owner is None:
            not_found("site", body.site_id)
    else:
        assert body.asset_id is not None  # checked by WindowIn
        asset = await store.get_asset(body.asset_id, enterprise_ids=scope.enterprise_ids)
        owner = None if asset is None else asset.enterprise_id
        if owner is None:
            not_found("asset", body.asset_id)
    window = MaintenanceWindow(
        id=window_id, enterprise_id=owner, site_id=body.site_id, point=body.point,
        asset_id=body.asset_id, start_ms=body.start_ms, end_ms=body.end_ms, reason=body.reason,
        created_ms=services.clock_ms(),
    )  # fmt: skip
    await store.put_window(window)
    return JsonResponse(window)


@router.delete("/notify/maintenance/{window_id}", status_code=204, responses=out.errors(404))
async def delete_window(window_id: IdPath, services: ServicesDep, scope: CallerScope) -> None:
    """Remove a maintenance window in scope."""
    if not await services.store.delete_window(window_id, enterprise_ids=scope.enterprise_ids):
        not_found("maintenance window", window_id)
