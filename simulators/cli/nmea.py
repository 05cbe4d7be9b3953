"""``hazwatch sim gnss`` and ``hazwatch sim ais``: NMEA/AIS feeds over TCP, UDP or stdout.

``sim gnss`` drives one vehicle along a polyline and emits an epoch of sentences per period;
``sim ais`` moves a fleet of fishing vessels around a point and emits their position reports
(every ``--interval-s``) and static data (every ``--static-every`` reports), each heard on
channels A and B when ``--both-channels`` is set. Output goes to every TCP client of
``--tcp-port``, to ``--udp HOST:PORT``, or to stdout; ``--count`` stops after that many periods
and ``--fast`` does not wait between them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hazwatch.cli import Commands

__all__ = ["LineServer", "register"]

#: Shanghai Waigaoqiao -> Pudong: a default route for trucks.
_DEFAULT_ROUTE = "31.3560,121.5890;31.3300,121.6020;31.2900,121.6150;31.2400,121.6000"


def register(commands: Commands) -> None:
    """Add ``sim gnss`` and ``sim ais``."""
    commands.group("sim", help="simulated devices and feeds")
    gnss = commands.add("sim gnss", help="a GNSS vehicle emitting NMEA", handler=_gnss)
    gnss.add_argument("--route", default=_DEFAULT_ROUTE, help="lat,lon;lat,lon;... (WGS-84)")
    gnss.add_argument("--speed-kmh", type=float, default=50.0)
    gnss.add_argument("--talker", default="GN", choices=("GN", "GP", "BD", "GB"))
    gnss.add_argument("--no-rmc", action="store_true", help="a receiver without RMC")
    ais = commands.add("sim ais", help="AIS vessels emitting !AIVDM", handler=_ais)
    ais.add_argument("--vessels", type=int, default=5)
    ais.add_argument("--center", default="30.0,122.3", help="lat,lon of the fishing ground")
    ais.add_argument("--static-every", type=int, default=6, help="static data every N reports")
    ais.add_argument("--both-channels", action="store_true", help="each report on A and B")
    for parser in (gnss, ais):
        parser.add_argument("--interval-s", type=float, default=1.0 if parser is gnss else 10.0)
        parser.add_argument("--tcp-port", type=int, help="serve every client on this port")
        parser.add_argument("--udp", metavar="HOST:PORT", help="send datagrams there")
        parser.add_argument("--count", type=int, default=0, help="stop after N periods (0: never)")
        parser.add_argument("--fast", action="store_true", help="do not wait between periods")


class LineServer:
    """Send batches of lines to TCP clients, a UDP peer and/or a write function."""

    def __init__(self) -> None:
        self._clients: set[asyncio.StreamWriter] = set()
        self._udp: asyncio.DatagramTransport | None = None
        self.write: Callable[[bytes], object] | None = None

    async def serve_tcp(self, port: int, *, host: str = "127.0.0.1") -> asyncio.Server:
        """Accept clients on ``port`` (0: any free port; see ``server.sockets``)."""

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._clients.add(writer)

        return await asyncio.start_server(accept, host, port)

    async def open_udp(self, host: str, port: int) -> None:
        """Send every batch as datagrams (one per sentence) to ``host:port``."""
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=(host, port)
        )
        self._udp = transport

    async def send(self, lines: list[str]) -> None:
        """Send one period's sentences."""
        data = "".join(line + "\r\n" for line in lines).encode()
        if self.write is not None:
            self.write(data)
        if self._udp is not None:
            for line in lines:
                self._udp.sendto(line.encode() + b"\r\n")
        for writer in list(self._clients):
            if writer.is_closing():
                self._clients.discard(writer)
                continue
            writer.write(data)
            try:
                await writer.drain()
            except OSError:
                self._clients.discard(writer)
                writer.close()

    def close(self) -> None:
        """Drop clients and the UDP socket."""
        for writer in self._clients:
            writer.close()
        self._clients.clear()
        if self._udp is not None:
            self._udp.close()


def _points(text: str) -> list[tuple[float, float]]:
    points = []
    for pair in text.split(";"):
        lat, lon = pair.split(",")
        points.append((float(lat), float(lon)))
    return points


async def _run(args: argparse.Namespace, batch: Callable[[int, int], list[str]]) -> int:
    server = LineServer()
    tcp = await server.serve_tcp(args.tcp_port, host="0.0.0.0") if args.tcp_port else None
    if args.udp:
        host, _, port = args.udp.rpartition(":")
        await server.open_udp(host, int(port))
    if tcp is None and not args.udp:
        server.write = lambda data: (sys.stdout.buffer.write(data), sys.stdout.buffer.flush())
    start_ms = int(time.time() * 1000)
    period = 0
    try:
        while not args.count or period < args.count:
            t_ms = start_ms + int(period * args.interval_s * 1000)
            await server.send(batch(period, t_ms))
            period += 1
            await asyncio.sleep(0 if args.fast else args.interval_s)
    finally:
        server.close()
        if tcp is not None:
            tcp.close()
    return 0


def _gnss(args: argparse.Namespace) -> int:
    from simulators.nmea import GnssVehicle, Route

    sentences = ("VTG", "GGA", "GSA") if args.no_rmc else ("RMC", "VTG", "GGA", "GSA")
    vehicle = GnssVehicle(
        Route(_points(args.route)),
        speed_kmh=args.speed_kmh,
        start_ms=int(time.time() * 1000),
        talker=args.talker,
        sentences=sentences,
    )
    return asyncio.run(_run(args, lambda _period, t_ms: vehicle.epoch(t_ms)))


def _ais(args: argparse.Namespace) -> int:
    from simulators.nmea import AisVessel, Route

    lat, lon = _points(args.center)[0]
    now_ms = int(time.time() * 1000)
    fleet = [
        AisVessel(
            412_400_000 + index,
            Route([(lat + index * 0.01, lon), (lat + index * 0.01 + 0.05, lon + 0.08)]),
            speed_kn=4.0 + index % 5,
            start_ms=now_ms,
            ais_class="A" if index % 3 == 0 else "B",
            name=f"ZHE DAI YU {index:03d}",
            callsign=f"BZD{index:03d}",
        )
        for index in range(args.vessels)
    ]

    def batch(period: int, t_ms: int) -> list[str]:
        lines: list[str] = []
        for vessel in fleet:
            lines += vessel.position(t_ms, channel="A")
            if args.both_channels:
                lines += vessel.position(t_ms, channel="B")
            if period % max(1, args.static_every) == 0:
                lines += vessel.static(channel="A")
        return lines

    return asyncio.run(_run(args, batch))
