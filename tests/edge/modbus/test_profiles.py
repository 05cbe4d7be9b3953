"""Firmware profiles: the shipped set loads; every error names file, point and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import ProfileError
from edge.profiles import find_profile, load_profile, shipped_profiles
from hazwatch.cli import main

VALID = """
vendor = "V"
model = "M"
firmware = "1"
[status.ST]
register = "input"
address = 9
codes = { "0" = "good" }
[points.P]
register = "input"
address = 0
type = "uint16"
status = "ST"
"""


def test_shipped_profiles_cover_the_issue() -> None:
    names = set(shipped_profiles())
    assert len(names) >= 7
    lel = load_profile(find_profile("combustible_gas_lel_v2")).points["GAS"]
    assert (lel.unit, lel.limits.H, lel.limits.HH) == ("%LEL", 25, 50)
    o2 = load_profile(find_profile("oxygen_detector_v1")).points["O2"]
    assert (o2.limits.L, o2.limits.H, o2.unit) == (19.5, 23.5, "%VOL")
    radar = load_profile(find_profile("radar_level_v3")).points["LEVEL"]
    assert (radar.register.type, radar.register.word_order) == ("float32", "little")
    pressure = load_profile(find_profile("pressure_transmitter_v1")).points["PRESSURE"]
    assert (pressure.register.type, pressure.unit) == ("int16", "MPa")
    temp = load_profile(find_profile("temperature_transmitter_v1")).points["TEMP"]
    assert (temp.register.type, temp.scale) == ("int16", 0.1)
    assert load_profile(find_profile("h2s_detector_v1")).points["H2S"].unit == "ppm"


def test_repeat_expands_channels_with_their_own_status() -> None:
    ctrl = load_profile(find_profile("gas_controller_16ch_v2"))
    channels = [n for n in ctrl.points if n.startswith("CH")]
    assert len(channels) == 16
    assert ctrl.points["CH16"].register.address == 15
    assert ctrl.points["CH16"].status == "ST16"
    assert ctrl.statuses["ST16"].register.address == 115


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('type = "uint16"', 'type = "int8"', "points.P.type"),
        ("address = 0", "address = 70000", "points.P.address"),
        ("address = 0", 'address = "zero"', "points.P.address"),
        ('type = "uint16"', 'type = "uint16"\nscale = 0', "points.P.scale"),
        ('type = "uint16"', 'type = "uint16"\nrange = [5, 1]', "points.P.range"),
        ('type = "uint16"', 'type = "uint16"\nalarms = { H = 5, HH = 2 }', "points.P.alarms.HH"),
        ('type = "uint16"', 'type = "uint16"\nalarms = { HHH = 5 }', "points.P.alarms.HHH"),
        ('type = "uint16"', 'type = "uint16"\nbit = 3', "points.P.bit"),
        ('type = "uint16"', 'type = "uint16"\ncolour = "red"', "points.P.colour"),
        ('status = "ST"', 'status = "NOPE"', "points.P.status"),
        (
            'register = "input"\naddress = 0',
            'register = "eeprom"\naddress = 0',
            "points.P.register",
        ),
        ('"0" = "good"', '"0" = "fine"', "status.ST.codes.0"),
        ('vendor = "V"', "", "vendor"),
        # accepted here, every reading would be refused by the wire contract (unit <= 32)
        ('type = "uint16"', 'type = "uint16"\nunit = "' + "u" * 33 + '"', "points.P.unit"),
        # a value past the last register (65535) cannot be read
        ('address = 0\ntype = "uint16"', 'address = 65535\ntype = "float32"', "points.P.address"),
        (
            'address = 0\ntype = "uint16"',
            'address = 60000\ntype = "uint16"\nrepeat = 3\nstride = 4096',
            "points.P.address",
        ),
    ],
)
def test_errors_name_file_point_and_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    path = tmp_path / "bad.toml"
    assert old in VALID
    path.write_text(VALID.replace(old, new, 1))
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert err.value.file == str(path)
    assert err.value.key == key
    assert str(path) in str(err.value)
    assert key in str(err.value)


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("vendor = ")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(path)
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "missing.toml")
    with pytest.raises(ProfileError, match="no shipped profile"):
        find_profile("no_such_device")


def test_profile_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = find_profile("radar_level_v3")
    bad = tmp_path / "bad.toml"
    bad.write_text(VALID.replace('type = "uint16"', 'type = "int8"'))
    assert main(["profile", "check", str(good)]) == 0
    assert main(["profile", "check", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "ok: " in out
    assert f"error: {bad}: points.P.type" in out
