"""``hazwatch sim modbus``: serve simulated Modbus devices from firmware profiles.

Devices come from ``--profile`` (repeatable; unit ids count up from ``--unit``) or from a TOML
spec (``--script``) with one ``[[device]]`` table each::

    [[device]]
    profile = "radar_level_v3"       # shipped name or path relative to the spec
    unit = 1
    points.LEVEL = { kind = "ramp", start = 1.0, end = 19.8, duration_s = 120 }
    points.DISTANCE = 12.5           # a number is a constant
    status.DIAG = 0                  # fault/status codes
    # exception = 4                  # answer every read with this exception code
    # silent = true                  # stop answering

Scripts: ``constant`` (value), ``ramp`` (start, end, duration_s, repeat), ``noise`` (mean,
amplitude, seed), ``step`` (before, after, at_s).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from hazwatch.cli import Commands

if TYPE_CHECKING:
    from simulators.modbus import SimDevice


def register(commands: Commands) -> None:
    """Add ``sim modbus``."""
    commands.group("sim", help="simulators of devices, vehicles and vessels")
    parser = commands.add(
        "sim modbus", help="serve Modbus devices from firmware profiles", handler=_serve
    )
    parser.add_argument("--profile", action="append", default=[], help="profile (repeatable)")
    parser.add_argument("--unit", type=int, default=1, help="first unit id (default 1)")
    parser.add_argument("--script", help="TOML spec of devices and scripted values")
    parser.add_argument("--set", action="append", default=[], metavar="POINT=VALUE",
                        help="constant value of a point of the first device (repeatable)")  # fmt: skip
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=int, help="serve Modbus TCP on this port")
    where.add_argument("--serial", metavar="DEV", help="serve Modbus RTU on this serial device")
    parser.add_argument("--host", default="127.0.0.1", help="TCP bind address")
    parser.add_argument("--baud", type=int, default=9600, help="RTU baud rate")
    parser.add_argument("--parity", choices=("N", "E", "O"), default="N", help="RTU parity")


def _devices(args: argparse.Namespace) -> list[SimDevice]:
    import tomllib
    from pathlib import Path

    from edge.profiles import find_profile, load_profile
    from simulators.modbus import SimDevice, apply_spec

    devices: list[SimDevice] = []
    for i, ref in enumerate(args.profile):
        devices.append(
            SimDevice(load_profile(find_profile(ref, base_dir=Path.cwd())), unit=args.unit + i)
        )
    if args.script:
        spec_path = Path(args.script)
        spec = tomllib.loads(spec_path.read_text(encoding="utf-8"))
        for i, raw in enumerate(spec.get("device", [])):
            profile = load_profile(find_profile(str(raw["profile"]), base_dir=spec_path.parent))
            device = SimDevice(profile, unit=int(raw.get("unit", args.unit + len(devices))))
            apply_spec(device, raw, key=f"device[{i}]")
            devices.append(device)
    for item in args.set:
        point, _, value = item.partition("=")
        devices[0].set(point, float(value))
    return devices


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import tomllib

    from edge.errors import ConfigError
    from simulators.modbus import ModbusSimulator

    if args.log_level != "DEBUG":
        logging.getLogger("pymodbus").setLevel(logging.WARNING)
    try:
        devices = _devices(args)
    except (ConfigError, ValueError, KeyError, OSError, tomllib.TOMLDecodeError) as exc:
        print(f"error: {exc}")
        return 2
    if not devices:
        print("error: give --profile or a --script with [[device]] tables")
        return 2
    sim = ModbusSimulator(devices)

    async def serve() -> None:
        server = (
            sim.tcp(args.port, host=args.host)
            if args.port
            else sim.rtu(args.serial, baud=args.baud, parity=args.parity)
        )
        async with server:
            where = f"{args.host}:{args.port}" if args.port else args.serial
            units = ", ".join(f"{d.unit}={d.profile.name}" for d in devices)
            print(f"serving Modbus on {where}: units {units}", flush=True)
            await asyncio.Event().wait()

    asyncio.run(serve())
    return 0
