"""The agent's task group: sources that fail are restarted, whatever way they fail."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from pathlib import Path

import pytest

import wire
from edge.agent import Agent
from edge.buffer import Buffer
from edge.forward import Forwarder
from edge.pipeline import Sink, SourceHealth
from tests.edge.agent.collector import Collector
from tests.edge.agent.helpers import settings

pytestmark = pytest.mark.services


class _Stumbling:
    """Fails its first run by raising ``exc`` (a library that cancelled its own future)."""

    name = "stumbling"

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        self.runs = 0
        self.restarted = asyncio.Event()

    async def run(self, sink: Sink) -> None:
        self.runs += 1
        if self.runs == 1:
            raise self.exc
        self.restarted.set()
        await asyncio.Event().wait()

    def health(self) -> SourceHealth:
        return SourceHealth()


@pytest.mark.parametrize("exc", [RuntimeError("bug"), asyncio.CancelledError()])
async def test_a_crashed_source_is_restarted(
    tmp_path: Path, unique_id: str, exc: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    source = _Stumbling(exc)
    agent = Agent(settings(tmp_path, unique_id), [source], source_restart_s=0.01)
    task = asyncio.create_task(agent.run())
    try:
        async with asyncio.timeout(10):
            await source.restarted.wait()
    finally:
        agent.stop()
        async with asyncio.timeout(15):
            await task
    assert source.runs == 2
    assert "source stumbling" in caplog.text
    assert any(r.levelno >= logging.ERROR for r in caplog.records)


class _Idle:
    name = "idle"

    async def run(self, sink: Sink) -> None:
        await asyncio.Event().wait()

    def health(self) -> SourceHealth:
        return SourceHealth()


async def test_a_stop_at_any_moment_of_start_up_ends_the_agent(
    tmp_path: Path, unique_id: str
) -> None:
    # Stops land while the buffer opens, while the client connects, while it publishes its
    # status: a cancellation that aiomqtt's wait_for swallowed on Python 3.11 used to leave the
    # forwarder publishing for ever and the agent never ended.
    # The window is a fraction of a millisecond wide, so the delays are random: without the
    # fix, about one start in thirty hung.
    for attempt in range(100):
        config = settings(tmp_path / str(attempt), f"{unique_id}-{attempt}")
        agent = Agent(config, [_Idle()])
        task = asyncio.create_task(agent.run())
        delay_s = random.uniform(0.0, 0.05)
        await asyncio.sleep(delay_s)
        agent.stop()
        done, _ = await asyncio.wait({task}, timeout=10)
        assert done, f"the agent did not end after a stop {delay_s * 1000:.1f} ms after its start"
        task.result()


async def test_the_first_health_item_comes_soon_after_start(tmp_path: Path, unique_id: str) -> None:
    # A regulator looking at a gateway that just restarted sees its backlog and devices
    # within seconds, not after a whole health period (an hour here).
    config = settings(tmp_path, unique_id)
    async with Collector(unique_id) as collector, Buffer(tmp_path / "b.db") as buffer:
        forwarder = Forwarder(
            buffer,
            gateway_id=unique_id,
            mqtt=config.mqtt,
            health_interval_s=3600.0,
            first_health_s=0.2,
            sources_health=lambda: [("src", SourceHealth(devices={"dev": "online"}))],
        )
        tasks = [asyncio.create_task(buffer.run()), asyncio.create_task(forwarder.run())]
        try:
            await collector.wait(lambda: bool(collector.of_kind(wire.Health)), timeout_s=10)
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    [health] = collector.of_kind(wire.Health)
    assert isinstance(health, wire.Health)
    assert health.devices == {"dev": "online"}


class _Deaf:
    """Loses the first cancellation, as a library's asyncio.wait_for can on Python 3.11."""

    name = "deaf"

    def __init__(self) -> None:
        self.lost = 0

    async def run(self, sink: Sink) -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if self.lost:
                    raise
                self.lost += 1

    def health(self) -> SourceHealth:
        return SourceHealth()


async def test_a_source_that_loses_a_cancellation_still_ends_on_stop(
    tmp_path: Path, unique_id: str
) -> None:
    source = _Deaf()
    agent = Agent(settings(tmp_path, unique_id), [source])
    task = asyncio.create_task(agent.run())
    async with asyncio.timeout(10):
        while agent.buffer is None:  # noqa: ASYNC110  # set by run() once the file is open
            await asyncio.sleep(0.01)
    agent.stop()
    done, _ = await asyncio.wait({task}, timeout=10)
    assert done, "the agent waits for a source that lost its cancellation"
    task.result()
    assert source.lost == 1
