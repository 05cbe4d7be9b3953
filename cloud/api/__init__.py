"""FastAPI routers of the cloud API; :func:`api_router` bundles them."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["api_router"]


def api_router() -> APIRouter:
    """Every router of the API, under one router (mounted at ``/api/v1`` by the app)."""
    from cloud.api import (
        alert_stats,
        alerts,
        geo,
        inspect,
        live,
        maintenance,
        notify,
        registry,
        rule_state,
        tracks,
    )

    router = APIRouter()
    # alert_stats before alerts: /alerts/stats must not be taken for /alerts/{alert_id}
    modules = (registry, tracks, geo, rule_state, alert_stats, alerts, notify, maintenance)
    for module in (*modules, live, inspect):
        router.include_router(module.router)
    return router
