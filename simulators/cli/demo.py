"""``hazwatch demo``: the whole system on embedded defaults, in one process (what ``make demo`` runs).

Broker, simulators, edge agent and cloud API all run in one event loop; nothing needs to be
installed. Prints what runs where, the map and API URLs and three API keys made for this run
(admin, a Wuxi regulator, the enterprise's dispatcher), then runs until Ctrl-C or
``--duration-s``. Logs go to stderr (``hazwatch --log-level WARNING demo`` for a quiet run).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from hazwatch.cli import Commands

if TYPE_CHECKING:
    from simulators.demo import DemoInfo

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add the ``demo`` command."""
    parser = commands.add(
        "demo", help="run broker, simulators, edge agent and cloud API in one process",
        handler=_run,
    )  # fmt: skip
    parser.add_argument("--workdir", default="var/demo", help="data folder (default var/demo)")
    parser.add_argument("--host", default="127.0.0.1", help="address every service binds")
    parser.add_argument("--http-port", type=int, default=8000, help="cloud API (default 8000)")
    parser.add_argument("--mqtt-port", type=int, default=1884, help="MQTT broker (default 1884)")
    parser.add_argument("--modbus-port", type=int, default=0, help="Modbus TCP (default: free)")
    parser.add_argument(
        "--duration-s", type=float, default=None, help="stop after this many seconds"
    )


def _banner(info: DemoInfo) -> str:
    from simulators.demo_scenario import AIS_VESSELS, DEMO_GATEWAY, DEMO_SITE, DEMO_TRUCK

    opts = info.options
    url = info.base_url
    vessels = ", ".join(f"{mmsi} {name}" for mmsi, name in AIS_VESSELS)
    lines = [
        "hazwatch demo is running (Ctrl-C stops it)",
        "",
        f"  MQTT broker (amqtt)     mqtt://{opts.host}:{opts.mqtt_port}",
        f"  Modbus TCP simulator    {opts.host}:{info.modbus_port}  tank farm {DEMO_SITE}:"
        " gas GD-101 (ramps through 25 %LEL), level LT-101, temperature TT-101",
        f"  GNSS NMEA feed (TCP)    {opts.host}:{info.gnss_port}  hazmat truck {DEMO_TRUCK}",
        f"  AIS feed (TCP)          {opts.host}:{info.ais_port}  {vessels}",
        f"  edge agent              gateway {DEMO_GATEWAY}, config {info.agent_config}",
        f"  cloud archive (SQLite)  {info.database}",
        "",
        f"  map page                {url}/map/",
        f"  API docs                {url}/docs",
        f"  health                  {url}/healthz",
        "",
        "API keys of this run (paste one into the map page's token field):",
    ]
    for role, token in info.tokens.items():
        lines.append(f"  {role + ':':<12}{token}")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from simulators.demo import DemoOptions, run_demo

    options = DemoOptions(
        workdir=Path(args.workdir),
        host=args.host,
        http_port=args.http_port,
        mqtt_port=args.mqtt_port,
        modbus_port=args.modbus_port,
        duration_s=args.duration_s,
    )

    def ready(info: DemoInfo) -> None:
        print(_banner(info), flush=True)

    try:
        asyncio.run(run_demo(options, on_ready=ready))
    except OSError as exc:
        print(f"hazwatch demo: cannot start: {exc}", flush=True)
        return 1
    print("hazwatch demo stopped", flush=True)
    return 0
