"""The agent with a real ``[modbus]`` section against the Modbus simulator, into Mosquitto."""

from __future__ import annotations

from pathlib import Path

import pytest

import wire
from edge.buffer import Buffer
from edge.config import build_sources, load_config
from edge.profiles import find_profile, load_profile
from simulators.modbus import ModbusSimulator, SimDevice
from tests.edge.agent.collector import Collector
from tests.edge.agent.helpers import running
from tests.support.procs import free_port

pytestmark = pytest.mark.services


def agent_toml(tmp_path: Path, gateway_id: str, modbus_port: int) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(f"""
[gateway]
id = "{gateway_id}"
[mqtt]
port = 1883
reconnect_min_s = 0.1
[buffer]
path = "state/buffer.db"
[health]
interval_s = 0.3
[modbus]
site = "S1"
poll_interval_s = 0.05
timeout_s = 0.5
[[modbus.devices]]
name = "T1-radar"
profile = "radar_level_v3"
host = "127.0.0.1"
port = {modbus_port}
unit = 1
[modbus.devices.points.LEVEL]
tag = "T1.LT01"
delay_s = 0
""")
    return path


async def test_modbus_readings_and_alarm_reach_the_broker(tmp_path: Path, unique_id: str) -> None:
    port = free_port()
    device = SimDevice(load_profile(find_profile("radar_level_v3")), unit=1)
    device.set("LEVEL", 19.8)  # above HH = 19.5
    settings = load_config(agent_toml(tmp_path, unique_id, port))
    async with Buffer(settings.buffer.path) as fresh:
        first = fresh.next_seq
    async with (
        ModbusSimulator([device]).tcp(port),
        Collector(unique_id) as collector,
        running(settings, build_sources(settings)) as agent,
    ):
        assert agent.buffer is not None
        buffer = agent.buffer

        def levels() -> list[wire.Reading]:
            items = collector.items()
            return [i for i in items if isinstance(i, wire.Reading) and i.point == "T1.LT01"]

        await collector.wait(lambda: len(levels()) >= 20)
        await collector.wait(lambda: any(isinstance(i, wire.Health) for i in collector.items()))
        last = buffer.committed_seq
        await collector.wait(lambda: not collector.missing(first, last))
    assert levels()[0].value == pytest.approx(19.8)
    assert levels()[0].site == "S1"
    raised = [i for i in collector.items() if isinstance(i, wire.Alarm) and i.state == "raise"]
    assert {(a.point, a.level) for a in raised} >= {("T1.LT01", "HH")}
    health = next(i for i in collector.items() if isinstance(i, wire.Health))
    assert health.devices == {"T1-radar": "online"}
    assert collector.alarm_order_violations() == []
