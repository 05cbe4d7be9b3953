"""The live stream of fixes, readings and alerts within the caller's scope (WebSocket and SSE).

Browsers cannot set headers on a WebSocket or an EventSource, so both also take the key as a
``token`` query parameter. The key is checked when the stream opens and again every keep-alive
interval, so a revoked key is cut off and a regulator's scope follows its region's registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any, Final

import msgspec
from fastapi import APIRouter, Header, HTTPException, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from cloud.api import schemas as out
from cloud.api.deps import CrsParam, Services, ServicesDep, scope_of_token
from cloud.auth import Scope, authenticate
from cloud.coords import Crs, convert
from cloud.models import LiveEvent

__all__ = ["event_view", "router", "visible"]

router = APIRouter(tags=["live"])
_KINDS: Final = frozenset({"fix", "reading", "alert", "gateway", "vessel"})
_ENCODER: Final = msgspec.json.Encoder()


def visible(scope: Scope, event: LiveEvent, kinds: frozenset[str]) -> bool:
    """Whether the caller may see ``event`` (events of no enterprise: admins only)."""
    if event.kind not in kinds:
        return False
    if scope.enterprise_ids is None:
        return True
    return event.enterprise_id is not None and event.enterprise_id in scope.enterprise_ids


def event_view(event: LiveEvent, crs: Crs) -> dict[str, Any]:
    """The JSON sent for an event; fix positions in ``crs``."""
    data = event.data
    if crs != "wgs84" and event.kind == "fix" and "lat" in data and "lon" in data:
        data = dict(data)
        data["lon"], data["lat"] = convert(data["lon"], data["lat"], src="wgs84", dst=crs)
    return {
        "kind": event.kind,
        "enterprise_id": event.enterprise_id,
        "ts_ms": event.ts_ms,
        "data": data,
    }


def _kinds(value: str | None) -> frozenset[str]:
    if not value:
        return _KINDS
    kinds = frozenset(k.strip() for k in value.split(",") if k.strip())
    unknown = kinds - _KINDS
    if unknown:
        raise HTTPException(422, detail=f"unknown kinds {sorted(unknown)}: use {sorted(_KINDS)}")
    return kinds


def _token(authorization: str | None, token: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return token


async def _events(
    services: Services, token: str, scope: Scope, kinds: frozenset[str], crs: Crs
) -> AsyncGenerator[dict[str, Any] | None]:
    """Visible events as JSON-ready dicts; ``None`` after each quiet keep-alive interval.

    The first item is ``{"kind": "ready", ...}``, sent once the subscription is active: every
    event published after the client has it is delivered. At each keep-alive the key is checked
    again: a revoked key ends the stream with ``{"kind": "closed"}``, and a regulator's scope
    follows enterprises added to or removed from its region.
    """
    interval_s = services.live_keepalive_s
    async with services.live.subscribe() as subscription:
        yield {"kind": "ready", "role": scope.role, "kinds": sorted(kinds), "crs": crs}
        iterator = aiter(subscription)
        check_at = time.monotonic() + interval_s
        while True:
            event: LiveEvent | None = None
            try:
                wait_s = max(0.0, check_at - time.monotonic())
                event = await asyncio.wait_for(anext(iterator), wait_s)
            except TimeoutError:
                pass
            except StopAsyncIteration:
                return
            if time.monotonic() >= check_at:
                # Checked on a clock, not only when quiet: a busy feed must not keep a key alive.
                renewed = await authenticate(services.store, token)
                if renewed is None:
                    yield {"kind": "closed", "reason": "the API key is no longer valid"}
                    return
                scope = renewed
                check_at = time.monotonic() + interval_s
            if event is None:
                yield None
            elif visible(scope, event, kinds):
                yield event_view(event, crs)


@router.websocket("/live/ws")
async def live_ws(
    websocket: WebSocket,
    token: Annotated[str | None, Query(description="API key, if no Authorization header")] = None,
    kinds: Annotated[str | None, Query(description="comma-separated: fix,reading,alert")] = None,
    crs: CrsParam = "wgs84",
) -> None:
    """Stream events in scope as JSON text messages; close code 4401 for a bad key."""
    services: Services = websocket.app.state.services
    key = _token(websocket.headers.get("authorization"), token) or ""
    try:
        wanted = _kinds(kinds)
        scope = await scope_of_token(services, key)
    except HTTPException as exc:
        await websocket.close(code=4401 if exc.status_code == 401 else 4422, reason=str(exc.detail))
        return
    await websocket.accept()
    # The client never needs to talk; reading lets us notice a disconnect at once.
    sender = asyncio.create_task(
        _send(websocket, services, key, scope, wanted, crs), name="live-ws-send"
    )
    reader = asyncio.create_task(_drain(websocket), name="live-ws-read")
    _, pending = await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    for task in (sender, reader):
        with contextlib.suppress(asyncio.CancelledError, Exception):  # the peer is gone
            await task
    if sender.done() and not sender.cancelled() and sender.exception() is None:
        # The stream ended on our side: the key was revoked, or the service is stopping.
        revoked = sender.result()
        code, reason = (4401, "the API key is no longer valid") if revoked else (1001, "")
        with contextlib.suppress(Exception):
            await websocket.close(code=code, reason=reason)


async def _send(
    websocket: WebSocket,
    services: Services,
    token: str,
    scope: Scope,
    kinds: frozenset[str],
    crs: Crs,
) -> bool:
    """Send events until the stream ends; return whether it ended because the key went bad."""
    async for view in _events(services, token, scope, kinds, crs):
        if view is not None:
            await websocket.send_text(_ENCODER.encode(view).decode())
            if view["kind"] == "closed":
                return True
    return False


async def _drain(websocket: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.receive_text()


@router.get(
    "/live/sse",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "An endless `text/event-stream`: `event: <kind>`, `data: <JSON>`",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **out.errors(),
    },
)
async def live_sse(
    services: ServicesDep,
    token: Annotated[str | None, Query(description="API key, if no Authorization header")] = None,
    authorization: Annotated[str | None, Header()] = None,
    kinds: Annotated[str | None, Query(description="comma-separated: fix,reading,alert")] = None,
    crs: CrsParam = "wgs84",
) -> StreamingResponse:
    """Server-sent events in scope: ``event: <kind>`` with the JSON in ``data``."""
    wanted = _kinds(kinds)
    key = _token(authorization, token) or ""
    scope = await scope_of_token(services, key)

    async def body() -> AsyncIterator[bytes]:
        async for view in _events(services, key, scope, wanted, crs):
            if view is None:
                yield b": keep-alive\n\n"
            else:
                yield (
                    b"event: "
                    + view["kind"].encode()
                    + b"\ndata: "
                    + _ENCODER.encode(view)
                    + b"\n\n"
                )

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)
