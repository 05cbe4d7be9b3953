"""The map page under the Content-Security-Policy in a real browser: a dispatcher logs in, sees
the assets and the live stream; nothing but the tile servers is asked for outside the app."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.support.browser import needs_chromium
from tests.web.support import Watched, chromium, served_app, watch_page

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def logged_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    """One browser session for the module: the admin's key entered, the page loaded."""
    with served_app(tmp_path_factory.mktemp("map")) as served, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        watched = watch_page(page, served.base_url)
        page.goto(served.base_url + "/map/")
        page.fill("#token", served.tokens["admin"])
        page.click("#connect")
        expect(page.locator("#assets li[data-asset]")).to_have_count(3)
        expect(page.locator("#sites li[data-site]")).to_have_count(3)
        expect(page.locator("#live-status")).to_have_text("live")  # the WebSocket is allowed
        expect(page.locator(".leaflet-container")).to_be_visible()
        yield watched


def test_the_page_works_under_the_policy(logged_in: Watched) -> None:
    # Scripts, the API, the live stream and images all load: no violation but inline styles
    # (see the next test).
    others = [v for v in logged_in.violations if "Applying inline style" not in v]
    assert others == []
    # The only requests leaving the app are for map tiles (cut here, as on an intranet).
    assert {urlsplit(url).hostname for url in logged_in.blocked} <= {"tile.openstreetmap.org"}


def test_the_page_breaks_no_rule_of_the_policy(logged_in: Watched) -> None:
    assert logged_in.violations == []
