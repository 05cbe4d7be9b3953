"""Building and running agents in tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from edge.agent import Agent
from edge.buffer import Buffer
from edge.config import AgentSettings, BufferSettings
from edge.forward import MqttSettings
from edge.pipeline import Source
from tests.edge.agent.ticker import Ticker
from tests.support.procs import Mosquitto

__all__ = ["as_root_line", "persistent_mosquitto", "prefill", "running", "settings"]


def settings(
    tmp_path: Path,
    gateway_id: str,
    *,
    port: int = 1883,
    quota_bytes: int = 64 * 1024 * 1024,
    health_interval_s: float = 3600.0,
    **mqtt: object,
) -> AgentSettings:
    """Agent settings for a test: small batches, fast reconnects."""
    options: dict[str, object] = {
        "port": port,
        "batch_items": 200,
        "window": 4,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
        "publish_timeout_s": 5.0,
    }
    options.update(mqtt)
    return AgentSettings(
        file=tmp_path / "edge.toml",
        gateway_id=gateway_id,
        state_dir=tmp_path,
        mqtt=MqttSettings(**options),  # type: ignore[arg-type]
        buffer=BufferSettings(path=tmp_path / "buffer.db", quota_bytes=quota_bytes),
        health_interval_s=health_interval_s,
    )


@contextlib.asynccontextmanager
async def running(config: AgentSettings, sources: Sequence[Source]) -> AsyncIterator[Agent]:
    """Run an agent in this event loop; stop it cleanly on exit."""
    agent = Agent(config, sources)
    task = asyncio.create_task(agent.run(), name="agent")
    async with asyncio.timeout(10):
        while agent.buffer is None:  # noqa: ASYNC110  # set by run() once the file is open
            await asyncio.sleep(0.01)
    try:
        yield agent
    finally:
        agent.stop()
        async with asyncio.timeout(15):
            await task


async def prefill(path: Path, ticker: Ticker, count: int, **options: object) -> tuple[Buffer, int]:
    """Put ``count`` ticker items into a buffer file with no forwarder (an uplink outage).

    Returns:
        The closed buffer (its figures stay readable) and the first ``seq`` it gave.
    """
    buffer = Buffer(path, **options)  # type: ignore[arg-type]
    async with buffer:
        first = buffer.next_seq
        for _ in range(0, count, 100):
            ticker.emit(buffer, 100)
            await buffer.flush()
    return buffer, first


def as_root_line() -> str:
    """As root, mosquitto switches to its own user, who cannot read pytest's tmp: stay root."""
    return "user root\n" if os.geteuid() == 0 else ""


def persistent_mosquitto(workdir: Path) -> Mosquitto:
    """A test-owned broker that keeps sessions across a restart (SIGUSR1 saves them)."""
    store = workdir / "store"
    store.mkdir(parents=True, exist_ok=True)
    user = as_root_line()
    return Mosquitto(
        workdir,
        extra_config=f"{user}persistence true\npersistence_location {store}/\n"
        "max_queued_messages 0\n",
    )
