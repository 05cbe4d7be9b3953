"""An in-process MQTT broker (amqtt) for the demo: no services to install.

Production and the tests use Mosquitto; this exists so that `make demo` runs on a bare machine.
It speaks MQTT 3.1.1 only, so shared subscriptions are not available with it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

__all__ = ["embedded_broker"]

log = logging.getLogger(__name__)


@asynccontextmanager
async def embedded_broker(*, host: str = "127.0.0.1", port: int = 1884) -> AsyncIterator[None]:
    """Run an anonymous amqtt broker on ``host:port`` for the duration of the block."""
    from amqtt.broker import Broker

    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)
    config: dict[str, Any] = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config)
    await broker.start()
    log.info("embedded MQTT broker on %s:%d", host, port)
    try:
        yield
    finally:
        await broker.shutdown()
