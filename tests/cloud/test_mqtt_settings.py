"""The [mqtt] settings reach the broker connection the cloud's ingest makes."""

from __future__ import annotations

import re
from pathlib import Path

from cloud.config import CloudSettings, DatabaseSettings, MqttSettings
from cloud.main import create_app
from tests.cloud.ingest_support import until
from tests.support.procs import Mosquitto


async def test_keepalive_is_the_configured_one(mosquitto: Mosquitto, tmp_path: Path) -> None:
    settings = CloudSettings(
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}"),
        mqtt=MqttSettings(port=mosquitto.port, client_id="hz-keepalive", keepalive_s=17),
    )
    app = create_app(settings, run_retention=False)
    connected = re.compile(r"New client connected .* as hz-keepalive \((.*)\)")
    async with app.router.lifespan_context(app):
        await until(lambda: connected.search(mosquitto.log_text()) is not None)
    found = connected.search(mosquitto.log_text())
    assert found is not None
    # Mosquitto logs the keepalive the client asked for as "k<seconds>".
    assert "k17" in found.group(1).split(", "), found.group(0)
