"""The live stream of fixes, readings and alerts within the caller's scope (WebSocket and SSE).

Browsers cannot set headers on a WebSocket or an EventSource, and a key in a URL ends up in
access logs, proxies and referrers. So a browser first trades its key (in the ``Authorization``
header) for a ticket, ``POST /live/tickets``: single use, valid for :data:`TICKET_TTL_S`, and
opens the stream with ``?ticket=``; other clients may send the header on the stream itself. The
key behind the stream is checked when it opens and again every keep-alive interval (by its
hash: the stream never holds the key), so a revoked key is cut off and a regulator's scope
follows its region's registry. A WebSocket with no valid key or ticket is accepted and closed
at once with code 4401, so that browsers can tell it from a network failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any, Final

import msgspec
from fastapi import (
    APIRouter,
    Header,
    HTTPException,
    Query,
    Request,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from cloud.api import schemas as out
from cloud.api.deps import CallerScope, CrsParam, JsonResponse, Services, ServicesDep
from cloud.auth import (
    TICKET_PREFIX,
    TOKEN_PREFIX,
    Scope,
    authenticate_hash,
    hash_token,
    new_ticket,
)
from cloud.coords import Crs, convert
from cloud.models import LiveEvent

__all__ = ["TICKET_TTL_S", "event_view", "router", "visible"]

router = APIRouter(tags=["live"])
#: How long a ticket may wait before the stream it is for opens.
TICKET_TTL_S: Final = 30.0
_TICKET_QUERY = Query(description="a ticket from POST /live/tickets, if no Authorization header")
_KINDS: Final = frozenset({"fix", "reading", "alert", "gateway", "vessel", "finding"})
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


class TicketOut(BaseModel):
    """A single-use ticket that opens one live stream within a few seconds."""

    ticket: str = Field(description="put it in the stream's URL as ?ticket=")
    expires_ms: int = Field(description="when it can no longer open a stream")


@router.post(
    "/live/tickets",
    status_code=201,
    response_model=TicketOut,
    responses=out.errors(),
)
async def create_ticket(
    services: ServicesDep, scope: CallerScope, request: Request
) -> JsonResponse:
    """Trade the key in the ``Authorization`` header for a stream ticket (the key never goes
    into a URL)."""
    ticket = new_ticket()
    key_hash = hash_token(request.headers["authorization"][7:].strip())
    await services.live.put_ticket(hash_token(ticket), key_hash, ttl_s=TICKET_TTL_S)
    expires_ms = int((time.time() + TICKET_TTL_S) * 1000)
    return JsonResponse({"ticket": ticket, "expires_ms": expires_ms}, status_code=201)


async def _opener(
    services: Services, authorization: str | None, ticket: str | None
) -> tuple[str, Scope]:
    """The key hash and scope of a stream being opened, or a 401."""
    key_hash: str | None = None
    if authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
        key_hash = hash_token(token) if token.startswith(TOKEN_PREFIX) else None
    elif ticket and ticket.startswith(TICKET_PREFIX):
        key_hash = await services.live.take_ticket(hash_token(ticket))
    scope = await authenticate_hash(services.store, key_hash) if key_hash else None
    if key_hash is None or scope is None:
        raise HTTPException(401, detail="a valid API key or stream ticket is required")
    return key_hash, scope


async def _events(
    services: Services, key_hash: str, scope: Scope, kinds: frozenset[str], crs: Crs
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
                renewed = await authenticate_hash(services.store, key_hash)
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
    ticket: Annotated[str | None, _TICKET_QUERY] = None,
    kinds: Annotated[str | None, Query(description="comma-separated: fix,reading,alert")] = None,
    crs: CrsParam = "wgs84",
) -> None:
    """Stream events in scope as JSON text messages; close code 4401 for a bad key or ticket."""
    services: Services = websocket.app.state.services
    try:
        wanted = _kinds(kinds)
        key_hash, scope = await _opener(services, websocket.headers.get("authorization"), ticket)
    except HTTPException as exc:
        # Accepted first: a close before the handshake is an HTTP 403 to the browser.
        await websocket.accept()
        await websocket.close(code=4401 if exc.status_code == 401 else 4422, reason=str(exc.detail))
        return
    await websocket.accept()
    # The client never needs to talk; reading lets us notice a disconnect at once.
    sender = asyncio.create_task(
        _send(websocket, services, key_hash, scope, wanted, crs), name="live-ws-send"
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
    key_hash: str,
    scope: Scope,
    kinds: frozenset[str],
    crs: Crs,
) -> bool:
    """Send events until the stream ends; return whether it ended because the key went bad."""
    async for view in _events(services, key_hash, scope, kinds, crs):
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
    ticket: Annotated[str | None, _TICKET_QUERY] = None,
    authorization: Annotated[str | None, Header()] = None,
    kinds: Annotated[str | None, Query(description="comma-separated: fix,reading,alert")] = None,
    crs: CrsParam = "wgs84",
) -> StreamingResponse:
    """Server-sent events in scope: ``event: <kind>`` with the JSON in ``data``."""
    wanted = _kinds(kinds)
    key_hash, scope = await _opener(services, authorization, ticket)

    async def body() -> AsyncIterator[bytes]:
        async for view in _events(services, key_hash, scope, wanted, crs):
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
