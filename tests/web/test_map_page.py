"""The map page in a real browser (Debian's chromium) against a running ``hazwatch demo``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.demo.support import DemoProcess, running_demo
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, needs_chromium

TRUCK = "truck-su-b-d7315"

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoProcess]:
    """One demo for the module, stopped with Ctrl-C (SIGINT) at the end: it must exit cleanly."""
    with running_demo(tmp_path_factory.mktemp("demo"), duration_s=110) as running:
        yield running
    assert running.proc.returncode == 0, running.output


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _open(browser: Browser, url: str) -> tuple[Page, list[str]]:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    return page, errors


@pytest.mark.slow
def test_dispatcher_sees_assets_and_acknowledges_the_gas_alert(
    demo: DemoProcess, browser: Browser, tmp_path: Path
) -> None:
    page, errors = _open(browser, demo.base_url + "/")  # redirects to /map/
    page.fill("#token", demo.tokens["dispatcher"])
    page.click("#connect")

    # Own assets only: the truck and two vessels, not the other enterprise's coach.
    expect(page.locator("#assets li[data-asset]")).to_have_count(3)
    expect(page.locator("#assets li[data-asset='coach-su-b-k2208']")).to_have_count(0)
    expect(page.locator("#live-status")).to_have_text("live")
    expect(page.locator("#who")).to_have_text("dispatcher")
    expect(page.locator("#gateways li[data-gateway='jy-gw-01']")).to_contain_text("online")

    # The truck's line changes as fixes arrive on the live stream (the page does not poll).
    truck = page.locator(f"#assets li[data-asset='{TRUCK}'] .meta").nth(1)
    expect(truck).not_to_have_text("no position yet", timeout=15_000)
    first = truck.inner_text()
    expect(truck).not_to_have_text(first, timeout=15_000)

    alert = page.locator("#alerts li[data-state='open']").first
    expect(alert).to_contain_text("TF1.GD101.GAS", timeout=30_000)
    alert_id = alert.get_attribute("data-alert")
    expect(page.locator("#sites li[data-site='jy-tankfarm-1'] .readings li")).to_have_count(3)
    page.screenshot(path=str(tmp_path / "map.png"))

    alert.locator("input").fill("valve V-101 closed, checking")
    alert.locator("button.ack").click()
    acked = page.locator(f"#alerts li[data-alert='{alert_id}']")
    expect(acked).to_have_attribute("data-state", "acknowledged")
    expect(acked).to_contain_text("acknowledged by demo-dispatcher")
    with demo.client("admin") as admin:
        stored = admin.get(f"/alerts/{alert_id}").json()
    assert stored["state"] == "acknowledged"
    assert stored["acked_by"] == "demo-dispatcher"
    assert stored["comment"] == "valve V-101 closed, checking"

    # The key is remembered: a reload connects again without typing it.
    page.reload()
    expect(page.locator("#token")).to_have_value(demo.tokens["dispatcher"])
    expect(page.locator("#assets li[data-asset]")).to_have_count(3)
    page.screenshot(path=str(tmp_path / "map-reloaded.png"))

    # Closing takes it off the list of alerts to handle.
    acked.locator("button.close").click()
    expect(page.locator(f"#alerts li[data-alert='{alert_id}']")).to_have_count(0)
    with demo.client("dispatcher") as dispatcher:
        assert dispatcher.get(f"/alerts/{alert_id}").json()["closed_by"] == "demo-dispatcher"
    assert errors == []
    # The page opened its live stream with tickets: its key is in no log line of the service
    # (only in the banner the demo prints for its user).
    key = demo.tokens["dispatcher"]
    logged = [line for line in demo.lines if key in line and "dispatcher" not in line.lower()]
    assert logged == []


@pytest.mark.slow
def test_a_bad_key_says_so_and_shows_nothing(demo: DemoProcess, browser: Browser) -> None:
    page, errors = _open(browser, demo.base_url + "/map/")
    page.fill("#token", "hzk_not-a-key")
    page.click("#connect")
    expect(page.locator("#message")).to_contain_text("not valid")
    expect(page.locator("#assets li[data-asset]")).to_have_count(0)
    assert errors == []


@pytest.mark.slow
def test_names_are_shown_as_text_never_as_html(demo: DemoProcess, browser: Browser) -> None:
    # A dispatcher names its own sites and assets; regulators and admins see those names on
    # the map. A name with markup must show as the characters typed, never run as HTML.
    name = '<img src="x-never-loaded" class="hz-injected" onerror="window.hzInjected=1">'
    with demo.client("admin") as admin:
        made = admin.post(
            "/sites",
            json={"id": "xss-site", "enterprise_id": "yx-coach", "name": name,
                  "lat": 31.9, "lon": 120.2},
        )  # fmt: skip
        assert made.status_code == 201, made.text
    page, errors = _open(browser, demo.base_url + "/map/")
    page.fill("#token", demo.tokens["admin"])
    page.click("#connect")
    expect(page.locator("#sites li[data-site='xss-site'] .title")).to_have_text(name)
    tooltip = page.locator(".leaflet-tooltip", has_text='<img src="x-never-loaded"')
    expect(tooltip).to_have_count(1)
    assert page.locator(".hz-injected").count() == 0
    assert page.evaluate("window.hzInjected") is None
    assert errors == []
