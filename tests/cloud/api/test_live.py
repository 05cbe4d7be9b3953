"""The live stream over a real uvicorn: each key sees its tenants' fixes, readings and alerts only."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from websockets.asyncio.client import ClientConnection

from cloud.auth import hash_token
from cloud.coords import wgs84_to_gcj02
from cloud.models import Enterprise, LiveEvent
from tests.cloud.api.conftest import ENTERPRISES, NOW_MS, ORIGINS, SCOPES, World
from tests.support.procs import free_port


@contextlib.asynccontextmanager
async def served(world: World) -> AsyncIterator[int]:
    """Serve the world's app on a free port (its lifespan already ran in the fixture)."""
    port = free_port()
    config = uvicorn.Config(
        world.app, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
        ws="websockets-sansio",
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(), name="uvicorn")
    async with asyncio.timeout(10):
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


def events_for(short: str | None, *, end: bool = False) -> list[LiveEvent]:
    """A fix, a reading and an alert of tenant ``short`` (``None``: no enterprise)."""
    ent = f"ent-{short}" if short else None
    lon, lat = ORIGINS[short or "jy"]
    fix = {"kind": "fix", "asset": f"truck-{short}", "lat": lat, "lon": lon, "seq": 1, "ts": NOW_MS}
    if end:
        return [LiveEvent(kind="fix", enterprise_id=ent, ts_ms=NOW_MS, data={**fix, "end": True})]
    reading = {"kind": "reading", "site": f"site-{short}", "point": "LT01", "value": 3.0}
    alert = {"id": f"al-{short}", "state": "acknowledged"}
    return [
        LiveEvent(kind="fix", enterprise_id=ent, ts_ms=NOW_MS, data=fix),
        LiveEvent(kind="reading", enterprise_id=ent, ts_ms=NOW_MS, data=reading),
        LiveEvent(kind="alert", enterprise_id=ent, ts_ms=NOW_MS, data=alert),
    ]


async def publish_round(world: World) -> None:
    """Everyone's events, then one end marker per tenant (a stream in order shows leaks first)."""
    for short in [*sorted(ENTERPRISES), None]:
        await world.live.publish_many(events_for(short))
    for short in sorted(ENTERPRISES):
        await world.live.publish_many(events_for(short, end=True))


def check_received(key: str, received: list[dict[str, Any]]) -> None:
    scope = {f"ent-{s}" for s in SCOPES[key]}
    seen = {(e["enterprise_id"], e["kind"]) for e in received if not e["data"].get("end")}
    expected: set[tuple[str | None, str]] = {
        (ent, kind) for ent in scope for kind in ("fix", "reading", "alert")
    }
    if key == "admin":
        expected |= {(None, "fix"), (None, "reading"), (None, "alert")}
    assert seen == expected


async def collect_ws(ws: ClientConnection, key: str) -> list[dict[str, Any]]:
    ends_needed = {f"ent-{s}" for s in SCOPES[key]}
    received: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while ends_needed:
            event = json.loads(await ws.recv())
            received.append(event)
            if event["data"].get("end"):
                ends_needed.discard(event["enterprise_id"])
    return received


async def ticket(world: World, key: str) -> str:
    """A stream ticket for ``key`` (what the map page does before opening a stream)."""
    made = await world.send("POST", key, "/live/tickets")
    assert made.status_code == 201, made.text
    value: str = made.json()["ticket"]
    return value


async def test_websocket_stream_is_scoped(world: World) -> None:
    async with served(world) as port, contextlib.AsyncExitStack() as stack:
        url = f"ws://127.0.0.1:{port}/api/v1/live/ws"
        # Every key listens at once to the same events.
        streams = {}
        for key in sorted(SCOPES):
            ws = await stack.enter_async_context(
                websockets.connect(url, additional_headers=world.auth(key))
            )
            assert json.loads(await ws.recv())["kind"] == "ready"
            streams[key] = ws
        await publish_round(world)
        for key, ws in streams.items():
            check_received(key, await collect_ws(ws, key))


@pytest.mark.services
async def test_websocket_stream_over_redis(any_world: World) -> None:
    async with served(any_world) as port:
        for key in ("reg-wuxi", "disp-sz"):
            url = f"ws://127.0.0.1:{port}/api/v1/live/ws?ticket={await ticket(any_world, key)}"
            async with websockets.connect(url) as ws:
                assert json.loads(await ws.recv())["kind"] == "ready"
                await publish_round(any_world)
                check_received(key, await collect_ws(ws, key))


async def test_websocket_kinds_filter_and_crs(world: World) -> None:
    async with served(world) as port:
        url = f"ws://127.0.0.1:{port}/api/v1/live/ws?kinds=fix&crs=gcj02&ticket={await ticket(world, 'disp-jy')}"
        async with websockets.connect(url) as ws:
            assert json.loads(await ws.recv())["kind"] == "ready"
            await publish_round(world)
            received = await collect_ws(ws, "disp-jy")
    assert {e["kind"] for e in received} == {"fix"}
    lon, lat = wgs84_to_gcj02(*ORIGINS["jy"])
    assert abs(received[0]["data"]["lon"] - lon) < 1e-9
    assert abs(received[0]["data"]["lat"] - lat) < 1e-9


async def test_websocket_alert_handling_reaches_the_stream(world: World) -> None:
    async with served(world) as port:
        url = f"ws://127.0.0.1:{port}/api/v1/live/ws?kinds=alert&ticket={await ticket(world, 'disp-lx')}"
        async with websockets.connect(url) as ws:
            assert json.loads(await ws.recv())["kind"] == "ready"
            # Another tenant's alert handled first: if it leaked, it would arrive first.
            await world.send("POST", "admin", "/alerts/al-jy/acknowledge", {"comment": "seen"})
            await world.send("POST", "disp-lx", "/alerts/al-lx/acknowledge", {"comment": "on it"})
            async with asyncio.timeout(10):
                event = json.loads(await ws.recv())
    assert event["data"]["id"] == "al-lx"
    assert event["data"]["state"] == "acknowledged"


@pytest.mark.parametrize("query", ["ticket=hzt_wrong", "ticket=", "token=KEY", ""])
async def test_websocket_refuses_what_is_no_valid_ticket_with_4401(
    world: World, query: str
) -> None:
    """Closed with 4401 after the handshake (a close before it is an HTTP 403 to browsers,
    which cannot tell it from a network failure). A key in the URL is no longer taken."""
    query = query.replace("KEY", world.tokens["disp-jy"])
    async with served(world) as port:
        url = f"ws://127.0.0.1:{port}/api/v1/live/ws?{query}"
        async with websockets.connect(url) as ws:
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
    assert ws.close_code == 4401


async def test_a_ticket_opens_one_stream_once(world: World) -> None:
    one = await ticket(world, "disp-jy")
    async with served(world) as port:
        url = f"ws://127.0.0.1:{port}/api/v1/live/ws?ticket={one}"
        async with websockets.connect(url) as ws:
            assert json.loads(await ws.recv())["kind"] == "ready"
        async with websockets.connect(url) as again:
            with pytest.raises(websockets.ConnectionClosed):
                await again.recv()
        assert again.close_code == 4401, "single use"
    assert (await world.http.post("/api/v1/live/tickets")).status_code == 401


@pytest.mark.parametrize("key", ["reg-wuxi", "disp-sz"])
async def test_sse_stream_is_scoped(world: World, key: str) -> None:
    async with served(world) as port, httpx.AsyncClient(timeout=10) as http:
        url = f"http://127.0.0.1:{port}/api/v1/live/sse"
        async with http.stream("GET", url, headers=world.auth(key)) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = aiter(response.aiter_lines())
            received: list[dict[str, Any]] = []
            ends_needed = {f"ent-{s}" for s in SCOPES[key]}
            async with asyncio.timeout(10):
                while True:
                    line = await anext(lines)
                    if line.startswith("data: "):
                        event = json.loads(line[6:])
                        if event["kind"] == "ready":
                            await publish_round(world)
                            continue
                        received.append(event)
                        if event["data"].get("end"):
                            ends_needed.discard(event["enterprise_id"])
                            if not ends_needed:
                                break
    check_received(key, received)


async def test_sse_refuses_bad_key(world: World) -> None:
    for params in ({"ticket": "hzt_nope"}, {"token": world.tokens["disp-jy"]}, {}):
        response = await world.http.get("/api/v1/live/sse", params=params)
        assert response.status_code == 401, params


async def test_revoked_key_ends_the_stream(world: World) -> None:
    async with served(world) as port:
        url = f"ws://127.0.0.1:{port}/api/v1/live/ws?ticket={await ticket(world, 'disp-jy')}"
        async with websockets.connect(url) as ws:
            assert json.loads(await ws.recv())["kind"] == "ready"
            await world.store.revoke_api_key(hash_token(world.tokens["disp-jy"]), now_ms=NOW_MS)
            async with asyncio.timeout(10):
                assert json.loads(await ws.recv())["kind"] == "closed"
                with pytest.raises(websockets.ConnectionClosed):
                    await ws.recv()
            assert ws.close_code == 4401


async def test_regulator_stream_follows_new_enterprises(world: World) -> None:
    async with served(world) as port:
        url = f"ws://127.0.0.1:{port}/api/v1/live/ws?kinds=alert&ticket={await ticket(world, 'reg-wuxi')}"
        async with websockets.connect(url) as ws:
            assert json.loads(await ws.recv())["kind"] == "ready"
            await world.store.put_enterprise(Enterprise(id="ent-new", name="New", region="320282"))
            event = LiveEvent(kind="alert", enterprise_id="ent-new", ts_ms=NOW_MS, data={"id": "x"})
            # Within a keep-alive interval the scope is resolved again and takes the newcomer.
            async with asyncio.timeout(10):
                while True:
                    await world.live.publish(event)
                    try:
                        async with asyncio.timeout(0.2):
                            received = json.loads(await ws.recv())
                    except TimeoutError:
                        continue
                    break
    assert received["enterprise_id"] == "ent-new"


async def test_sse_sends_keep_alives(world: World) -> None:
    async with served(world) as port, httpx.AsyncClient(timeout=10) as http:
        url = f"http://127.0.0.1:{port}/api/v1/live/sse?ticket={await ticket(world, 'disp-jy')}"
        async with http.stream("GET", url) as response:
            lines = aiter(response.aiter_lines())
            async with asyncio.timeout(10):
                while (line := await anext(lines)) != ": keep-alive":
                    pass
    assert line == ": keep-alive"
