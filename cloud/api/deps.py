"""What every router shares: the services, the caller's scope, errors, query parameters."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, NoReturn

import msgspec
from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, model_validator

from cloud.alerts import AlertService
from cloud.archive import Store
from cloud.auth import Scope, authenticate
from cloud.config import CloudSettings
from cloud.coords import Crs
from cloud.ingest import Ingest
from cloud.live import LiveState

__all__ = [
    "MAX_EPOCH_MS",
    "AdminScope",
    "Body",
    "CallerScope",
    "CrsParam",
    "JsonResponse",
    "Services",
    "ServicesDep",
    "bad_request",
    "get_services",
    "non_finite_at",
    "not_found",
    "nul_at",
    "owned_by",
    "wall_clock_ms",
]


#: The latest time the API takes: the archive stores epoch ms as signed 64-bit integers.
MAX_EPOCH_MS = 2**63 - 1


class Body(BaseModel):
    """A request body: numbers must be finite (Python's JSON reader takes NaN and Infinity) and
    text free of NUL characters (PostgreSQL cannot store them)."""

    model_config = ConfigDict(allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        where = nul_at(data, "body")
        if where is not None:
            raise ValueError(f"{where}: text must not contain NUL characters")
        return data


def nul_at(value: Any, path: str) -> str | None:
    """Where JSON holds a string (value or key) with a NUL character, or ``None``."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items: Any = ()
    if isinstance(value, dict):
        for key in value:
            if isinstance(key, str) and "\x00" in key:
                return f"{path}.{key!r}"
        items = ((f"{path}.{k}", v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    for where, inner in items:
        found = nul_at(inner, where)
        if found is not None:
            return found
    return None


def non_finite_at(value: Any, path: str) -> str | None:
    """Where free-form JSON (``properties``) holds a NaN or infinity, or ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    items: Any = ()
    if isinstance(value, dict):
        items = ((f"{path}.{k}", v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    for where, inner in items:
        found = non_finite_at(inner, where)
        if found is not None:
            return found
    return None


def wall_clock_ms() -> int:
    """The current UTC time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


@dataclass
class Services:
    """The resources the lifespan owns, reachable from every request.

    Attributes:
        store: the archive.
        live: the live state.
        settings: the configuration the app was made with.
        alerts: the alert lifecycle (acknowledge, close); made from store and live if None.
        ingest: the MQTT ingest, when this app runs one (its counters).
        clock_ms: the clock (a parameter so tests can fix it).
        live_keepalive_s: quiet time after which a live stream sends a keep-alive and checks
            its key again.
        counters: API-level counters by reason (rejected geometries, ...).
    """

    store: Store
    live: LiveState
    settings: CloudSettings
    alerts: AlertService | None = None
    ingest: Ingest | None = None
    clock_ms: Callable[[], int] = wall_clock_ms
    live_keepalive_s: float = 15.0
    counters: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.alerts is None:
            self.alerts = AlertService(self.store, self.live)

    def count(self, reason: str) -> None:
        """Add one to a counter."""
        self.counters[reason] = self.counters.get(reason, 0) + 1


def get_services(request: Request) -> Services:
    """The app's services (set by the lifespan)."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer hzk_...`")


def _unauthorized() -> NoReturn:
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail="missing or invalid API key",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def scope_of_token(services: Services, token: str | None) -> Scope:
    """The scope of a bearer token, or a 401."""
    scope = await authenticate(services.store, token) if token else None
    if scope is None:
        _unauthorized()
    return scope


async def get_scope(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Scope:
    """The caller's scope from the ``Authorization: Bearer`` header."""
    return await scope_of_token(services, credentials.credentials if credentials else None)


async def require_admin(scope: Annotated[Scope, Depends(get_scope)]) -> Scope:
    """The caller's scope, or a 403 unless admin."""
    if not scope.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="admin key required")
    return scope


CallerScope = Annotated[Scope, Depends(get_scope)]
AdminScope = Annotated[Scope, Depends(require_admin)]
CrsParam = Annotated[
    Crs, Query(description="coordinate system of coordinates in and out: wgs84, gcj02 or bd09")
]


def not_found(what: str, object_id: str) -> NoReturn:
    """Answer 404 (also for another tenant's object: its existence is not revealed)."""
    raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"{what} {object_id!r} not found")


def bad_request(detail: Any, *, code: int = status.HTTP_422_UNPROCESSABLE_CONTENT) -> NoReturn:
    """Answer 422 (or ``code``) with a detail that says what is wrong."""
    raise HTTPException(code, detail=detail)


class JsonResponse(JSONResponse):
    """A JSON response encoded with msgspec (structs, dicts and lists of them).

    A ``JSONResponse`` subclass, so that FastAPI writes the routes' ``response_model`` into the
    OpenAPI document (handlers return it directly: the model documents, never serializes).
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)


def owned_by(scope: Scope, enterprise_id: str | None, what: str) -> str:
    """The enterprise a new object of the caller belongs to, or a 404/403.

    A dispatcher's objects always belong to its enterprise; others must name one in scope.
    """
    target = enterprise_id or scope.enterprise_id
    if target is None:
        bad_request(f"{what} needs an enterprise_id")
    if not scope.allows(target):
        not_found("enterprise", target)
    return target
