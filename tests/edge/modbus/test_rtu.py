"""The poller against simulated devices on an RS-485 line made of two pseudo-terminals."""

from __future__ import annotations

from pathlib import Path

import pytest

import wire
from edge.pipeline import CollectingSink
from edge.sources.modbus import ModbusSource, build_sources
from simulators.modbus import ModbusSimulator, SimDevice
from tests.edge.modbus.conftest import SerialLine, profile


def _source(
    line: SerialLine, tmp_path: Path, *, temp_points: object = None, **extra: object
) -> ModbusSource:
    table = {
        "site": "S1",
        "timeout_s": 0.3,
        "retries": 0,
        "offline_after": 2,
        "buses": {"line1": {"port": line.master_end, "baud": 9600, "inter_frame_delay_s": 0.002}},
        "devices": [
            {
                "name": "temp",
                "profile": "temperature_transmitter_v1",
                "bus": "line1",
                "unit": 3,
                "points": temp_points or {},
            },
            {"name": "radar", "profile": "radar_level_v3", "bus": "line1", "unit": 4},
            {"name": "relay", "profile": "relay_output_8ch_v1", "bus": "line1", "unit": 5},
        ],
        **extra,
    }
    [source] = build_sources(table, file=tmp_path / "agent.toml", state_dir=tmp_path)
    assert isinstance(source, ModbusSource)
    return source


def _values(sink: CollectingSink) -> dict[str, tuple[float | None, str]]:
    return {i.point: (i.value, i.quality) for i in sink.items if isinstance(i, wire.Reading)}


async def test_rtu_bus_reads_devices_one_request_at_a_time(
    serial_line: SerialLine, tmp_path: Path
) -> None:
    temp = SimDevice(profile("temperature_transmitter_v1"), unit=3)
    radar = SimDevice(profile("radar_level_v3"), unit=4)
    relay = SimDevice(profile("relay_output_8ch_v1"), unit=5)
    temp.set("TEMP", -12.3)
    radar.set("LEVEL", 7.25)
    source = _source(serial_line, tmp_path)
    sink = CollectingSink()
    async with ModbusSimulator([temp, radar, relay]).rtu(serial_line.device_end):
        try:
            await source.poll_once(sink)
        finally:
            source.close()
    values = _values(sink)
    assert values["temp.TEMP"][0] == pytest.approx(-12.3)
    assert values["temp.TEMP"][1] == "good"
    assert values["radar.LEVEL"] == (7.25, "good")
    assert values["relay.DO01"] == (0.0, "good")
    # temp: one read (value + status), radar: one (0..10), relay: one coil read
    assert source.health().counters["requests"] == 3
    assert source.health().devices == {"temp": "online", "radar": "online", "relay": "online"}


async def test_rtu_silent_unit_goes_offline_and_safety_output_is_written(
    serial_line: SerialLine, tmp_path: Path
) -> None:
    temp = SimDevice(profile("temperature_transmitter_v1"), unit=3)
    radar = SimDevice(profile("radar_level_v3"), unit=4)
    relay = SimDevice(profile("relay_output_8ch_v1"), unit=5)
    temp.set("TEMP", 70.0)
    radar.silent = True
    safety = [{"point": "temp.TEMP", "levels": ["HH"], "device": "relay", "output": "DO03"}]
    source = _source(serial_line, tmp_path, temp_points={"TEMP": {"delay_s": 0}}, safety=safety)
    sink = CollectingSink()
    async with ModbusSimulator([temp, radar, relay]).rtu(serial_line.device_end):
        try:
            for _ in range(3):
                await source.poll_once(sink)
        finally:
            source.close()
    alarms = [(a.state, a.level, a.code) for a in sink.items if isinstance(a, wire.Alarm)]
    assert ("raise", "fault", "device_offline") in alarms
    assert source.health().devices["radar"] == "offline"
    assert ("raise", "HH", None) in alarms  # shipped limit HH = 60 degC
    assert relay.value("coil", 2) == 1
    assert relay.writes == [("coil", 2, 1)]
