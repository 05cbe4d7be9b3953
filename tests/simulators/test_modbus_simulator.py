"""The simulator's scripts and spec, and the two command-line tools end to end."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hazwatch.cli import main
from simulators.modbus import (
    Constant,
    Noise,
    Ramp,
    SimDevice,
    Step,
    apply_spec,
    script_from_spec,
)
from tests.edge.modbus.conftest import profile
from tests.support.procs import free_port, wait_port


def test_scripts_are_functions_of_time() -> None:
    assert Constant(3.0).at(100) == 3.0
    ramp = Ramp(start=0.0, end=10.0, duration_s=10.0)
    assert [ramp.at(t) for t in (-1, 0, 5, 10, 20)] == [0.0, 0.0, 5.0, 10.0, 10.0]
    assert Ramp(0.0, 10.0, 10.0, repeat=True).at(15) == 5.0
    assert [Step(1.0, 2.0, at_s=3).at(t) for t in (2.9, 3.0)] == [1.0, 2.0]
    first, again = Noise(20.0, 0.5, seed=1), Noise(20.0, 0.5, seed=1)
    noise = [first.at(t) for t in range(50)]
    assert all(19.5 <= v <= 20.5 for v in noise)
    assert len(set(noise)) > 40
    assert noise == [again.at(t) for t in range(50)]  # seeded: runs repeat


def test_spec_applies_scripts_status_and_faults() -> None:
    dev = SimDevice(profile("radar_level_v3"))
    spec = {
        "points": {"LEVEL": {"kind": "ramp", "start": 1, "end": 3, "duration_s": 2}, "DISTANCE": 4},
        "status": {"DIAG": 2},
        "exception": 6,
    }
    apply_spec(dev, spec, key="device[0]")
    dev.refresh(1.0)
    assert dev.read("holding", 10, 1) != [2]  # every read answers exception 6 now
    dev.exception = None
    assert dev.read("holding", 10, 1) == [2]
    assert dev.read("holding", 0, 2) == [0, 0x4000]  # 2.0 as float32, low word first
    with pytest.raises(ValueError, match=r"device\[0\].points.NOPE"):
        apply_spec(dev, {"points": {"NOPE": 1}}, key="device[0]")
    with pytest.raises(ValueError, match="kind"):
        script_from_spec({"kind": "sine"}, key="x")
    with pytest.raises(ValueError, match="x: "):
        script_from_spec({"kind": "ramp", "start": 1}, key="x")


def test_writes_only_to_coils_and_holding_registers() -> None:
    dev = SimDevice(profile("gas_controller_16ch_v2"))
    assert dev.write("coil", 1, [1]) is None
    assert dev.write("input", 0, [1]) is not None
    assert dev.write("coil", 40, [1]) is not None
    assert dev.writes == [("coil", 1, 1)]


@pytest.fixture
def sim_process(tmp_path: Path) -> Iterator[int]:
    """``hazwatch sim modbus`` from a TOML spec, as a separate process."""
    port = free_port()
    spec = tmp_path / "site.toml"
    spec.write_text(
        """
[[device]]
profile = "h2s_detector_v1"
unit = 1
points.H2S = 3.5
[[device]]
profile = "temperature_transmitter_v1"
unit = 2
points.TEMP = { kind = "step", before = -12.5, after = -12.5, at_s = 0 }
status.STATE = 1
"""
    )
    cmd = [sys.executable, "-m", "hazwatch.cli", "sim", "modbus", "--script", str(spec),
           "--port", str(port)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_field_tool_reads_the_simulator(
    sim_process: int, capsys: pytest.CaptureFixture[str]
) -> None:
    port = str(sim_process)
    assert main(["modbus", "read", "--profile", "h2s_detector_v1", "--host", "127.0.0.1",
                 "--port", port]) == 0  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["tag", "value", "unit", "quality"]
    assert out[1].split() == ["H2S", "3.5", "ppm", "good"]
    assert out[2].split()[0] == "SERIAL"
    assert main(["modbus", "read", "--profile", "temperature_transmitter_v1", "--host",
                 "127.0.0.1", "--port", port, "--unit", "2"]) == 0  # fmt: skip
    assert capsys.readouterr().out.splitlines()[1].split() == [
        "TEMP",
        "-12.5",
        "degC",
        "sensor_fault",
    ]
    assert main(["modbus", "read", "--profile", "temperature_transmitter_v1", "--host",
                 "127.0.0.1", "--port", port, "--unit", "9", "--timeout-s", "0.1"]) == 1  # fmt: skip
    assert "no answer" in capsys.readouterr().out
    assert main(["modbus", "read", "--profile", "nope", "--host", "127.0.0.1"]) == 2
