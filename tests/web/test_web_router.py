"""The map page's static routes: redirects, content types, nothing outside the web folder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from cloud.api.web import WEB_DIR, web_router


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(web_router())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hazwatch.test") as client:
        yield client


async def test_root_and_map_redirect_to_the_page(client: httpx.AsyncClient) -> None:
    for path in ("/", "/map"):
        response = await client.get(path, follow_redirects=False)
        assert response.status_code == 307
        assert response.headers["location"] == "map/"
    page = await client.get("/", follow_redirects=True)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'id="token"' in page.text


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/map/app.js", "text/javascript"),
        ("/map/style.css", "text/css"),
        ("/map/vendor/leaflet/leaflet.js", "text/javascript"),
        ("/map/vendor/leaflet/images/marker-icon.png", "image/png"),
    ],
)
async def test_files_are_served_with_their_type(
    client: httpx.AsyncClient, path: str, kind: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(kind)


@pytest.mark.parametrize(
    "path",
    [
        "/map/missing.js",
        "/map/../api/web.py",
        "/map/%2e%2e/api/web.py",
        "/map/vendor/leaflet/LICENSE",
        # Names the file system refuses (a NUL byte, a name too long) are missing files too.
        "/map/%00",
        "/map/index.html%00.js",
        "/map/" + "a" * 5000 + ".js",
    ],
)
async def test_nothing_else_is_served(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 404


def test_the_page_uses_only_vendored_scripts() -> None:
    html = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    assert "http://" not in html
    assert "https://" not in html  # no CDN: Leaflet is vendored
    assert (WEB_DIR / "vendor" / "leaflet" / "leaflet.js").stat().st_size > 100_000
    assert Path(WEB_DIR / "vendor" / "leaflet" / "leaflet.css").is_file()
