"""The cloud app served over real HTTP for the browser tests, and a browser with the network cut.

:func:`served_app` runs ``create_app`` in uvicorn (in a thread) over a SQLite archive seeded with
the API tests' three tenants; :func:`watch_page` blocks every request that is not to the app and
records it, and records every Content-Security-Policy violation the browser reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from playwright.sync_api import Browser, Page, Route, sync_playwright

from cloud.archive import Store
from cloud.config import CloudSettings, DatabaseSettings, MqttSettings
from cloud.live import MemoryLiveState
from cloud.main import create_app
from tests.cloud.api.conftest import seed
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.procs import free_port


@dataclass
class Served:
    """Where the app answers and the API keys of the seeded tenants (by key name)."""

    base_url: str
    tokens: dict[str, str]


@dataclass
class Watched:
    """What one page did: requests blocked (not to the app) and CSP violations reported."""

    blocked: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)


async def _seed(url: str) -> dict[str, str]:
    store = await Store.connect(url)
    live = MemoryLiveState()
    try:
        return await seed(store, live)
    finally:
        await live.close()
        await store.close()


@contextlib.contextmanager
def served_app(folder: Path) -> Iterator[Served]:
    """The cloud app on a free port of 127.0.0.1 until the block ends."""
    url = f"sqlite+aiosqlite:///{folder / 'cloud.db'}"
    tokens = asyncio.run(_seed(url))
    settings = CloudSettings(database=DatabaseSettings(url=url), mqtt=MqttSettings(enabled=False))
    app = create_app(settings, run_retention=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", tokens)
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's chromium, headless."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def watch_page(page: Page, base_url: str) -> Watched:
    """Cut ``page`` off every host but the app's, and record what it tried and violated."""
    watched = Watched()

    def route(route: Route) -> None:
        if route.request.url.startswith(base_url + "/"):
            route.continue_()
        else:
            watched.blocked.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    page.on(
        "console",
        lambda message: (
            watched.violations.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )
    return watched
