"""The NMEA/AIS simulators: geometry, valid sentences, and the sim CLI feeding real sources."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pyais
import pynmea2
import pytest

import wire
from edge.decode.nmea import NmeaDecoder
from edge.pipeline import CollectingSink
from edge.reporting import Reporter, ReportPolicy
from edge.sources.gnss import GnssSource
from edge.sources.streams import Backoff, TcpStream
from simulators.cli.nmea import LineServer
from simulators.nmea import AisVessel, GnssVehicle, Route

ROUTE = Route([(31.0, 121.0), (31.0, 121.01), (31.01, 121.01)], loop=False)


def test_route_walks_the_polyline() -> None:
    first_leg = 953.0  # 0.01 deg of longitude at 31 N
    assert ROUTE.length_m == pytest.approx(first_leg + 1109.0, rel=2e-3)
    lat, lon, course = ROUTE.at(first_leg / 2)
    assert (lat, lon) == pytest.approx((31.0, 121.005), abs=5e-5)
    assert course == pytest.approx(90.0, abs=0.01)
    lat, lon, course = ROUTE.at(1e9)  # stops at the end when not looping
    assert (lat, lon) == pytest.approx((31.01, 121.01))
    assert course == pytest.approx(0.0, abs=0.01)
    with pytest.raises(ValueError, match="two points"):
        Route([(31.0, 121.0)])


@pytest.mark.parametrize("talker", ["GN", "GP", "BD", "GB"])
def test_vehicle_sentences_parse_with_valid_checksums(talker: str) -> None:
    vehicle = GnssVehicle(
        ROUTE, talker=talker, sentences=("RMC", "VTG", "GGA", "GSA", "GNS", "GLL")
    )
    for sentence in vehicle.epoch(1_795_400_100_000):
        parsed = pynmea2.parse(sentence, check=True)
        assert parsed.talker == talker


def test_vessel_sentences_decode_with_pyais() -> None:
    for ais_class, expected in (("A", {1, 5}), ("B", {18, 24})):
        vessel = AisVessel(412000001, ROUTE, ais_class=ais_class)  # type: ignore[arg-type]
        static = vessel.static()
        kinds = {pyais.decode(*vessel.position(0)).msg_type}
        if ais_class == "A":
            kinds.add(pyais.decode(*static).msg_type)
        else:
            kinds |= {pyais.decode(line).msg_type for line in static}
        assert kinds == expected


async def test_line_server_feeds_a_gnss_source_over_tcp() -> None:
    server = LineServer()
    tcp = await server.serve_tcp(0)
    port = tcp.sockets[0].getsockname()[1]
    vehicle = GnssVehicle(ROUTE, start_ms=1_795_400_100_000, talker="GB")
    source = GnssSource(
        "gnss:sim",
        stream=TcpStream("tcp", host="127.0.0.1", port=port, backoff=Backoff(initial_s=0.01)),
        decoder=NmeaDecoder(asset="sim"),
        reporter=Reporter(ReportPolicy(interval_s=1)),
    )
    sink = CollectingSink()
    task = asyncio.create_task(source.run(sink))
    try:
        async with asyncio.timeout(10):
            second = 0
            while len(sink.items) < 3:
                await server.send(vehicle.epoch(1_795_400_100_000 + second * 1000))
                second += 1
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        server.close()
        tcp.close()
    fixes = sink.of_kind(wire.Fix)
    assert all(isinstance(f, wire.Fix) and f.asset == "sim" for f in fixes)


def test_sim_cli_piped_into_nmea_decode() -> None:
    sim = subprocess.run(
        [
            sys.executable,
            "-m",
            "hazwatch.cli",
            "sim",
            "ais",
            "--count",
            "2",
            "--fast",
            "--vessels",
            "3",
            "--both-channels",
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )
    decoded = subprocess.run(
        [sys.executable, "-m", "hazwatch.cli", "nmea", "decode", "-"],
        input=sim.stdout,
        capture_output=True,
        timeout=60,
        check=True,
    )
    summary = json.loads(decoded.stderr.decode().strip().splitlines()[-1])
    assert summary["counts"]["fix_ais"] == 6  # 3 vessels x 2 periods, B copies are duplicates
    assert summary["counts"]["vessel"] == 3
    assert summary["errors"] == {}


def test_positions_a_hair_below_a_whole_degree_print_valid_minutes() -> None:
    # 31.999999999 N is 31 deg 59.99999994 min: printed with 5 decimals it must read 3200.00000,
    # never 3160.00000 (minutes 60), which strict NMEA readers reject.
    start = (31.999999999, -121.999999999)
    vehicle = GnssVehicle(Route([start, (31.5, -121.5)], loop=False), sentences=("GGA",))
    (gga,) = vehicle.epoch(vehicle.start_ms)
    fields = gga.split(",")
    assert (fields[2], fields[3], fields[4], fields[5]) == ("3200.00000", "N", "12200.00000", "W")
