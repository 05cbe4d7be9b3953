"""Debian's chromium for the browser tests: its path, its flags, and the skip rule outside CI."""

from __future__ import annotations

import os

import pytest

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags chromium keeps trying hosts this closed network refuses.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

# Outside CI a developer without chromium gets a skip naming the fix; in CI (where `make test`
# has installed it) a missing browser must fail, never pass as a skip.
needs_chromium = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK) and not os.environ.get("CI"),
    reason=f"{CHROMIUM} missing: apt-get install -y chromium (make services installs it)",
)
