"""A full disk under the edge buffer: routine data is thinned, alarms all arrive, nothing wedges.

The buffer lives on a small tmpfs of its own (mounting needs root, which CI has; elsewhere the
tests are skipped with the reason). The broker is down while the disk fills, then comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import wire
from edge.agent import Agent
from tests.edge.agent.collector import Collector
from tests.edge.agent.helpers import running, settings
from tests.edge.agent.ticker import Ticker
from tests.support.procs import Mosquitto

pytestmark = [
    pytest.mark.services,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 and not os.environ.get("CI"),
        reason="mounting a tmpfs needs root (CI runs as root)",
    ),
]


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path``, unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _free(path: Path) -> int:
    return shutil.disk_usage(path).free


async def _fill_while_offline(agent: Agent, ticker: Ticker, disk: Path, *, until_s: float) -> None:
    """Let the source run with no broker until the disk has been full for a while."""
    await asyncio.sleep(until_s)
    assert agent.forwarder is not None
    assert not agent.forwarder.connected.is_set()


async def test_a_full_disk_thins_routine_data_and_keeps_every_alarm(
    tmp_path: Path, unique_id: str
) -> None:
    broker = Mosquitto(tmp_path / "mq")
    with small_disk(tmp_path / "disk", "2m") as disk:
        config = settings(disk, unique_id, port=broker.port, quota_bytes=1024**3)
        ticker = Ticker(per_tick=20, tick_s=0.01, alarm_every=30)
        async with running(config, [ticker]) as agent:
            assert agent.buffer is not None
            await _fill_while_offline(agent, ticker, disk, until_s=6.0)
            drops = agent.buffer.drops
            assert drops.get("disk_full", 0) > 0, drops
            alarms_emitted = ticker.alarms
            ticker.count = ticker.emitted  # stop the source: what was taken must arrive
            with broker.running():
                async with Collector(unique_id, port=broker.port) as cloud:
                    await cloud.wait(lambda: agent.buffer is not None and agent.buffer.depth == 0)
                    alarms = cloud.of_kind(wire.Alarm)
            codes = {a.code for a in alarms if isinstance(a, wire.Alarm)}
            assert "buffer_disk_full" in codes
            point_alarms = [a for a in alarms if isinstance(a, wire.Alarm) and a.point]
            assert len({a.seq for a in point_alarms}) == alarms_emitted
            health = cloud.of_kind(wire.Health)
            assert health == [] or all(isinstance(h, wire.Health) for h in health)
        assert _free(disk) > 0


async def test_the_agent_stops_promptly_on_a_full_disk(tmp_path: Path, unique_id: str) -> None:
    broker = Mosquitto(tmp_path / "mq")
    with small_disk(tmp_path / "disk", "2m") as disk:
        config = settings(disk, unique_id, port=broker.port, quota_bytes=1024**3)
        ticker = Ticker(per_tick=20, tick_s=0.01, alarm_every=30)
        started = time.monotonic()
        async with running(config, [ticker]) as agent:
            await _fill_while_offline(agent, ticker, disk, until_s=4.0)
            stopping = time.monotonic()
        assert time.monotonic() - stopping < 10, "stop took too long on a full disk"
        assert stopping > started


async def test_the_agent_recovers_on_the_same_full_disk_after_a_restart(
    tmp_path: Path, unique_id: str
) -> None:
    broker = Mosquitto(tmp_path / "mq")
    with small_disk(tmp_path / "disk", "2m") as disk:
        config = settings(disk, unique_id, port=broker.port, quota_bytes=1024**3)
        ticker = Ticker(per_tick=20, tick_s=0.01, alarm_every=30)
        async with running(config, [ticker]) as agent:
            await _fill_while_offline(agent, ticker, disk, until_s=4.0)
        # Another program fills what is left of the disk meanwhile.
        filler = disk / "other-program.bin"
        with contextlib.suppress(OSError), filler.open("wb") as out:
            while True:
                out.write(b"\0" * 65536)
        restarted = Ticker(per_tick=5, tick_s=0.01, alarm_every=10, count=200)
        with broker.running():
            async with (
                Collector(unique_id, port=broker.port) as cloud,
                running(config, [restarted]) as agent,
            ):
                assert agent.buffer is not None
                await cloud.wait(lambda: restarted.emitted == 200, timeout_s=30)

                def point_alarms() -> list[wire.Alarm]:
                    alarms = cloud.of_kind(wire.Alarm)
                    return [a for a in alarms if isinstance(a, wire.Alarm) and a.point]

                await cloud.wait(lambda: len(point_alarms()) >= restarted.alarms, timeout_s=30)
                codes = {a.code for a in cloud.of_kind(wire.Alarm) if isinstance(a, wire.Alarm)}
                assert "buffer_disk_full" in codes
