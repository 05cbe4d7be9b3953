"""An alarm raised on the gateway makes its GNSS source report the next fix at once."""

from __future__ import annotations

import asyncio
import contextlib

import msgspec

import wire
from edge.decode.ais import AisDecoder
from edge.decode.nmea import NmeaDecoder
from edge.pipeline import AlarmListener, AlarmTap, CollectingSink
from edge.reporting import Reporter, ReportPolicy
from edge.sources.ais import AisSource
from edge.sources.gnss import GnssSource
from edge.sources.streams import TcpStream
from tests.edge.nmea.test_sources import T0, epochs, fix_times, until

HOURLY = ReportPolicy(interval_s=3600, distance_m=0, heading_change_deg=0)


async def test_alarm_forces_the_next_fix_over_a_real_tcp_feed() -> None:
    feed: asyncio.Queue[bytes] = asyncio.Queue()

    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while True:
            writer.write(await feed.get())
            await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    source = GnssSource(
        "gnss:truck-1",
        stream=TcpStream("gnss:truck-1", host="127.0.0.1", port=port),
        decoder=NmeaDecoder(asset="truck-1"),
        reporter=Reporter(HOURLY),
        clock=lambda: T0 / 1000,
    )
    assert isinstance(source, AlarmListener)
    sink = CollectingSink()
    tap = AlarmTap(sink, [source])
    task = asyncio.create_task(source.run(tap))
    try:
        # Fixes of epochs 0..3 are decided (3 at its last sentence: by then the decoder knows
        # the receiver's cycle); only the first is sent.
        await feed.put(epochs(0, 4))
        await until(lambda: source.decoder.counters.get("fixes", 0) >= 4)
        assert fix_times(sink) == [0]
        gas = wire.Alarm(seq=0, ts=T0, state="raise", level="H", site="truck-1", point="TANK.P")
        tap.put(gas)
        await feed.put(epochs(4, 6))
        await until(lambda: len(sink.of_kind(wire.Fix)) >= 2)
        await asyncio.sleep(0.1)  # the fix of epoch 5 would arrive now if it were sent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
    assert fix_times(sink) == [0, 4], (
        "the fix right after the alarm goes out; the hourly rule resumes"
    )
    assert sink.of_kind(wire.Alarm) == [msgspec.structs.replace(gas, seq=2)]  # after fix 0


def test_ais_source_reports_at_once_only_for_a_vessel_alarm() -> None:
    forced: list[str] = []

    class Recorder(Reporter):
        def force(self, asset: str) -> None:
            forced.append(asset)

    source = AisSource(
        "ais:station",
        stream=TcpStream("ais:station", host="127.0.0.1", port=9),
        decoder=AisDecoder(),
        reporter=Recorder(HOURLY),
    )
    source.on_alarm(
        wire.Alarm(seq=0, ts=T0, state="raise", level="fault", asset="412420101", code="x")
    )
    source.on_alarm(wire.Alarm(seq=0, ts=T0, state="raise", level="H", site="s", point="p"))
    assert forced == ["412420101"]
