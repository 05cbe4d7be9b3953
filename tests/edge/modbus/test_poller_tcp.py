"""The Modbus source against simulated devices over real Modbus TCP on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import wire
from edge.alarms import AlarmStateStore
from edge.pipeline import CollectingSink
from edge.sources.modbus import ModbusSource, build_sources, stagger
from simulators.modbus import ModbusSimulator, SimDevice
from tests.edge.modbus.conftest import HERE, profile


def make_source(
    tmp_path: Path, port: int, devices: list[dict[str, Any]], **top: Any
) -> ModbusSource:
    for dev in devices:
        dev.setdefault("host", "127.0.0.1")
        dev.setdefault("port", port)
    table = {"site": "S1", "timeout_s": 0.2, "retries": 0, "offline_after": 2, **top}
    table["devices"] = devices
    [source] = build_sources(table, file=HERE / "agent.toml", state_dir=tmp_path)
    assert isinstance(source, ModbusSource)
    return source


def readings(sink: CollectingSink) -> dict[str, wire.Reading]:
    """The last reading of each point."""
    return {i.point: i for i in sink.items if isinstance(i, wire.Reading)}


def alarms(sink: CollectingSink) -> list[tuple[str, str, str | None]]:
    out: list[tuple[str, str, str | None]] = []
    for item in sink.items:
        if isinstance(item, wire.Alarm):
            out.append((item.state, item.level, item.point or item.message))
    return out


async def poll(source: ModbusSource, n: int = 1) -> CollectingSink:
    sink = CollectingSink()
    for _ in range(n):
        await source.poll_once(sink)
    return sink


async def wait_until(pred: Callable[[], bool], *, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not pred():  # noqa: ASYNC110 - the simulator counts requests, no event to await
            await asyncio.sleep(0.01)


async def test_every_data_type_and_order_over_tcp(tmp_path: Path, port: int) -> None:
    dev = SimDevice(profile("all_types"), unit=1)
    values = {
        "I16": -12.3, "U16": 65000, "I32": -2_000_000, "I32_LE": -5, "U32": 4_000_000_000,
        "U32_LE": 70_000, "F32": 3.25, "F32_LE": -1.5, "F32_BS": 0.001, "F64": 2.718281828459045,
        "F64_LE": -2.5e10, "FLAG": 1, "BIT5": 1, "IN_I16": -45.5, "COIL": 1, "DI": 1, "FAR": 7,
    }  # fmt: skip
    for name, value in values.items():
        dev.set(name, value)
    dev.set("NAME", "TT-01")
    source = make_source(tmp_path, port, [{"name": "dut", "profile": "profiles/all_types.toml"}])
    async with ModbusSimulator([dev]).tcp(port):
        sink = await poll(source)
    source.close()
    got = readings(sink)
    for name, value in values.items():
        assert got[f"dut.{name}"].value == pytest.approx(value), name
        assert got[f"dut.{name}"].quality == "good"
    assert "dut.NAME" not in got  # strings are for the field tool, not readings
    assert dev.request_count == 5  # holding 0..29, holding 300, input, coil, discrete


@pytest.mark.parametrize(("max_gap", "requests"), [(8, 4), (-1, 35)])
async def test_coalescing_counts_requests_per_cycle(
    tmp_path: Path, port: int, max_gap: int, requests: int
) -> None:
    dev = SimDevice(profile("gas_controller_16ch_v2"), unit=1)
    for ch in range(1, 17):
        dev.set(f"CH{ch:02d}", ch)
    source = make_source(tmp_path, port, [{"name": "gc", "profile": "gas_controller_16ch_v2"}],
                         max_gap=max_gap)  # fmt: skip
    async with ModbusSimulator([dev]).tcp(port):
        sink = await poll(source)
    source.close()
    assert dev.request_count == requests
    assert source.health().counters["requests"] == requests
    assert readings(sink)["gc.CH16"].value == pytest.approx(16)


async def test_exception_codes_become_quality_and_counters(tmp_path: Path, port: int) -> None:
    dev = SimDevice(profile("temperature_transmitter_v1"), unit=1)
    source = make_source(tmp_path, port, [{"name": "tt", "profile": "temperature_transmitter_v1"}])
    async with ModbusSimulator([dev]).tcp(port):
        dev.exception = 4
        sink = await poll(source)
        assert readings(sink)["tt.TEMP"].quality == "sensor_fault"
        dev.exception = 6
        sink = await poll(source)
        assert readings(sink)["tt.TEMP"].quality == "uncertain"
        dev.exception = None
        dev.set_status("STATE", 1)
        sink = await poll(source)
        assert readings(sink)["tt.TEMP"].quality == "sensor_fault"
    source.close()
    health = source.health()
    assert health.parse_errors["exception_4"] == 1
    assert health.parse_errors["exception_6"] == 1
    assert health.parse_errors["quality_sensor_fault"] == 2
    assert health.devices == {"tt": "online"}  # an exception is an answer


async def test_device_rejecting_gaps_is_re_planned(tmp_path: Path, port: int) -> None:
    dev = SimDevice(profile("radar_level_v3"), unit=1, answer_gaps=False)
    dev.set("LEVEL", 5.5)
    source = make_source(tmp_path, port, [{"name": "lt", "profile": "radar_level_v3"}])
    async with ModbusSimulator([dev]).tcp(port):
        first = await poll(source)
        second = await poll(source)
    source.close()
    assert readings(first)["lt.LEVEL"].quality == "bad"
    assert readings(second)["lt.LEVEL"].value == 5.5
    assert readings(second)["lt.LEVEL"].quality == "good"
    assert source.health().counters["replans"] == 1
    assert source.health().parse_errors["exception_2"] == 1


async def test_device_loss_and_return(tmp_path: Path, port: int) -> None:
    dev = SimDevice(profile("pressure_transmitter_v1"), unit=1)
    dev.set("PRESSURE", 0.8)
    source = make_source(tmp_path, port, [{"name": "pt", "profile": "pressure_transmitter_v1"}])
    sim = ModbusSimulator([dev])
    async with sim.tcp(port):
        sink = await poll(source)
        dev.silent = True
        sink = await poll(source, 3)
        assert alarms(sink) == [("raise", "fault", "pt")]
        assert [r.quality for r in sink.items if isinstance(r, wire.Reading)] == ["comm_error"] * 4
        assert source.health().devices == {"pt": "offline"}
    # the whole server gone: still offline, no second raise
    sink = await poll(source)
    assert alarms(sink) == []
    assert source.health().counters["polls_failed"] == 4
    async with sim.tcp(port):
        dev.silent = False
        sink = await poll(source)
    source.close()
    assert alarms(sink) == [("clear", "fault", "pt")]
    assert readings(sink)["pt.PRESSURE"].value == pytest.approx(0.8)
    assert source.health().devices == {"pt": "online"}
    offline = next(i for i in sink.items if isinstance(i, wire.Alarm))
    assert offline.code == "device_offline"
    assert (offline.site, offline.device) == ("S1", "pt")


async def test_out_of_range_and_faults_never_alarm(tmp_path: Path, port: int) -> None:
    dev = SimDevice(profile("radar_level_v3"), unit=1)
    dev.set("LEVEL", 35.0)
    points = {"LEVEL": {"delay_s": 0}}
    source = make_source(
        tmp_path, port, [{"name": "lt", "profile": "radar_level_v3", "points": points}]
    )
    async with ModbusSimulator([dev]).tcp(port):
        sink = await poll(source)
        assert readings(sink)["lt.LEVEL"].quality == "out_of_range"
        dev.set("LEVEL", 19.7)
        dev.set_status("DIAG", 2)
        sink = await poll(source)
        assert readings(sink)["lt.LEVEL"].quality == "sensor_fault"
        assert alarms(sink) == []
        dev.set_status("DIAG", 0)
        sink = await poll(source)
    source.close()
    assert alarms(sink) == [("raise", "H", "lt.LEVEL"), ("raise", "HH", "lt.LEVEL")]


async def test_agent_restart_in_the_middle_of_an_alarm(tmp_path: Path, port: int) -> None:
    dev = SimDevice(profile("radar_level_v3"), unit=1)
    relay = SimDevice(profile("relay_output_8ch_v1"), unit=2)
    devices: list[dict[str, Any]] = [
        {
            "name": "lt",
            "profile": "radar_level_v3",
            "points": {"LEVEL": {"tag": "T101.LT01", "delay_s": 0}},
        },
        {"name": "siren", "profile": "relay_output_8ch_v1", "unit": 2},
    ]
    safety = [{"point": "T101.LT01", "levels": ["HH"], "device": "siren", "output": "DO02"}]
    async with ModbusSimulator([dev, relay]).tcp(port):
        dev.set("LEVEL", 19.8)
        source = make_source(tmp_path, port, [dict(d) for d in devices], safety=safety)
        sink = await poll(source, 2)
        source.close()
        assert alarms(sink) == [("raise", "H", "T101.LT01"), ("raise", "HH", "T101.LT01")]
        assert relay.value("coil", 1) == 1
        # restart: same state_dir, still in alarm -> nothing raised again, siren stays on
        source = make_source(tmp_path, port, [dict(d) for d in devices], safety=safety)
        sink = await poll(source, 2)
        assert alarms(sink) == []
        assert relay.value("coil", 1) == 1
        source.close()
        # the level falls while the agent is down; the clear is not lost
        dev.set("LEVEL", 10.0)
        source = make_source(tmp_path, port, [dict(d) for d in devices], safety=safety)
        sink = await poll(source)
        source.close()
    assert alarms(sink) == [("clear", "H", "T101.LT01"), ("clear", "HH", "T101.LT01")]
    assert relay.value("coil", 1) == 0
    assert [w[2] for w in relay.writes if w[:2] == ("coil", 1)] == [1, 1, 0]


async def test_safety_output_retries_until_the_relay_answers(tmp_path: Path, port: int) -> None:
    gas = SimDevice(profile("combustible_gas_lel_v2"), unit=1)
    relay = SimDevice(profile("relay_output_8ch_v1"), unit=2)
    devices: list[dict[str, Any]] = [
        {"name": "gd", "profile": "combustible_gas_lel_v2", "points": {"GAS": {"delay_s": 0}}},
        {"name": "siren", "profile": "relay_output_8ch_v1", "unit": 2},
    ]
    safety = [{"point": "gd.GAS", "levels": ["H", "HH"], "device": "siren", "output": "DO01"}]
    source = make_source(tmp_path, port, devices, safety=safety, offline_after=5)
    async with ModbusSimulator([gas, relay]).tcp(port):
        gas.set("GAS", 30.0)
        relay.silent = True
        await poll(source)
        assert source.health().counters["safety_pending"] == 1
        relay.silent = False
        await poll(source)
        assert relay.value("coil", 0) == 1
        gas.set("GAS", 60.0)  # escalation keeps the output on, no new write
        await poll(source)
        gas.set("GAS", 5.0)
        sink = await poll(source)
    source.close()
    assert relay.value("coil", 0) == 0
    assert ("clear", "H", "gd.GAS") in alarms(sink)
    counters = source.health().counters
    assert (counters["safety_writes"], counters["safety_pending"]) == (2, 0)
    assert counters["safety_write_failures"] == 1


async def test_run_polls_on_staggered_schedules_until_cancelled(tmp_path: Path, port: int) -> None:
    sims = [SimDevice(profile("temperature_transmitter_v1"), unit=u) for u in (1, 2, 3)]
    for i, sim in enumerate(sims):
        sim.set("TEMP", 20.0 + i)
    devices = [
        {
            "name": f"tt{u}",
            "profile": "temperature_transmitter_v1",
            "unit": u,
            "poll_interval_s": 0.05,
        }
        for u in (1, 2, 3)
    ]
    source = make_source(tmp_path, port, devices)
    sink = CollectingSink()
    async with ModbusSimulator(sims).tcp(port):
        task = asyncio.create_task(source.run(sink))
        await wait_until(lambda: all(s.request_count >= 3 for s in sims))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    got = readings(sink)
    assert [got[f"tt{u}.TEMP"].value for u in (1, 2, 3)] == [20.0, 21.0, 22.0]
    assert source.health().devices == {"tt1": "online", "tt2": "online", "tt3": "online"}


async def test_safety_output_on_a_holding_register(tmp_path: Path, port: int) -> None:
    gas = SimDevice(profile("combustible_gas_lel_v2"), unit=1)
    panel = SimDevice(profile("all_types"), unit=2)
    devices: list[dict[str, Any]] = [
        {"name": "gd", "profile": "combustible_gas_lel_v2", "points": {"GAS": {"delay_s": 0}}},
        {"name": "panel", "profile": "profiles/all_types.toml", "unit": 2},
    ]
    safety = [{"point": "gd.GAS", "levels": ["HH"], "device": "panel", "output": "U16",
               "on": 1234, "off": 7}]  # fmt: skip
    source = make_source(tmp_path, port, devices, safety=safety)
    async with ModbusSimulator([gas, panel]).tcp(port):
        await poll(source)  # start: the output is written to its current state
        gas.set("GAS", 55.0)
        await poll(source)
        assert panel.value("holding", 1) == 1234
        gas.set("GAS", 20.0)
        await poll(source)
    source.close()
    assert [w for w in panel.writes if w[1] == 1] == [("holding", 1, 7), ("holding", 1, 1234),
                                                      ("holding", 1, 7)]  # fmt: skip


async def test_offline_state_survives_a_restart(tmp_path: Path, port: int) -> None:
    dev = SimDevice(profile("pressure_transmitter_v1"), unit=1)
    devices: list[dict[str, Any]] = [{"name": "pt", "profile": "pressure_transmitter_v1"}]
    source = make_source(tmp_path, port, [dict(d) for d in devices])
    sink = await poll(source, 2)  # nothing listens: offline after 2 polls
    source.close()
    assert alarms(sink) == [("raise", "fault", "pt")]
    source = make_source(tmp_path, port, [dict(d) for d in devices])
    assert source.health().devices == {"pt": "offline"}
    async with ModbusSimulator([dev]).tcp(port):
        sink = await poll(source)
    source.close()
    assert alarms(sink) == [("clear", "fault", "pt")]


def test_schedules_are_staggered_over_the_interval() -> None:
    assert stagger([1.0, 1.0, 1.0, 1.0]) == [0.0, 0.25, 0.5, 0.75]
    assert stagger([2.0, 10.0]) == [0.0, 5.0]
    assert stagger([]) == []


async def test_a_failing_poll_is_logged_and_polling_goes_on(
    tmp_path: Path, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edge.sources.modbus.poller as module
    from edge.decode.registers import decode_points as real

    calls = {"n": 0}

    def flaky(*args: Any) -> Any:  # inject a fault: the first decode blows up
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected")
        return real(*args)

    monkeypatch.setattr(module, "decode_points", flaky)
    dev = SimDevice(profile("temperature_transmitter_v1"), unit=1)
    dev.set("TEMP", 21.5)
    devices: list[dict[str, Any]] = [
        {"name": "tt", "profile": "temperature_transmitter_v1", "poll_interval_s": 0.02}
    ]
    source = make_source(tmp_path, port, devices)
    sink = CollectingSink()
    async with ModbusSimulator([dev]).tcp(port):
        task = asyncio.create_task(source.run(sink))
        await wait_until(lambda: "tt.TEMP" in readings(sink))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert source.health().counters["poll_errors"] == 1
    assert readings(sink)["tt.TEMP"].value == 21.5


async def test_safety_output_on_a_bit_keeps_the_other_bits_of_its_register(
    tmp_path: Path, port: int
) -> None:
    # Relay boards often map one relay per bit of a holding register: switching the siren's
    # bit must not switch off the other relays of that word.
    gas = SimDevice(profile("combustible_gas_lel_v2"), unit=1)
    panel = SimDevice(profile("all_types"), unit=2)
    panel.set_raw("BIT5", [0x0103])  # other relays of the word are on
    devices: list[dict[str, Any]] = [
        {"name": "gd", "profile": "combustible_gas_lel_v2", "points": {"GAS": {"delay_s": 0}}},
        {"name": "panel", "profile": "profiles/all_types.toml", "unit": 2},
    ]
    safety = [{"point": "gd.GAS", "levels": ["HH"], "device": "panel", "output": "BIT5"}]
    source = make_source(tmp_path, port, devices, safety=safety)
    async with ModbusSimulator([gas, panel]).tcp(port):
        await poll(source)
        assert panel.value("holding", 25) == 0x0103
        gas.set("GAS", 55.0)
        await poll(source)
        assert panel.value("holding", 25) == 0x0123
        gas.set("GAS", 20.0)
        await poll(source)
    source.close()
    assert panel.value("holding", 25) == 0x0103
    assert source.health().counters["safety_pending"] == 0


async def test_safety_output_is_driven_when_the_alarm_state_cannot_be_saved(
    tmp_path: Path, port: int
) -> None:
    # A full or broken disk must not keep the siren off: the alarm still raises, the output is
    # written, the poll's other readings are kept, and the failed save is counted.
    (tmp_path / "modbus-alarms.json").mkdir()  # the state file cannot be written
    gas = SimDevice(profile("combustible_gas_lel_v2"), unit=1)
    relay = SimDevice(profile("relay_output_8ch_v1"), unit=2)
    devices: list[dict[str, Any]] = [
        {"name": "gd", "profile": "combustible_gas_lel_v2", "points": {"GAS": {"delay_s": 0}}},
        {"name": "siren", "profile": "relay_output_8ch_v1", "unit": 2},
    ]
    safety = [{"point": "gd.GAS", "levels": ["H", "HH"], "device": "siren", "output": "DO01"}]
    source = make_source(tmp_path, port, devices, safety=safety)
    async with ModbusSimulator([gas, relay]).tcp(port):
        gas.set("GAS", 30.0)
        sink = await poll(source)
        assert relay.value("coil", 0) == 1
        gas.set("GAS", 5.0)
        cleared = await poll(source)
    source.close()
    assert alarms(sink) == [("raise", "H", "gd.GAS")]
    assert "siren.DO08" in readings(sink)
    assert alarms(cleared) == [("clear", "H", "gd.GAS")]
    assert relay.value("coil", 0) == 0
    counters = source.health().counters
    assert counters["alarm_state_save_failures"] == 2
    assert counters.get("poll_errors", 0) == 0


async def test_alarms_of_points_and_devices_removed_while_active_are_cleared(
    tmp_path: Path, port: int
) -> None:
    # A point disabled (or a device removed) from the config while in alarm: no sample will
    # ever clear it, so the restart must, or the alert stays open forever upstream.
    gas = SimDevice(profile("combustible_gas_lel_v2"), unit=1)
    gas.set("GAS", 30.0)
    devices: list[dict[str, Any]] = [
        {"name": "gd", "profile": "combustible_gas_lel_v2", "points": {"GAS": {"delay_s": 0}}},
        {"name": "pt", "profile": "pressure_transmitter_v1", "unit": 2},  # never answers
    ]
    source = make_source(tmp_path, port, [dict(d) for d in devices])
    async with ModbusSimulator([gas]).tcp(port):
        sink = await poll(source, 2)
        source.close()
        assert alarms(sink) == [("raise", "H", "gd.GAS"), ("raise", "fault", "pt")]
        devices = [{**devices[0], "points": {"GAS": {"enabled": False}}}]
        source = make_source(tmp_path, port, devices)
        sink = await poll(source, 2)
        source.close()
    assert sorted(alarms(sink)) == [("clear", "H", "gd.GAS"), ("clear", "fault", "pt")]
    assert AlarmStateStore(tmp_path / "modbus-alarms.json").all() == {}


@pytest.mark.parametrize("code", [10, 11])
async def test_a_gateway_reporting_its_target_silent_makes_the_device_offline(
    tmp_path: Path, port: int, code: int
) -> None:
    # Behind a Modbus TCP/RTU gateway a dead sensor answers with exception 10 or 11 from the
    # gateway: the device itself did not answer, so it goes offline like a silent one.
    dev = SimDevice(profile("pressure_transmitter_v1"), unit=1)
    dev.set("PRESSURE", 0.8)
    source = make_source(tmp_path, port, [{"name": "pt", "profile": "pressure_transmitter_v1"}])
    async with ModbusSimulator([dev]).tcp(port):
        await poll(source)
        dev.exception = code
        sink = await poll(source, 3)
        assert alarms(sink) == [("raise", "fault", "pt")]
        assert source.health().devices == {"pt": "offline"}
        dev.exception = None
        sink = await poll(source)
    source.close()
    assert alarms(sink) == [("clear", "fault", "pt")]
    assert source.health().parse_errors[f"exception_{code}"] == 3
