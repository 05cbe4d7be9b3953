"""``hazwatch modbus read``: read a device once and print tag, value, unit and quality.

What an engineer runs while commissioning a site: it uses the same profile, coalesced reads and
decoder as the agent, over TCP (``--host``) or RTU (``--serial``).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from hazwatch.cli import Commands

if TYPE_CHECKING:
    from edge.pipeline import CollectingSink
    from edge.sources.modbus import ModbusSource


def register(commands: Commands) -> None:
    """Add ``modbus read``."""
    commands.group("modbus", help="Modbus field tools")
    parser = commands.add(
        "modbus read", help="read a device once and print its points", handler=_read
    )
    parser.add_argument("--profile", required=True, help="shipped profile name or TOML path")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--host", help="Modbus TCP host")
    where.add_argument("--serial", metavar="DEV", help="serial device for Modbus RTU")
    parser.add_argument("--port", type=int, default=502, help="TCP port (default 502)")
    parser.add_argument("--unit", type=int, default=1, help="unit id (default 1)")
    parser.add_argument("--baud", type=int, help="baud rate (default: the profile's)")
    parser.add_argument("--parity", choices=("N", "E", "O"), help="parity (default: profile's)")
    parser.add_argument("--stop-bits", type=int, choices=(1, 2), help="stop bits")
    parser.add_argument("--timeout-s", type=float, default=1.0, help="per request (default 1)")
    parser.add_argument("--site", default="field", help="site id used in tags")


def _read(args: argparse.Namespace) -> int:
    import asyncio
    import dataclasses
    import logging
    import tempfile
    from pathlib import Path

    from edge.errors import ConfigError
    from edge.pipeline import CollectingSink
    from edge.profiles import find_profile, load_profile
    from edge.sources.modbus import ModbusSource, parse_config

    if args.log_level != "DEBUG":  # pymodbus logs every timeout at ERROR with frame dumps
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    try:
        path = find_profile(args.profile, base_dir=Path.cwd())
        profile = load_profile(path)
        device: dict[str, object] = {"name": "dev", "profile": str(path), "unit": args.unit}
        table: dict[str, object] = {
            "site": args.site, "timeout_s": args.timeout_s, "retries": 1, "devices": [device]
        }  # fmt: skip
        if args.host:
            device |= {"host": args.host, "port": args.port}
        else:
            t = profile.transport
            bus = {"port": args.serial, "baud": args.baud or t.baud,
                   "parity": args.parity or t.parity, "stop_bits": args.stop_bits or t.stop_bits}  # fmt: skip
            table["buses"] = {"field": bus}
            device["bus"] = "field"
        with tempfile.TemporaryDirectory() as state_dir:
            config = parse_config(table, file=Path("cli"))
            config = dataclasses.replace(
                config, devices=(dataclasses.replace(config.devices[0], all_points=True),)
            )
            source = ModbusSource(config, state_dir=Path(state_dir))
            sink = CollectingSink()
            asyncio.run(_once(source, sink))
    except ConfigError as exc:
        print(f"error: {exc}")
        return 2
    dev = source.devices["dev"]
    if not dev.last:
        print(f"no answer from the device ({dict(source.health().counters)})")
        return 1
    rows = [
        (
            name,
            d.text if d.text is not None else _fmt(d.value),
            profile.points[name].unit,
            d.quality,
        )
        for name, d in dev.last.items()
    ]
    _table([("tag", "value", "unit", "quality"), *rows])
    return 0


async def _once(source: ModbusSource, sink: CollectingSink) -> None:
    try:
        await source.poll_once(sink)
    finally:
        source.close()


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _table(rows: list[tuple[str, str, str, str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
