"""Alerts in scope: list, detail with history, acknowledge / comment / close."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from pydantic import Field

from cloud.alerts import AlertService, InvalidTransitionError
from cloud.api import schemas as out
from cloud.api.deps import (
    MAX_EPOCH_MS,
    Body,
    CallerScope,
    IdPath,
    JsonResponse,
    ServicesDep,
    Text,
    bad_request,
    not_found,
)
from cloud.models import Alert, AlertState

__all__ = ["router"]

router = APIRouter(default_response_class=JsonResponse, tags=["alerts"])


class Handling(Body):
    """A dispatcher's or regulator's note on an alert (free text: TAB and LF allowed)."""

    comment: Annotated[Text, Field(max_length=4000)] = ""


_Filter = Annotated[str | None, Query(min_length=1, max_length=128)]


@router.get("/alerts", response_model=list[out.AlertOut], responses=out.errors())
async def list_alerts(
    services: ServicesDep,
    scope: CallerScope,
    state: Annotated[
        list[AlertState] | None, Query(max_length=3, description="any of these states")
    ] = None,
    kind: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    asset_id: _Filter = None,
    site_id: _Filter = None,
    since_ms: Annotated[
        int | None, Query(ge=0, le=MAX_EPOCH_MS, description="opened at or after")
    ] = None,
    until_ms: Annotated[
        int | None, Query(ge=0, le=MAX_EPOCH_MS, description="opened before")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> JsonResponse:
    """Alerts in scope, newest first (without history: get one alert for that)."""
    found = await services.store.list_alerts(
        scope.enterprise_ids, state=state, kind=kind, asset_id=asset_id, site_id=site_id,
        since_ms=since_ms, until_ms=until_ms, limit=limit,
    )  # fmt: skip
    return JsonResponse(found)


@router.get(
    "/alerts/{alert_id}",
    response_model=out.AlertOut,
    responses=out.errors(404),
)
async def get_alert(alert_id: IdPath, services: ServicesDep, scope: CallerScope) -> JsonResponse:
    """One alert in scope with its full event history."""
    found = await services.store.get_alert(alert_id, enterprise_ids=scope.enterprise_ids)
    if found is None:
        not_found("alert", alert_id)
    return JsonResponse(found)


def _alerts(services: ServicesDep) -> AlertService:
    assert services.alerts is not None  # set in Services.__post_init__
    return services.alerts


def _answer(alert: Alert | None, alert_id: str) -> JsonResponse:
    if alert is None:
        not_found("alert", alert_id)
    return JsonResponse(alert)


async def _act(
    action: Literal["acknowledge", "comment", "close"],
    alert_id: str,
    body: Handling,
    services: ServicesDep,
    scope: CallerScope,
) -> JsonResponse:
    """Apply one handling action in the caller's scope; an impossible transition is a 409."""
    service = _alerts(services)
    handle: dict[str, Callable[..., Awaitable[Alert | None]]] = {
        "acknowledge": service.acknowledge,
        "comment": service.comment,
        "close": service.close,
    }
    try:
        alert = await handle[action](
            alert_id, by=scope.name, comment=body.comment, now_ms=services.clock_ms(),
            enterprise_ids=scope.enterprise_ids,
        )  # fmt: skip
    except InvalidTransitionError as exc:
        bad_request(str(exc), code=status.HTTP_409_CONFLICT)
    return _answer(alert, alert_id)


@router.post(
    "/alerts/{alert_id}/acknowledge",
    response_model=out.AlertOut,
    responses=out.errors(404, 409),
)
async def acknowledge(
    alert_id: IdPath, body: Handling, services: ServicesDep, scope: CallerScope
) -> JsonResponse:
    """Acknowledge an open alert with a comment (409 if already acknowledged or closed)."""
    return await _act("acknowledge", alert_id, body, services, scope)


@router.post(
    "/alerts/{alert_id}/comment",
    response_model=out.AlertOut,
    responses=out.errors(404, 409),
)
async def comment(
    alert_id: IdPath, body: Handling, services: ServicesDep, scope: CallerScope
) -> JsonResponse:
    """Add a comment to an alert that is not closed."""
    if not body.comment:
        bad_request("comment is empty")
    return await _act("comment", alert_id, body, services, scope)


@router.post(
    "/alerts/{alert_id}/close",
    response_model=out.AlertOut,
    responses=out.errors(404, 409),
)
async def close(
    alert_id: IdPath, body: Handling, services: ServicesDep, scope: CallerScope
) -> JsonResponse:
    """Close an open or acknowledged alert (409 if already closed)."""
    return await _act("close", alert_id, body, services, scope)
