"""Every response carries the security headers: the page, its files, /docs, the API, errors.

The policy allows scripts and styles from the app's own files only, the API and its WebSocket
on the same host, images from the app, ``data:`` and the tile servers, and no framing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from cloud.api.security import (
    DEFAULT_TILE_SOURCES,
    SecureFastAPI,
    checked_tile_sources,
    content_security_policy,
)
from cloud.api.web import DOCS_DIR, WEB_DIR
from cloud.main import API_PREFIX
from tests.cloud.api.conftest import World, open_world

FIXED = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


@pytest.fixture
async def world(tmp_path: Path, unique_id: str) -> AsyncIterator[World]:
    async with open_world("sqlite", tmp_path, unique_id) as opened:
        yield opened


def directives(policy: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        assert name not in parsed, f"{name} twice"
        parsed[name] = sources
    return parsed


def assert_secure(response: httpx.Response, *, host: str = "test") -> None:
    for name, value in FIXED.items():
        assert response.headers.get_list(name) == [value], name
    (policy,) = response.headers.get_list("content-security-policy")
    found = directives(policy)
    assert found["default-src"] == ["'self'"]
    assert found["script-src"] == ["'self'"]
    assert found["style-src"] == ["'self'"]
    assert found["img-src"] == ["'self'", "data:", *DEFAULT_TILE_SOURCES]
    assert found["connect-src"] == ["'self'", f"ws://{host}", f"wss://{host}"]
    assert found["frame-ancestors"] == ["'none'"]
    assert found["object-src"] == ["'none'"]
    assert found["base-uri"] == ["'none'"]
    assert "unsafe" not in policy


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/map/", 200),  # the page
        ("/map/app.js", 200),  # static files
        ("/map/vendor/leaflet/leaflet.css", 200),
        ("/map/vendor/leaflet/images/marker-icon.png", 200),
        ("/docs", 200),
        ("/docs/swagger-ui-bundle.js", 200),
        ("/openapi.json", 200),
        ("/healthz", 200),
        ("/", 307),
        ("/map/missing.js", 404),  # errors
        ("/no/such/page", 404),
        (f"{API_PREFIX}/assets", 401),
        (f"{API_PREFIX}/assets/%00", 422),  # answered by a middleware of its own
    ],
)
async def test_every_response_carries_the_headers(world: World, path: str, status: int) -> None:
    response = await world.http.get(path, follow_redirects=False)
    assert response.status_code == status
    assert_secure(response)


async def test_api_answers_and_refusals_carry_the_headers(world: World) -> None:
    assets = await world.get("admin", "/assets")
    assert assets.status_code == 200
    assert_secure(assets)
    invalid = await world.send("POST", "admin", "/zones", {"type": "Feature"})
    assert invalid.status_code == 422
    assert_secure(invalid)
    missing = await world.get("admin", "/assets/no-such-asset")
    assert missing.status_code == 404
    assert_secure(missing)


async def test_a_server_error_carries_the_headers(world: World) -> None:
    async def boom() -> None:
        raise RuntimeError("a bug")

    world.app.add_api_route("/boom", boom)
    # Starlette answers a 500 in its outermost middleware, outside the ones add_middleware adds.
    transport = httpx.ASGITransport(app=world.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert_secure(response)


async def test_the_websocket_source_follows_the_host(world: World) -> None:
    response = await world.http.get("/map/", headers={"Host": "hazwatch.example.cn:8443"})
    assert_secure(response, host="hazwatch.example.cn:8443")


@pytest.mark.parametrize("host", ["evil.cn; script-src *", "a b", "x'y", ""])
def test_a_host_header_never_widens_the_policy(host: str) -> None:
    found = directives(content_security_policy(host=host, tile_sources=DEFAULT_TILE_SOURCES))
    assert found["connect-src"] == ["'self'"]
    assert found["script-src"] == ["'self'"]


async def test_tile_servers_are_configurable() -> None:
    app = SecureFastAPI(tile_sources=("https://tiles.example.cn", "http://10.0.0.7:8080"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/nothing")
    found = directives(response.headers["content-security-policy"])
    assert found["img-src"] == [
        "'self'",
        "data:",
        "https://tiles.example.cn",
        "http://10.0.0.7:8080",
    ]


@pytest.mark.parametrize(
    "source",
    [
        "https://x.cn; script-src *",
        "*",
        "data:",
        "https:",
        "https://x.cn/tiles",
        "javascript:x",
        "",
    ],
)
def test_a_tile_source_must_be_an_origin(source: str) -> None:
    with pytest.raises(ValueError, match="tile source"):
        checked_tile_sources([source])
    with pytest.raises(ValueError, match="tile source"):
        SecureFastAPI(tile_sources=[source])


class _Inline(HTMLParser):
    """Whatever in a page the policy would refuse: inline scripts, handlers, styles."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "style":
            self.found.append("<style>")
        if tag == "script" and "src" not in names:
            self._in_script = True
        self.found += [
            f"{tag} {name}=" for name in names if name.startswith("on") or name == "style"
        ]

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.found.append(f"inline script {data.strip()[:40]!r}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


@pytest.mark.parametrize("page", [WEB_DIR / "index.html", DOCS_DIR / "index.html"])
def test_the_pages_need_nothing_inline(page: Path) -> None:
    parser = _Inline()
    parser.feed(page.read_text(encoding="utf-8"))
    assert parser.found == []
