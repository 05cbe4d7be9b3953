"""Modbus polling: 20 devices x 50 points on loopback, coalesced reads vs one request per point.

A child process serves 20 simulated devices (one Modbus TCP port each); this process polls every
device once per cycle with the real :class:`edge.sources.modbus.ModbusSource`, first with read
coalescing (the default), then with one request per point (``max_gap = -1``). Prints requests
per cycle and the median cycle time of several cycles, and the ratios.

Run from the repository root: ``python bench/bench_modbus.py``.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEVICES = 20
CYCLES = 7


def _profile_text() -> str:
    """50 points: 30 uint16 + 10 float32 in holding registers, 10 int16 input registers."""
    lines = ['vendor = "Bench"', 'model = "B-50"', 'firmware = "1"']
    for i in range(30):
        lines += [f"[points.U{i:02d}]", 'register = "holding"', f"address = {i}", 'type = "uint16"']
    for i in range(10):
        lines += [f"[points.F{i:02d}]", 'register = "holding"', f"address = {40 + 2 * i}",
                  'type = "float32"', "scale = 1.0"]  # fmt: skip
    for i in range(10):
        lines += [f"[points.S{i:02d}]", 'register = "input"', f"address = {i}", 'type = "int16"',
                  "scale = 0.1"]  # fmt: skip
    return "\n".join(lines) + "\n"


async def _serve(profile_path: Path, first_port: int) -> None:
    from edge.profiles import load_profile
    from simulators.modbus import ModbusSimulator, SimDevice

    profile = load_profile(profile_path)
    servers = []
    for i in range(DEVICES):
        dev = SimDevice(profile, unit=1)
        for n, name in enumerate(profile.points):
            dev.set(name, float(n))
        servers.append(ModbusSimulator([dev]).tcp(first_port + i))
    for server in servers:
        await server.__aenter__()
    print("ready", flush=True)
    await asyncio.Event().wait()


async def _measure(profile_path: Path, first_port: int, *, max_gap: int) -> tuple[float, float]:
    from edge.pipeline import CollectingSink
    from edge.sources.modbus import ModbusSource, build_sources

    devices = [
        {
            "name": f"d{i:02d}",
            "profile": str(profile_path),
            "host": "127.0.0.1",
            "port": first_port + i,
        }
        for i in range(DEVICES)
    ]
    table = {"site": "bench", "timeout_s": 2.0, "max_gap": max_gap, "devices": devices}
    with tempfile.TemporaryDirectory() as state_dir:
        [source] = build_sources(table, file=profile_path, state_dir=Path(state_dir))
        assert isinstance(source, ModbusSource)
        times: list[float] = []
        requests: list[int] = []
        try:
            for cycle in range(CYCLES + 1):
                sink = CollectingSink()
                before = source.health().counters.get("requests", 0)
                started = time.perf_counter()
                await source.poll_once(sink)
                elapsed = time.perf_counter() - started
                if cycle:  # the first cycle connects: not measured
                    times.append(elapsed)
                    requests.append(source.health().counters["requests"] - before)
                assert source.health().counters.get("polls_failed", 0) == 0
                assert len(sink.items) == DEVICES * 50
        finally:
            source.close()
    return statistics.median(requests), statistics.median(times)


def main() -> int:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        asyncio.run(_serve(Path(sys.argv[2]), int(sys.argv[3])))
        return 0
    first_port = 20000
    while not all(_free(first_port + i) for i in range(DEVICES)):
        first_port += DEVICES
    with tempfile.TemporaryDirectory() as tmp:
        profile_path = Path(tmp) / "bench_50_points.toml"
        profile_path.write_text(_profile_text())
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(profile_path), str(first_port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            coalesced = asyncio.run(_measure(profile_path, first_port, max_gap=8))
            per_point = asyncio.run(_measure(profile_path, first_port, max_gap=-1))
        finally:
            child.terminate()
            child.wait(timeout=10)
    print(f"modbus poll, {DEVICES} devices x 50 points, TCP loopback, median of {CYCLES} cycles")
    print(
        f"  coalesced:          {coalesced[0]:6.0f} requests/cycle  {coalesced[1] * 1000:8.1f} ms/cycle"
    )
    print(
        f"  one request/point:  {per_point[0]:6.0f} requests/cycle  {per_point[1] * 1000:8.1f} ms/cycle"
    )
    print(f"  ratio requests: {per_point[0] / coalesced[0]:.1f}x fewer")
    print(f"  ratio cycle time: {per_point[1] / coalesced[1]:.1f}x faster")
    return 0


def _free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


if __name__ == "__main__":
    sys.exit(main())
