"""FastAPI routers of the cloud API; :func:`api_router` bundles them."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["api_router"]


def api_router() -> APIRouter:
    """Every router of the API, under one router (mounted at ``/api/v1`` by the app)."""
    from cloud.api import alerts, geo, inspect, live, registry, rule_state, tracks

    router = APIRouter()
    for module in (registry, tracks, geo, rule_state, alerts, live, inspect):
        router.include_router(module.router)
    return router
