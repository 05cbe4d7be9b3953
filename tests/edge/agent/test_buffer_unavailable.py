"""A buffer disk that cannot be used must not stop the sources, local alarms or safety outputs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import wire
from edge.agent import Agent
from edge.buffer import Buffer
from edge.config import build_sources, load_config
from edge.pipeline import HoldingSink
from edge.profiles import find_profile, load_profile
from simulators.modbus import ModbusSimulator, SimDevice
from tests.edge.agent.collector import Collector
from tests.support.procs import free_port

pytestmark = pytest.mark.services


def agent_toml(tmp_path: Path, gateway_id: str, modbus_port: int, buffer: Path) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(f"""
[gateway]
id = "{gateway_id}"
[mqtt]
port = 1883
reconnect_min_s = 0.1
[buffer]
path = "{buffer}"
[modbus]
site = "S1"
poll_interval_s = 0.05
timeout_s = 0.5
[[modbus.devices]]
name = "gd"
profile = "combustible_gas_lel_v2"
host = "127.0.0.1"
port = {modbus_port}
unit = 1
[modbus.devices.points.GAS]
delay_s = 0
[[modbus.devices]]
name = "siren"
profile = "relay_output_8ch_v1"
host = "127.0.0.1"
port = {modbus_port}
unit = 2
[[modbus.safety]]
point = "gd.GAS"
levels = ["HH"]
device = "siren"
output = "DO01"
""")
    return path


def opened(agent: Agent) -> Buffer | None:
    return agent.buffer


async def stopped(agent: Agent, task: asyncio.Task[None]) -> None:
    """Stop the agent; fail (not hang) if it does not end."""
    agent.stop()
    done, _ = await asyncio.wait({task}, timeout=30)
    assert done, "the agent did not end after stop()"
    task.result()


async def until(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110  # state of another task
            await asyncio.sleep(0.02)


async def test_safety_output_works_while_the_buffer_disk_is_unusable_and_nothing_is_lost(
    tmp_path: Path, unique_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    # the buffer's folder is a plain file: neither the folder nor the database can be made
    # (what a missing mount or a read-only disk looks like to the agent, even as root)
    disk = tmp_path / "disk"
    disk.write_text("not a folder")
    port = free_port()
    gas = SimDevice(load_profile(find_profile("combustible_gas_lel_v2")), unit=1)
    relay = SimDevice(load_profile(find_profile("relay_output_8ch_v1")), unit=2)
    gas.set("GAS", 60.0)  # above the second alarm (50 %LEL): HH drives the siren
    settings = load_config(agent_toml(tmp_path, unique_id, port, disk / "buffer.db"))
    caplog.set_level(logging.ERROR, logger="edge.agent")
    async with ModbusSimulator([gas, relay]).tcp(port), Collector(unique_id) as collector:
        agent = Agent(settings, build_sources(settings), buffer_retry_s=0.1, buffer_retry_max_s=0.3)
        task = asyncio.create_task(agent.run())
        try:
            await until(lambda: relay.value("coil", 0) == 1)  # the siren, with no buffer at all
            await until(lambda: gas.request_count >= 20)  # and polling goes on
            assert opened(agent) is None
            assert "cannot be opened" in caplog.text
            assert collector.items() == [], "nothing can be sent without the buffer"
            back_ms = int(time.time() * 1000)
            disk.unlink()  # the disk is back
            await until(lambda: opened(agent) is not None)
            buffer = opened(agent)
            assert buffer is not None
            await buffer.flush()
            last = buffer.committed_seq
            await collector.wait(
                lambda: (
                    bool(collector.seqs()) and not collector.missing(min(collector.seqs()), last)
                )
            )
        finally:
            await stopped(agent, task)
    items = collector.items()
    first = min(i.seq for i in items)
    assert collector.missing(first, last) == []
    assert collector.alarm_order_violations() == []
    assert collector.bad == []
    first_item = min(items, key=lambda i: i.seq)
    assert isinstance(first_item, wire.Reading), "the readings taken during the outage came"
    assert first_item.ts < back_ms
    assert first_item.point == "gd.GAS"
    assert first_item.value == pytest.approx(60.0)
    raised = {(i.point, i.level) for i in items if isinstance(i, wire.Alarm) and i.state == "raise"}
    assert ("gd.GAS", "HH") in raised
    [fault] = [i for i in items if isinstance(i, wire.Alarm) and i.code == "buffer_unavailable"]
    assert fault.level == "fault"
    assert "could not be opened" in fault.message
    assert relay.value("coil", 0) == 1


async def test_stop_before_the_buffer_opens_ends_cleanly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    disk = tmp_path / "disk"
    disk.write_text("not a folder")
    port = free_port()
    gas = SimDevice(load_profile(find_profile("combustible_gas_lel_v2")), unit=1)
    relay = SimDevice(load_profile(find_profile("relay_output_8ch_v1")), unit=2)
    settings = load_config(agent_toml(tmp_path, "gw-never-open", port, disk / "buffer.db"))
    caplog.set_level(logging.ERROR, logger="edge.agent")
    async with ModbusSimulator([gas, relay]).tcp(port):
        agent = Agent(settings, build_sources(settings), buffer_retry_s=0.1)
        task = asyncio.create_task(agent.run())
        await until(lambda: gas.request_count >= 5)
        await stopped(agent, task)
    assert opened(agent) is None
    assert "stopped before the buffer file" in caplog.text
    assert "items held in memory are lost" in caplog.text


def test_holding_sink_keeps_every_alarm_and_the_newest_data_in_arrival_order() -> None:
    def reading(n: int) -> wire.Reading:
        return wire.Reading(seq=0, ts=n, site="S", point="P", value=float(n))

    def alarm(n: int) -> wire.Alarm:
        return wire.Alarm(seq=0, ts=n, state="raise", level="H", site="S", point="P", value=1.0)

    class Target:
        def __init__(self) -> None:
            self.ts: list[int] = []

        def put(self, item: wire.Item) -> None:
            self.ts.append(item.ts)

    holding = HoldingSink(max_items=3)
    for n in range(1, 8):
        holding.put(alarm(n) if n in (2, 3) else reading(n))
    assert (holding.held, holding.dropped) == (5, 2)
    target = Target()
    assert holding.attach(target) == 5
    holding.put(reading(8))
    assert target.ts == [2, 3, 5, 6, 7, 8]  # readings 1 and 4 made room; alarms all kept
    assert holding.held == 0
