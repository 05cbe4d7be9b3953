"""AIS sources: a shore station over UDP and TCP, static data resend, config."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

import wire
from edge.decode.ais import AisDecoder
from edge.errors import ConfigError
from edge.pipeline import CollectingSink
from edge.reporting import Reporter, ReportPolicy
from edge.sources.ais import AisSource, build_sources
from edge.sources.streams import Backoff, TcpStream, UdpStream
from simulators.nmea import AisVessel, Route, tag_block

ROUTE = Route([(30.0, 122.0), (30.05, 122.05)])
T0_MS = 1_795_400_100_000


async def until(condition: Callable[[], bool], *, timeout_s: float = 10.0) -> None:
    """Poll ``condition`` (the sources have no events to wait on)."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def shore_traffic() -> list[bytes]:
    """Two vessels, each report heard on A and B; static data; a fragment lost."""
    a = AisVessel(412000101, ROUTE, ais_class="A", start_ms=T0_MS, name="MIN YU 1")
    b = AisVessel(412000102, ROUTE, ais_class="B", start_ms=T0_MS, name="ZHE YU 2")
    lines: list[str] = []
    for second in range(0, 90, 10):
        t_ms = T0_MS + second * 1000
        for vessel in (a, b):
            for channel in "AB":
                lines += [
                    tag_block(s, station="zs-1", t_ms=t_ms)
                    for s in vessel.position(t_ms, channel=channel)
                ]
    lines += a.static(channel="A") + a.static(channel="B")[:1] + b.static()
    return [line.encode() for line in lines]


async def test_shore_station_over_udp() -> None:
    stream = UdpStream("udp", bind="127.0.0.1", port=0)
    source = AisSource(
        "shore-1",
        stream=stream,
        decoder=AisDecoder(duplicate_window_s=5),
        reporter=Reporter(ReportPolicy(interval_s=30, distance_m=0, heading_change_deg=0)),
        clock=lambda: T0_MS / 1000,
    )
    sink = CollectingSink()
    task = asyncio.create_task(source.run(sink))
    try:
        await until(lambda: stream.bound_port is not None)
        assert stream.bound_port is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for datagram in shore_traffic():
                sender.sendto(datagram, ("127.0.0.1", stream.bound_port))
            await until(lambda: len(sink.of_kind(wire.Vessel)) >= 2)
        health = source.health()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    fixes = sink.of_kind(wire.Fix)
    by_vessel: dict[str, list[int]] = {}
    for fix in fixes:
        assert isinstance(fix, wire.Fix)
        by_vessel.setdefault(fix.asset, []).append((fix.ts - T0_MS) // 1000)
    # every 10 s heard twice; one report per 30 s per vessel goes out
    assert by_vessel == {"412000101": [0, 30, 60], "412000102": [0, 30, 60]}
    assert sorted(v.mmsi for v in sink.of_kind(wire.Vessel)) == [412000101, 412000102]  # type: ignore[union-attr]
    assert health.devices == {"udp": "online"}
    assert health.counters["duplicates"] == 18  # each position also heard on channel B
    assert health.counters["fixes_suppressed"] == 12
    assert health.counters["station.zs-1"] == 36


async def test_static_data_resent_only_when_changed_or_due() -> None:
    vessel = AisVessel(412000103, ROUTE, ais_class="A", name="MIN YU 3")
    now = [1000.0]
    stream = UdpStream("udp", bind="127.0.0.1", port=0)
    source = AisSource(
        "shore-2",
        stream=stream,
        decoder=AisDecoder(duplicate_window_s=0),
        reporter=Reporter(ReportPolicy()),
        static_interval_s=600,
        clock=lambda: now[0],
    )
    sink = CollectingSink()
    for _ in range(3):
        for line in vessel.static():
            source._sentence(line.encode(), now[0], sink)
    vessel.name = "MIN YU 33"
    for line in vessel.static():
        source._sentence(line.encode(), now[0], sink)
    now[0] += 601
    for line in vessel.static():
        source._sentence(line.encode(), now[0], sink)
    names = [v.name for v in sink.of_kind(wire.Vessel)]  # type: ignore[union-attr]
    assert names == ["MIN YU 3", "MIN YU 33", "MIN YU 33"]
    assert source.health().counters["statics_suppressed"] == 2


async def test_own_ship_transponder_over_tcp_from_config(tmp_path: Path) -> None:
    vessel = AisVessel(412000104, ROUTE, ais_class="B")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for second in range(3):
            t_ms = T0_MS + second * 1000
            lines = [
                tag_block(s, station="own", t_ms=t_ms) for s in vessel.position(t_ms, own=True)
            ]
            for line in lines + vessel.position(T0_MS, channel="B"):
                writer.write(line.encode() + b"\r\n")
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    table = {
        "report": {"interval_s": 1, "distance_m": 0},
        "receivers": [
            {
                "name": "own",
                "transport": "tcp",
                "host": "127.0.0.1",
                "port": port,
                "own_ship_only": True,
            },
        ],
    }
    (source,) = build_sources(table, file=tmp_path / "agent.toml", state_dir=tmp_path)
    assert isinstance(source, AisSource)
    assert isinstance(source.stream, TcpStream)
    source.stream._backoff = Backoff(initial_s=0.01, max_s=0.02)
    sink = CollectingSink()
    async with server:
        task = asyncio.create_task(source.run(sink))
        try:
            await until(lambda: len(sink.items) >= 3)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert {f.flags for f in sink.of_kind(wire.Fix)} == {("own_ship",)}  # type: ignore[union-attr]
    assert source.health().counters["ignored_vdm"] >= 1


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"receivers": [{"transport": "udp", "port": 1}]}, "ais.receivers[0].name"),
        (
            {"receivers": [{"name": "x", "transport": "udp", "port": 70000}]},
            "ais.receivers[0].port",
        ),
        (
            {"receivers": [{"name": "x", "transport": "udp", "port": 1, "own_ship_only": 1}]},
            "ais.receivers[0].own_ship_only",
        ),
        ({"fragment_timeout_s": 0}, "ais.fragment_timeout_s"),
        ({"report": {"interval_s": -1}}, "ais.report.interval_s"),
        ({"recievers": []}, "ais.recievers"),
    ],
)
def test_config_errors(tmp_path: Path, table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_sources(table, file=tmp_path / "agent.toml", state_dir=tmp_path)
    assert caught.value.key == key


async def test_datagrams_dropped_by_a_full_queue_are_reported_in_health() -> None:
    stream = UdpStream("udp", bind="127.0.0.1", port=0, max_queue=2)
    source = AisSource(
        "shore-1",
        stream=stream,
        decoder=AisDecoder(),
        reporter=Reporter(ReportPolicy()),
        clock=lambda: T0_MS / 1000,
    )
    chunks = stream.chunks()
    first = asyncio.ensure_future(anext(chunks))
    try:
        await until(lambda: stream.bound_port is not None)
        assert stream.bound_port is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"!AIVDM,first\r\n", ("127.0.0.1", stream.bound_port))
            await first  # the consumer now falls behind: nothing reads the queue
            for datagram in shore_traffic()[:10]:
                sender.sendto(datagram, ("127.0.0.1", stream.bound_port))
            await until(lambda: stream.overflows == 8)
    finally:
        first.cancel()
        await chunks.aclose()
    assert source.health().parse_errors["datagrams_dropped"] == 8
