"""What ingest kept for inspection (refused messages, sequence gaps, counters) and vessel data."""

from __future__ import annotations

from typing import Annotated

import msgspec
from fastapi import APIRouter, Query

from cloud.api import schemas as out
from cloud.api.deps import AdminScope, CallerScope, JsonResponse, ServicesDep

__all__ = ["router"]

router = APIRouter(default_response_class=JsonResponse)


@router.get(
    "/ingest/rejected",
    tags=["ingest"],
    response_model=list[out.RejectedOut],
    responses=out.errors(403),
)
async def rejected(
    services: ServicesDep, _: AdminScope, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> JsonResponse:
    """The most recent refused messages and items with their reason (admin: not scoped)."""
    found = await services.store.list_rejected(limit=limit)
    views = []
    for item in found:
        view = msgspec.to_builtins(item)
        view["payload"] = item.payload.decode("utf-8", errors="replace")
        views.append(view)
    return JsonResponse(views)


@router.get(
    "/ingest/gaps",
    tags=["ingest"],
    response_model=list[out.GapOut],
    responses=out.errors(),
)
async def gaps(
    services: ServicesDep,
    scope: CallerScope,
    gateway_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> JsonResponse:
    """Runs of gateway sequence numbers never received, newest first, in scope."""
    found = await services.store.list_gaps(scope.enterprise_ids, gateway_id=gateway_id, limit=limit)
    return JsonResponse(found)


@router.get(
    "/ingest/counters",
    tags=["ingest"],
    response_model=out.IngestCounters,
    responses=out.errors(403),
)
async def counters(services: ServicesDep, _: AdminScope) -> JsonResponse:
    """This worker's ingest counters (accepted, duplicate, rejected by reason...) and API ones."""
    ingest = services.ingest.counts() if services.ingest is not None else {}
    return JsonResponse({"ingest": ingest, "api": dict(services.counters)})


@router.get(
    "/vessels",
    tags=["assets"],
    response_model=list[out.VesselOut],
    responses=out.errors(),
)
async def vessels(services: ServicesDep, scope: CallerScope) -> JsonResponse:
    """Newest static data (AIS types 5, 19, 24) of every vessel in scope, by MMSI."""
    return JsonResponse(await services.store.vessels(scope.enterprise_ids))


@router.get(
    "/me",
    tags=["service"],
    response_model=out.MeOut,
    responses=out.errors(),
)
async def me(scope: CallerScope) -> JsonResponse:
    """Who the key is: role, name and the enterprises it sees (``null``: all)."""
    ids = None if scope.enterprise_ids is None else sorted(scope.enterprise_ids)
    return JsonResponse(
        {"name": scope.name, "role": scope.role, "region": scope.region,
         "enterprise_id": scope.enterprise_id, "enterprise_ids": ids}
    )  # fmt: skip
