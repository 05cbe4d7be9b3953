"""Alert handling figures within scope: counts, time to acknowledge and to close, grouped by
enterprise, rule kind, severity and day (Beijing time): what regulators assess enterprises on
("how fast alerts are handled")."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from cloud.api import schemas as out
from cloud.api.deps import MAX_EPOCH_MS, CallerScope, JsonResponse, ServicesDep
from cloud.models import Alert
from cloud.notify.config import NotifySettings
from cloud.notify.routing import BEIJING_OFFSET_MS, severity_of

__all__ = ["alert_stats", "router"]

router = APIRouter(default_response_class=JsonResponse, tags=["alerts"])

Dimension = Literal["enterprise", "kind", "severity", "day"]
DIMENSIONS: Final[tuple[Dimension, ...]] = ("enterprise", "kind", "severity", "day")
#: The most alerts one answer counts (narrow the period for more).
MAX_ALERTS: Final = 200_000


class StatsGroup(BaseModel):
    """Figures of one group (``key`` holds its value of each requested dimension).

    ``ack_ms_*`` are over acknowledged alerts (opened -> acknowledged), ``close_ms_*`` over
    closed ones (opened -> closed); ``None`` when there are none."""

    key: dict[str, str]
    count: int
    open: int
    acknowledged: int
    closed: int
    ack_ms_median: float | None
    ack_ms_mean: float | None
    close_ms_median: float | None
    close_ms_mean: float | None


class StatsOut(BaseModel):
    """Groups of alerts opened in ``[since_ms, until_ms)``; ``truncated`` if more than the
    answer counts were opened."""

    by: list[str]
    groups: list[StatsGroup]
    total: int
    truncated: bool


def _day(ts_ms: int) -> str:
    moment = datetime.fromtimestamp((ts_ms + BEIJING_OFFSET_MS) / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d")


def _key(alert: Alert, by: Sequence[Dimension], settings: NotifySettings) -> tuple[str, ...]:
    return tuple(_value(alert, d, settings) for d in by)


def _value(alert: Alert, dimension: Dimension, settings: NotifySettings) -> str:
    if dimension == "enterprise":
        return alert.enterprise_id
    if dimension == "kind":
        return alert.kind
    if dimension == "severity":
        return severity_of(alert.level, settings)
    return _day(alert.opened_ms)


def _spread(values: list[int]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return float(statistics.median(values)), float(statistics.fmean(values))


def alert_stats(
    alerts: Iterable[Alert], by: Sequence[Dimension], settings: NotifySettings
) -> list[dict[str, Any]]:
    """The figures of ``alerts`` grouped by ``by`` (pure), groups sorted by key."""
    groups: dict[tuple[str, ...], list[Alert]] = {}
    for alert in alerts:
        groups.setdefault(_key(alert, by, settings), []).append(alert)
    found = []
    for key in sorted(groups):
        members = groups[key]
        acked = [a.acked_ms - a.opened_ms for a in members if a.acked_ms is not None]
        closed = [a.closed_ms - a.opened_ms for a in members if a.closed_ms is not None]
        ack_median, ack_mean = _spread(acked)
        close_median, close_mean = _spread(closed)
        found.append(
            {
                "key": dict(zip(by, key, strict=True)),
                "count": len(members),
                "open": sum(1 for a in members if a.state == "open"),
                "acknowledged": sum(1 for a in members if a.state == "acknowledged"),
                "closed": sum(1 for a in members if a.state == "closed"),
                "ack_ms_median": ack_median,
                "ack_ms_mean": ack_mean,
                "close_ms_median": close_median,
                "close_ms_mean": close_mean,
            }
        )
    return found


_Ms = Annotated[int, Query(ge=0, le=MAX_EPOCH_MS)]


@router.get("/alerts/stats", response_model=StatsOut, responses=out.errors())
async def stats(
    services: ServicesDep,
    scope: CallerScope,
    since_ms: _Ms,
    until_ms: _Ms,
    by: Annotated[
        list[Dimension] | None,
        Query(max_length=4, description="dimensions to group by (default: all four)"),
    ] = None,
) -> JsonResponse:
    """Alerts opened in ``[since_ms, until_ms)`` in scope: counts and handling times."""
    dimensions = [d for d in DIMENSIONS if d in (by or DIMENSIONS)]
    found = await services.store.list_alerts(
        scope.enterprise_ids, since_ms=since_ms, until_ms=until_ms, limit=MAX_ALERTS + 1
    )
    truncated = len(found) > MAX_ALERTS
    found = found[:MAX_ALERTS]
    groups = alert_stats(found, dimensions, services.settings.notify)
    return JsonResponse(
        {"by": dimensions, "groups": groups, "total": len(found), "truncated": truncated}
    )
