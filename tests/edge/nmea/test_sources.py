"""GNSS sources over real transports: TCP (with reconnect), UDP, a pseudo-terminal, file replay."""

from __future__ import annotations

import asyncio
import os
import random
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

import wire
from edge.decode.nmea import NmeaDecoder
from edge.errors import ConfigError
from edge.pipeline import CollectingSink, Source
from edge.reporting import Reporter, ReportPolicy
from edge.sources.gnss import GnssSource, build_sources
from edge.sources.streams import Backoff, FileStream, SerialStream, TcpStream, UdpStream
from simulators.nmea import GnssVehicle, Route

DATA = Path(__file__).parent / "data"
T0 = int(datetime(2026, 11, 23, 2, 15, tzinfo=UTC).timestamp() * 1000)
ROUTE = Route([(31.2304, 121.4737), (31.2354, 121.4787)], loop=False)
EVERY_FIX = ReportPolicy(interval_s=1, distance_m=0, heading_change_deg=0)


def epochs(first: int, last: int, *, talker: str = "GN") -> bytes:
    vehicle = GnssVehicle(ROUTE, speed_kmh=50, start_ms=T0, talker=talker)
    lines = [s for t in range(first, last) for s in vehicle.epoch(T0 + t * 1000)]
    return ("\r\n".join(lines) + "\r\n").encode()


def gnss_source(stream: object) -> GnssSource:
    return GnssSource(
        "gnss:truck-1",
        stream=stream,  # type: ignore[arg-type]
        decoder=NmeaDecoder(asset="truck-1"),
        reporter=Reporter(EVERY_FIX),
        clock=lambda: T0 / 1000,
    )


async def until(condition: Callable[[], bool], *, timeout_s: float = 10.0) -> None:
    """Poll ``condition`` (the sources have no events to wait on)."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def fix_times(sink: CollectingSink) -> list[int]:
    return [(f.ts - T0) // 1000 for f in sink.of_kind(wire.Fix)]


async def running(
    source: Source, sink: CollectingSink, body: Callable[[], Awaitable[None]]
) -> None:
    task = asyncio.create_task(source.run(sink), name=source.name)
    try:
        await body()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_backoff_grows_capped_and_jittered() -> None:
    backoff = Backoff(initial_s=0.5, max_s=4.0, rng=random.Random(1))
    delays = [backoff.next_delay_s() for _ in range(8)]
    caps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert all(cap / 2 <= d <= cap for d, cap in zip(delays, caps, strict=True))
    assert len(set(delays)) == len(delays)
    backoff.reset()
    assert backoff.next_delay_s() <= 0.5


async def test_tcp_client_reconnects_and_survives_a_cut_line() -> None:
    connections: list[int] = []
    second_done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        if len(connections) == 1:
            data = epochs(0, 3)
            for start in range(0, len(data), 37):  # chunks that cut lines
                writer.write(data[start : start + 37])
                await writer.drain()
            writer.write(b"$GNGGA,021503.00,3113.82")  # cut by the disconnect
        else:
            writer.write(epochs(3, 6))
            second_done.set()
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stream = TcpStream(
        "tcp", host="127.0.0.1", port=port, backoff=Backoff(initial_s=0.02, max_s=0.05)
    )
    source = gnss_source(stream)
    sink = CollectingSink()

    async def body() -> None:
        await until(lambda: len(sink.items) >= 5)
        assert fix_times(sink)[:5] == [0, 1, 2, 3, 4]
        health = source.health()
        assert health.counters["reconnects"] >= 1
        assert health.parse_errors.get("truncated") == 1
        assert health.counters["fixes"] >= 5

    async with server:
        await running(source, sink, body)
    assert second_done.is_set()


async def test_tcp_client_waits_for_a_server_that_is_down() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stream = TcpStream(
        "tcp", host="127.0.0.1", port=port, backoff=Backoff(initial_s=0.01, max_s=0.02)
    )
    source = gnss_source(stream)
    sink = CollectingSink()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(epochs(0, 3))
        await writer.drain()
        await reader.read()  # until the client goes
        writer.close()

    async def body() -> None:
        await asyncio.sleep(0.1)  # a few refused attempts
        assert source.health().devices == {"tcp": "offline"}
        server = await asyncio.start_server(serve, "127.0.0.1", port)
        async with server:
            await until(lambda: len(sink.items) >= 2)
            assert source.health().devices == {"tcp": "online"}

    await running(source, sink, body)


async def test_udp_listener_each_datagram_ends_a_line() -> None:
    stream = UdpStream("udp", bind="127.0.0.1", port=0)
    source = gnss_source(stream)
    sink = CollectingSink()

    async def body() -> None:
        await until(lambda: stream.bound_port is not None)
        assert stream.bound_port is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            vehicle = GnssVehicle(ROUTE, start_ms=T0, talker="BD")
            for second in range(4):
                for sentence in vehicle.epoch(T0 + second * 1000):
                    sender.sendto(sentence.encode(), ("127.0.0.1", stream.bound_port))
                sender.sendto(b"\x00\xffnoise", ("127.0.0.1", stream.bound_port))
            # the fourth epoch too: after three the decoder knows the receiver's last sentence
            await until(lambda: len(sink.items) >= 4)
        assert fix_times(sink) == [0, 1, 2, 3]
        assert source.health().parse_errors == {"garbage": 4}

    await running(source, sink, body)


async def test_udp_listener_retries_a_busy_port() -> None:
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    stream = UdpStream(
        "udp", bind="127.0.0.1", port=port, backoff=Backoff(initial_s=0.01, max_s=0.02)
    )
    source = gnss_source(stream)
    sink = CollectingSink()

    async def body() -> None:
        await until(lambda: "Address already in use" in stream.last_error)
        assert source.health().devices == {"udp": "offline"}
        holder.close()
        await until(lambda: stream.online)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(epochs(0, 3), ("127.0.0.1", port))
        await until(lambda: len(sink.items) >= 2)

    try:
        await running(source, sink, body)
    finally:
        holder.close()


def _pty_link(link: Path) -> int:
    master, slave = os.openpty()
    name = os.ttyname(slave)
    os.close(slave)
    tmp = link.with_suffix(".new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(name)
    tmp.replace(link)
    return master


async def test_serial_port_reopened_after_unplug(tmp_path: Path) -> None:
    link = tmp_path / "ttyGNSS"
    master = _pty_link(link)
    stream = SerialStream(
        "serial", device=str(link), baud=9600, backoff=Backoff(initial_s=0.02, max_s=0.05)
    )
    source = gnss_source(stream)
    sink = CollectingSink()

    async def body() -> None:
        nonlocal master
        await until(lambda: stream.online)
        os.write(master, epochs(0, 3))
        await until(lambda: len(sink.items) >= 2)
        os.close(master)  # unplugged
        await until(lambda: not stream.online)
        master = _pty_link(link)  # plugged in again (udev link to a new device)
        await until(lambda: stream.online)
        os.write(master, epochs(3, 6))
        await until(lambda: len(sink.items) >= 5)
        assert fix_times(sink)[:5] == [0, 1, 2, 3, 4]
        assert stream.reconnects == 1

    try:
        await running(source, sink, body)
    finally:
        os.close(master)


async def test_file_replay_fast_and_with_original_pacing() -> None:
    fast = gnss_source(FileStream("file", path=DATA / "gnss_beidou.nmea", pacing="fast"))
    sink = CollectingSink()
    await asyncio.wait_for(fast.run(sink), 10)
    assert fix_times(sink) == list(range(9))
    paced = gnss_source(
        FileStream("file", path=DATA / "gnss_no_rmc.nmea", pacing="original", speed=100.0)
    )
    sink = CollectingSink()
    await asyncio.wait_for(paced.run(sink), 10)
    assert fix_times(sink) == [0, 1, 2, 3]
    assert paced.health().devices == {"file": "offline"}


async def test_build_sources_from_config_and_run_a_replay(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    (tmp_path / "rec.nmea").write_bytes((DATA / "gnss_beidou.nmea").read_bytes())
    table = {
        "hdop_limit": 0.5,
        "report": {"interval_s": 3, "distance_m": 0, "heading_change_deg": 0},
        "receivers": [
            {"asset": "LU-A1", "transport": "file", "path": "rec.nmea", "pacing": "fast"},
            {"asset": "LU-A2", "transport": "serial", "device": "/dev/ttyUSB0", "baud": 4800},
            {"asset": "LU-A3", "transport": "tcp", "host": "10.0.0.2", "port": 10110},
            {"asset": "LU-A4", "transport": "udp", "port": 10111, "report": {"interval_s": 1}},
        ],
    }
    sources = build_sources(table, file=config, state_dir=tmp_path)
    assert [s.name for s in sources] == ["gnss:LU-A1", "gnss:LU-A2", "gnss:LU-A3", "gnss:LU-A4"]
    sink = CollectingSink()
    await asyncio.wait_for(sources[0].run(sink), 10)
    fixes = sink.of_kind(wire.Fix)
    assert [(f.ts - T0) // 1000 for f in fixes] == [0, 3, 6]
    assert all(f.flags == ("high_hdop",) for f in fixes)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("receiver", "key", "reason"),
    [
        ({"transport": "serial", "device": "/dev/x"}, "gnss.receivers[0].asset", "missing"),
        ({"asset": "a", "transport": "can"}, "gnss.receivers[0].transport", "must be one of"),
        (
            {"asset": "a", "transport": "serial", "device": "/d", "baud": "fast"},
            "gnss.receivers[0].baud",
            "integer",
        ),
        (
            {"asset": "a", "transport": "serial", "device": "/d", "stopbits": 3},
            "gnss.receivers[0].stopbits",
            "1, 1.5 or 2",
        ),
        (
            {"asset": "a", "transport": "tcp", "host": "h", "port": 0},
            "gnss.receivers[0].port",
            "1..65535",
        ),
        (
            {"asset": "a", "transport": "udp", "port": 1, "prot": 2},
            "gnss.receivers[0].prot",
            "unknown key",
        ),
        (
            {"asset": "a", "transport": "file", "path": "x", "report": {"interval": 1}},
            "gnss.receivers[0].report.interval",
            "unknown key",
        ),
    ],
)
def test_config_errors_name_file_and_key(
    tmp_path: Path, receiver: dict[str, object], key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build_sources({"receivers": [receiver]}, file=tmp_path / "agent.toml", state_dir=tmp_path)
    assert caught.value.key == key
    assert reason in caught.value.reason
    assert caught.value.file == str(tmp_path / "agent.toml")


def test_config_error_for_a_missing_replay_file(tmp_path: Path) -> None:
    receiver = {"asset": "a", "transport": "file", "path": "nope.nmea"}
    with pytest.raises(ConfigError, match=r"gnss.receivers\[0\].path: no such file"):
        build_sources({"receivers": [receiver]}, file=tmp_path / "a.toml", state_dir=tmp_path)


async def test_replay_of_a_file_that_vanished_ends_quietly(tmp_path: Path) -> None:
    source = gnss_source(FileStream("file", path=tmp_path / "gone.nmea"))
    sink = CollectingSink()
    await asyncio.wait_for(source.run(sink), 10)
    assert sink.items == []


async def test_a_looped_replay_of_an_empty_file_waits_instead_of_spinning(
    tmp_path: Path,
) -> None:
    path = tmp_path / "empty.nmea"
    path.write_bytes(b"\r\n")
    stream = FileStream("file", path=path, loop=True)
    source = gnss_source(stream)
    sink = CollectingSink()
    task = asyncio.create_task(source.run(sink))
    await asyncio.sleep(0.5)
    assert stream.passes <= 2, "an empty file is looked at once a second, not in a busy loop"
    path.write_bytes(b"$GPGGA,120000.00,3130.0000,N,12018.0000,E,1,08,0.9,10.0,M,0.0,M,,*6A\r\n")
    async with asyncio.timeout(10):
        while stream.passes < 3:  # noqa: ASYNC110  # the stream's own counter
            await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_config_errors_in_the_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"gnss.hdop_limit: must be a number"):
        build_sources({"hdop_limit": "x"}, file=tmp_path / "a.toml", state_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"gnss.receivers: must be an array"):
        build_sources({"receivers": {"asset": "a"}}, file=tmp_path / "a.toml", state_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"gnss.receivers\[1\].name: duplicate"):
        build_sources(
            {"receivers": [{"asset": "a", "transport": "udp", "port": 1}] * 2},
            file=tmp_path / "a.toml",
            state_dir=tmp_path,
        )


class _RecordingBackoff(Backoff):
    """A backoff that remembers the delays it handed out."""

    def __init__(self) -> None:
        super().__init__(initial_s=0.01, max_s=10.0, rng=random.Random(3))
        self.delays: list[float] = []

    def next_delay_s(self) -> float:
        delay = super().next_delay_s()
        self.delays.append(delay)
        return delay


async def test_tcp_backoff_grows_against_a_server_that_accepts_and_hangs_up() -> None:
    # A serial-to-Ethernet converter busy with another client accepts and closes at once: the
    # link never works, so the retries must back off instead of reconnecting at the first delay.
    connections: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    backoff = _RecordingBackoff()
    stream = TcpStream("tcp", host="127.0.0.1", port=port, backoff=backoff)
    source = gnss_source(stream)
    sink = CollectingSink()

    async def body() -> None:
        await until(lambda: len(backoff.delays) >= 5)

    async with server:
        await running(source, sink, body)
    caps = [0.01 * 2**attempt for attempt in range(5)]
    assert all(cap / 2 <= d <= cap for d, cap in zip(backoff.delays, caps, strict=False))
    assert sink.items == []
