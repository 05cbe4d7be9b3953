"""/docs works on an intranet: Swagger UI comes from the app (the installed fastapi-offline
package), never from a CDN, and renders every operation with the network cut."""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import expect

from cloud.api.web import SWAGGER_UI_DIR, docs_router
from tests.support.browser import needs_chromium
from tests.web.support import chromium, served_app, watch_page

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI(docs_url=None, redoc_url=None)
    app.include_router(docs_router())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hazwatch.test") as client:
        yield client


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


async def _references(client: httpx.AsyncClient) -> list[str]:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    parser = _References()
    parser.feed(page.text)
    return parser.urls


async def test_docs_name_no_other_host(client: httpx.AsyncClient) -> None:
    urls = await _references(client)
    assert len(urls) >= 3  # the style sheet and two scripts, at least
    for url in urls:
        if url.startswith("data:"):
            continue
        parts = urlsplit(url)
        assert not parts.scheme, url
        assert not parts.netloc, url


async def test_every_file_the_docs_name_is_served(client: httpx.AsyncClient) -> None:
    kinds = {".js": "text/javascript", ".css": "text/css"}
    for url in await _references(client):
        if url.startswith("data:"):
            continue
        answer = await client.get(urljoin("http://hazwatch.test/docs", url))
        assert answer.status_code == 200, url
        assert answer.headers["content-type"].startswith(kinds[Path(url).suffix]), url
    bundle = await client.get("/docs/swagger-ui-bundle.js")
    assert bundle.content == (SWAGGER_UI_DIR / "swagger-ui-bundle.js").read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/docs/index.html",  # the page lives at /docs only (its relative links fit nowhere else)
        "/docs/missing.js",
        "/docs/%2e%2e/main.py",
        "/docs/oauth2-redirect",
        "/redoc",
    ],
)
async def test_nothing_else_is_served(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 404


@needs_chromium
def test_docs_render_every_operation_with_the_network_cut(tmp_path: Path) -> None:
    with served_app(tmp_path) as served, chromium() as browser:
        schema = httpx.get(served.base_url + "/openapi.json").json()
        operations = sum(
            1
            for methods in schema["paths"].values()
            for method in methods
            if method in HTTP_METHODS
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        watched = watch_page(page, served.base_url)
        page.goto(served.base_url + "/docs")
        expect(page.locator(".opblock")).to_have_count(operations)
        expect(page.locator(".opblock-summary-path").first).to_contain_text("/api/v1/")
        # Opening an operation draws its parameters and response schemas and examples.
        page.locator(".opblock-summary").first.click()
        expect(page.locator(".opblock-body").first).to_be_visible()
        expect(page.locator(".responses-wrapper").first).to_be_visible()
        page.screenshot(path=str(tmp_path / "docs.png"))
        assert watched.blocked == []
        assert watched.violations == []
