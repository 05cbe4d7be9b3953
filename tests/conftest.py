"""Fixtures shared by every test package."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import Mosquitto, RedisServer

#: The shared services every development machine and CI run (see `make services`).
MQTT_HOST = "127.0.0.1"
MQTT_PORT = 1883
REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def unique_id() -> str:
    """A short id unique to this test, for MQTT topics, gateway ids and Redis key prefixes."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A running, test-owned, anonymous Mosquitto on a free port (killed at teardown)."""
    broker = Mosquitto(tmp_path / "mosquitto")
    with broker.running():
        yield broker


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running, test-owned redis-server on a free port (killed at teardown)."""
    server = RedisServer(tmp_path / "redis")
    with server.running():
        yield server
