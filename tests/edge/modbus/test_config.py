"""The [modbus] section: valid configs build a source, every error names file and key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from edge.errors import ConfigError
from edge.sources.modbus import ModbusSource, build_sources, parse_config

BASE: dict[str, Any] = {
    "site": "S1",
    "buses": {"a": {"port": "/dev/ttyUSB0", "baud": 9600}},
    "devices": [
        {"name": "radar", "profile": "radar_level_v3", "host": "10.0.0.5", "unit": 1},
        {"name": "temp", "profile": "temperature_transmitter_v1", "bus": "a", "unit": 2},
        {
            "name": "ctrl",
            "profile": "gas_controller_16ch_v2",
            "bus": "a",
            "unit": 3,
            "points": {"CH01": {"tag": "T101.GT01", "H": 20}, "CH16": {"enabled": False}},
        },
    ],
    "safety": [{"point": "T101.GT01", "levels": ["HH"], "device": "ctrl", "output": "RELAY01"}],
}


def test_a_valid_section_builds_one_source(tmp_path: Path) -> None:
    sources = build_sources(BASE, file=tmp_path / "agent.toml", state_dir=tmp_path)
    assert len(sources) == 1
    source = sources[0]
    assert isinstance(source, ModbusSource)
    config = source.config
    assert set(config.buses) == {"a", "tcp://10.0.0.5:502"}
    ctrl = config.devices[2]
    assert ctrl.tags["CH01"] == "T101.GT01"
    assert ctrl.tags["CH02"] == "ctrl.CH02"
    assert "CH16" not in ctrl.tags
    assert (ctrl.limits["CH01"].H, ctrl.limits["CH01"].HH) == (20, 50)
    assert source.health().devices == {"radar": "offline", "temp": "offline", "ctrl": "offline"}


def test_a_profile_path_is_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    own = tmp_path / "profiles" / "mine.toml"
    own.write_text((Path(__file__).parent / "profiles" / "all_types.toml").read_text())
    table = copy.deepcopy(BASE)
    table["devices"][0]["profile"] = "profiles/mine.toml"
    table["safety"] = []
    config = parse_config(table, file=tmp_path / "agent.toml")
    assert config.devices[0].profile.model == "ALL-TYPES"


def _set(table: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split("/")
    node: Any = table
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is ...:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value


@pytest.mark.parametrize(
    ("path", "value", "key"),
    [
        ("site", ..., "modbus.site"),
        ("timeout_s", -1, "modbus.timeout_s"),
        ("colour", 1, "modbus.colour"),
        ("devices", [], "modbus.devices"),
        ("devices/0/profile", "nope_v9", "modbus.devices[0].profile"),
        ("devices/1/bus", "b", "modbus.devices[1].bus"),
        ("devices/0/unit", 300, "modbus.devices[0].unit"),
        ("devices/0/port", "502", "modbus.devices[0].port"),
        ("devices/2/points/CH01/H", "high", "modbus.devices[2].points.CH01.H"),
        ("devices/2/points/CH01/HH", 10, "modbus.devices[2].points.CH01.HH"),
        ("devices/2/points/CH01/scale", 2, "modbus.devices[2].points.CH01.scale"),
        ("devices/2/points/XX99", {}, "modbus.devices[2].points.XX99"),
        ("devices/1/name", "radar", "modbus.devices[1].name"),
        ("devices/1/points", {"TEMP": {"tag": "T101.GT01"}}, "modbus.devices[2].points.CH01.tag"),
        ("buses/a/parity", "X", "modbus.buses.a.parity"),
        ("safety/0/point", "T999", "modbus.safety[0].point"),
        ("safety/0/output", "CH01", "modbus.safety[0].output"),
        ("safety/0/levels", ["HHH"], "modbus.safety[0].levels"),
        ("safety/0/device", "nobody", "modbus.safety[0].device"),
        # accepted here, every reading and alarm would be refused by the wire contract
        ("site", "S" * 129, "modbus.site"),
        ("devices/2/points/CH01/tag", "T" * 129, "modbus.devices[2].points.CH01.tag"),
        ("devices/1/name", "n" * 124, "modbus.devices[1].points.TEMP.tag"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, path: str, value: Any, key: str) -> None:
    table = copy.deepcopy(BASE)
    _set(table, path, value)
    with pytest.raises(ConfigError) as err:
        build_sources(table, file=tmp_path / "agent.toml", state_dir=tmp_path)
    assert err.value.key == key
    assert err.value.file == str(tmp_path / "agent.toml")


def test_the_documented_example_is_valid(tmp_path: Path) -> None:
    import tomllib

    import edge.sources.modbus.poller as module

    doc = module.__doc__ or ""
    start = doc.index("    [modbus]")
    end = doc.index("Devices on one bus")
    example = "\n".join(line[4:] for line in doc[start:end].splitlines())
    config = parse_config(tomllib.loads(example)["modbus"], file=tmp_path / "agent.toml")
    assert [d.name for d in config.devices] == ["T101-radar", "relay-1"]
    assert config.devices[0].tags["LEVEL"] == "T101.LT01"
    assert config.devices[0].limits["LEVEL"].HH == 19.6
    assert config.safety[0].output == "DO01"
